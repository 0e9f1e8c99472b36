"""On-the-fly training data: distinct phantoms, worker seed streams, patches, epochs, bad input."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
import yaml

torch = pytest.importorskip("torch")

from tomosim.config import dump_config  # noqa: E402
from tomosim.dataset import generate_dataset  # noqa: E402
from tomosim.errors import TomosimError  # noqa: E402
from tomosim.io import read_mrc, write_mrc, write_text  # noqa: E402
from tomosim.train.on_the_fly import PhantomStream, phantom_loader  # noqa: E402

TREE = {
    "seed": 5,
    "sample": {"shape": [8, 12, 16], "pixel_size": {"uniform": [9.0, 11.0]}},
}


def fake_simulate(config, output_dir, *, progress=True):
    """Stand-in for tomosim.pipeline.simulate (same signature, marker file last)."""
    out = Path(output_dir)
    rng = np.random.default_rng(config.seed)
    tomogram = rng.normal(3.0, 2.0, size=config.sample.shape).astype(np.float32)
    write_mrc(out / "tomogram.mrc", tomogram, voxel_size=config.sample.pixel_size)
    write_mrc(out / "labels.mrc", (tomogram > 4).astype(np.uint8), voxel_size=config.sample.pixel_size)
    write_text(out / "config.resolved.yaml", dump_config(config))


def resolved_seed(folder: Path, rng: np.random.Generator):
    yield yaml.safe_load((folder / "config.resolved.yaml").read_text())["seed"]


def test_whole_volumes_are_distinct_normalised_and_labelled():
    stream = PhantomStream(TREE, 5, simulate=fake_simulate)
    samples = []
    for sample in stream:
        samples.append(sample)
        if len(samples) == 3:
            break
    for tomogram, labels in samples:
        assert tomogram.shape == labels.shape == (8, 12, 16)
        assert tomogram.dtype == torch.float32 and labels.dtype == torch.int64
        assert abs(float(tomogram.mean())) < 1e-4 and abs(float(tomogram.std(unbiased=False)) - 1) < 1e-4
        assert set(labels.unique().tolist()) <= {0, 1}
    assert not torch.equal(samples[0][0], samples[1][0]) and not torch.equal(samples[1][0], samples[2][0])


def test_stream_equals_dataset_phantoms_for_any_worker_count(tmp_path):
    dataset = generate_dataset(TREE, 4, tmp_path / "d", simulate=fake_simulate, progress=False)
    expected = [entry.seed for entry in dataset.phantoms]
    stream = PhantomStream(TREE, 5, transform=resolved_seed, phantoms_per_epoch=4, simulate=fake_simulate)
    in_process = [int(s) for s in phantom_loader(stream, batch_size=1, num_workers=0)]
    two_workers = [int(s) for s in phantom_loader(stream, batch_size=1, num_workers=2)]
    assert in_process == expected
    assert sorted(two_workers) == sorted(expected) and len(set(two_workers)) == 4
    stream.set_epoch(1)
    next_epoch = [int(s) for s in phantom_loader(stream, batch_size=1, num_workers=0)]
    assert not set(next_epoch) & set(expected) and len(next_epoch) == 4


def test_patches_are_random_crops_and_reproducible():
    def take(stream, count):
        out = []
        for sample in stream:
            out.append(sample)
            if len(out) == count:
                return out

    first = take(PhantomStream(TREE, 5, patch_shape=(4, 6, 8), patches_per_phantom=3,
                               normalise=False, simulate=fake_simulate), 6)
    again = take(PhantomStream(TREE, 5, patch_shape=(4, 6, 8), patches_per_phantom=3,
                               normalise=False, simulate=fake_simulate), 6)
    assert all(a[0].shape == (4, 6, 8) and a[1].shape == (4, 6, 8) for a in first)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, again, strict=False))
    assert len({a[0].numpy().tobytes() for a in first}) == 6
    assert float(first[0][0].mean()) > 1  # not normalised: values of tomogram.mrc
    whole = fake_volume(TREE, 5)
    window_found = any(
        np.array_equal(first[0][0].numpy(), whole[z:z + 4, y:y + 6, x:x + 8])
        for z in range(5) for y in range(7) for x in range(9)
    )
    assert window_found


def fake_volume(tree, seed):
    from tomosim.dataset import draw_phantom

    config, _ = draw_phantom({k: v for k, v in tree.items() if k != "seed"}, seed, 0)
    return np.random.default_rng(config.seed).normal(3.0, 2.0, size=config.sample.shape).astype(np.float32)


def test_from_config_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(TREE))
    stream = PhantomStream.from_config(path, overrides=["sample.shape=[8, 8, 8]"], simulate=fake_simulate)
    assert stream.seed == 5 and next(iter(stream))[0].shape == (8, 8, 8)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"seed": -2}, "stream seed"),
        ({"patch_shape": (4, 4)}, "three positive sizes"),
        ({"patch_shape": (16, 4, 4)}, "larger than the phantom shape"),
        ({"patches_per_phantom": 0}, "patches_per_phantom"),
        ({"phantoms_per_epoch": 0}, "phantoms_per_epoch"),
        ({"config_tree": {"sample": {"pixel_size": {"uniform": [3, 1]}}}}, "config key sample.pixel_size"),
        ({"config_tree": {"sample": {"pixel_size": 0}}}, "sample.pixel_size"),
    ],
)
def test_bad_arguments(kwargs, fragment):
    args = {"config_tree": TREE, "seed": 1, **kwargs}
    with pytest.raises(TomosimError) as err:
        PhantomStream(args.pop("config_tree"), args.pop("seed"), simulate=fake_simulate, **args)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_real_pipeline_stream():
    """One tiny phantom through the real pipeline (skipped until tomosim.pipeline.simulate exists)."""
    import tomosim.pipeline

    if not hasattr(tomosim.pipeline, "simulate"):
        pytest.skip("tomosim.pipeline.simulate not available yet")
    tree = {
        "sample": {"shape": [32, 48, 48], "pixel_size": 10.0},
        "proteins": {"species": [{"name": "apoferritin", "source": "builtin:apoferritin", "count": 3}]},
        "microscope": {"tilt": {"min_angle": -50, "max_angle": 50, "step": 10}},
    }
    tomogram, labels = next(iter(PhantomStream(tree, 1, patch_shape=(16, 32, 32))))
    assert tomogram.shape == labels.shape == (16, 32, 32)
    assert torch.isfinite(tomogram).all() and set(labels.unique().tolist()) <= {0, 1}


# --------------------------------------------------------------------------------------------
# Training on the fly: the sliding phantom pool and `tomosim train --on-the-fly`
# --------------------------------------------------------------------------------------------

POOL_TREE = {
    "seed": 9,
    "classes": ["blob"],
    "sample": {"shape": [12, 32, 32], "pixel_size": 10.0},
    "microscope": {"optics": {"defocus_um": {"uniform": [1.0, 5.0]}}},
}
POOL_TRAIN = {
    "network": {"depth": 2, "base_channels": 4, "residual_units": 0},
    "patch_size": 16, "batch_size": 2, "epochs": 2, "iterations_per_epoch": 3,
    "validation_patches": 4,
    "on_the_fly": {"pool_size": 2, "refresh_every": 2, "workers": 1, "validation_phantoms": 1},
}


def labelled_simulate(config, output_dir, *, progress=True):
    """Stand-in for simulate with labels and classes.csv: bright balls labelled "blob" (id 1).

    Must live at module level: PhantomPool's spawned workers import it by name.
    """
    out = Path(output_dir)
    rng = np.random.default_rng(config.seed)
    shape = config.sample.shape
    z, y, x = np.indices(shape)
    labels = np.zeros(shape, np.uint8)
    for _ in range(3):
        centre = rng.uniform([3, 6, 6], [shape[0] - 3, shape[1] - 6, shape[2] - 6])
        labels[(z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2 < 9] = 1
    tomogram = (labels * 2.0 + rng.normal(0.0, 0.5, size=shape)).astype(np.float32)
    write_mrc(out / "tomogram.mrc", tomogram, voxel_size=config.sample.pixel_size)
    write_mrc(out / "labels.mrc", labels, voxel_size=config.sample.pixel_size)
    write_text(out / "classes.csv", "id,name,colour\n0,background,#000000\n1,blob,#ff0000\n")
    write_text(out / "config.resolved.yaml", dump_config(config))


def failing_simulate(config, output_dir, *, progress=True):
    """Fails on phantom 2 (simulated in the main process for the first pool)."""
    if config.output.tomogram_name == "phantom_00002":
        raise TomosimError("structure file not found: missing.pdb")
    labelled_simulate(config, output_dir)


def failing_later_simulate(config, output_dir, *, progress=True):
    """Fails on phantom 4 (simulated by a spawned worker: the error crosses processes)."""
    if config.output.tomogram_name == "phantom_00004":
        raise ValueError("kaboom in the worker")
    labelled_simulate(config, output_dir)


def pool_names(pool, iteration):
    return [source.volume.name.split()[-1] for source in pool.sources(iteration)]


@pytest.mark.parametrize("workers", [1, 2])
def test_phantom_pool_slides_by_iteration_whatever_the_worker_count(workers):
    from tomosim.labels import make_class_table
    from tomosim.train.config import OnTheFlyConfig
    from tomosim.train.on_the_fly import PhantomPool

    settings = OnTheFlyConfig(pool_size=2, refresh_every=3, workers=workers, validation_phantoms=1)
    classes = make_class_table([1], ["blob"])
    with PhantomPool(POOL_TREE, 9, classes=classes, pixel_size=10.0, settings=settings,
                     simulate=labelled_simulate) as pool:
        assert [s.volume.name for s in pool.validation] == ["on-the-fly phantom_00000"]
        seen = {i: pool_names(pool, i) for i in range(0, 10)}
        assert pool.phantoms_seen == 5
    assert seen[0] == seen[2] == ["phantom_00001", "phantom_00002"]
    assert seen[3] == seen[5] == ["phantom_00002", "phantom_00003"]
    assert seen[9] == ["phantom_00004", "phantom_00005"]
    # the pool holds what `tomosim dataset` makes for the same seed (labels mapped to channels)
    with PhantomPool(POOL_TREE, 9, classes=classes, pixel_size=10.0, settings=settings,
                     simulate=labelled_simulate, start_iteration=6) as resumed:
        assert pool_names(resumed, 6) == ["phantom_00003", "phantom_00004"]
        source = resumed.sources(6)[0]
    from tomosim.dataset import draw_phantom

    config, _ = draw_phantom({k: v for k, v in POOL_TREE.items() if k != "seed"}, 9, 3)
    assert config.output.tomogram_name == "phantom_00003"
    with tempfile.TemporaryDirectory() as scratch:
        labelled_simulate(config, scratch)
        expected = read_mrc(Path(scratch) / "labels.mrc").data
    assert np.array_equal(source.volume.labels, expected)
    assert set(source.centres) == {0, 1}


def test_phantom_pool_errors_are_one_line_in_this_process_and_from_workers():
    from tomosim.labels import make_class_table
    from tomosim.train.config import OnTheFlyConfig
    from tomosim.train.on_the_fly import PhantomPool

    settings = OnTheFlyConfig(pool_size=2, refresh_every=1, workers=1, validation_phantoms=1)
    common = {"classes": make_class_table([1], ["blob"]), "pixel_size": 10.0, "settings": settings}
    with pytest.raises(TomosimError) as err:
        PhantomPool(POOL_TREE, 9, simulate=failing_simulate, **common)
    message = str(err.value)
    assert "\n" not in message and "phantom_00002" in message
    assert message.endswith("structure file not found: missing.pdb")
    with PhantomPool(POOL_TREE, 9, simulate=failing_later_simulate, **common) as pool:
        pool.sources(0)  # phantoms 1, 2 (this process)
        pool.sources(1)  # phantom 3 (worker)
        with pytest.raises(TomosimError) as err:
            pool.sources(2)  # phantom 4 fails in the worker
    message = str(err.value)
    assert "\n" not in message and "Traceback" not in message
    assert message == "on-the-fly phantom phantom_00004 failed: ValueError: kaboom in the worker"


def _weights(folder: Path):
    from tomosim.train.checkpoint import load_checkpoint

    return load_checkpoint(folder / "model.pt").weights


def test_train_on_the_fly_same_weights_for_any_worker_count_and_after_resume(tmp_path):
    pytest.importorskip("monai")
    from tomosim.train.config import TrainConfig
    from tomosim.train.training import train_on_the_fly

    torch.set_num_threads(1)
    config = TrainConfig.model_validate(POOL_TRAIN)
    two = TrainConfig.model_validate({**POOL_TRAIN, "on_the_fly": {**POOL_TRAIN["on_the_fly"], "workers": 2}})
    common = {"phantom_seed": 9, "simulate": labelled_simulate}
    first = train_on_the_fly(POOL_TREE, config=config, output_dir=tmp_path / "one", **common)
    train_on_the_fly(POOL_TREE, config=two, output_dir=tmp_path / "two", **common)
    history = first.history
    # 6 iterations, pool of 2, one new phantom every 2 iterations: phantoms 1..4 (0 validates)
    assert [r["phantoms_seen"] for r in history] == [3, 4]
    assert history[-1]["validation_dice_per_class"]["blob"] is not None
    assert first.checkpoint.classes.names == ("background", "blob")
    assert (tmp_path / "one" / "phantom_config.yaml").is_file()
    one_w, two_w = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    assert all(torch.equal(one_w[k], two_w[k]) for k in one_w)

    class Stop(Exception):
        pass

    def stop_after_first(record):
        raise Stop

    with pytest.raises(Stop):
        train_on_the_fly(POOL_TREE, config=config, output_dir=tmp_path / "cut",
                         on_epoch_end=stop_after_first, **common)
    resumed = train_on_the_fly(POOL_TREE, config=config, output_dir=tmp_path / "cut", resume=True,
                               **common)
    assert [r["phantoms_seen"] for r in resumed.history] == [3, 4]
    cut_w = _weights(tmp_path / "cut")
    assert all(torch.equal(one_w[k], cut_w[k]) for k in one_w)
    other_tree = {**POOL_TREE, "sample": {**POOL_TREE["sample"], "shape": [12, 32, 48]}}
    with pytest.raises(TomosimError, match="phantom config or seed differs"):
        train_on_the_fly(other_tree, config=config, output_dir=tmp_path / "cut", resume=True, **common)


def test_train_cli_on_the_fly_real_pipeline(tmp_path, run_cli):
    pytest.importorskip("monai")
    sim = tmp_path / "sim.yaml"
    sim.write_text(yaml.safe_dump({
        "seed": 4,
        "sample": {"shape": [24, 48, 48], "pixel_size": 10.0},
        "proteins": {"species": [{"name": "apoferritin", "source": "builtin:apoferritin",
                                  "count": {"randint": [3, 6]}}]},
        "microscope": {"tilt": {"min_angle": -50, "max_angle": 50, "step": 10},
                       "optics": {"defocus_um": {"uniform": [2.0, 4.0]}}},
    }))
    train = tmp_path / "train.yaml"
    train.write_text(yaml.safe_dump({**POOL_TRAIN, "patch_size": 32, "epochs": 1}))
    code, out, err = run_cli("train", "--on-the-fly", sim, "-o", tmp_path / "model", "--config", train,
                             "--quiet", "--threads", "1")
    assert code == 0, err
    assert "classes ['apoferritin']" in out and "3 phantoms simulated on the fly" in out
    for name in ("model.pt", "last.pt", "metrics.json", "training_curve.png", "phantom_config.yaml"):
        assert (tmp_path / "model" / name).is_file()
    code, _, err = run_cli("train", tmp_path, "--on-the-fly", sim, "-o", tmp_path / "m2")
    assert code == 2 and "not both" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli("train", "-o", tmp_path / "m2")
    assert code == 2 and "--on-the-fly" in err
    sim.write_text("seed: abc\nsample: {pixel_size: 10}\n")
    code, _, err = run_cli("train", "--on-the-fly", sim, "-o", tmp_path / "m2")
    assert code == 2 and "seed must be an integer" in err and len(err.strip().splitlines()) == 1
    sim.write_text("sample: {pixel_size: {uniform: [12, 8]}}\n")
    code, _, err = run_cli("train", "--on-the-fly", sim, "-o", tmp_path / "m2")
    assert code == 2 and "sample.pixel_size" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "m2").exists()


def test_train_on_the_fly_with_spectrum_match_matches_every_phantom_reproducibly(tmp_path):
    """spectrum_match on the fly: the model's stored training spectrum is that of validation
    phantom 0 matched by hand (prepared, then match_training_volumes with the phantom's own
    generator), not the unmatched one; the weights do not depend on the worker count."""
    pytest.importorskip("monai")
    from scipy import ndimage

    from tomosim.dataset import draw_phantom
    from tomosim.labels import read_class_table
    from tomosim.spectrum import RadialSpectrum, spectrum_difference
    from tomosim.train.config import SpectrumTarget, TrainConfig
    from tomosim.train.data import prepare_training_volume, read_simulation_folder
    from tomosim.train.spectrum_matching import (
        match_training_volumes,
        target_spectrum,
        training_spectrum,
    )
    from tomosim.train.training import train_on_the_fly

    torch.set_num_threads(1)
    rng = np.random.default_rng(3)
    target = ndimage.gaussian_filter(rng.normal(size=(32, 64, 64)), 1.5)
    target = (target + 0.05 * rng.normal(size=target.shape)).astype(np.float32)
    write_mrc(tmp_path / "real.mrc", target, voxel_size=10.0)
    tree = {**POOL_TREE, "sample": {**POOL_TREE["sample"], "shape": [32, 64, 64]}}
    settings = {**POOL_TRAIN, "spectrum_match": [str(tmp_path / "real.mrc")]}
    two = {**settings, "on_the_fly": {**POOL_TRAIN["on_the_fly"], "workers": 2}}
    common = {"phantom_seed": 9, "simulate": labelled_simulate}
    first = train_on_the_fly(tree, config=TrainConfig.model_validate(settings),
                             output_dir=tmp_path / "one", **common)
    train_on_the_fly(tree, config=TrainConfig.model_validate(two),
                     output_dir=tmp_path / "two", **common)
    one_w, two_w = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    assert all(torch.equal(one_w[k], two_w[k]) for k in one_w)
    plain = train_on_the_fly(tree, config=TrainConfig.model_validate(POOL_TRAIN),
                             output_dir=tmp_path / "plain", **common)
    # by hand: phantom 0 (the validation phantom), its generator, the target's spectrum
    config, _ = draw_phantom({k: v for k, v in tree.items() if k != "seed"}, 9, 0, source="t")
    labelled_simulate(config, tmp_path / "phantom_0")
    volume = prepare_training_volume(
        read_simulation_folder(tmp_path / "phantom_0"),
        classes=read_class_table(tmp_path / "phantom_0" / "classes.csv"), pixel_size=10.0)
    wanted = target_spectrum(SpectrumTarget(path=str(tmp_path / "real.mrc")), pixel_size=10.0)
    generator = np.random.default_rng(np.random.SeedSequence(9, spawn_key=(0, 0)))
    (matched,) = match_training_volumes([volume], [wanted], pixel_size=10.0, rng=generator)
    by_hand = training_spectrum([matched.image], pixel_size=10.0)
    unmatched = training_spectrum([volume.image], pixel_size=10.0)
    stored = RadialSpectrum.from_dict(first.checkpoint.spectrum)
    np.testing.assert_allclose(stored.amplitude, by_hand.amplitude, rtol=1e-6)
    np.testing.assert_allclose(
        RadialSpectrum.from_dict(plain.checkpoint.spectrum).amplitude, unmatched.amplitude,
        rtol=1e-6)
    assert np.max(np.abs(spectrum_difference(stored, unmatched)[1:])) > 0.2


def test_stale_scratch_of_dead_processes_is_removed(tmp_path):
    """A run killed by SIGKILL leaves tomosim-stream-<pid>-* folders; the next run removes
    those whose process is gone and nothing else."""
    import os
    import subprocess
    import sys

    from tomosim.train.on_the_fly import SCRATCH_PREFIX, remove_stale_scratch

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    dead = tmp_path / f"{SCRATCH_PREFIX}{child.pid}-abc"
    alive = tmp_path / f"{SCRATCH_PREFIX}{os.getpid()}-def"
    other = tmp_path / f"{SCRATCH_PREFIX}nopid"
    for folder in (dead, alive, other):
        (folder / "phantom_00000").mkdir(parents=True)
    assert remove_stale_scratch(tmp_path) == 1
    assert not dead.exists() and alive.is_dir() and other.is_dir()
