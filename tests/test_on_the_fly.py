"""On-the-fly training data: distinct phantoms, worker seed streams, patches, epochs, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

torch = pytest.importorskip("torch")

from tomosim.config import dump_config  # noqa: E402
from tomosim.dataset import generate_dataset  # noqa: E402
from tomosim.errors import TomosimError  # noqa: E402
from tomosim.io import write_mrc, write_text  # noqa: E402
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
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, again))
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
