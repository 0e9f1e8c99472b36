"""Localisation targets (spheres, Gaussian heatmaps) and peak finding, against analytic answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tomosim.errors import TomosimError
from tomosim.train.localisation import (
    find_peaks,
    gaussian_heatmaps,
    particle_centres,
    sphere_labels,
)


def test_heatmap_peaks_at_the_centre_with_the_stated_width():
    shape = (20, 24, 28)  # z, y, x
    centre = np.array([[13.0, 11.0, 9.0]])  # x, y, z on a voxel centre
    heat = gaussian_heatmaps(shape, centre, np.array([0]), sigmas_px=[2.5])[0]
    assert np.unravel_index(np.argmax(heat), shape) == (9, 11, 13)
    assert heat[9, 11, 13] == 1.0
    # the profile through the centre along x is exp(-d² / 2σ²)
    d = np.arange(28) - 13.0
    expected = np.where(np.abs(d) <= 4 * 2.5, np.exp(-(d**2) / (2 * 2.5**2)), 0.0)
    np.testing.assert_allclose(heat[9, 11, :], expected, rtol=1e-6, atol=1e-7)
    # half maximum at FWHM / 2 = sqrt(2 ln 2) sigma
    half = np.sqrt(2 * np.log(2)) * 2.5
    profile = np.interp(13.0 + half, np.arange(28.0), heat[9, 11, :].astype(np.float64))
    assert profile == pytest.approx(0.5, abs=0.01)  # linear interpolation between samples


def test_heatmap_of_an_off_grid_centre_has_its_mean_and_variance():
    shape = (24, 24, 24)
    centre = np.array([[11.3, 12.0, 10.7]])
    sigma = 2.0
    heat = gaussian_heatmaps(shape, centre, np.array([0]), sigmas_px=[sigma])[0].astype(float)
    z, y, x = np.indices(shape)
    total = heat.sum()
    mean = [(heat * a).sum() / total for a in (x, y, z)]
    # exact for a sampled Gaussian but for the one-sided truncation at 4 sigma (~2e-4 voxel)
    assert mean == pytest.approx([11.3, 12.0, 10.7], abs=5e-4)
    variance_x = (heat * (x - 11.3) ** 2).sum() / total
    assert variance_x == pytest.approx(sigma**2, rel=2e-3)  # sampled Gaussian, 4σ truncation


def test_heatmaps_keep_classes_apart_and_take_the_maximum():
    centres = np.array([[5.0, 5, 5], [7.0, 5, 5], [20.0, 5, 5]])
    heat = gaussian_heatmaps((10, 10, 30), centres, np.array([0, 0, 1]), sigmas_px=[1.0, 3.0])
    assert heat[0, 5, 5, 5] == 1.0 and heat[0, 5, 5, 7] == 1.0
    assert heat[0, 5, 5, 6] == pytest.approx(np.exp(-0.5), rel=1e-6)  # max, not sum
    assert heat[0, :, :, 20].max() == 0.0 and heat[1, 5, 5, 20] == 1.0


def test_sphere_holds_the_lattice_points_of_the_ball_boundary_included():
    labels = sphere_labels((16, 16, 16), np.array([[8.0, 8, 8]]), np.array([3]), radii_px={3: 3.0})
    assert int((labels == 3).sum()) == 123  # integer points with x²+y²+z² <= 9
    assert labels[8, 8, 11] == 3 and labels[8, 8, 12] == 0  # distance 3 in, 4 out
    z, y, x = np.indices(labels.shape)
    assert [(x * (labels == 3)).sum() / 123, (z * (labels == 3)).sum() / 123] == [8.0, 8.0]


def test_overlapping_spheres_split_by_relative_distance_and_clip_at_edges():
    centres = np.array([[4.0, 5, 5], [9.0, 5, 5], [0.0, 0, 0]])
    labels = sphere_labels((11, 11, 14), centres, np.array([1, 2, 1]), radii_px={1: 3.0, 2: 4.5})
    # x = 6: 2/3 of radius 3 from the first, 3/4.5 = 2/3 from the second: a tie kept by the first
    assert labels[5, 5, 6] == 1
    assert labels[5, 5, 7] == 2  # 1 (of 3) vs 2/4.5
    assert labels[0, 0, 0] == 1 and int((labels[:3, :3, :3] == 1).sum()) > 0  # clipped, kept


def test_particle_centres_skip_distractors_and_filaments():
    table = pd.DataFrame({
        "rlnCoordinateX": [1.0, 2.0, 3.0, 4.0], "rlnCoordinateY": [0.0] * 4,
        "rlnCoordinateZ": [0.0] * 4, "rlnClassNumber": [1, 0, 2, 1],
        "rlnHelicalTubeID": [0, 0, 3, 0],
        "tomosimClassName": ["ribosome", "background", "actin", "apo"],
    })
    centres, ids = particle_centres(table, classes={"ribosome": 1, "apo": 4, "actin": 2})
    assert centres[:, 0].tolist() == [1.0, 4.0] and ids.tolist() == [1, 4]
    with pytest.raises(TomosimError, match="lacks column"):
        particle_centres(table.drop(columns="rlnCoordinateZ"), classes={"ribosome": 1})


def test_peaks_are_the_blob_centres_suppressed_and_thresholded():
    shape = (20, 30, 40)
    centres = np.array([[10.0, 10, 10], [14.0, 10, 10], [30.0, 20, 8]])
    heat = gaussian_heatmaps(shape, centres, np.array([0, 1, 2]), sigmas_px=[2.0, 2.0, 2.0])
    score = np.maximum.reduce([0.9 * heat[0], 0.8 * heat[1], 0.4 * heat[2]])
    positions, scores = find_peaks(score, min_distance_px=3.0, threshold=0.3)
    assert positions.tolist() == [[10, 10, 10], [14, 10, 10], [30, 20, 8]]
    assert scores == pytest.approx([0.9, 0.8, 0.4])
    # the second blob is 4 voxels from the first: gone at a suppression distance of 5
    positions, _ = find_peaks(score, min_distance_px=5.0, threshold=0.3)
    assert positions.tolist() == [[10, 10, 10], [30, 20, 8]]
    positions, _ = find_peaks(score, min_distance_px=3.0, threshold=0.5)
    assert positions.tolist() == [[10, 10, 10], [14, 10, 10]]


def test_a_plateau_gives_one_peak():
    score = np.zeros((9, 9, 9), np.float32)
    score[3:6, 3:6, 3:6] = 1.0
    positions, scores = find_peaks(score, min_distance_px=3.5, threshold=0.5)
    assert len(positions) == 1 and positions[0].tolist() == [3, 3, 3] and scores.tolist() == [1.0]
