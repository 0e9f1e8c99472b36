"""OS errors and faults: read-only places, full disks, bad cache folders, Ctrl-C, SIGKILL.

Read-only and full-disk cases use a small tmpfs when this process may mount one (root on
Linux); otherwise the OS error is injected where the file system would raise it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from cli_helpers import assert_clean_error, tree
from tomosim.io import remove_stale_partials, staged_folder, write_mrc, write_text, write_tlt

REPO = Path(__file__).resolve().parents[1]
SMALL = (
    "seed: 1\nsample: {shape: [16, 32, 32], pixel_size: 10.0}\n"
    "proteins: {species: [{name: apo, source: 'builtin:apoferritin', count: 1}]}\n"
    "microscope: {tilt: {min_angle: -30, max_angle: 30, step: 15}}\n"
)
# tens of seconds of work once compiled (121 tilts of 256 x 256): long enough to be killed mid-way
# on a quiet machine too
SLOW = (
    "seed: 2\nsample: {shape: [64, 256, 256], pixel_size: 10.0}\n"
    "proteins: {species: [{name: apo, source: 'builtin:apoferritin', count: 20}]}\n"
    "microscope: {tilt: {min_angle: -60, max_angle: 60, step: 1}}\n"
)


def _digests(folder: Path) -> dict[str, str]:
    """sha256 of every file in ``folder`` by name (compared instead of the bytes themselves)."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}


@contextlib.contextmanager
def tmpfs(path: Path, *, size_kb: int, read_only: bool = False) -> Iterator[Path | None]:
    """Mount a tmpfs of ``size_kb`` at ``path``; yields None where mounting is not allowed."""
    path.mkdir(parents=True, exist_ok=True)
    if not sys.platform.startswith("linux") or os.geteuid() != 0 or not shutil.which("mount"):
        yield None
        return
    options = f"size={size_kb}k" + (",ro" if read_only else "")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                          capture_output=True, check=False)
    if done.returncode != 0:
        yield None
        return
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


def _inject_read_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every temporary file or folder creation fail as on a read-only file system."""
    import tomosim.io

    def refuse(*args, dir=None, **kwargs):  # noqa: A002
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), dir)

    monkeypatch.setattr(tomosim.io.tempfile, "mkstemp", refuse)
    monkeypatch.setattr(tomosim.io.tempfile, "mkdtemp", refuse)


def _tilt_series(root: Path) -> tuple[Path, Path]:
    angles = np.arange(-60.0, 61.0, 10.0)
    write_mrc(root / "ts.mrc", np.ones((angles.size, 16, 24), np.float32), voxel_size=5.0,
              is_stack=True)
    write_tlt(root / "ts.tlt", angles)
    return root / "ts.mrc", root / "ts.tlt"


def _labels(root: Path) -> Path:
    labels = np.zeros((8, 16, 16), np.uint8)
    labels[2:5, 4:9, 4:9] = 1
    write_mrc(root / "labels.mrc", labels, voxel_size=10.0)
    return root / "labels.mrc"


# --------------------------------------------------------------------------------------------
# Read-only places and full disks
# --------------------------------------------------------------------------------------------


READ_ONLY_COMMANDS = {
    "simulate": lambda src, ro: ["simulate", src / "sim.yaml", "-o", ro / "run"],
    "demo": lambda src, ro: ["demo", "-o", ro / "demo"],
    "reconstruct": lambda src, ro: ["reconstruct", src / "ts.mrc", "--angles", src / "ts.tlt",
                                    "-o", ro / "t.mrc", "--thickness-px", "8"],
    "potential": lambda src, ro: ["potential", "builtin:apoferritin", "-o", ro / "p.mrc",
                                  "--pixel-size", "8", "--no-cache"],
    "pick": lambda src, ro: ["pick", src / "labels.mrc", "-o", ro / "p.star"],
    "evaluate": lambda src, ro: ["evaluate", src / "labels.mrc", src / "labels.mrc",
                                 "-o", ro / "m.json"],
    "dataset": lambda src, ro: ["dataset", src / "sim.yaml", "-n", "1", "-o", ro / "set"],
}


@pytest.mark.parametrize("command", sorted(READ_ONLY_COMMANDS))
def test_read_only_output_place(
    run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "sim.yaml").write_text(SMALL)
    _tilt_series(src)
    _labels(src)
    with tmpfs(tmp_path / "ro", size_kb=64, read_only=True) as mounted:
        if mounted is None:
            _inject_read_only(monkeypatch)
        before = tree(src)
        args = READ_ONLY_COMMANDS[command](src, tmp_path / "ro")
        line = assert_clean_error(run_cli(*args), "ro")
        assert "read-only" in line.lower(), line
        assert tree(src) == before
        assert not any((tmp_path / "ro").iterdir())


def _fill(folder: Path, leave_bytes: int) -> None:
    """Fill the file system of ``folder`` up to ``leave_bytes`` free."""
    free = shutil.disk_usage(folder).free - leave_bytes
    with open(folder / "filler", "wb") as handle:
        handle.write(b"\0" * max(free, 0))


def test_segment_probabilities_on_a_full_disk(
    run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Memory-mapped probability maps on a full disk: one line, exit 2, no partial files."""
    pytest.importorskip("monai")
    from cli_helpers import tiny_model

    model = tiny_model(tmp_path / "model", run_cli)
    tomogram = np.random.default_rng(0).normal(size=(16, 64, 64)).astype(np.float32)
    write_mrc(tmp_path / "tomo.mrc", tomogram, voxel_size=10.0)
    with tmpfs(tmp_path / "full", size_kb=256) as mounted:
        if mounted is None:
            def no_space(fd, offset, length):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

            monkeypatch.setattr(os, "posix_fallocate", no_space)
        else:
            _fill(mounted, 16 * 1024)  # 16 KiB free; three 128 KiB maps do not fit
        before = tree(tmp_path / "full")
        result = run_cli("segment", model, tmp_path / "tomo.mrc", "-o", tmp_path / "labels.mrc",
                         "--probabilities", tmp_path / "full" / "probs", "--quiet")
        line = assert_clean_error(result, "probs")
        assert "space" in line.lower(), line
        assert tree(tmp_path / "full") == before or not any(
            p.name.startswith(".") for p in (tmp_path / "full").rglob("*")
        )
        assert not list((tmp_path / "full").rglob("*.partial*"))
    assert not (tmp_path / "labels.mrc").exists()


def test_simulate_on_a_full_disk_leaves_nothing(run_cli, tmp_path: Path) -> None:
    (tmp_path / "sim.yaml").write_text(SMALL)
    with tmpfs(tmp_path / "full", size_kb=512) as mounted:
        if mounted is None:
            pytest.skip("cannot mount a tmpfs here (needs root on Linux)")
        _fill(mounted, 100 * 1024)  # room for the first files, not for all of them
        before = tree(mounted)
        line = assert_clean_error(run_cli("simulate", tmp_path / "sim.yaml", "-o", mounted / "run"),
                                  "full")
        assert "space" in line.lower(), line
        assert tree(mounted) == before


# --------------------------------------------------------------------------------------------
# The cache folder
# --------------------------------------------------------------------------------------------


def test_cache_dir_that_is_a_file(run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "cachefile").write_text("x")
    monkeypatch.setenv("TOMOSIM_CACHE_DIR", str(tmp_path / "cachefile"))
    result = run_cli("potential", "builtin:apoferritin", "-o", tmp_path / "p.mrc",
                     "--pixel-size", "8")
    assert_clean_error(result, "cachefile", "TOMOSIM_CACHE_DIR")
    assert not (tmp_path / "p.mrc").exists()


def test_read_only_cache_dir(run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with tmpfs(tmp_path / "rocache", size_kb=64, read_only=True) as mounted:
        if mounted is None:
            if os.geteuid() == 0:
                pytest.skip("root ignores permissions and cannot mount a read-only tmpfs here")
            os.chmod(tmp_path / "rocache", 0o500)
        monkeypatch.setenv("TOMOSIM_CACHE_DIR", str(tmp_path / "rocache"))
        result = run_cli("potential", "builtin:apoferritin", "-o", tmp_path / "p.mrc",
                         "--pixel-size", "8")
        assert_clean_error(result, "rocache", "TOMOSIM_CACHE_DIR")
    assert not (tmp_path / "p.mrc").exists()


def test_memory_error_is_one_line(run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tomosim.cache

    def exhausted(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(tomosim.cache, "load_potential", exhausted)

    result = run_cli("potential", "builtin:apoferritin", "-o", tmp_path / "p.mrc",
                     "--pixel-size", "8")
    assert_clean_error(result, "out of memory")
    assert not (tmp_path / "p.mrc").exists()


# --------------------------------------------------------------------------------------------
# Staged run folders and stale temporary files
# --------------------------------------------------------------------------------------------


def test_staged_folder_replaces_only_when_complete(tmp_path: Path) -> None:
    final = tmp_path / "run"
    final.mkdir()
    (final / "old.txt").write_text("old")
    with pytest.raises(Exception, match="not empty"):
        with staged_folder(final):
            pass
    with pytest.raises(RuntimeError):
        with staged_folder(final, overwrite=True) as staging:
            (staging / "new.txt").write_text("new")
            raise RuntimeError("killed half-way")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert (final / "old.txt").read_text() == "old"
    with staged_folder(final, overwrite=True) as staging:
        (staging / "new.txt").write_text("new")
    assert sorted(p.name for p in final.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_stale_partials_of_dead_processes_are_removed(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    from tomosim.io import _owner_tag

    host = _owner_tag().split("-")[1]
    stale_file = tmp_path / f".labels.{dead.pid}-{host}-abc123.partial.mrc"
    stale_dir = tmp_path / f".run.{dead.pid}-{host}-abc123.partial"
    live = tmp_path / f".labels.{os.getpid()}-{host}-abc123.partial.mrc"
    other_host = tmp_path / f".labels.{dead.pid}-00000000-abc123.partial.mrc"
    foreign = tmp_path / ".hidden.partial"
    for path in (stale_file, live, other_host, foreign):
        path.write_text("x")
    stale_dir.mkdir()
    (stale_dir / "tomogram.mrc").write_text("x")
    removed = remove_stale_partials(tmp_path)
    assert sorted(removed) == sorted([stale_file, stale_dir])
    assert live.exists() and other_host.exists() and foreign.exists()
    write_text(tmp_path / "labels.txt", "y")  # writers clean up as they go
    assert (tmp_path / "labels.txt").read_text() == "y"


# --------------------------------------------------------------------------------------------
# Signals: Ctrl-C and SIGKILL (subprocesses)
# --------------------------------------------------------------------------------------------


def _tomosim(*args: object, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    return subprocess.Popen(
        [sys.executable, "-m", "tomosim.cli", *map(str, args)], cwd=cwd, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _wait_for(predicate, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _staging(parent: Path, name: str) -> list[Path]:
    return [p for p in parent.glob(f".{name}.*.partial") if p.is_dir()]


@pytest.mark.slow
def test_ctrl_c_during_simulate_exits_130_and_leaves_nothing(tmp_path: Path) -> None:
    (tmp_path / "slow.yaml").write_text(SLOW)
    process = _tomosim("simulate", "slow.yaml", "-o", "run", cwd=tmp_path)
    assert _wait_for(lambda: _staging(tmp_path, "run") or process.poll() is not None, 300)
    time.sleep(0.5)  # inside the computation
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == "tomosim: interrupted"
    assert "Traceback" not in stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["slow.yaml"]


@pytest.mark.slow
def test_sigkill_of_simulate_over_an_existing_run_keeps_the_old_run(tmp_path: Path) -> None:
    (tmp_path / "small.yaml").write_text(SMALL)
    (tmp_path / "slow.yaml").write_text(SLOW)
    first = _tomosim("simulate", "small.yaml", "-o", "run", cwd=tmp_path)
    _, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr
    old = _digests(tmp_path / "run")
    refused = _tomosim("simulate", "slow.yaml", "-o", "run", cwd=tmp_path)
    _, stderr = refused.communicate(timeout=300)
    assert refused.returncode == 2 and "--overwrite" in stderr
    process = _tomosim("simulate", "slow.yaml", "-o", "run", "--overwrite", cwd=tmp_path)
    assert _wait_for(lambda: _staging(tmp_path, "run") or process.poll() is not None, 300)
    process.kill()
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL, "the slow run ended before it was killed"
    assert _digests(tmp_path / "run") == old
    assert _staging(tmp_path, "run")  # the killed run's leftovers, until the next run
    again = _tomosim("simulate", "small.yaml", "-o", "run", "--overwrite", "--seed", "5",
                     cwd=tmp_path)
    _, stderr = again.communicate(timeout=300)
    assert again.returncode == 0, stderr
    assert not _staging(tmp_path, "run")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "slow.yaml", "small.yaml"]
    assert {p.name for p in (tmp_path / "run").iterdir()} == set(old)


@pytest.mark.slow
def test_sigkill_of_train_on_the_fly_leaves_no_process(tmp_path: Path) -> None:
    psutil = pytest.importorskip("psutil")
    pytest.importorskip("monai")
    (tmp_path / "sim.yaml").write_text(
        "seed: 3\nsample: {shape: [24, 48, 48], pixel_size: 10.0}\n"
        "proteins: {species: [{name: apo, source: 'builtin:apoferritin', count: 3}]}\n"
        "microscope: {tilt: {min_angle: -50, max_angle: 50, step: 10}}\n"
    )
    (tmp_path / "train.yaml").write_text(
        "network: {depth: 1, base_channels: 4, residual_units: 0}\n"
        "patch_size: 16\nbatch_size: 1\nepochs: 1\niterations_per_epoch: 200\n"
        "on_the_fly: {pool_size: 2, refresh_every: 1, workers: 2, validation_phantoms: 0}\n"
    )
    process = _tomosim("train", "--on-the-fly", "sim.yaml", "-o", "model", "--config",
                       "train.yaml", "--quiet", "--threads", "1", cwd=tmp_path)
    parent = psutil.Process(process.pid)

    def workers() -> list:
        return [c for c in parent.children(recursive=True)
                if "resource_tracker" not in " ".join(c.cmdline())]

    assert _wait_for(lambda: len(workers()) >= 2 or process.poll() is not None, 300)
    children = parent.children(recursive=True)
    time.sleep(1.0)
    running = process.poll() is None
    process.kill()
    _, stderr = process.communicate(timeout=60)
    assert running, stderr

    def all_gone() -> bool:
        alive = []
        for child in children:
            with contextlib.suppress(psutil.NoSuchProcess):
                if child.status() != psutil.STATUS_ZOMBIE:
                    alive.append(child)
        return not alive

    assert _wait_for(all_gone, 30), [c.pid for c in children]


# --------------------------------------------------------------------------------------------
# Warnings that do not stop a run
# --------------------------------------------------------------------------------------------


def test_objects_that_cannot_be_placed_are_counted(run_cli, tmp_path: Path) -> None:
    (tmp_path / "sim.yaml").write_text(SMALL)
    code, _, err = run_cli("simulate", tmp_path / "sim.yaml", "-o", tmp_path / "run",
                           "--set", "proteins.species.0.count=20", "--set", "output.previews=false")
    assert code == 0, err
    warning = [line for line in err.splitlines() if line.startswith("tomosim: warning:")]
    assert len(warning) == 1 and "of 20" in warning[0] and "apo" in warning[0], err
    placed = int(warning[0].split("apo ")[1].split(" of")[0])
    assert 0 < placed < 20
    assert (tmp_path / "run" / "config.resolved.yaml").is_file()


def test_a_config_without_objects_warns_about_empty_ice(run_cli, tmp_path: Path) -> None:
    (tmp_path / "ice.yaml").write_text(
        "sample: {shape: [16, 32, 32], pixel_size: 10.0}\n"
        "microscope: {tilt: {min_angle: -30, max_angle: 30, step: 15}}\n"
        "output: {previews: false}\n"
    )
    code, _, err = run_cli("simulate", tmp_path / "ice.yaml", "-o", tmp_path / "run")
    assert code == 0, err
    assert "tomosim: warning:" in err and "empty ice" in err
