"""True alignment files (IMOD .xf/.rawtlt/.xtilt, AreTomo .aln): applying the .xf with an
independent implementation of IMOD's xf semantics undoes the simulated shifts and rotations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.ndimage

from tomosim.formats.alignment import read_xf, write_alignment_files
from tomosim.microscope.projection import project_volume

PIXEL = 10.0


def _blobs(shape, rng):
    volume = np.zeros(shape, np.float32)
    for _ in range(12):
        centre = [rng.uniform(0.3 * n, 0.7 * n) for n in shape]
        grid = np.indices(shape).astype(np.float64)
        r2 = sum((g - c) ** 2 for g, c in zip(grid, centre, strict=True))
        volume += np.exp(-r2 / (2 * rng.uniform(1.5, 3.0) ** 2)).astype(np.float32)
    return volume


def _imod_apply_xf(image, xf):
    """IMOD's xf semantics written from its documentation: x' = A x + D, with x relative to the
    image centre (nx/2, ny/2) in IMOD coordinates (pixel i spans [i, i+1), so 0-based index
    (n-1)/2). Output pixel o samples the input at A^-1 (o - c - D) + c. Linear interpolation."""
    ny, nx = image.shape
    c = np.array([(nx - 1) / 2, (ny - 1) / 2])
    a, d = xf[:, :2], xf[:, 2]
    inv = np.linalg.inv(a)
    # scipy works on (row, col) = (y, x): swap axes of the matrix and vectors
    swap = np.array([[0, 1], [1, 0]])
    matrix = swap @ inv @ swap
    offset = swap @ (c - inv @ (c + d))
    return scipy.ndimage.affine_transform(image, matrix, offset=offset, order=1, mode="constant")


@pytest.mark.parametrize("size", [64, 63])
def test_xf_undoes_simulated_rotations_and_shifts(tmp_path, size):
    rng = np.random.default_rng(3)
    volume = _blobs((20, size, size), rng)
    angles = np.array([-40.0, -20.0, 0.0, 20.0, 40.0])
    axis = 8.0
    rotations = rng.normal(0, 2.0, angles.size)
    shifts = rng.normal(0, 30.0, (angles.size, 2))  # Å, 3 pixels s.d.
    raw = project_volume(volume, angles, pixel_size=PIXEL, tilt_axis_angle=axis + rotations,
                         shifts=shifts)
    aligned_truth = project_volume(volume, angles, pixel_size=PIXEL)
    tilts = pd.DataFrame({
        "angle_deg": angles, "true_angle_deg": angles, "rotation_error_deg": rotations,
        "shift_x_a": shifts[:, 0], "shift_y_a": shifts[:, 1],
    })
    write_alignment_files(tmp_path, tilts, tilt_axis_angle=axis, pixel_size=PIXEL,
                          image_shape=(size, size))
    xf = read_xf(tmp_path / "tiltseries.xf")
    assert xf.shape == (angles.size, 2, 3)
    yy, xx = np.indices((size, size))
    inner = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (0.3 * size) ** 2
    for i in range(angles.size):
        recovered = _imod_apply_xf(raw[i], xf[i])
        before = np.corrcoef(raw[i][inner], aligned_truth[i][inner])[0, 1]
        after = np.corrcoef(recovered[inner], aligned_truth[i][inner])[0, 1]
        assert after > 0.995, (i, after)
        assert before < 0.95, (i, before)  # the errors are large enough to matter
        # a half-pixel error in the centre convention gives r ~ 0.985 and a relative RMS ~ 0.17
        residual = recovered[inner] - aligned_truth[i][inner]
        assert np.sqrt(np.mean(residual**2)) < 0.06 * aligned_truth[i][inner].std()


def test_aln_converts_to_the_same_xf_and_angle_files(tmp_path):
    rng = np.random.default_rng(1)
    n = 7
    tilts = pd.DataFrame({
        "angle_deg": np.linspace(-60, 60, n),
        "true_angle_deg": np.linspace(-60, 60, n) + rng.normal(0, 0.5, n),
        "rotation_error_deg": rng.normal(0, 1, n),
        "shift_x_a": rng.normal(0, 40, n), "shift_y_a": rng.normal(0, 40, n),
    })
    write_alignment_files(tmp_path, tilts, tilt_axis_angle=-85.0, pixel_size=4.0,
                          image_shape=(100, 120))
    xf = read_xf(tmp_path / "tiltseries.xf")
    rows = [line.split() for line in (tmp_path / "tiltseries.aln").read_text().splitlines()
            if not line.startswith("#")]
    aln = np.array(rows, np.float64)
    assert aln.shape == (n, 10)
    np.testing.assert_array_equal(aln[:, 0], np.arange(n))
    # AreTomo -> IMOD as alnfile (teamtomo) converts it: A = R(-ROT), D = -A (TX, TY)
    theta = np.deg2rad(-aln[:, 1])
    a = np.stack([np.stack([np.cos(theta), -np.sin(theta)], -1),
                  np.stack([np.sin(theta), np.cos(theta)], -1)], -2)
    d = -np.einsum("nij,nj->ni", a, aln[:, 3:5])
    np.testing.assert_allclose(a, xf[:, :, :2], atol=1e-4)
    np.testing.assert_allclose(d, xf[:, :, 2], atol=2e-3)
    np.testing.assert_allclose(aln[:, 1], -85.0 + tilts.rotation_error_deg, atol=1e-4)
    np.testing.assert_allclose(aln[:, 9], tilts.true_angle_deg, atol=0.01)
    raw = np.loadtxt(tmp_path / "tiltseries.rawtlt")
    true = np.loadtxt(tmp_path / "tiltseries_true.tlt")
    np.testing.assert_allclose(raw, tilts.angle_deg, atol=1e-4)
    np.testing.assert_allclose(true, tilts.true_angle_deg, atol=1e-4)
    np.testing.assert_array_equal(np.loadtxt(tmp_path / "tiltseries.xtilt"), np.zeros(n))
