"""Deformed (free-form) vesicles: the mid-plane follows the radius function, normals, proteins.

The reference radius function here is written independently of :mod:`tomosim.membranes`, in
spherical angles: ``r(θ, φ) = ρ(u) + Σ_j a_j exp(κ (u·d_j − 1))`` with ``u`` the body-frame
direction of ``(θ, φ)`` and ``ρ`` the ellipsoid's polar radius; normals come from central finite
differences of ``F(q) = |q| − r(q / |q|)``.
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from scipy.ndimage import map_coordinates
from scipy.spatial.transform import Rotation

from tomosim.errors import TomosimError
from tomosim.membrane_proteins import MembraneProteinSpecies, place_membrane_proteins
from tomosim.membranes import (
    Deformation,
    Vesicle,
    VesiclePopulation,
    inside_mask,
    place_vesicles,
    points_inside,
    signed_distance,
    vesicle_potential,
)

PIXEL = 5.0
SHAPE = (96, 96, 96)
THICKNESS = 40.0


def _reference_radius(vesicle: Vesicle, theta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Mid-plane radius (Å) along sample-frame polar angles (θ from +z, φ from +x)."""
    v = np.stack(
        [np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)], axis=-1
    )
    u = v @ np.asarray(vesicle.rotation)  # body frame: Rᵀ v for row vectors
    a, b, c = vesicle.semi_axes
    rho = 1.0 / np.sqrt((u[..., 0] / a) ** 2 + (u[..., 1] / b) ** 2 + (u[..., 2] / c) ** 2)
    d = vesicle.deformation
    assert d is not None
    bumps = sum(
        amp * np.exp(d.concentration * (u @ direction - 1.0))
        for amp, direction in zip(d.amplitudes, d.directions, strict=True)
    )
    return rho + bumps


def _reference_level(vesicle: Vesicle, points: np.ndarray) -> np.ndarray:
    """``F = |p − c| − r(direction)`` at sample points ``(n, 3)``."""
    q = points - vesicle.centre
    length = np.linalg.norm(q, axis=-1)
    theta = np.arccos(np.clip(q[..., 2] / length, -1, 1))
    phi = np.arctan2(q[..., 1], q[..., 0])
    return length - _reference_radius(vesicle, theta, phi)


def _reference_normal(vesicle: Vesicle, points: np.ndarray, h: float = 1e-3) -> np.ndarray:
    grad = np.zeros_like(points)
    for k in range(3):
        step = np.zeros(3)
        step[k] = h
        grad[:, k] = (_reference_level(vesicle, points + step)
                      - _reference_level(vesicle, points - step)) / (2 * h)
    return grad / np.linalg.norm(grad, axis=1, keepdims=True)


def _deformed_vesicle(seed: int = 3) -> Vesicle:
    rng = np.random.default_rng(seed)
    population = VesiclePopulation(
        count=1, radius=(150.0, 170.0), max_aspect=1.2, thickness=THICKNESS, deformation=45.0,
        deformation_bumps=5, deformation_width=45.0,
    )
    (vesicle,) = place_vesicles(population, shape=(60, 60, 60), pixel_size=PIXEL, rng=rng)
    centre = (np.asarray(SHAPE[::-1]) // 2) * PIXEL + [1.3, -0.7, 0.4]  # off the voxel grid
    return Vesicle(centre, vesicle.semi_axes, vesicle.rotation, vesicle.deformation)


def test_deformation_amplitude_is_the_largest_displacement() -> None:
    vesicle = _deformed_vesicle()
    assert vesicle.deformation is not None
    theta, phi = np.meshgrid(np.linspace(0, np.pi, 181), np.linspace(-np.pi, np.pi, 361))
    plain = Vesicle(vesicle.centre, vesicle.semi_axes, vesicle.rotation,
                    Deformation(np.zeros((1, 3)) + [0, 0, 1.0], np.zeros(1), 1.0))
    shift = _reference_radius(vesicle, theta, phi) - _reference_radius(plain, theta, phi)
    assert abs(np.max(np.abs(shift)) - 45.0) < 0.5


def test_membrane_lies_on_the_radius_function() -> None:
    vesicle = _deformed_vesicle()
    box = vesicle_potential(vesicle, pixel_size=PIXEL, shape=SHAPE, thickness=THICKNESS)
    volume = np.zeros(SHAPE, np.float32)
    volume[box.slices] = box.data
    rng = np.random.default_rng(0)
    v = rng.standard_normal((60, 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    theta, phi = np.arccos(v[:, 2]), np.arctan2(v[:, 1], v[:, 0])
    expected = _reference_radius(vesicle, theta, phi)
    t = np.arange(0.0, 240.0, 0.5)
    worst = 0.0
    for direction, r in zip(v, expected, strict=True):
        xyz = vesicle.centre + t[:, None] * direction
        values = map_coordinates(volume, (xyz[:, ::-1] / PIXEL).T, order=1)
        window = np.abs(t - r) < 45.0  # the bilayer (±20 Å) and its tails
        assert window.sum() > 10 and np.all(values[(t - r) > 60.0] == 0)
        centroid = np.sum(t[window] * values[window]) / np.sum(values[window])
        worst = max(worst, abs(centroid - r))
    assert worst < PIXEL, worst


def test_interior_and_distance_match_the_reference() -> None:
    vesicle = _deformed_vesicle()
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in SHAPE], indexing="ij"), -1)
    points = grid[..., ::-1].reshape(-1, 3) * PIXEL
    level = _reference_level(vesicle, points).reshape(SHAPE)
    mask = inside_mask([vesicle], shape=SHAPE, pixel_size=PIXEL)
    reference = level < 0
    differ = mask != reference
    assert reference.sum() > 1000
    assert np.all(np.abs(level[differ]) < 1e-6)
    assert np.array_equal(points_inside([vesicle], points).reshape(SHAPE), reference)
    # signed distance: |d| <= |F| (|∇F| >= 1) and equal to first order near the surface
    d = signed_distance(vesicle, shape=SHAPE, pixel_size=PIXEL, reach=30.0)
    sub = level[d.slices]
    finite = np.isfinite(d.data)
    assert np.all(np.sign(d.data[finite]) == np.sign(sub[finite]))
    assert np.all(np.abs(d.data[finite]) <= np.abs(sub[finite]) + 1e-9)


def test_membrane_proteins_follow_the_deformed_normal() -> None:
    vesicle = _deformed_vesicle()
    axis = np.array([0.19, -0.31, 0.93])
    axis /= np.linalg.norm(axis)
    species = [MembraneProteinSpecies("channel", 40, axis, 40.0, 25.0)]
    placed = place_membrane_proteins(species, [vesicle], shape=SHAPE, pixel_size=PIXEL,
                                     rng=np.random.default_rng(7), min_gap=2.0)
    assert placed.placed == (40,)
    midplane = placed.positions + 40.0 * np.einsum("nij,j->ni", placed.rotations, axis)
    assert np.all(np.abs(_reference_level(vesicle, midplane)) < 5.0)
    protein_axis = np.einsum("nij,j->ni", placed.rotations, axis)
    normal = _reference_normal(vesicle, placed.midplane_points)
    angle = np.degrees(np.arccos(np.clip(np.sum(protein_axis * normal, axis=1), -1, 1)))
    assert angle.max() < 5.0, angle.max()
    # the deformation tilts normals well away from radial, so the test can tell the difference
    radial = placed.midplane_points - vesicle.centre
    radial /= np.linalg.norm(radial, axis=1, keepdims=True)
    tilt = np.degrees(np.arccos(np.clip(np.sum(radial * normal, axis=1), -1, 1)))
    assert tilt.max() > 10.0


def test_zero_deformation_keeps_plain_vesicles() -> None:
    base = dict(count=4, radius=(100.0, 160.0), max_aspect=1.3, thickness=THICKNESS)
    a = place_vesicles(VesiclePopulation(**base), shape=SHAPE, pixel_size=PIXEL,
                       rng=np.random.default_rng(2))
    rng_b = np.random.default_rng(2)
    b = place_vesicles(VesiclePopulation(**base, deformation=0.0, deformation_bumps=9),
                       shape=SHAPE, pixel_size=PIXEL, rng=rng_b)
    assert all(v.deformation is None for v in b)
    for va, vb in zip(a, b, strict=True):
        assert np.array_equal(va.centre, vb.centre) and np.array_equal(va.rotation, vb.rotation)
    # the deformed kernel with flat bumps reproduces an exact sphere
    sphere = Vesicle(np.array([240.0, 240.0, 240.0]), np.full(3, 150.0), np.eye(3))
    flat = Vesicle(sphere.centre, sphere.semi_axes,
                   Rotation.from_euler("zyz", [10, 20, 30], degrees=True).as_matrix(),
                   Deformation(np.array([[1.0, 0, 0]]), np.zeros(1), 5.0))
    d0 = signed_distance(sphere, shape=SHAPE, pixel_size=PIXEL, reach=30.0)
    d1 = signed_distance(flat, shape=SHAPE, pixel_size=PIXEL, reach=30.0)
    near = np.abs(d0.data) < 29.99  # the plain sphere path gives exact distances everywhere
    far = np.abs(d0.data) > 30.01
    np.testing.assert_allclose(d1.data[near], d0.data[near], atol=1e-9)
    assert np.all(d1.data[far] == np.sign(d0.data[far]) * np.inf)


def test_same_seed_same_deformed_vesicles() -> None:
    population = VesiclePopulation(count=3, radius=(100.0, 150.0), max_aspect=1.0,
                                   thickness=THICKNESS, deformation=30.0)
    runs, drawn = [], []
    for _ in range(2):
        vesicles = place_vesicles(population, shape=SHAPE, pixel_size=PIXEL,
                                  rng=np.random.default_rng(11))
        drawn.append(vesicles)
        runs.append([vesicle_potential(v, pixel_size=PIXEL, shape=SHAPE, thickness=THICKNESS)
                     for v in vesicles])
    assert len(runs[0]) == 3
    for a, b in zip(*runs, strict=True):
        assert a.corner == b.corner and a.data.tobytes() == b.data.tobytes()
    other = place_vesicles(population, shape=SHAPE, pixel_size=PIXEL,
                           rng=np.random.default_rng(12))
    first, second = other[0].deformation, drawn[0][0].deformation
    assert first is not None and second is not None
    assert not np.array_equal(first.amplitudes, second.amplitudes)


def test_deformation_that_reaches_the_centre_is_refused() -> None:
    population = VesiclePopulation(count=1, radius=(100.0, 150.0), max_aspect=1.0,
                                   thickness=THICKNESS, deformation=80.0)
    with pytest.raises(TomosimError, match="deformation 80"):
        place_vesicles(population, shape=SHAPE, pixel_size=PIXEL, rng=np.random.default_rng(0))


def test_cli_bad_deformation_is_one_line_exit_2(run_cli, tmp_path) -> None:
    config = {"sample": {"shape": [32, 64, 64], "pixel_size": 10.0},
              "vesicles": {"count": 1, "radius": [200, 300], "max_aspect": 2.0,
                           "deformation": 90.0}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    code, _, err = run_cli("simulate", path, "-o", tmp_path / "out")
    assert code == 2 and "deformation" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
