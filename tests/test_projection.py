"""Projection geometry and line integrals against analytic answers."""

from __future__ import annotations

import numpy as np
import pytest

from tomosim.errors import TomosimError
from tomosim.microscope.projection import ice_projection, project_volume, rotate_and_shift


def _centroid(profile: np.ndarray) -> float:
    return float((profile * np.arange(profile.size)).sum() / profile.sum())


def test_zero_degree_projection_is_the_z_sum_and_conserves_the_integral():
    rng = np.random.default_rng(0)
    volume = rng.random((12, 20, 24), dtype=np.float32)
    image = project_volume(volume, [0.0], pixel_size=3.0)[0]
    np.testing.assert_allclose(image, volume.sum(axis=0) * 3.0, rtol=1e-6)
    assert image.sum() * 3.0**2 == pytest.approx(volume.sum() * 3.0**3, rel=1e-6)


@pytest.mark.parametrize("angle", [-60.0, -23.0, 0.0, 17.0, 45.0, 60.0])
def test_integral_conserved_at_any_tilt_when_inside_the_detector(angle):
    rng = np.random.default_rng(1)
    volume = np.zeros((16, 8, 64), dtype=np.float32)
    volume[4:12, :, 24:40] = rng.random((8, 8, 16), dtype=np.float32)
    image = project_volume(volume, [angle], pixel_size=2.0)[0]
    assert image.sum() * 2.0**2 == pytest.approx(volume.sum() * 2.0**3, rel=1e-5)


@pytest.mark.parametrize("angle", [-50.0, -20.0, 0.0, 10.0, 35.0, 60.0])
def test_point_lands_at_x_cos_plus_z_sin(angle):
    # a point at x = +9, z = +5 voxels from the centre (shape // 2), y row 3
    volume = np.zeros((32, 6, 64), dtype=np.float32)
    volume[16 + 5, 3, 32 + 9] = 1.0
    image = project_volume(volume, [angle], pixel_size=1.0)[0]
    theta = np.deg2rad(angle)
    assert image[3].sum() == pytest.approx(1.0, rel=1e-6)
    assert np.abs(np.delete(image, 3, axis=0)).max() == 0  # same row y
    expected = 32 + 9 * np.cos(theta) + 5 * np.sin(theta)
    assert _centroid(image[3]) == pytest.approx(expected, abs=0.1)  # pixel overlap: < 0.1 px


def test_ball_projection_matches_chord_length():
    n, radius, pixel = 48, 14.0, 2.0
    sub = 4  # voxel-averaged ball by 4x4x4 supersampling
    grid = (np.arange(n * sub) + 0.5) / sub - 0.5 - n // 2
    squared = grid[:, None, None] ** 2 + grid[None, :, None] ** 2 + grid[None, None, :] ** 2
    inside = squared < radius**2
    volume = inside.reshape(n, sub, n, sub, n, sub).mean(axis=(1, 3, 5)).astype(np.float32) * 3.0
    for angle in (0.0, 30.0, -55.0):
        image = project_volume(volume, [angle], pixel_size=pixel)[0]
        u = np.arange(n) - n // 2
        chord = 2 * np.sqrt(np.clip(radius**2 - u[None, :] ** 2 - u[:, None] ** 2, 0, None))
        expected = 3.0 * chord * pixel  # V * path length in Å
        core = chord > 0.6 * 2 * radius  # away from the rim, where voxelisation dominates
        np.testing.assert_allclose(image[core], expected[core], rtol=0.03)
        assert image.sum() == pytest.approx(expected.sum(), rel=0.01)


def test_projection_of_gaussian_blobs_matches_analytic_profiles():
    """Several blobs at asymmetric positions project to Gaussians at x cos θ + z sin θ."""
    n, sigma = 64, 3.0
    centres = [(-14.0, 5.0), (6.0, -11.0), (17.0, 8.0)]  # (x, z) voxels from the centre
    z, x = np.mgrid[:n, :n] - n // 2
    volume2d = sum(
        (i + 1) * np.exp(-((x - cx) ** 2 + (z - cz) ** 2) / (2 * sigma**2))
        for i, (cx, cz) in enumerate(centres)
    )
    volume = volume2d[:, None, :].astype(np.float32)
    for angle in (-40.0, 25.0, 60.0):
        theta = np.deg2rad(angle)
        profile = project_volume(volume, [angle], pixel_size=1.0)[0, 0]
        u = np.arange(n) - n // 2
        # shear and compression add a blur of variance 0.15-0.35 pixel² at nonzero tilt
        width2 = sigma**2 + 0.25
        expected = sum(
            (i + 1) * 2 * np.pi * sigma**2 / np.sqrt(2 * np.pi * width2)
            * np.exp(-((u - (cx * np.cos(theta) + cz * np.sin(theta))) ** 2) / (2 * width2))
            for i, (cx, cz) in enumerate(centres)
        )
        np.testing.assert_allclose(profile, expected, atol=0.015 * expected.max())


def test_tilt_axis_angle_rotates_the_image_counter_clockwise():
    volume = np.zeros((8, 40, 40), dtype=np.float32)
    volume[4, 20, 20 + 10] = 1.0  # x = +10 voxels
    image = project_volume(volume, [0.0], pixel_size=1.0, tilt_axis_angle=90.0)[0]
    row, col = np.unravel_index(np.argmax(image), image.shape)
    assert (row, col) == (20 + 10, 20)  # +x went to +y
    rows, cols = np.mgrid[:40, :40]
    volume[4] = np.exp(-((cols - 30) ** 2 + (rows - 20) ** 2) / (2 * 2.0**2))  # smooth blob
    image = project_volume(volume, [0.0], pixel_size=1.0, tilt_axis_angle=30.0)[0]
    rows, cols = np.mgrid[:40, :40]
    centre = np.array([(image * cols).sum(), (image * rows).sum()]) / image.sum() - 20
    np.testing.assert_allclose(centre, [10 * np.cos(np.pi / 6), 10 * np.sin(np.pi / 6)], atol=1e-3)


def test_shifts_move_the_image_content():
    volume = np.zeros((8, 40, 40), dtype=np.float32)
    volume[4, 20, 20] = 1.0
    images = project_volume(
        volume, [0.0, 30.0], pixel_size=2.0, shifts=np.array([[10.0, -6.0], [0.0, 4.0]])
    )
    assert np.unravel_index(np.argmax(images[0]), (40, 40)) == (20 - 3, 20 + 5)
    assert np.unravel_index(np.argmax(images[1]), (40, 40)) == (20 + 2, 20)
    shifted = rotate_and_shift(images[0], shift=(-10.0, 6.0), pixel_size=2.0)
    assert shifted[20, 20] == pytest.approx(2.0)


def test_slab_projections_add_up():
    rng = np.random.default_rng(3)
    volume = rng.random((20, 10, 30), dtype=np.float32)
    full = project_volume(volume, [35.0], pixel_size=1.0)
    ranges = ((0, 7), (7, 13), (13, 20))
    parts = sum(project_volume(volume, [35.0], pixel_size=1.0, z_range=r) for r in ranges)
    np.testing.assert_allclose(parts, full, rtol=1e-5, atol=1e-5)


def test_ice_slab_path_grows_as_one_over_cosine():
    values = ice_projection(2000.0, [0.0, 60.0, -60.0], ice_potential_v=4.5)
    np.testing.assert_allclose(values, [9000.0, 18000.0, 18000.0])


@pytest.mark.parametrize(
    "volume, angles, kwargs, message",
    [
        (np.zeros((4, 4)), [0.0], {}, "volume"),
        (np.zeros((4, 4, 4)), [90.0], {}, "within"),
        (np.zeros((4, 4, 4)), [0.0, 10.0], {"shifts": np.zeros((3, 2))}, "shifts must have shape"),
        (np.zeros((4, 4, 4)), [0.0], {"z_range": (2, 9)}, "z_range"),
    ],
)
def test_bad_input_raises(volume, angles, kwargs, message):
    with pytest.raises(TomosimError, match=message):
        project_volume(volume, angles, pixel_size=1.0, **kwargs)
