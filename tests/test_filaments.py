"""Filaments: helical lattices, paths (sheets, random worm-like chains, bundles), decoration."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from tomosim.config import DecorationConfig, FilamentSpecies
from tomosim.errors import TomosimError
from tomosim.filament_lattice import PRESETS
from tomosim.filament_paths import DEFAULT_MIN_GAP, worm_like_chain
from tomosim.filaments import (
    HelicalParameters,
    decoration_parameters,
    decoration_states,
    filament_paths,
    filament_templates,
    helical_lattice,
    place_filaments,
    species_outer_radius,
)

CLASS_IDS = {"background": 0, "actin": 1, "cofilactin": 2, "microtubule": 3}


def wrap(angle: np.ndarray) -> np.ndarray:
    """Angles in degrees wrapped to [-180, 180)."""
    return (np.asarray(angle) + 180.0) % 360.0 - 180.0


def relative_twist_and_rise(
    positions: np.ndarray, rotations: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Twist (about the local axis), rise (along it) and off-axis rotation between consecutive rows.

    The local axis of a subunit is its rotated template z axis; the relative rotation
    ``R_k^T R_{k+1}`` of a helix is ``Rz(twist)`` (plus a small bend on curved paths).
    """
    relative = np.einsum("nji,njk->nik", rotations[:-1], rotations[1:])
    rotvec = Rotation.from_matrix(relative).as_rotvec(degrees=True)
    twist = wrap(np.rad2deg(np.arctan2(relative[:, 1, 0], relative[:, 0, 0])))
    axis = rotations[:-1, :, 2]
    rise = np.einsum("ni,ni->n", positions[1:] - positions[:-1], axis)
    bend = np.linalg.norm(rotvec[:, :2], axis=1)
    return twist, rise, bend


def axis_points(positions: np.ndarray, rotations: np.ndarray, radius: float) -> np.ndarray:
    """Filament-axis point of each subunit: template point ``(-radius, 0, 0)`` moved by the row."""
    return positions + rotations @ np.array([-radius, 0.0, 0.0])


# ---------------------------------------------------------------------------------------------
# Lattices
# ---------------------------------------------------------------------------------------------


COFILACTIN_LITERATURE = HelicalParameters(rise=27.0, twist=-162.0, radius=16.0)


@pytest.mark.parametrize("params", [PRESETS["actin"], COFILACTIN_LITERATURE])
def test_one_start_lattice_recovers_rise_and_twist(params: HelicalParameters) -> None:
    positions, rotations = helical_lattice(40, params, phase=17.0)
    # from positions alone: azimuth and height steps, constant radius
    azimuth = np.rad2deg(np.arctan2(positions[:, 1], positions[:, 0]))
    np.testing.assert_allclose(wrap(np.diff(azimuth)), params.twist, atol=0.5)
    np.testing.assert_allclose(np.diff(positions[:, 2]), params.rise, atol=0.5)
    np.testing.assert_allclose(np.hypot(positions[:, 0], positions[:, 1]), params.radius, atol=1e-9)
    # from the rotations: neighbours are related by the screw operation
    twist, rise, bend = relative_twist_and_rise(positions, rotations)
    np.testing.assert_allclose(twist, params.twist, atol=0.5)
    np.testing.assert_allclose(rise, params.rise, atol=0.5)
    np.testing.assert_allclose(bend, 0.0, atol=1e-9)
    # the template's filament axis (-radius, 0, 0) lands on the z axis for every subunit
    axis = axis_points(positions, rotations, params.radius)
    np.testing.assert_allclose(axis[:, :2], 0.0, atol=1e-9)


def test_microtubule_lattice_has_13_protofilaments_3_start_and_a_seam() -> None:
    params = PRESETS["microtubule"]
    assert params.protofilaments == 13 and params.start == -3
    positions, rotations = helical_lattice(13 * 4, params)
    rings = positions.reshape(4, 13, 3)
    azimuth = np.rad2deg(np.arctan2(rings[..., 1], rings[..., 0]))
    # around a ring: 360/13 per protofilament and a 3 × 40.9 / 13 Å stagger (the 3-start helix),
    # left-handed: the neighbour at larger azimuth is lower, the one at smaller azimuth higher
    np.testing.assert_allclose(wrap(np.diff(azimuth, axis=1)), 360.0 / 13, atol=1e-6)
    np.testing.assert_allclose(np.diff(rings[..., 2], axis=1), -3 * 40.9 / 13, atol=1e-9)
    # along a protofilament: the 81.8 Å dimer repeat, no supertwist
    np.testing.assert_allclose(np.diff(rings[..., 2], axis=0), 81.8, atol=1e-9)
    np.testing.assert_allclose(wrap(np.diff(azimuth, axis=0)), 0.0, atol=1e-6)
    # continuing the 3-start helix past protofilament 12 lands half a dimer off protofilament 0
    expected = rings[0, 12, 2] - 3 * 40.9 / 13
    offset = (rings[0, 0, 2] - expected) % 81.8  # to protofilament 0's (infinite) lattice
    assert min(offset, 81.8 - offset) == pytest.approx(81.8 / 2, abs=1e-6)
    # all subunits at the protofilament radius, facing outwards (template x along the radius)
    radial = positions[:, :2] / np.linalg.norm(positions[:, :2], axis=1, keepdims=True)
    np.testing.assert_allclose(rotations[:, :2, 0], radial, atol=1e-9)


def test_helical_parameters_reject_nonsense() -> None:
    with pytest.raises(TomosimError, match="rise"):
        HelicalParameters(rise=0.0, twist=10.0, radius=5.0)
    with pytest.raises(TomosimError, match="protofilaments"):
        HelicalParameters(rise=10.0, twist=10.0, radius=5.0, protofilaments=0)
    with pytest.raises(TomosimError, match="outer_radius"):
        HelicalParameters(rise=10.0, twist=10.0, radius=50.0, outer_radius=20.0)


def test_templates_of_presets_and_decoration() -> None:
    decoration = DecorationConfig(preset=None, source="cof.pdb", rise=27.0, twist=-162.0)
    actin = FilamentSpecies(name="actin", preset="actin", decoration=decoration)
    templates = filament_templates(actin)
    assert list(templates) == ["actin", "actin_cofilactin"]
    assert templates["actin"].endswith("data/filaments/actin_6bno.pdb.gz")
    assert templates["actin_cofilactin"] == "cof.pdb"
    tube = FilamentSpecies(name="microtubule", preset="microtubule")
    assert filament_templates(tube)["microtubule"].endswith("data/filaments/tubulin_5ij0.pdb.gz")
    custom = FilamentSpecies(name="rod", source="rod.pdb", rise=30.0, twist=90.0, radius=10.0)
    assert filament_templates(custom) == {"rod": "rod.pdb"}


def test_decoration_parameters_take_preset_and_overrides() -> None:
    decoration = DecorationConfig(preset=None, source="cof.pdb", radius=30.0, twist=-160.0)
    params = decoration_parameters(FilamentSpecies(name="a", preset="actin", decoration=decoration))
    assert (params.rise, params.twist, params.radius) == (PRESETS["actin"].rise, -160.0, 30.0)
    assert params.envelope_radius >= PRESETS["actin"].envelope_radius
    tube = FilamentSpecies(name="mt", preset="microtubule", decoration=DecorationConfig())
    with pytest.raises(TomosimError, match="protofilament"):
        decoration_parameters(tube)


# ---------------------------------------------------------------------------------------------
# Full placement: rise and twist in sample coordinates
# ---------------------------------------------------------------------------------------------


def test_placed_straight_filaments_keep_rise_and_twist() -> None:
    species = FilamentSpecies(
        name="actin", preset="actin", count=4, length=(400.0, 800.0), arrangement="sheets",
        filaments_per_sheet=2, sheet_angle_step=40.0,
    )
    placed = place_filaments(
        species, shape=(48, 96, 96), pixel_size=10.0, rng=np.random.default_rng(3),
        class_ids=CLASS_IDS, first_instance_id=1, first_filament_id=1,
    )
    params = PRESETS["actin"]
    assert set(np.unique(placed.filament_id)) == {1, 2, 3, 4}
    for filament in np.unique(placed.filament_id):
        rows = placed.filament_id == filament
        pos, rot = placed.positions[rows], placed.rotations[rows]
        twist, rise, bend = relative_twist_and_rise(pos, rot)
        np.testing.assert_allclose(twist, params.twist, atol=0.5)
        np.testing.assert_allclose(rise, params.rise, atol=0.5)
        np.testing.assert_allclose(bend, 0.0, atol=1e-6)
        # the axis points of all subunits lie on one straight line, one rise apart
        axis = axis_points(pos, rot, params.radius)
        steps = np.diff(axis, axis=0)
        np.testing.assert_allclose(np.linalg.norm(steps, axis=1), params.rise, atol=1e-6)
        unit = steps / params.rise
        np.testing.assert_allclose(unit, np.broadcast_to(unit[0], unit.shape), atol=1e-9)
        np.testing.assert_array_equal(placed.subunit_index[rows], np.arange(rows.sum()))


def test_curved_filaments_stay_helices_locally() -> None:
    species = FilamentSpecies(
        name="actin", preset="actin", count=3, length=(600.0, 900.0), arrangement="random",
        persistence_length=2.0e6,
    )
    placed = place_filaments(
        species, shape=(64, 128, 128), pixel_size=10.0, rng=np.random.default_rng(5),
        class_ids=CLASS_IDS, first_instance_id=10, first_filament_id=7,
    )
    params = PRESETS["actin"]
    assert set(np.unique(placed.filament_id)) == {7, 8, 9}
    for filament in np.unique(placed.filament_id):
        rows = placed.filament_id == filament
        twist, rise, bend = relative_twist_and_rise(placed.positions[rows], placed.rotations[rows])
        np.testing.assert_allclose(twist, params.twist, atol=0.5)
        np.testing.assert_allclose(rise, params.rise, atol=0.5)
        assert bend.max() < 2.0  # degrees of bending between neighbours at Lp = 200 µm


def test_curved_chain_frames_are_rotation_minimising() -> None:
    path = worm_like_chain(2000.0, 800.0, rng=np.random.default_rng(0))
    frames = path.frames
    identity = np.broadcast_to(np.eye(3), frames.shape)
    np.testing.assert_allclose(frames @ frames.transpose(0, 2, 1), identity, atol=1e-9)
    np.testing.assert_allclose(np.linalg.det(frames), 1.0, atol=1e-9)
    # consecutive frames differ by a rotation with no component about the tangent (no spin)
    relative = np.einsum("nji,njk->nik", frames[:-1], frames[1:])
    rotvec = Rotation.from_matrix(relative).as_rotvec()
    assert np.abs(rotvec[:, 2]).max() < 1e-9
    assert np.abs(rotvec[:, :2]).max() > 1e-3  # it does bend
    # the nodes follow the tangents
    steps = np.diff(path.points, axis=0)
    unit = steps / np.linalg.norm(steps, axis=1, keepdims=True)
    np.testing.assert_allclose(unit, frames[:, :, 2], atol=1e-9)


def test_persistence_length_sets_tangent_correlation() -> None:
    rng = np.random.default_rng(11)
    lp, length, n_chains = 400.0, 800.0, 1500
    chains = [worm_like_chain(length, lp, rng=rng) for _ in range(n_chains)]
    tangents = np.stack([chain.frames[:, :, 2] for chain in chains])
    step = length / tangents.shape[1]
    correlation = np.einsum("cni,ci->cn", tangents, tangents[:, 0])
    for index in (10, 40, 80, 159):
        s = index * step
        mean = correlation[:, index].mean()
        error = correlation[:, index].std(ddof=1) / np.sqrt(n_chains)
        assert abs(mean - np.exp(-s / lp)) < 4 * error + 1e-3, (s, mean, np.exp(-s / lp), error)


# ---------------------------------------------------------------------------------------------
# Arrangements
# ---------------------------------------------------------------------------------------------


def test_sheets_sit_at_their_planes_with_stepped_angles() -> None:
    species = FilamentSpecies(
        name="actin", preset="actin", count=6, length=(300.0, 600.0), arrangement="sheets",
        filaments_per_sheet=2, sheet_angle_step=30.0,
    )
    shape, pixel_size = (64, 128, 128), 10.0
    rng = np.random.default_rng(2)
    paths = filament_paths(species, shape=shape, pixel_size=pixel_size, rng=rng)
    assert len(paths) == 6
    radius = species_outer_radius(species)
    z_low, z_high = radius, (shape[0] - 1) * pixel_size - radius
    spacing = (z_high - z_low) / 3
    angles = []
    for sheet in range(3):
        expected_z = z_low + (sheet + 0.5) * spacing
        sheet_angles = []
        for path in paths[2 * sheet: 2 * sheet + 2]:
            np.testing.assert_allclose(path.points[:, 2], expected_z, atol=1e-9)
            direction = path.points[-1] - path.points[0]
            sheet_angles.append(np.rad2deg(np.arctan2(direction[1], direction[0])))
            assert 300.0 - 1e-6 <= path.length <= 600.0 + 1e-6
        assert wrap(sheet_angles[0] - sheet_angles[1]) == pytest.approx(0.0, abs=1e-6)
        angles.append(sheet_angles[0])
    np.testing.assert_allclose(wrap(np.diff(angles)), 30.0, atol=1e-6)


def dense_samples(path, spacing: float = 1.0) -> np.ndarray:
    return path.at(np.linspace(0.0, path.length, int(np.ceil(path.length / spacing)) + 1))[0]


def test_random_filaments_keep_their_distance_and_stay_inside() -> None:
    species = FilamentSpecies(
        name="actin", preset="actin", count=8, length=(500.0, 900.0), arrangement="random",
        persistence_length=1500.0,
    )
    shape, pixel_size = (48, 128, 128), 10.0
    rng = np.random.default_rng(4)
    paths = filament_paths(species, shape=shape, pixel_size=pixel_size, rng=rng)
    assert len(paths) == 8
    radius = species_outer_radius(species)
    samples = [dense_samples(p) for p in paths]
    extent = (np.array(shape[::-1]) - 1) * pixel_size
    for points in samples:
        assert np.all(points >= radius - 1e-6) and np.all(points <= extent - radius + 1e-6)
    closest = min(
        cKDTree(samples[i]).query(samples[j])[0].min()
        for i in range(len(samples)) for j in range(i + 1, len(samples))
    )
    assert closest >= 2 * radius + DEFAULT_MIN_GAP - 1e-6


def test_random_filaments_avoid_occupied_voxels() -> None:
    shape, pixel_size = (30, 80, 80), 10.0
    occupancy = np.zeros(shape, dtype=bool)
    occupancy[:, :, :40] = True  # x < 400 Å taken
    species = FilamentSpecies(
        name="actin", preset="actin", count=3, length=(200.0, 250.0), arrangement="random",
    )
    paths = filament_paths(
        species, shape=shape, pixel_size=pixel_size, rng=np.random.default_rng(1),
        occupancy=occupancy,
    )
    assert len(paths) == 3
    radius = species_outer_radius(species)
    for path in paths:
        assert dense_samples(path)[:, 0].min() >= 390.0 + radius - 1.0


def test_bundle_is_hexagonal_and_parallel() -> None:
    species = FilamentSpecies(
        name="actin", preset="actin", count=7, length=(500.0, 700.0), arrangement="bundle",
        bundle_spacing=110.0,
    )
    rng = np.random.default_rng(8)
    paths = filament_paths(species, shape=(64, 128, 128), pixel_size=10.0, rng=rng)
    assert len(paths) == 7
    directions = np.array([p.frames[0, :, 2] for p in paths])
    np.testing.assert_allclose(directions - directions[0], 0.0, atol=1e-12)
    assert abs(directions[0, 2]) < 1e-12  # bundle axis in the xy plane
    # distances between the (parallel) axis lines: nearest neighbours exactly one spacing apart
    d = directions[0]
    starts = np.array([p.points[0] for p in paths])
    offsets = starts - np.outer(starts @ d, d)
    separation = np.linalg.norm(offsets[:, None] - offsets[None], axis=2)
    np.fill_diagonal(separation, np.inf)
    np.testing.assert_allclose(separation.min(axis=1), 110.0, atol=1e-6)
    assert (np.isclose(separation, 110.0).sum(axis=1) == 6).sum() == 1  # one centre filament


@pytest.mark.parametrize(
    "arrangement, extra",
    [("sheets", {}), ("random", {"persistence_length": 1e6}), ("bundle", {})],
)
def test_filament_longer_than_the_volume_is_an_error(arrangement: str, extra: dict) -> None:
    species = FilamentSpecies(
        name="actin", preset="actin", count=2, length=(3000.0, 4000.0), arrangement=arrangement,
        **extra,
    )
    with pytest.raises(TomosimError, match="does not fit"):
        filament_paths(species, shape=(32, 96, 96), pixel_size=10.0, rng=np.random.default_rng(0))


def test_crowded_random_filaments_warn_with_count() -> None:
    species = FilamentSpecies(
        name="microtubule", preset="microtubule", count=30, length=(500.0, 600.0),
        arrangement="random",
    )
    with pytest.warns(UserWarning, match=r"placed \d+ of 30 filaments"):
        paths = filament_paths(species, shape=(32, 80, 80), pixel_size=10.0,
                               rng=np.random.default_rng(0), max_attempts=30)
    assert 0 < len(paths) < 30


# ---------------------------------------------------------------------------------------------
# Decoration, ids, reproducibility
# ---------------------------------------------------------------------------------------------


def test_decoration_states_fraction_and_run_length() -> None:
    states = decoration_states(200_000, fraction=0.3, mean_run=20.0, rng=np.random.default_rng(0))
    assert states.mean() == pytest.approx(0.3, abs=0.02)
    edges = np.flatnonzero(np.diff(states.astype(int))) + 1
    runs = np.split(states, edges)
    decorated_runs = [len(r) for r in runs[1:-1] if r[0]]
    assert np.mean(decorated_runs) == pytest.approx(20.0, rel=0.1)
    rng = np.random.default_rng(0)
    assert not decoration_states(100, fraction=0.0, mean_run=5.0, rng=rng).any()
    assert decoration_states(100, fraction=1.0, mean_run=5.0, rng=rng).all()


def decorated_species(**changes) -> FilamentSpecies:
    settings = dict(
        name="actin", preset="actin", count=4, length=(1500.0, 2000.0), arrangement="random",
        persistence_length=1e7,
        decoration=DecorationConfig(
            preset=None, source="builtin:cofilactin", rise=27.0, twist=-162.0, radius=16.0,
            label="cofilactin", fraction=0.4, mean_segment_subunits=8,
        ),
    )
    settings.update(changes)
    return FilamentSpecies(**settings)


def place(species: FilamentSpecies, seed: int):
    return place_filaments(
        species, shape=(48, 256, 256), pixel_size=10.0, rng=np.random.default_rng(seed),
        class_ids=CLASS_IDS, first_instance_id=5, first_filament_id=2,
    )


def test_decorated_segments_are_instances_with_their_class_and_lattice() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # all four filaments placed
        placed = place(decorated_species(), seed=1)
    assert placed.template_names == ("actin", "actin_cofilactin")
    assert np.unique(placed.filament_id).tolist() == [2, 3, 4, 5]
    decorated = placed.template == 1
    assert 0.2 < decorated.mean() < 0.6  # ~250 subunits in ~30 runs: a loose check
    np.testing.assert_array_equal(placed.class_id, np.where(decorated, 2, 1))
    # instance ids: consecutive from 5, one per run of equal state within a filament
    assert placed.instance_id.min() == 5
    expected_ids = np.arange(5, placed.instance_id.max() + 1)
    np.testing.assert_array_equal(np.unique(placed.instance_id), expected_ids)
    bare_params = PRESETS["actin"]
    decorated_params = decoration_parameters(decorated_species())
    assert (decorated_params.rise, decorated_params.twist) == (27.0, -162.0)
    for filament in np.unique(placed.filament_id):
        rows = np.flatnonzero(placed.filament_id == filament)
        state = decorated[rows]
        switch = np.concatenate([[False], state[1:] != state[:-1]])
        np.testing.assert_array_equal(placed.segment_id[rows], np.cumsum(switch))
        np.testing.assert_array_equal(np.diff(placed.instance_id[rows]), switch[1:].astype(int))
        twist, rise, _ = relative_twist_and_rise(placed.positions[rows], placed.rotations[rows])
        both = state[1:] & state[:-1]
        np.testing.assert_allclose(twist[both], decorated_params.twist, atol=0.5)
        np.testing.assert_allclose(twist[~both], bare_params.twist, atol=0.5)
        # along the axis (template point (-radius, 0, 0) of each subunit's own template)
        radius = np.where(state, decorated_params.radius, bare_params.radius)
        axis = placed.positions[rows] + np.einsum("nij,nj->ni", placed.rotations[rows],
                                                  np.stack([-radius, 0 * radius, 0 * radius], 1))
        steps = np.linalg.norm(np.diff(axis, axis=0), axis=1)
        np.testing.assert_allclose(steps[both], decorated_params.rise, atol=0.5)
        np.testing.assert_allclose(steps[~both], bare_params.rise, atol=0.5)


def test_same_seed_gives_identical_placements() -> None:
    first, second = place(decorated_species(), seed=9), place(decorated_species(), seed=9)
    for field in ("positions", "rotations", "template", "class_id", "instance_id", "filament_id",
                  "segment_id", "subunit_index"):
        np.testing.assert_array_equal(getattr(first, field), getattr(second, field))
    third = place(decorated_species(), seed=10)
    assert len(third) != len(first) or not np.array_equal(third.positions, first.positions)


def test_background_label_and_unknown_label() -> None:
    species = decorated_species(label="background", decoration=None, count=1)
    placed = place(species, seed=0)
    assert len(placed) > 0 and np.all(placed.class_id == 0)
    unknown = decorated_species(label="spaghetti", decoration=None, count=1)
    with pytest.raises(TomosimError, match="spaghetti"):
        place(unknown, seed=0)


def test_no_filaments_gives_empty_placements() -> None:
    placed = place(decorated_species(count=0), seed=0)
    assert len(placed) == 0 and placed.rotations.shape == (0, 3, 3)


def test_species_without_preset_needs_lattice() -> None:
    species = FilamentSpecies(name="rod", source="rod.pdb", count=1, rise=30.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(TomosimError, match="twist, radius"):
            place(species, seed=0)
