"""Density maps: reading (MRC/MAP, .gz, emdb:), resampling and thresholding."""

from __future__ import annotations

import gzip
from pathlib import Path

import mrcfile
import numpy as np
import pytest

from conftest import shared_structure
from tomosim.errors import TomosimError
from tomosim.io import write_mrc
from tomosim.structures import DensityMap, read_map, resample_map, threshold_mask


def _gaussian_blob(
    shape: tuple[int, int, int], centre_px: np.ndarray, sigma_px: float
) -> np.ndarray:
    """Gaussian at ``centre_px`` (x, y, z voxel coordinates) on a (z, y, x) grid."""
    z, y, x = np.indices(shape, dtype=np.float64)
    r2 = (x - centre_px[0]) ** 2 + (y - centre_px[1]) ** 2 + (z - centre_px[2]) ** 2
    return np.exp(-r2 / (2 * sigma_px**2))


def _centroid_a(volume: np.ndarray, pixel_size: float) -> np.ndarray:
    """Centroid (x, y, z) in Å relative to the centre voxel ``shape // 2``."""
    weights = volume.astype(np.float64)
    index = np.indices(volume.shape).reshape(3, -1)
    centroid_zyx = (index * weights.ravel()).sum(axis=1) / weights.sum()
    return (centroid_zyx - np.array(volume.shape) // 2)[::-1] * pixel_size


# --------------------------------------------------------------------------------------------
# resample_map
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "pixel_size", "new_pixel_size", "sigma_a"),
    [
        ((64, 60, 62), 1.0, 2.37, 2.5),  # downsample by 2.37
        ((64, 64, 64), 1.0, 3.1, 1.2),  # downsample by 3.1, blob narrower than a new voxel
        ((40, 41, 39), 2.0, 0.73, 3.0),  # upsample by 2.74
        ((32, 33, 32), 3.0, 2.2, 4.0),  # upsample by 1.36
    ],
)
def test_resample_conserves_integral_and_centroid(shape, pixel_size, new_pixel_size, sigma_a):
    offset_a = np.array([3.3, -4.1, 1.7]) * pixel_size
    centre_px = np.array(shape[::-1]) // 2 + offset_a / pixel_size
    volume = _gaussian_blob(shape, centre_px, sigma_a / pixel_size).astype(np.float32)
    resampled = resample_map(volume, pixel_size, new_pixel_size)
    expected_shape = tuple(round(n * pixel_size / new_pixel_size) for n in shape)
    assert resampled.shape == expected_shape and resampled.dtype == np.float32
    integral = volume.sum(dtype=np.float64) * pixel_size**3
    new_integral = resampled.sum(dtype=np.float64) * new_pixel_size**3
    assert abs(new_integral / integral - 1) < 0.01
    shift_px = (_centroid_a(resampled, new_pixel_size) - offset_a) / new_pixel_size
    assert np.all(np.abs(shift_px) < 0.1)


@pytest.mark.parametrize(
    ("old_shape", "new_shape"), [((33, 33, 33), (20, 21, 22)), ((32, 31, 30), (51, 50, 49))]
)
def test_resample_keeps_the_centre_voxel(old_shape, new_shape):
    centre_px = np.array(old_shape[::-1]) // 2
    volume = _gaussian_blob(old_shape, centre_px, 2.5)
    resampled = resample_map(volume, 1.5, 1.5 * old_shape[0] / new_shape[0], shape=new_shape)
    assert resampled.shape == new_shape
    new_pixel = 1.5 * old_shape[0] / new_shape[0]
    assert np.all(np.abs(_centroid_a(resampled, new_pixel) / new_pixel) < 0.02)
    peak = np.unravel_index(np.argmax(resampled), resampled.shape)
    assert peak == tuple(np.array(new_shape) // 2)


def test_upsampling_matches_the_analytic_blob():
    """Spline upsampling of a smooth blob equals the blob sampled on the fine grid."""
    sigma_a, old, new = 5.0, 2.0, 0.8
    old_shape, new_shape = (40, 40, 40), (100, 100, 100)
    offset_a = np.array([2.2, -1.3, 3.7])
    old_volume = _gaussian_blob(old_shape, np.array(old_shape) // 2 + offset_a / old, sigma_a / old)
    expected = _gaussian_blob(new_shape, np.array(new_shape) // 2 + offset_a / new, sigma_a / new)
    resampled = resample_map(old_volume, old, new, shape=new_shape)
    assert np.max(np.abs(resampled - expected)) < 0.01


@pytest.mark.parametrize(("new_pixel_size", "shape"), [(1.3, (20, 27, 23)), (3.7, None)])
def test_resample_equals_scipy_affine_transform(new_pixel_size, shape):
    """The separable implementation equals scipy's 3D spline resampling of the same map."""
    from scipy import ndimage

    volume = np.random.default_rng(1).random((30, 26, 28))
    pixel_size = 2.0
    factor = new_pixel_size / pixel_size
    resampled = resample_map(volume, pixel_size, new_pixel_size, shape=shape)
    filtered = volume
    if factor > 1:
        filtered = ndimage.gaussian_filter(volume, 0.5 * np.sqrt(factor**2 - 1), mode="constant")
    offset = np.array(volume.shape) // 2 - np.array(resampled.shape) // 2 * factor
    expected = ndimage.affine_transform(
        filtered, np.full(3, factor), offset=offset, output_shape=resampled.shape, order=3,
        mode="grid-constant",
    )
    np.testing.assert_allclose(resampled, expected, atol=1e-5)


def test_resample_is_pure_and_identity_at_same_pixel_size():
    rng = np.random.default_rng(0)
    volume = rng.random((16, 17, 18)).astype(np.float32)
    before = volume.copy()
    same = resample_map(volume, 2.0, 2.0)
    np.testing.assert_allclose(same, volume, atol=1e-5)
    np.testing.assert_array_equal(volume, before)


@pytest.mark.parametrize(
    ("pixel_size", "new_pixel_size", "message"),
    [(0.0, 1.0, "pixel size must be positive"), (1.0, -2.0, "new pixel size must be positive")],
)
def test_resample_rejects_bad_pixel_sizes(pixel_size, new_pixel_size, message):
    with pytest.raises(TomosimError, match=message):
        resample_map(np.ones((4, 4, 4)), pixel_size, new_pixel_size)
    with pytest.raises(TomosimError, match="3D"):
        resample_map(np.ones((4, 4)), 1.0, 2.0)


def test_threshold_mask():
    data = np.array([[[0.0, 0.5, 1.0, 2.0]]])
    np.testing.assert_array_equal(threshold_mask(data, 1.0), [[[False, False, True, True]]])


# --------------------------------------------------------------------------------------------
# read_map
# --------------------------------------------------------------------------------------------


def test_read_map_round_trip_and_gzip(tmp_path: Path):
    data = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
    path = tmp_path / "map.mrc"
    write_mrc(path, data, voxel_size=2.5, origin=(10.0, -20.0, 30.0))
    density = read_map(path)
    assert isinstance(density, DensityMap)
    np.testing.assert_array_equal(density.data, data)
    assert density.data.dtype == np.float32
    assert density.pixel_size == 2.5 and density.origin == (10.0, -20.0, 30.0)
    gz = tmp_path / "map.map.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    np.testing.assert_array_equal(read_map(gz).data, data)


def test_read_map_origin_from_nstart(tmp_path: Path):
    path = tmp_path / "nstart.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(np.zeros((4, 4, 4), np.float32))
        mrc.voxel_size = 2.0
        mrc.header.nxstart, mrc.header.nystart, mrc.header.nzstart = -2, -3, 5
    assert read_map(path).origin == (-4.0, -6.0, 10.0)


def test_read_map_emdb_identifier_from_search_path(tmp_path: Path, monkeypatch):
    write_mrc(tmp_path / "plain.mrc", np.ones((3, 3, 3), np.float32), voxel_size=1.5)
    (tmp_path / "emd_1234.map.gz").write_bytes(gzip.compress((tmp_path / "plain.mrc").read_bytes()))
    monkeypatch.setenv("TOMOSIM_STRUCTURES", str(tmp_path))
    density = read_map("emdb:1234")
    assert density.name == "emdb:1234" and density.pixel_size == 1.5
    with pytest.raises(TomosimError, match="not a density map identifier"):
        read_map("pdb:1abc")


@pytest.mark.parametrize(
    ("voxel_size", "message"),
    [((0.0, 0.0, 0.0), "zero voxel size"), ((1.0, 1.0, 2.0), "not cubic")],
)
def test_read_map_rejects_bad_voxel_size(voxel_size, message, tmp_path: Path):
    path = tmp_path / "bad.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(np.zeros((4, 4, 4), np.float32))
        mrc.voxel_size = voxel_size
    with pytest.raises(TomosimError, match=message) as info:
        read_map(path)
    assert "bad.mrc" in str(info.value)


def test_read_map_bad_input(tmp_path: Path):
    with pytest.raises(TomosimError, match="file not found"):
        read_map(tmp_path / "missing.mrc")
    model = tmp_path / "model.pdb"
    model.write_text("END\n")
    with pytest.raises(TomosimError, match="atomic model, not a map"):
        read_map(model)
    odd = tmp_path / "map.xyz"
    odd.write_text("x")
    with pytest.raises(TomosimError, match="unknown map format '.xyz'"):
        read_map(odd)
    image = tmp_path / "image.mrc"
    write_mrc(image, np.zeros((5, 6), np.float32), voxel_size=1.0)
    with pytest.raises(TomosimError, match="not a 3D map"):
        read_map(image)
    truncated = tmp_path / "cut.map.gz"
    write_mrc(tmp_path / "full.mrc", np.ones((8, 8, 8), np.float32), voxel_size=1.0)
    truncated.write_bytes(gzip.compress((tmp_path / "full.mrc").read_bytes())[:-30])
    with pytest.raises(TomosimError, match="gzip.*cut.map.gz"):
        read_map(truncated)


def test_real_emd_5168():
    density = read_map(shared_structure("emd_5168.map.gz"))
    assert density.pixel_size == pytest.approx(1.742, abs=1e-6)
    assert density.data.shape == (100, 100, 100)
    assert density.origin == pytest.approx((-87.1, -87.1, -87.1), abs=1e-3)
    coarse = resample_map(density.data, density.pixel_size, 5.0)
    integral = density.data.sum(dtype=np.float64) * density.pixel_size**3
    assert coarse.sum(dtype=np.float64) * 5.0**3 == pytest.approx(integral, rel=0.02)
