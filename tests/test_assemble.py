"""Phantom assembly: orientations, rendering, label rule, protein placement, the whole phantom."""

from __future__ import annotations

import warnings

import numba
import numpy as np
import pytest
from scipy import ndimage, stats

from tomosim import membranes
from tomosim.assemble import assemble_phantom
from tomosim.config import ProteinsConfig, config_from_dict
from tomosim.errors import TomosimError
from tomosim.labels import labels_consistent
from tomosim.occupancy import mark_boxes
from tomosim.orientations import euler_to_matrix, random_rotations, sample_orientations
from tomosim.packing import place_proteins
from tomosim.phantom import Placements, PotentialBox, instance_class_table
from tomosim.potential import Potential
from tomosim.recipe import packing_rules, phantom_recipe, protein_targets, vesicle_population
from tomosim.rendering import _compensate_interpolation_blur, render_objects

PIXEL = 10.0  # output pixel size, Å
FINE = 5.0  # template pixel size, Å (oversampled by 2)
THRESHOLD = 0.5  # label threshold, V


# ---- synthetic templates --------------------------------------------------------------------


def gaussian_template(
    offsets: np.ndarray, amplitudes: np.ndarray, sigma: float, size: int, name: str
) -> Potential:
    """Gaussians (sigma in Å) at ``offsets`` (Å, x y z, from the reference voxel size // 2)."""
    z, y, x = (np.indices((size,) * 3, dtype=float) - size // 2) * FINE
    data = np.zeros((size,) * 3)
    for (ox, oy, oz), a in zip(offsets, amplitudes, strict=False):
        data += a * np.exp(-((x - ox) ** 2 + (y - oy) ** 2 + (z - oz) ** 2) / (2 * sigma**2))
    return Potential(data.astype(np.float32), FINE, (0.0, 0.0, 0.0), "ice", name)


def asymmetric_blob(radius: float, name: str, seed: int = 0) -> Potential:
    """An asymmetric blob of ~``radius`` Å: a ring of unequal Gaussians plus a knob on one side."""
    rng = np.random.default_rng(seed)
    n = 7
    offsets = rng.normal(0.0, radius / 2.5, (n, 3))
    offsets[0] = (radius * 0.7, 0.0, 0.0)  # the knob: breaks every symmetry
    amplitudes = rng.uniform(1.5, 3.0, n)
    size = int(2 * np.ceil((radius + 3 * 0.35 * radius) / FINE)) + 2
    return gaussian_template(offsets, amplitudes, 0.35 * radius, size, name)


def one_row(template: str, position, rotation, *, class_id=1, instance_id=1) -> Placements:
    return Placements(
        positions=np.asarray(position, float).reshape(1, 3),
        rotations=np.asarray(rotation, float).reshape(1, 3, 3),
        template=np.zeros(1, np.int64),
        template_names=(template,),
        class_id=np.array([class_id]),
        instance_id=np.array([instance_id]),
        filament_id=np.array([-1]),
        segment_id=np.array([-1]),
        subunit_index=np.array([-1]),
    )


def render(placements, templates, shape, boxes=()):
    return render_objects(
        placements, templates, shape=shape, pixel_size=PIXEL, label_threshold=THRESHOLD, boxes=boxes
    )


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


# ---- orientations ---------------------------------------------------------------------------


def rotation_angle(matrices: np.ndarray) -> np.ndarray:
    trace = np.trace(matrices, axis1=1, axis2=2)
    return np.arccos(np.clip((trace - 1) / 2, -1, 1))


def so3_p_values(matrices: np.ndarray) -> dict[str, float]:
    """KS p-values of three consequences of uniformity on SO(3)."""
    axis = matrices[:, :, 2]  # R @ e_z, the rotated z axis
    azimuth = np.arctan2(axis[:, 1], axis[:, 0])
    omega = rotation_angle(matrices)
    return {
        "z": stats.kstest(axis[:, 2], stats.uniform(-1, 2).cdf).pvalue,
        "azimuth": stats.kstest(azimuth, stats.uniform(-np.pi, 2 * np.pi).cdf).pvalue,
        # Haar measure: the rotation angle has density (1 - cos w) / pi, CDF (w - sin w) / pi
        "angle": stats.kstest(omega, lambda w: (w - np.sin(w)) / np.pi).pvalue,
    }


def test_random_orientations_are_uniform_on_so3():
    rotations = sample_orientations(20000, "random", np.random.default_rng(1))
    np.testing.assert_allclose(rotations @ rotations.transpose(0, 2, 1), np.eye(3)[None].repeat(20000, 0), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(rotations), 1.0, atol=1e-12)
    for name, p in so3_p_values(rotations).items():
        assert p > 0.001, (name, p)


def test_uniform_euler_angles_fail_the_same_test():
    rng = np.random.default_rng(1)
    n = 20000
    angles = np.stack([rng.uniform(0, 360, n), rng.uniform(0, 180, n), rng.uniform(0, 360, n)], 1)
    p = so3_p_values(euler_to_matrix(angles))
    assert p["z"] < 1e-6
    assert p["angle"] < 1e-6


def test_fixed_and_in_plane_orientations():
    rng = np.random.default_rng(2)
    np.testing.assert_array_equal(sample_orientations(3, "fixed", rng), np.eye(3)[None].repeat(3, 0))
    in_plane = sample_orientations(5000, "in_plane", rng)
    np.testing.assert_allclose(in_plane[:, :, 2], np.tile([0.0, 0.0, 1.0], (5000, 1)), atol=1e-12)
    angle = np.arctan2(in_plane[:, 1, 0], in_plane[:, 0, 0])
    assert stats.kstest(angle, stats.uniform(-np.pi, 2 * np.pi).cdf).pvalue > 0.001
    with pytest.raises(TomosimError, match="orientation mode"):
        sample_orientations(1, "sideways", rng)


# ---- rendering ------------------------------------------------------------------------------


def scipy_render(template: Potential, rotation, position, shape, order: int) -> np.ndarray:
    """Independent resampling: scipy affine_transform at the 2x2x2 sub-samples of every voxel."""
    h = PIXEL / 2  # fine grid of sub-sample points: index m -> (m - 0.5) * h Å
    centre = np.array(template.data.shape[::-1]) // 2  # x y z
    flip = np.eye(3)[::-1]  # x y z <-> z y x
    matrix = flip @ rotation.T @ flip * (h / template.pixel_size)
    offset = flip @ (rotation.T @ (-0.5 * h - position) / template.pixel_size + centre)
    fine = ndimage.affine_transform(
        template.data.astype(np.float64), matrix, offset=offset,
        output_shape=tuple(2 * s for s in shape), order=order, mode="grid-constant",
    )
    return fine.reshape(shape[0], 2, shape[1], 2, shape[2], 2).mean(axis=(1, 3, 5))


def test_rendered_copy_matches_scipy_affine_transform():
    template = asymmetric_blob(60.0, "blob")
    rotation = euler_to_matrix(np.array([37.0, 71.0, -123.0]))
    position = np.array([163.7, 148.2, 171.9])  # Å, x y z
    shape = (32, 32, 32)
    potential, _, _ = render(one_row("blob", position, rotation), {"blob": template}, shape)
    expected = scipy_render(template, rotation, position, shape, order=3)  # cubic spline
    assert correlation(potential, expected) > 0.99
    assert potential.sum() * PIXEL**3 == pytest.approx(template.integral, rel=1e-5)


@pytest.mark.parametrize("angles", [(37.0, 71.0, -123.0), (0.0, 90.0, 0.0), (10.0, 45.0, 80.0)])
def test_elongated_off_centre_template_is_sampled_exactly(angles):
    """Same trilinear samples as scipy (order 1): nothing of the support box is cut off."""
    offsets = np.array([[0, 0, -60.0], [0, 0, -20], [0, 0, 20], [0, 0, 60], [25, 0, 40], [0, -15, -50]])
    rod = gaussian_template(offsets, np.array([2.0, 2.5, 2.0, 1.5, 1.0, 1.2]), 10.0, 36, "rod")
    # crop off-centre, leaving potential on the box faces
    rod = Potential(rod.data[4:-4, 8:-6, 10:-8].copy(), FINE, (0.0, 0.0, 0.0), "ice", "rod")
    rotation = euler_to_matrix(np.array(angles))
    position = np.array([163.7, 148.2, 171.9])
    shape = (32, 32, 32)
    potential, _, _ = render(one_row("rod", position, rotation), {"rod": rod}, shape)
    # rendering samples the template pre-sharpened against interpolation blur (one voxel larger
    # on every side, reference voxel still at shape // 2); scipy samples that same array
    sharpened = Potential(_compensate_interpolation_blur(rod.data), FINE, (0.0, 0.0, 0.0), "ice", "rod")
    expected = scipy_render(sharpened, rotation, position, shape, order=1)
    assert np.abs(potential - expected).max() < 1e-3 * expected.max()


def test_position_and_euler_convention_with_analytic_gaussians():
    """Gaussians at offsets r in the template land at position + R r (active ZYZ rotation)."""
    offsets = np.array([[40.0, 0.0, 0.0], [0.0, 25.0, 0.0], [0.0, 0.0, -30.0], [-20.0, -20.0, 10.0]])
    amplitudes = np.array([3.0, 2.0, 1.5, 1.0])
    sigma = 9.0
    template = gaussian_template(offsets, amplitudes, sigma, 40, "g")
    rotation = euler_to_matrix(np.array([-60.0, 35.0, 100.0]))
    position = np.array([151.3, 167.9, 144.4])
    shape = (32, 32, 32)
    potential, _, _ = render(one_row("g", position, rotation), {"g": template}, shape)

    z, y, x = np.indices(shape, dtype=float) * PIXEL
    moved = position + offsets @ rotation.T
    expected = np.zeros(shape)
    for (px, py, pz), a in zip(moved, amplitudes, strict=False):
        expected += a * np.exp(-((x - px) ** 2 + (y - py) ** 2 + (z - pz) ** 2) / (2 * sigma**2))
    assert correlation(potential, expected) > 0.97
    # the potential-weighted centroid moves exactly with the copy
    weights = amplitudes / amplitudes.sum()
    centroid = np.array([(potential * c).sum() for c in (x, y, z)]) / potential.sum()
    np.testing.assert_allclose(centroid, position + rotation @ (weights @ offsets), atol=0.1 * PIXEL)


def test_integral_is_conserved_for_copies_inside_and_lost_outside():
    rng = np.random.default_rng(3)
    templates = {"a": asymmetric_blob(50.0, "a", 1), "b": asymmetric_blob(35.0, "b", 2)}
    n = 6
    positions = rng.uniform(150, 330, (n, 3))
    placements = Placements(
        positions, random_rotations(n, rng), np.arange(n) % 2, ("a", "b"), np.ones(n, np.int64),
        np.arange(1, n + 1), -np.ones(n, np.int64), -np.ones(n, np.int64), -np.ones(n, np.int64),
    )
    potential, _, _ = render(placements, templates, (48, 48, 48))
    total = sum(templates["ab"[i % 2]].integral for i in range(n))
    assert potential.sum(dtype=np.float64) * PIXEL**3 == pytest.approx(total, rel=1e-5)
    # a copy half outside the volume keeps only part of its integral (clipped, no wrap-around)
    half, _, _ = render(one_row("a", [0.0, 240.0, 240.0], np.eye(3)), templates, (48, 48, 48))
    assert 0.3 < half.sum() * PIXEL**3 / templates["a"].integral < 0.7
    assert np.all(half[:, :, -10:] == 0)


def test_label_rule_against_objects_rendered_alone():
    """Labels: own potential above threshold, largest wins, segments thresholded as a sum."""
    blob = asymmetric_blob(45.0, "blob", 4)
    # a weak subunit: alone it never reaches the threshold, three overlapping ones do
    sub = gaussian_template(np.zeros((1, 3)), np.array([0.3]), 12.0, 16, "sub")
    templates = {"blob": blob, "sub": sub}
    rotations = random_rotations(5, np.random.default_rng(5))
    rows = Placements(
        positions=np.array(
            [[150.0, 160.0, 160.0], [190.0, 165.0, 150.0],  # two overlapping particles
             [100.0, 240.0, 160.0], [110.0, 240.0, 160.0], [120.0, 240.0, 160.0]]  # a segment
        ),
        rotations=np.concatenate([rotations[:2], np.repeat(np.eye(3)[None], 3, 0)]),
        template=np.array([0, 0, 1, 1, 1]),
        template_names=("blob", "sub"),
        class_id=np.array([1, 2, 3, 3, 3]),
        instance_id=np.array([2, 3, 4, 4, 4]),
        filament_id=np.array([-1, -1, 0, 0, 0]),
        segment_id=np.array([-1, -1, 0, 0, 0]),
        subunit_index=np.array([-1, -1, 0, 1, 2]),
    )
    shell = np.zeros((12, 12, 12), np.float32)
    r = np.sqrt(((np.indices(shell.shape) - 5.5) ** 2).sum(axis=0))
    shell[(r > 3.5) & (r < 5.5)] = 1.2
    box = PotentialBox(shell, (14, 10, 14), class_id=4, instance_id=1, name="vesicle")  # touches blob 2
    shape = (32, 32, 32)
    potential, labels, instances = render(rows, templates, shape, boxes=[box])

    own = np.zeros((5,) + shape, np.float32)  # instance id -> its own potential
    own[1], _, _ = render(Placements.empty(), templates, shape, boxes=[box])
    for instance in (2, 3, 4):
        own[instance], _, _ = render(rows.select(rows.instance_id == instance), templates, shape)
    np.testing.assert_allclose(potential, own.sum(axis=0), atol=1e-5)

    table = instance_class_table(rows, [box])
    assert labels_consistent(labels, instances, table)
    labelled = instances > 0
    winner_own = np.take_along_axis(own, instances[None].astype(np.int64), axis=0)[0]
    assert np.all(winner_own[labelled] > THRESHOLD)  # the winner's own potential is above it
    np.testing.assert_array_equal(winner_own[labelled], own.max(axis=0)[labelled])  # largest wins
    np.testing.assert_array_equal(labelled, own.max(axis=0) > THRESHOLD)  # nothing missed
    assert len(np.unique(instances)) == 5  # every object won some voxels
    # the segment is labelled where only the sum of its subunits passes the threshold
    alone = [render(rows.select(np.array([i])), templates, shape)[0] for i in (2, 3, 4)]
    assert max(a.max() for a in alone) < THRESHOLD
    assert np.count_nonzero(instances == 4) > 0
    # touching objects: both particles and the vesicle meet somewhere with the larger one winning
    both = (own[2] > THRESHOLD) & (own[3] > THRESHOLD)
    assert both.any()


def test_render_rejects_bad_input():
    blob = asymmetric_blob(30.0, "blob")
    row = one_row("blob", [100.0, 100.0, 100.0], np.eye(3))
    with pytest.raises(TomosimError, match="no template"):
        render(row, {}, (16, 16, 16))
    split = Placements.concatenate([row, one_row("blob", [50.0] * 3, np.eye(3), instance_id=2), row])
    with pytest.raises(TomosimError, match="consecutive"):
        render(split, {"blob": blob}, (16, 16, 16))
    with pytest.raises(TomosimError, match="class ids"):
        render(one_row("blob", [100.0] * 3, np.eye(3), class_id=255), {"blob": blob}, (16, 16, 16))


def test_render_is_identical_in_batches():
    """Batching (a memory bound) and the thread count must not change a single byte."""
    rng = np.random.default_rng(6)
    templates = {"a": asymmetric_blob(40.0, "a", 1), "s": asymmetric_blob(20.0, "s", 2)}
    n = 12
    particles = Placements(
        rng.uniform(0, 320, (n, 3)), random_rotations(n, rng), np.zeros(n, np.int64), ("a",),
        np.ones(n, np.int64), np.arange(3, n + 3), -np.ones(n, np.int64), -np.ones(n, np.int64),
        -np.ones(n, np.int64),
    )
    segment = Placements(
        np.stack([np.linspace(40, 280, 9), np.full(9, 150.0), np.full(9, 160.0)], axis=1),
        random_rotations(9, rng), np.zeros(9, np.int64), ("s",), np.full(9, 2), np.full(9, 2),
        np.zeros(9, np.int64), np.zeros(9, np.int64), np.arange(9),
    )
    placements = Placements.concatenate([segment, particles])
    box = PotentialBox(rng.uniform(0, 1, (6, 7, 8)).astype(np.float32), (10, -2, 27), 3, 1)
    kwargs = dict(shape=(32, 32, 32), pixel_size=PIXEL, label_threshold=THRESHOLD, boxes=[box])
    whole = render_objects(placements, templates, **kwargs)
    batched = render_objects(placements, templates, batch_voxels=2000, **kwargs)
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        serial = render_objects(placements, templates, **kwargs)
    finally:
        numba.set_num_threads(threads)
    for a, b, c in zip(whole, batched, serial, strict=False):
        assert a.tobytes() == b.tobytes() == c.tobytes()
    assert {1, 2} <= set(np.unique(whole[2]))


# ---- protein placement ----------------------------------------------------------------------


def proteins_config(**kwargs) -> ProteinsConfig:
    species = kwargs.pop("species")
    return ProteinsConfig(species=species, **kwargs)


SPECIES_TEMPLATES = {
    "big": asymmetric_blob(70.0, "big", 7),
    "small": asymmetric_blob(35.0, "small", 8),
}
CLASS_IDS = {"background": 0, "big": 1, "small": 2}


def place(config: ProteinsConfig, templates, *, class_ids, inside=(), outside=(), **kwargs):
    """place_proteins with the config translated as the pipeline does."""
    targets = protein_targets(config, class_ids, inside=inside, outside=outside)
    return place_proteins(targets, templates, rules=packing_rules(config), **kwargs)


def own_masks(placements: Placements, shape) -> np.ndarray:
    masks = []
    for i in range(len(placements)):
        alone, _, _ = render(placements.select(np.array([i])), SPECIES_TEMPLATES, shape)
        masks.append(alone > THRESHOLD)
    return np.array(masks)


@pytest.mark.parametrize("min_gap", [0.0, 20.0])
def test_random_placement_has_no_overlaps(min_gap):
    shape = (40, 56, 56)
    config = proteins_config(
        species=[
            {"name": "small", "source": "x", "count": 30},
            {"name": "big", "source": "x", "count": 8},
        ],
        min_gap=min_gap,
    )
    placements, report = place(
        config, SPECIES_TEMPLATES, shape=shape, pixel_size=PIXEL, class_ids=CLASS_IDS,
        rng=np.random.default_rng(9), label_threshold=THRESHOLD,
    )
    assert [(r.name, r.requested, r.placed) for r in report] == [("small", 30, 30), ("big", 8, 8)]
    # largest first: all big ones come before the small ones
    assert list(placements.template[:8]) == [placements.template_names.index("big")] * 8
    masks = own_masks(placements, shape)
    overlap = np.count_nonzero(masks.sum(axis=0) > 1)
    assert overlap <= 0.002 * masks.sum()
    if min_gap:
        gap_px = min_gap / PIXEL
        for i, mask in enumerate(masks):
            distance = ndimage.distance_transform_edt(~mask)
            others = masks[np.arange(len(masks)) != i].any(axis=0)
            # voxel masks: allow one voxel diagonal of discretisation
            assert distance[others].min(initial=np.inf) >= gap_px + 1 - np.sqrt(3)


def test_placed_particles_stay_in_the_ice_slab():
    shape = (40, 48, 48)
    config = proteins_config(species=[{"name": "small", "source": "x", "count": 10}])
    placements, _ = place(
        config, SPECIES_TEMPLATES, shape=shape, pixel_size=PIXEL, class_ids=CLASS_IDS,
        rng=np.random.default_rng(10), label_threshold=THRESHOLD, ice_thickness=200.0,
    )
    masks = own_masks(placements, shape)
    z_planes = np.flatnonzero(masks.any(axis=(0, 2, 3)))
    assert z_planes.min() >= 20 - 10 and z_planes.max() <= 20 + 10


def test_unreachable_target_warns_with_achieved_count():
    shape = (24, 24, 24)
    config = proteins_config(species=[{"name": "big", "source": "x", "count": 5}], max_attempts=50)
    with pytest.warns(UserWarning, match=r"big \d of 5"):
        placements, report = place(
            config, SPECIES_TEMPLATES, shape=shape, pixel_size=PIXEL, class_ids=CLASS_IDS,
            rng=np.random.default_rng(11), label_threshold=THRESHOLD,
        )
    assert 0 < report[0].placed < 5
    assert report[0].placed == len(placements)


def test_impossible_target_raises():
    config = proteins_config(species=[{"name": "big", "source": "x", "count": 500}])
    with pytest.raises(TomosimError, match="nm³"):
        place(
            config, SPECIES_TEMPLATES, shape=(24, 24, 24), pixel_size=PIXEL, class_ids=CLASS_IDS,
            rng=np.random.default_rng(0), label_threshold=THRESHOLD,
        )


def test_counts_from_concentration_and_volume_fraction():
    shape = (40, 64, 64)
    volume = np.prod(shape) * PIXEL**3  # Å³
    # 1 nmol/L is 6.022e-4 copies per µm³ = 6.022e-16 per Å³... -> choose ~12 copies
    concentration = 12 / (6.02214076e23 * 1e-9 * volume * 1e-27)
    config = proteins_config(
        species=[
            {"name": "small", "source": "x", "concentration_nm": concentration},
            {"name": "big", "source": "x", "volume_fraction": 0.02},
        ]
    )
    _, report = place(
        config, SPECIES_TEMPLATES, shape=shape, pixel_size=PIXEL, class_ids=CLASS_IDS,
        rng=np.random.default_rng(12), label_threshold=THRESHOLD,
    )
    assert report[0].requested == 12
    big = SPECIES_TEMPLATES["big"]
    envelope = np.count_nonzero(big.data > 0.5 * THRESHOLD) * big.pixel_size**3
    assert report[1].requested == round(0.02 * volume / envelope)


def test_grid_placement_uses_the_grid_spacing():
    shape = (32, 48, 48)
    config = proteins_config(
        placement="grid", grid_spacing=120.0,
        species=[{"name": "small", "source": "x", "count": 20}, {"name": "big", "source": "x", "count": 0}],
    )
    placements, report = place(
        config, {"small": SPECIES_TEMPLATES["small"], "big": SPECIES_TEMPLATES["small"]},
        shape=shape, pixel_size=PIXEL, class_ids=CLASS_IDS, rng=np.random.default_rng(13),
        label_threshold=THRESHOLD,
    )
    assert report[0].placed == 20
    steps = (placements.positions - placements.positions[0]) / 120.0
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-9)
    assert len(np.unique(np.round(steps), axis=0)) == 20
    # more than the grid holds: every site used, and a warning with the achieved number
    config = proteins_config(
        placement="grid", grid_spacing=120.0, species=[{"name": "small", "source": "x", "count": 200}]
    )
    with pytest.warns(UserWarning, match="small 32 of 200"):
        placements, _ = place(
            config, SPECIES_TEMPLATES, shape=shape, pixel_size=PIXEL, class_ids=CLASS_IDS,
            rng=np.random.default_rng(13), label_threshold=THRESHOLD,
        )
    assert len(placements) == 2 * 4 * 4  # floor(32 / 12) x floor(48 / 12) x floor(48 / 12) sites


def test_proteins_inside_and_outside_vesicles():
    shape = (48, 48, 48)
    radius = 17.0  # voxels
    r = np.sqrt(((np.indices((40, 40, 40)) - 19.5) ** 2).sum(axis=0))
    shell = np.where(np.abs(r - radius) < 2.0, 1.5, 0.0).astype(np.float32)
    box = PotentialBox(shell, (4, 4, 4), class_id=3, instance_id=1)
    occupancy = np.zeros(shape, bool)
    interior = np.zeros(shape, bool)
    mark_boxes(occupancy, [box], envelope_threshold=0.25, interior=interior)
    assert interior[24, 24, 24] and not interior[2, 2, 2] and occupancy[24, 24, 24 + 17]
    config = proteins_config(
        species=[{"name": "small", "source": "x", "count": 6}, {"name": "big", "source": "x", "count": 4}]
    )
    placements, report = place(
        config, SPECIES_TEMPLATES, shape=shape, pixel_size=PIXEL, class_ids=CLASS_IDS,
        rng=np.random.default_rng(14), label_threshold=THRESHOLD, occupancy=occupancy,
        interior=interior, inside=["small"], outside=["big"],
    )
    assert [r.placed for r in report] == [6, 4]
    distance = np.linalg.norm(placements.positions / PIXEL - 23.5, axis=1)
    small = placements.template == placements.template_names.index("small")
    assert np.all(distance[small] < radius - 2)
    assert np.all(distance[~small] > radius + 2)


def test_clustering_brings_particles_together():
    shape = (40, 64, 64)

    def mean_neighbour_distance(clustering: float) -> float:
        config = proteins_config(
            species=[{"name": "small", "source": "x", "count": 10}], clustering=clustering
        )
        placements, _ = place(
            config, SPECIES_TEMPLATES, shape=shape, pixel_size=PIXEL, class_ids=CLASS_IDS,
            rng=np.random.default_rng(15), label_threshold=THRESHOLD,
        )
        d = np.linalg.norm(placements.positions[:, None] - placements.positions[None], axis=-1)
        np.fill_diagonal(d, np.inf)
        return float(d.min(axis=1).mean())

    assert mean_neighbour_distance(1.0) < 0.75 * mean_neighbour_distance(0.0)


# ---- the whole phantom ----------------------------------------------------------------------


def phantom_config(seed: int = 0, **changes):
    tree = {
        "seed": seed,
        "classes": ["big", "absent", "small"],
        "sample": {"shape": [32, 48, 48], "pixel_size": PIXEL, "label_threshold": THRESHOLD},
        "proteins": {
            "species": [
                {"name": "big", "source": "x", "count": 3},
                {"name": "absent", "source": "x", "count": 0},
                {"name": "small", "source": "x", "count": 8},
                {"name": "decoy", "source": "x", "count": 3, "label": "background"},
            ]
        },
    }
    tree.update(changes)
    return config_from_dict(tree)


PHANTOM_TEMPLATES = {**SPECIES_TEMPLATES, "absent": SPECIES_TEMPLATES["small"], "decoy": asymmetric_blob(30.0, "decoy", 9)}


def test_phantom_labels_instances_and_stable_class_ids():
    config = phantom_config()
    phantom = assemble_phantom(phantom_recipe(config), PHANTOM_TEMPLATES, np.random.default_rng(0))
    assert phantom.class_names == {0: "background", 1: "big", 2: "absent", 3: "small"}
    p = phantom.placements
    names = np.array(p.template_names)[p.template]
    assert set(p.class_id[names == "small"]) == {3}  # not shifted down by the empty class
    assert set(p.class_id[names == "decoy"]) == {0}  # distractor: background class ...
    decoy_ids = p.instance_id[names == "decoy"]
    assert np.isin(decoy_ids, phantom.instances).all()  # ... but still an instance
    assert 2 not in phantom.labels
    assert labels_consistent(phantom.labels, phantom.instances, phantom.instance_class)
    assert phantom.labels.dtype == np.uint8 and phantom.instances.dtype == np.uint32
    assert phantom.potential.dtype == np.float32
    assert sorted((r.name, r.placed) for r in phantom.report) == [
        ("absent", 0), ("big", 3), ("decoy", 3), ("small", 8)
    ]
    assert phantom.ice_thickness == 32 * PIXEL


def test_same_seed_same_bytes_different_seed_different_phantom():
    config = phantom_config()
    a = assemble_phantom(phantom_recipe(config), PHANTOM_TEMPLATES, np.random.default_rng(21))
    b = assemble_phantom(phantom_recipe(config), PHANTOM_TEMPLATES, np.random.default_rng(21))
    c = assemble_phantom(phantom_recipe(config), PHANTOM_TEMPLATES, np.random.default_rng(22))
    for name in ("potential", "labels", "instances"):
        assert getattr(a, name).tobytes() == getattr(b, name).tobytes()
    assert a.placements.positions.tobytes() == b.placements.positions.tobytes()
    assert a.potential.tobytes() != c.potential.tobytes()


def test_placements_concatenate_merges_template_names():
    a = one_row("x", [1.0, 2.0, 3.0], np.eye(3))
    b = Placements.concatenate([one_row("y", [0.0] * 3, np.eye(3)), one_row("x", [5.0] * 3, np.eye(3))])
    merged = Placements.concatenate([a, b, Placements.empty()])
    assert merged.template_names == ("x", "y")
    assert [merged.template_names[t] for t in merged.template] == ["x", "y", "x"]
    assert len(merged) == 3 and len(Placements.concatenate([])) == 0


def mixed_config(seed: int = 0):
    return config_from_dict(
        {
            "seed": seed,
            "classes": ["small", "big", "actin", "cofilactin", "membrane"],
            "sample": {"shape": [40, 80, 80], "pixel_size": PIXEL, "label_threshold": THRESHOLD},
            "proteins": {
                "min_gap": 10.0,
                "species": [
                    {"name": "small", "source": "x", "count": 6},
                    {"name": "big", "source": "x", "count": 1},
                ],
            },
            "filaments": [
                {"name": "actin", "preset": "actin", "count": 2, "length": [300, 450],
                 "arrangement": "random",
                 "decoration": {"preset": None, "source": "x", "rise": 27.0, "twist": -162.0,
                                "radius": 16.0, "label": "cofilactin", "fraction": 0.5,
                                "mean_segment_subunits": 4}},
            ],
            "vesicles": {"count": 1, "radius": [170, 180], "thickness": 40.0,
                         "proteins_inside": ["big"], "proteins_outside": ["small"]},
        }
    )


MIXED_TEMPLATES = {
    **SPECIES_TEMPLATES,
    "big": asymmetric_blob(40.0, "big", 7),
    "actin": asymmetric_blob(22.0, "actin", 10),
    "actin_cofilactin": asymmetric_blob(28.0, "actin_cofilactin", 11),
}


def test_phantom_with_filaments_and_vesicles():
    config = mixed_config()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every target is reachable here
        phantom = assemble_phantom(phantom_recipe(config), MIXED_TEMPLATES, np.random.default_rng(3))
    shape = tuple(config.sample.shape)
    p = phantom.placements
    ids = config.class_ids()
    assert len(phantom.boxes) == 1 and phantom.boxes[0].instance_id == 1
    assert phantom.boxes[0].class_id == ids["membrane"]
    filament = p.filament_id >= 0
    assert set(np.unique(p.filament_id[filament])) == {0, 1}
    assert set(p.class_id[filament]) == {ids["actin"], ids["cofilactin"]}
    # instance ids: vesicle 1, then segments, then proteins, without gaps
    segments = np.unique(p.instance_id[filament])
    proteins = p.instance_id[~filament]
    np.testing.assert_array_equal(segments, np.arange(2, 2 + segments.size))
    np.testing.assert_array_equal(proteins, np.arange(2 + segments.size, 2 + segments.size + proteins.size))
    assert labels_consistent(phantom.labels, phantom.instances, phantom.instance_class)

    # re-render every object alone: the label rule holds for filament segments and the vesicle too
    n_ids = int(p.instance_id.max()) + 1
    own = np.zeros((n_ids,) + shape, np.float32)
    own[1], _, _ = render(Placements.empty(), MIXED_TEMPLATES, shape, boxes=phantom.boxes)
    for instance in range(2, n_ids):
        own[instance], _, _ = render(p.select(p.instance_id == instance), MIXED_TEMPLATES, shape)
    np.testing.assert_allclose(phantom.potential, own.sum(axis=0), atol=1e-4)
    labelled = phantom.instances > 0
    winner = np.take_along_axis(own, phantom.instances[None].astype(np.int64), axis=0)[0]
    assert np.all(winner[labelled] > THRESHOLD)
    np.testing.assert_array_equal(labelled, own.max(axis=0) > THRESHOLD)

    # proteins keep clear of filaments and membranes; "big" inside the vesicle, "small" outside
    above = own > THRESHOLD
    for instance in proteins:
        others = np.delete(above, [0, instance], axis=0).any(axis=0)
        assert np.count_nonzero(above[instance] & others) <= 2
    names = np.array(p.template_names)[p.template]
    # the vesicles are drawn first from the generator: replay them
    vesicles = membranes.place_vesicles(
        vesicle_population(config.vesicles), shape=shape, pixel_size=PIXEL, rng=np.random.default_rng(3)
    )
    inside = membranes.points_inside(vesicles, p.positions)
    assert np.all(inside[names == "big"]) and not np.any(inside[names == "small"])


def test_phantom_with_filaments_is_reproducible():
    config = mixed_config()
    a = assemble_phantom(phantom_recipe(config), MIXED_TEMPLATES, np.random.default_rng(5))
    b = assemble_phantom(phantom_recipe(config), MIXED_TEMPLATES, np.random.default_rng(5))
    c = assemble_phantom(phantom_recipe(config), MIXED_TEMPLATES, np.random.default_rng(6))
    for name in ("potential", "labels", "instances"):
        assert getattr(a, name).tobytes() == getattr(b, name).tobytes()
    assert a.labels.tobytes() != c.labels.tobytes()
