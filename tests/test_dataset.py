"""Datasets: seeds, index, resume after a kill, 1 vs 2 workers byte-identical, Dask, CLI errors.

Most tests use ``fake_simulate``, a stand-in with the signature and file-writing behaviour of
:func:`tomosim.pipeline.simulate` (files written atomically, ``config.resolved.yaml`` last), so
they run in seconds; one test runs the real pipeline on a tiny phantom when it exists.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from tomosim.config import dump_config
from tomosim.dataset import (
    generate_dataset,
    phantom_seed_sequence,
    read_index,
)
from tomosim.errors import TomosimError
from tomosim.io import read_mrc, write_mrc, write_text

TESTS = Path(__file__).resolve().parent

TREE = {
    "seed": 3,
    "sample": {"shape": [8, {"choice": [12, 16]}, 16], "pixel_size": {"uniform": [9.0, 11.0]}},
    "microscope": {"optics": {"defocus_um": {"loguniform": [1.0, 5.0]}}},
}


def fake_simulate(config, output_dir, *, progress=True):
    """Stand-in for tomosim.pipeline.simulate: a few small files, marker written last.

    With ``$TOMOSIM_TEST_STALL=<flag file>`` it stalls inside phantom_00002 after writing its
    first file, creating the flag file so a test knows the folder is half-written.
    """
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(config.seed)
    tomogram = rng.normal(size=config.sample.shape).astype(np.float32)
    write_mrc(out / "tomogram.mrc", tomogram, voxel_size=config.sample.pixel_size)
    stall = os.environ.get("TOMOSIM_TEST_STALL")
    if stall and config.output.tomogram_name == "phantom_00002":
        Path(stall).write_text("half-written")
        time.sleep(120)
    write_mrc(out / "labels.mrc", (tomogram > 1).astype(np.uint8), voxel_size=config.sample.pixel_size)
    write_text(out / "config.resolved.yaml", dump_config(config))


def failing_simulate(config, output_dir, *, progress=True):
    if config.output.tomogram_name == "phantom_00001":
        raise TomosimError("structure file not found: missing.pdb")
    fake_simulate(config, output_dir)


def warning_simulate(config, output_dir, *, progress=True):
    import warnings

    warnings.warn(f"species 'a': placed 1 of 2 requested ({config.output.tomogram_name})", stacklevel=1)
    fake_simulate(config, output_dir)


def folder_bytes(root: Path) -> dict[str, bytes]:
    """Every file below ``root`` (relative path -> content), lock file excluded."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ".tomosim-dataset.lock"
    }


def test_seeds_index_and_phantom_configs(tmp_path):
    index = generate_dataset(TREE, 4, tmp_path / "d", simulate=fake_simulate, progress=False)
    assert index.done == 4 and index.seed == 3 and index.n == 4
    assert [e.folder for e in index.phantoms] == [f"phantom_0000{i}" for i in range(4)]
    # phantom i draws from SeedSequence(seed).spawn(n)[i]: its simulation seed comes first
    children = np.random.SeedSequence(3).spawn(4)
    for i, entry in enumerate(index.phantoms):
        assert phantom_seed_sequence(3, i).generate_state(4).tolist() == children[i].generate_state(4).tolist()
        expected_seed = int(np.random.default_rng(children[i]).integers(0, 2**63 - 1))
        resolved = yaml.safe_load((tmp_path / "d" / entry.folder / "config.resolved.yaml").read_text())
        assert entry.seed == expected_seed == resolved["seed"]
        assert resolved["sample"]["pixel_size"] == entry.parameters["sample.pixel_size"]
        assert resolved["sample"]["shape"][1] == entry.parameters["sample.shape.1"]
        assert resolved["output"]["tomogram_name"] == entry.folder
    assert len({e.seed for e in index.phantoms}) == 4
    assert len({e.parameters["sample.pixel_size"] for e in index.phantoms}) == 4
    # both index files hold folder, seed, status and the dotted drawn values
    again = read_index(tmp_path / "d")
    assert again == index
    lines = (tmp_path / "d" / "index.csv").read_text().splitlines()
    assert lines[0] == "phantom,folder,seed,status,warnings,sample.shape.1,sample.pixel_size,microscope.optics.defocus_um"
    assert len(lines) == 5 and all(",done," in line for line in lines[1:])
    saved = yaml.safe_load((tmp_path / "d" / "dataset_config.yaml").read_text())
    assert saved["n"] == 4 and saved["config"]["sample"]["pixel_size"] == {"uniform": [9.0, 11.0]}
    # a larger dataset with the same seed starts with the same phantoms
    bigger = generate_dataset(TREE, 6, tmp_path / "e", simulate=fake_simulate, progress=False)
    assert bigger.phantoms[:4] == index.phantoms


def test_resume_after_kill_mid_phantom(tmp_path):
    """SIGKILL while phantom_00002 is half-written; the re-run removes it and completes the set."""
    out = tmp_path / "killed"
    flag = tmp_path / "stalled"
    script = (
        f"import sys; sys.path.insert(0, {str(TESTS)!r})\n"
        "from test_dataset import TREE, fake_simulate\n"
        "from tomosim.dataset import generate_dataset\n"
        f"generate_dataset(TREE, 5, {str(out)!r}, simulate=fake_simulate, progress=False)\n"
    )
    env = {**os.environ, "TOMOSIM_TEST_STALL": str(flag)}
    process = subprocess.Popen([sys.executable, "-c", script], env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not flag.exists():
            assert process.poll() is None, "dataset process ended before stalling"
            assert time.monotonic() < deadline, "dataset process never reached phantom_00002"
            time.sleep(0.05)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    staging = list(out.glob(".phantom_00002.partial-*"))
    assert len(staging) == 1 and (staging[0] / "tomogram.mrc").is_file()
    assert not (staging[0] / "config.resolved.yaml").exists()
    assert sorted(p.name for p in out.glob("phantom_*")) == ["phantom_00000", "phantom_00001"]
    status = [row["status"] for row in json.loads((out / "index.json").read_text())["phantoms"]]
    assert status[:2] == ["done", "done"] and status[2:] == ["pending"] * 3
    # a phantom folder left incomplete (as by a pipeline writing in place) is redone too
    (out / "phantom_00003").mkdir()
    (out / "phantom_00003" / "tomogram.mrc").write_bytes(b"truncated")
    before = (out / "phantom_00000" / "tomogram.mrc").stat().st_mtime_ns

    index = generate_dataset(TREE, 5, out, simulate=fake_simulate, progress=False)
    assert index.done == 5
    assert (out / "phantom_00000" / "tomogram.mrc").stat().st_mtime_ns == before  # skipped
    assert not list(out.glob(".phantom_*"))
    reference = tmp_path / "uninterrupted"
    generate_dataset(TREE, 5, reference, simulate=fake_simulate, progress=False)
    assert folder_bytes(out) == folder_bytes(reference)
    for folder in index.folders():
        assert read_mrc(folder / "tomogram.mrc").data.shape[0] == 8


def test_one_and_two_workers_byte_identical_on_a_local_dask_cluster(tmp_path):
    pytest.importorskip("distributed")
    one = generate_dataset(TREE, 4, tmp_path / "one", simulate=fake_simulate, progress=False)
    two = generate_dataset(
        TREE, 4, tmp_path / "two", workers=2, simulate=fake_simulate, progress=False
    )
    assert two.done == 4 and [e.seed for e in one.phantoms] == [e.seed for e in two.phantoms]
    files = folder_bytes(tmp_path / "one")
    assert len(files) == 4 * 3 + 3 and files == folder_bytes(tmp_path / "two")


def _worker_environment() -> dict[str, str | None]:
    import numba

    names = ("MALLOC_TRIM_THRESHOLD_", "NUMBA_NUM_THREADS", "OMP_NUM_THREADS")
    return {**{name: os.environ.get(name) for name in names}, "numba": str(numba.get_num_threads())}


def test_local_cluster_workers_limit_threads_and_keep_glibc_malloc_adaptive():
    """Dask's nanny default MALLOC_TRIM_THRESHOLD_ slows phantoms ~40 %; our workers lack it."""
    distributed = pytest.importorskip("distributed")
    from tomosim.workers import local_cluster

    with local_cluster(2, threads=1) as cluster, distributed.Client(cluster) as client:
        environments = client.run(_worker_environment)
    assert len(environments) == 2
    for environment in environments.values():
        assert environment == {"MALLOC_TRIM_THRESHOLD_": None, "NUMBA_NUM_THREADS": "1",
                               "OMP_NUM_THREADS": "1", "numba": "1"}


def test_existing_scheduler_by_address(tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        index = generate_dataset(TREE, 3, tmp_path / "d", scheduler=cluster.scheduler_address,
                                 simulate=fake_simulate, progress=False)
    assert index.done == 3
    generate_dataset(TREE, 3, tmp_path / "r", simulate=fake_simulate, progress=False)
    assert folder_bytes(tmp_path / "d") == folder_bytes(tmp_path / "r")


def test_warnings_are_recorded_in_the_index(tmp_path, recwarn):
    index = generate_dataset(TREE, 2, tmp_path / "d", simulate=warning_simulate, progress=False)
    assert index.phantoms[1].warnings == ("species 'a': placed 1 of 2 requested (phantom_00001)",)
    assert read_index(tmp_path / "d") == index and len(recwarn) == 0
    rows = (tmp_path / "d" / "index.csv").read_text().splitlines()[1:]
    assert all(row.split(",")[4] == "1" for row in rows)
    # resuming a finished dataset simulates nothing and keeps what the phantoms warned
    again = generate_dataset(TREE, 2, tmp_path / "d", simulate=fake_simulate, progress=False)
    assert again.phantoms[1].warnings == index.phantoms[1].warnings
    assert read_index(tmp_path / "d") == index


def test_failure_stops_records_and_resumes(tmp_path):
    out = tmp_path / "d"
    with pytest.raises(TomosimError, match="missing.pdb"):
        generate_dataset(TREE, 3, out, simulate=failing_simulate, progress=False)
    index = read_index(out)
    assert [e.status for e in index.phantoms] == ["done", "failed", "pending"]
    assert index.phantoms[1].error == "structure file not found: missing.pdb"
    assert not list(out.glob(".phantom_*")) and not (out / "phantom_00001").exists()
    assert generate_dataset(TREE, 3, out, simulate=fake_simulate, progress=False).done == 3


def test_foreign_dataset_refused_unless_overwrite(tmp_path):
    out = tmp_path / "d"
    generate_dataset(TREE, 2, out, simulate=fake_simulate, progress=False)
    for kwargs in ({"seed": 4}, {"n": 3}, {"overrides": ["sample.pixel_size=8"]}):
        args = {"seed": None, "n": 2, "overrides": None, **kwargs}
        with pytest.raises(TomosimError, match="holds another dataset") as err:
            generate_dataset(TREE, args["n"], out, seed=args["seed"], overrides=args["overrides"],
                             simulate=fake_simulate, progress=False)
        assert "\n" not in str(err.value) and "--overwrite" in str(err.value)
    (out / "notes.txt").write_text("mine")
    index = generate_dataset(TREE, 3, out, seed=4, overwrite=True, simulate=fake_simulate, progress=False)
    assert index.seed == 4 and index.done == 3 and (out / "notes.txt").read_text() == "mine"
    stray = tmp_path / "stray"
    (stray / "phantom_00000").mkdir(parents=True)
    with pytest.raises(TomosimError, match="no dataset index"):
        generate_dataset(TREE, 1, stray, simulate=fake_simulate, progress=False)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"n": 0}, "number of phantoms must be an integer >= 1"),
        ({"workers": 0}, "workers must be an integer >= 1"),
        ({"seed": -1}, "dataset seed must be an integer"),
        ({"config": {"sample": {"pixel_size": {"uniform": [2, 1]}}}}, "config key sample.pixel_size"),
        ({"config": {"sample": {"pixel_size": -3}}}, "(phantom_00000): sample.pixel_size"),
        ({"config": "missing.yaml"}, "config file not found"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, fragment):
    args = {"config": TREE, "n": 2, **kwargs}
    config, n = args.pop("config"), args.pop("n")
    with pytest.raises(TomosimError) as err:
        generate_dataset(config, n, tmp_path / "d", simulate=fake_simulate, progress=False, **args)
    assert fragment in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "d").exists()  # bad input fails before touching the output


def test_unreachable_scheduler_fails_fast(tmp_path):
    pytest.importorskip("distributed")
    with socket.socket() as sock:  # a free port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    start = time.monotonic()
    with pytest.raises(TomosimError, match=f"no Dask scheduler answers at tcp://127.0.0.1:{port}"):
        generate_dataset(TREE, 1, tmp_path / "d", scheduler=f"tcp://127.0.0.1:{port}",
                         connect_timeout=1.0, simulate=fake_simulate, progress=False)
    assert time.monotonic() - start < 30  # a hang guard, not a speed test
    with pytest.raises(TomosimError, match="scheduler file not found"):
        generate_dataset(TREE, 1, tmp_path / "e", scheduler=str(tmp_path / "sched.json"),
                         simulate=fake_simulate, progress=False)


def test_cli_dataset(tmp_path, run_cli, monkeypatch):
    import tomosim.pipeline

    monkeypatch.setattr(tomosim.pipeline, "simulate", fake_simulate, raising=False)
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(TREE))
    code, out, err = run_cli("dataset", config, "-n", "2", "-o", tmp_path / "d", "--seed", "9",
                             "--set", "sample.pixel_size={uniform: [5, 6]}")
    assert code == 0, err
    index = read_index(tmp_path / "d")
    assert index.done == 2 and index.seed == 9
    assert all(5 <= e.parameters["sample.pixel_size"] < 6 for e in index.phantoms)
    for args, fragment in [
        (("-n", "0"), "-n must be at least 1"),
        (("-n", "2", "--workers", "0"), "--workers must be at least 1"),
        (("-n", "2", "--seed", "5"), "holds another dataset"),
        (("-n", "2", "--set", "sample.pixel_size={unifrom: [1, 2]}"), "unknown distribution"),
    ]:
        code, out, err = run_cli("dataset", config, "-o", tmp_path / "d", *args)
        assert code == 2 and fragment in err and len(err.strip().splitlines()) == 1, err
    code, out, err = run_cli("dataset", tmp_path / "nope.yaml", "-n", "1", "-o", tmp_path / "x")
    assert code == 2 and "config file not found" in err


def test_real_pipeline_tiny_dataset(tmp_path):
    """Two tiny phantoms through the real pipeline (skipped until tomosim.pipeline.simulate exists)."""
    import tomosim.pipeline

    if not hasattr(tomosim.pipeline, "simulate"):
        pytest.skip("tomosim.pipeline.simulate not available yet")
    tree = {
        "sample": {"shape": [32, 48, 48], "pixel_size": {"uniform": [10.0, 12.0]}},
        "proteins": {"species": [{"name": "apoferritin", "source": "builtin:apoferritin",
                                  "count": {"randint": [1, 3]}}]},
        "microscope": {"tilt": {"min_angle": -50, "max_angle": 50, "step": 10}},
        "output": {"previews": False},
    }
    index = generate_dataset(tree, 2, tmp_path / "d", seed=1, progress=False)
    assert index.done == 2
    for folder in index.folders():
        assert read_mrc(folder / "tomogram.mrc").data.shape == (32, 48, 48)
        assert read_mrc(folder / "labels.mrc").data.shape == (32, 48, 48)
        assert len((folder / "tiltseries.tlt").read_text().split()) == 11
    # 2 worker processes (1 numba thread each) write the same bytes as 1 worker
    pytest.importorskip("distributed")
    generate_dataset(tree, 2, tmp_path / "two", seed=1, workers=2, progress=False)
    assert folder_bytes(tmp_path / "d") == folder_bytes(tmp_path / "two")
