"""Segmenting tomograms: geometry kept, resampling, checkpoint round trips, unsafe model files."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("monai")

from scipy import ndimage  # noqa: E402

from test_train import dice, prepared, render_phantom, tiny_config, write_phantom_folder  # noqa: E402
from tomosim.io import read_mrc, write_mrc  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny model overfitted on the 10 Å phantom: (model folder, checkpoint)."""
    from tomosim.train.training import train_network

    root = tmp_path_factory.mktemp("segment")
    data, volume = prepared(write_phantom_folder(root / "phantom"))
    result = train_network(
        [volume], classes=data.classes, pixel_size=10.0, config=tiny_config(),
        output_dir=root / "model",
    )
    return root / "model", result.checkpoint


def centroids_a(labels: np.ndarray, label: int, voxel_size: float, min_size: int = 1) -> np.ndarray:
    """Centroids (z, y, x Å) of the connected components of ``label`` of at least ``min_size``."""
    components, count = ndimage.label(labels == label)
    sizes = np.bincount(components.ravel())
    keep = [i for i in range(1, count + 1) if sizes[i] >= min_size]
    points = np.array(ndimage.center_of_mass(components > 0, components, keep)).reshape(-1, 3)
    return np.array(sorted(map(tuple, points * voxel_size))).reshape(-1, 3)


def nearest_distances(found: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """For each expected point, the distance to the nearest found point."""
    return np.linalg.norm(expected[:, None, :] - found[None, :, :], axis=2).min(axis=1)


def test_segment_cli_keeps_shape_voxel_size_and_origin(trained, tmp_path, run_cli):
    model_dir, checkpoint = trained
    image, truth = render_phantom(10.0, seed=0)
    origin = (120.0, -40.0, 15.5)
    write_mrc(tmp_path / "tomo.mrc", image, voxel_size=10.0, origin=origin)
    code, out, err = run_cli(
        "segment", model_dir, tmp_path / "tomo.mrc", "-o", tmp_path / "out" / "labels.mrc",
        "--probabilities", tmp_path / "probs", "--batch-size", "3", "--chunk-slices", "5", "--quiet",
    )
    assert code == 0, err
    result = read_mrc(tmp_path / "out" / "labels.mrc")
    assert result.data.shape == image.shape and result.data.dtype == np.uint8
    assert set(np.unique(result.data)) <= {0, 1, 2}
    assert result.voxel_size == (10.0, 10.0, 10.0)
    assert result.origin == pytest.approx(origin)
    assert dice(result.data, truth, 1) > 0.9
    assert (tmp_path / "out" / "labels.classes.csv").read_text().splitlines()[1:] == [
        "0,background,#000000", "1,ribosome,#ff0000", "2,actin,#00ff00",
    ]
    maps = [read_mrc(tmp_path / "probs" / f"{name}.mrc") for name in checkpoint.classes.names]
    assert all(m.data.dtype == np.float16 and m.data.shape == image.shape for m in maps)
    assert maps[0].origin == pytest.approx(origin) and maps[0].voxel_size == (10.0, 10.0, 10.0)
    total = sum(m.data.astype(np.float32) for m in maps)
    assert np.allclose(total, 1.0, atol=3e-3)
    most_probable = np.argmax(np.stack([m.data.astype(np.float32) for m in maps]), axis=0)
    assert np.mean(most_probable == result.data) > 0.999  # float16 rounding may flip near-ties


def test_resampling_keeps_physical_positions():
    from tomosim.train.data import resample_volume, resampled_shape

    shape, voxel = (30, 40, 50), (8.0, 8.0, 8.0)
    z, y, x = (axis * voxel[0] for axis in np.indices(shape, dtype=np.float64))
    centre_a = np.array([110.0, 150.0, 230.0])  # z, y, x Å
    blob = np.exp(-((z - centre_a[0]) ** 2 + (y - centre_a[1]) ** 2 + (x - centre_a[2]) ** 2) / (2 * 30.0**2))
    coarse = resample_volume(blob, voxel_size=voxel, pixel_size=13.0)
    assert coarse.shape == resampled_shape(shape, voxel, 13.0) == (18, 25, 31)
    back = resample_volume(coarse, voxel_size=(13.0,) * 3, pixel_size=8.0, output_shape=shape)
    assert np.array(ndimage.center_of_mass(coarse)) * 13.0 == pytest.approx(centre_a, abs=0.5)
    assert np.array(ndimage.center_of_mass(back)) * 8.0 == pytest.approx(centre_a, abs=0.5)


def test_segmenting_at_another_pixel_size_keeps_geometry(trained):
    from tomosim.train.inference import segment_tomogram

    _, checkpoint = trained  # trained at 10 Å
    # the same objects drawn at 5 Å per voxel; the network sees every other voxel, i.e. the
    # same noise statistics as in training, so any error would be geometry
    image, truth = render_phantom(5.0, seed=0)
    labels = segment_tomogram(checkpoint, image, voxel_size=(5.0, 5.0, 5.0), chunk_slices=7)
    assert labels.shape == image.shape
    assert dice(labels, truth, 1) > 0.85 and dice(labels, truth, 2) > 0.75
    found, expected = centroids_a(labels, 1, 5.0, min_size=100), centroids_a(truth, 1, 5.0)
    assert found.shape == expected.shape == (6, 3)
    assert nearest_distances(found, expected).max() < 5.0  # within one voxel, in Å


class DarkIsRibosome(torch.nn.Module):
    """A stand-in network with no training noise: class 1 where the centre slice is dark."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        centre = images[:, images.shape[1] // 2]
        ribosome = -(centre + 5.0)  # normalised units: the balls sit near -10, ice near 0
        return torch.stack([torch.zeros_like(centre), ribosome, torch.full_like(centre, -1e3)], dim=1)


@pytest.mark.parametrize("voxel_size", [7.5, 12.5, 10.0])
def test_resampled_segmentation_keeps_blob_centroids(trained, voxel_size):
    from tomosim.train.inference import segment_tomogram

    _, checkpoint = trained  # its pixel size (10 Å), classes and normalisation
    image, truth = render_phantom(voxel_size, seed=2, noise=0.0, rods=False)
    labels = segment_tomogram(checkpoint, image, voxel_size=(voxel_size,) * 3, chunk_slices=4,
                              network=DarkIsRibosome())
    assert labels.shape == truth.shape
    # balls 2.4-6 voxels in radius, binarised on two grids: a thin shell may differ
    assert dice(labels, truth, 1) > (0.999 if voxel_size == 10.0 else 0.9)
    found, expected = centroids_a(labels, 1, voxel_size), centroids_a(truth, 1, voxel_size)
    assert found.shape == expected.shape
    assert nearest_distances(found, expected).max() < 0.5 * voxel_size


def test_checkpoint_round_trip_reproduces_predictions_exactly(trained, tmp_path):
    from tomosim.train.checkpoint import load_checkpoint, save_checkpoint
    from tomosim.train.inference import segment_tomogram

    _, checkpoint = trained
    save_checkpoint(tmp_path / "copy.pt", checkpoint)
    loaded = load_checkpoint(tmp_path / "copy.pt")
    assert loaded.classes == checkpoint.classes and loaded.network == checkpoint.network
    assert loaded.pixel_size == checkpoint.pixel_size and loaded.iteration == checkpoint.iteration
    assert all(torch.equal(loaded.weights[k], v) for k, v in checkpoint.weights.items())
    image, _ = render_phantom(10.0, seed=3)
    outputs = []
    for model in (checkpoint, loaded):
        maps = [np.empty(image.shape, np.float32) for _ in model.classes.ids]
        labels = segment_tomogram(model, image, voxel_size=(10.0,) * 3, probabilities=maps)
        outputs.append((labels, maps))
    assert np.array_equal(outputs[0][0], outputs[1][0])
    assert all(np.array_equal(a, b) for a, b in zip(outputs[0][1], outputs[1][1], strict=False))


def test_chunking_does_not_change_the_result(trained):
    from tomosim.train.inference import segment_tomogram

    _, checkpoint = trained
    image, _ = render_phantom(10.0, seed=4)
    first = [np.empty(image.shape, np.float32) for _ in range(3)]
    second = [np.empty(image.shape, np.float32) for _ in range(3)]
    segment_tomogram(checkpoint, image, voxel_size=(10.0,) * 3, chunk_slices=3, batch_size=2,
                     probabilities=first)
    segment_tomogram(checkpoint, image, voxel_size=(10.0,) * 3, chunk_slices=64, batch_size=8,
                     probabilities=second)
    assert all(np.allclose(a, b, atol=1e-5) for a, b in zip(first, second, strict=False))


def test_labels_are_the_argmax_of_the_probabilities_with_or_without_probability_maps(trained):
    """Labels come from the class comparison in torch; they must equal numpy's argmax of the
    probability maps (first maximum on ties) whether or not the maps are requested."""
    from tomosim.train.inference import segment_tomogram

    _, checkpoint = trained
    image, _ = render_phantom(10.0, seed=5)
    maps = [np.empty(image.shape, np.float32) for _ in checkpoint.classes.ids]
    with_maps = segment_tomogram(checkpoint, image, voxel_size=(10.0,) * 3, probabilities=maps)
    without = segment_tomogram(checkpoint, image, voxel_size=(10.0,) * 3)
    ids = np.asarray(checkpoint.classes.ids, dtype=np.uint8)
    assert np.array_equal(with_maps, without)
    assert np.array_equal(without, ids[np.argmax(np.stack(maps), axis=0)])


def test_most_probable_breaks_ties_like_numpy_argmax():
    from tomosim.train.inference import _most_probable

    rng = np.random.default_rng(0)
    values = rng.integers(0, 3, size=(2, 5, 7, 9)).astype(np.float32)  # many ties
    expected = np.argmax(values, axis=1)
    assert np.array_equal(_most_probable(torch.from_numpy(values)).numpy(), expected)


def test_retaining_freed_memory_keeps_results(trained):
    """glibc told to keep freed memory (what the network commands do) changes no label."""
    import platform

    from tomosim.memory import retain_freed_memory
    from tomosim.train.inference import segment_tomogram

    _, checkpoint = trained
    image, _ = render_phantom(10.0, seed=6)
    before = segment_tomogram(checkpoint, image, voxel_size=(10.0,) * 3)
    accepted = retain_freed_memory()
    if platform.libc_ver()[0] == "glibc":
        assert accepted  # glibc's mallopt took both settings
    after = segment_tomogram(checkpoint, image, voxel_size=(10.0,) * 3)
    assert np.array_equal(before, after)


class _WritesAFile:
    """Unpickling this calls open(path, "w"): code execution that leaves evidence."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize("writer", ["pickle", "torch.save"])
def test_malicious_pickle_is_refused(trained, tmp_path, run_cli, writer):
    evidence = tmp_path / "pwned.txt"
    payload = {"format": "tomosim-model", "weights": _WritesAFile(str(evidence))}
    evil = tmp_path / "evil.pt"
    if writer == "pickle":
        evil.write_bytes(pickle.dumps(payload))
    else:
        torch.save(payload, evil)
    image, _ = render_phantom(10.0)
    write_mrc(tmp_path / "tomo.mrc", image, voxel_size=10.0)
    code, out, err = run_cli("segment", evil, tmp_path / "tomo.mrc", "-o", tmp_path / "labels.mrc")
    assert code == 2
    assert err.startswith("tomosim: error: not a tomosim model") and len(err.strip().splitlines()) == 1
    assert not evidence.exists() and not (tmp_path / "labels.mrc").exists()
    assert not any(p.name.startswith(".labels") for p in tmp_path.iterdir())


def test_other_bad_inputs_are_one_line_exit_2(trained, tmp_path, run_cli):
    model_dir, _ = trained
    image, _ = render_phantom(10.0)
    torch.save({"weights": {"a": torch.zeros(2)}}, tmp_path / "plain.pt")
    write_mrc(tmp_path / "tomo.mrc", image, voxel_size=10.0)
    write_mrc(tmp_path / "no_voxel.mrc", image, voxel_size=0.0)
    (tmp_path / "text.pt").write_text("not a model")
    cases = [
        (("segment", tmp_path / "plain.pt", tmp_path / "tomo.mrc"), "not a tomosim model checkpoint"),
        (("segment", tmp_path / "text.pt", tmp_path / "tomo.mrc"), "not a tomosim model"),
        (("segment", tmp_path / "missing.pt", tmp_path / "tomo.mrc"), "model file not found"),
        (("segment", model_dir, tmp_path / "no_voxel.mrc"), "no voxel size"),
        (("segment", model_dir, tmp_path / "tomo.mrc", "--batch-size", "0"), "--batch-size"),
    ]
    for args, message in cases:
        code, _, err = run_cli(*args, "-o", tmp_path / "labels.mrc", "--quiet")
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, (args, err)
    assert not (tmp_path / "labels.mrc").exists()
