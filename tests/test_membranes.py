"""Membranes: bilayer profile, voxelised vesicles, inside masks, non-overlapping placement."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from tomosim.config import VesiclesConfig
from tomosim.errors import TomosimError
from tomosim.membranes import (
    CHAIN_METHYLENES,
    CHAIN_METHYLS,
    HEAD_GROUP_VOLUME,
    HEAD_POTENTIAL_V,
    HEAD_TO_CORE,
    METHYL_POTENTIAL_V,
    METHYLENE_POTENTIAL_V,
    METHYLENE_VOLUME,
    Vesicle,
    inside_mask,
    membrane_mask,
    membrane_profile,
    place_vesicles,
    points_inside,
    signed_distance,
    vesicle_potential,
)
from tomosim.potential import ICE_POTENTIAL_V
from tomosim.recipe import vesicle_population


def test_group_potentials_match_hand_computed_values() -> None:
    # 47.878 V·Å² × Σ f_e(0) / volume with Peng et al. (1996) f_e(0): H 0.5288, C 2.5088,
    # N 2.2135, O 1.9834, P 5.4876 Å; the excess is over the project's ice potential (4.48 V)
    assert ICE_POTENTIAL_V == 4.48
    head = 10 * 2.5088 + 18 * 0.5288 + 2.2135 + 8 * 1.9834 + 5.4876
    assert HEAD_POTENTIAL_V == pytest.approx(47.878 * head / 319.0, rel=1e-4)
    assert METHYLENE_POTENTIAL_V == pytest.approx(47.878 * (2.5088 + 2 * 0.5288) / 27.7, rel=1e-4)
    # head groups denser than ice; the hydrocarbon core between ice and the head groups
    assert HEAD_POTENTIAL_V > METHYLENE_POTENTIAL_V > ICE_POTENTIAL_V > METHYL_POTENTIAL_V


@pytest.mark.parametrize("thickness", [36.0, 40.0, 45.0])
def test_profile_peaks_at_half_thickness(thickness: float) -> None:
    d = np.linspace(-60.0, 60.0, 24001)
    v = membrane_profile(d, thickness=thickness)
    np.testing.assert_allclose(v, v[::-1], atol=1e-12)  # symmetric leaflets
    outer = d > 0
    assert d[outer][np.argmax(v[outer])] == pytest.approx(thickness / 2, abs=0.3)
    assert d[~outer][np.argmax(v[~outer])] == pytest.approx(-thickness / 2, abs=0.3)
    assert v.max() > 2.0  # head groups well above ice
    assert np.all(np.abs(v[np.abs(d) > thickness / 2 + 15]) < 1e-3)  # ice reads 0
    core = np.abs(d) < thickness / 2 - HEAD_TO_CORE - 5
    assert np.all(v[core] < 0.7 * v.max())


def test_profile_integral_matches_component_volumes() -> None:
    thickness = 40.0
    core = thickness / 2 - HEAD_TO_CORE
    area = (CHAIN_METHYLENES + 2 * CHAIN_METHYLS) * METHYLENE_VOLUME / core
    methyl = 2 * CHAIN_METHYLS * 2 * METHYLENE_VOLUME / area
    expected = (
        2 * HEAD_GROUP_VOLUME / area * (HEAD_POTENTIAL_V - ICE_POTENTIAL_V)
        + (2 * core - methyl) * (METHYLENE_POTENTIAL_V - ICE_POTENTIAL_V)
        + methyl * (METHYL_POTENTIAL_V - ICE_POTENTIAL_V)
    )
    d = np.linspace(-80.0, 80.0, 32001)
    for pixel_size in (0.0, 4.0, 10.0):  # the voxel-average widening keeps the integral
        v = membrane_profile(d, thickness=thickness, pixel_size=pixel_size)
        assert np.trapezoid(v, d) == pytest.approx(expected, rel=1e-4)
    explicit = membrane_profile(d, thickness=thickness, ice_potential_v=ICE_POTENTIAL_V)
    np.testing.assert_array_equal(explicit, membrane_profile(d, thickness=thickness))
    vacuum = membrane_profile(d, thickness=thickness, ice_potential_v=0.0)  # solvent "none"
    assert np.trapezoid(vacuum, d) > expected


def test_profile_rejects_thin_bilayer() -> None:
    with pytest.raises(TomosimError, match="thickness"):
        membrane_profile(np.zeros(3), thickness=5.0)


def sphere(radius: float, centre: tuple[float, float, float]) -> Vesicle:
    return Vesicle(np.array(centre), np.full(3, radius), np.eye(3))


def test_voxelised_sphere_peaks_at_head_groups_and_keeps_integral() -> None:
    pixel_size, radius, thickness = 2.5, 120.0, 40.0
    vesicle = sphere(radius, (160.0, 157.5, 161.0))
    box = vesicle_potential(
        vesicle, pixel_size=pixel_size, shape=(130, 130, 130), thickness=thickness
    )
    assert box.data.dtype == np.float32
    # radial profile of voxel centres in 1 Å bins: maxima at R ± thickness / 2
    z, y, x = np.indices(box.data.shape)
    points = np.stack([x + box.corner[2], y + box.corner[1], z + box.corner[0]], -1) * pixel_size
    r = np.linalg.norm(points - vesicle.centre, axis=-1).ravel()
    bins = np.floor(r).astype(int)
    sums = np.bincount(bins, weights=box.data.ravel().astype(np.float64))
    counts = np.bincount(bins)
    profile = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
    centres = np.arange(profile.size) + 0.5
    outer = centres > radius
    outer_peak = centres[outer][np.argmax(profile[outer])]
    assert outer_peak == pytest.approx(radius + thickness / 2, abs=1.0)
    inner = (centres < radius) & (centres > radius - 40)
    inner_peak = centres[inner][np.argmax(profile[inner])]
    assert inner_peak == pytest.approx(radius - thickness / 2, abs=1.0)
    # volume integral = ∫ 4π (R + d)² V(d) dd of the point profile
    d = np.linspace(-70.0, 70.0, 28001)
    shell = 4 * np.pi * (radius + d) ** 2
    expected = np.trapezoid(shell * membrane_profile(d, thickness=thickness), d)
    assert box.data.sum(dtype=np.float64) * pixel_size**3 == pytest.approx(expected, rel=2e-3)
    # the label is the bilayer |d| <= thickness/2 at voxel centres
    r_box = r.reshape(box.data.shape)
    np.testing.assert_array_equal(box.mask, np.abs(r_box - radius) <= thickness / 2)


def test_voxel_average_matches_supersampling() -> None:
    pixel_size, thickness = 6.0, 40.0
    vesicle = Vesicle(np.array([200.0, 190.0, 205.0]), np.array([150.0, 120.0, 100.0]),
                      Rotation.from_euler("ZYZ", [20, 50, -30], degrees=True).as_matrix())
    box = vesicle_potential(vesicle, pixel_size=pixel_size, shape=(70, 70, 70), thickness=thickness)
    rng = np.random.default_rng(0)
    near = np.argwhere(box.mask)
    picked = near[rng.choice(len(near), 60, replace=False)]
    sub = (np.arange(8) + 0.5) / 8 - 0.5
    offsets = np.stack(np.meshgrid(sub, sub, sub, indexing="ij"), -1).reshape(-1, 3) * pixel_size
    semi = vesicle.semi_axes
    # reference: the point profile at the exact distance of 512 points per voxel, distances from a
    # dense sampling of the ellipsoid surface (independent of the Newton solver)
    theta, phi = np.meshgrid(np.linspace(0, np.pi, 700), np.linspace(0, 2 * np.pi, 1400))
    surface = np.stack(
        [semi[0] * np.sin(theta) * np.cos(phi), semi[1] * np.sin(theta) * np.sin(phi),
         semi[2] * np.cos(theta)], -1,
    ).reshape(-1, 3)
    tree = cKDTree(surface)
    for index in picked:
        centre_xyz = (index + np.array(box.corner))[::-1] * pixel_size
        body = (centre_xyz + offsets - vesicle.centre) @ vesicle.rotation
        distance = tree.query(body)[0]
        distance[np.sum((body / semi) ** 2, axis=1) < 1] *= -1
        reference = membrane_profile(distance, thickness=thickness).mean()
        assert box.data[tuple(index)] == pytest.approx(reference, abs=0.05)


def test_box_is_clipped_to_the_volume() -> None:
    vesicle = sphere(100.0, (10.0, 300.0, 20.0))
    box = vesicle_potential(vesicle, pixel_size=10.0, shape=(40, 40, 40), thickness=40.0)
    assert min(box.corner) >= 0
    assert all(c + n <= 40 for c, n in zip(box.corner, box.data.shape, strict=False))
    assert box.data.max() > 0


def test_inside_mask_volume_is_the_ellipsoid_volume() -> None:
    pixel_size = 4.0
    vesicle = Vesicle(np.array([200.0, 210.0, 190.0]), np.array([160.0, 120.0, 90.0]),
                      Rotation.from_euler("ZYZ", [35, 60, 10], degrees=True).as_matrix())
    mask = inside_mask([vesicle], shape=(100, 110, 110), pixel_size=pixel_size)
    assert mask.sum() * pixel_size**3 == pytest.approx(4 / 3 * np.pi * 160 * 120 * 90, rel=0.01)
    lumen = inside_mask([vesicle], shape=(100, 110, 110), pixel_size=pixel_size, margin=20.0)
    assert lumen.sum() < mask.sum() and not np.any(lumen & ~mask)
    # point test agrees with the voxel mask at voxel centres
    index = np.argwhere(np.ones(mask.shape, bool))[::97]
    inside = points_inside([vesicle], index[:, ::-1] * pixel_size)
    np.testing.assert_array_equal(inside, mask[tuple(index.T)])


def test_signed_distance_of_a_sphere_is_exact() -> None:
    vesicle = sphere(80.0, (100.0, 100.0, 100.0))
    distance = signed_distance(vesicle, shape=(40, 40, 40), pixel_size=5.0, reach=30.0)
    z, y, x = np.indices(distance.data.shape)
    corner_z, corner_y, corner_x = distance.corner
    points = np.stack([x + corner_x, y + corner_y, z + corner_z], -1) * 5.0
    expected = np.linalg.norm(points - 100.0, axis=-1) - 80.0
    np.testing.assert_allclose(distance.data, expected, atol=1e-9)


def test_place_vesicles_without_overlap() -> None:
    config = VesiclesConfig(count=6, radius=(150.0, 250.0), max_aspect=1.5, thickness=40.0)
    shape, pixel_size = (60, 160, 160), 10.0
    rng = np.random.default_rng(2)
    population = vesicle_population(config)
    vesicles = place_vesicles(population, shape=shape, pixel_size=pixel_size, rng=rng)
    assert len(vesicles) == 6
    extent = (np.array(shape[::-1]) - 1) * pixel_size
    for v in vesicles:
        assert 150.0 <= v.bounding_radius <= 250.0
        assert v.bounding_radius / v.semi_axes.min() <= 1.5 + 1e-9
        assert np.all(v.centre >= 0) and np.all(v.centre <= extent)
        np.testing.assert_allclose(v.rotation @ v.rotation.T, np.eye(3), atol=1e-12)
    # independent check: the bilayer label masks of different vesicles never share a voxel
    total = np.zeros(shape, dtype=np.int32)
    for v in vesicles:
        box = membrane_mask(v, pixel_size=pixel_size, shape=shape, thickness=config.thickness)
        total[box.slices] += box.data
    assert total.max() == 1
    again = place_vesicles(
        population, shape=shape, pixel_size=pixel_size, rng=np.random.default_rng(2)
    )
    for a, b in zip(vesicles, again, strict=False):
        np.testing.assert_array_equal(a.centre, b.centre)
        np.testing.assert_array_equal(a.semi_axes, b.semi_axes)


def test_crowded_vesicles_warn_with_count() -> None:
    config = VesiclesConfig(count=40, radius=(300.0, 400.0))
    with pytest.warns(UserWarning, match=r"placed \d+ of 40"):
        vesicles = place_vesicles(
            vesicle_population(config), shape=(60, 120, 120), pixel_size=10.0,
            rng=np.random.default_rng(0), max_attempts=200,
        )
    assert 0 < len(vesicles) < 40


def test_vesicle_smaller_than_bilayer_is_an_error() -> None:
    config = VesiclesConfig(count=1, radius=(15.0, 100.0), thickness=40.0)
    with pytest.raises(TomosimError, match="half the bilayer thickness"):
        place_vesicles(
            vesicle_population(config), shape=(32, 32, 32), pixel_size=10.0,
            rng=np.random.default_rng(0),
        )
