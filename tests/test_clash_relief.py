"""Clash relief of lattice templates against hand-made lattices with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import pdist

from tomosim.clash_relief import (
    CLASH_DISTANCE,
    Placement,
    clashing_atoms,
    lattice_placement,
    relieve_clashes,
)
from tomosim.errors import TomosimError
from tomosim.helix import RigidMotion, compose

IDENTITY = RigidMotion(np.eye(3), np.zeros(3))


def stack(rise: float, steps=(-2, -1, 1, 2)) -> Placement:
    """A straight stack: neighbours are copies shifted by ``step * rise`` along z."""
    return Placement(IDENTITY, tuple(
        RigidMotion(np.eye(3), np.array([0.0, 0.0, s * rise])) for s in steps))


def rod(length: float, n: int = 15) -> np.ndarray:
    """Atoms 1.5 Å apart on a line through the origin along z, plus a side arm along x."""
    z = np.linspace(-length / 2, length / 2, n)
    line = np.stack([np.zeros(n), np.zeros(n), z], axis=1)
    arm = np.array([[3.0, 0.0, 0.0], [6.0, 0.0, 0.0]])
    return np.concatenate([line, arm])


def test_clashing_atoms_counts_by_hand():
    atoms = rod(21.0)  # z = -10.5, -9.0, ..., 10.5
    # copies 20 Å apart: the next copy starts at 9.5, 11.0, ...: own 7.5, 9.0, 10.5 lie within
    # 2.2 Å of it, and 3 more at the bottom end
    assert clashing_atoms(atoms, stack(20.0)) == 6
    assert clashing_atoms(atoms, stack(23.0)) == 2  # 10.5 vs 12.5 and -10.5 vs -12.5
    assert clashing_atoms(atoms, stack(25.0)) == 0  # 4.0 Å apart


def test_no_clash_gives_the_identity():
    atoms = rod(21.0)
    relief = relieve_clashes(atoms, [stack(25.0)])
    assert relief.angle_deg == 0.0 and relief.shift == 0.0
    assert np.array_equal(relief.motion.apply(atoms), atoms)
    assert relief.clashes_before == relief.clashes_after == (0,)


def test_allowed_clashes_are_kept():
    atoms = rod(21.0)
    relief = relieve_clashes(atoms, [stack(23.0)], allowed=[2])  # the source has as many
    assert relief.angle_deg == 0.0 and relief.clashes_after == (2,)


def ring(radius: float, n: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Positions and rotations of ``n`` subunits in a ring about z (subunit 0 on +x)."""
    angles = np.deg2rad(np.arange(n) * 360.0 / n)
    rotations = np.stack([[[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]]
                          for a in angles])
    positions = np.stack([radius * np.cos(angles), radius * np.sin(angles), 0 * angles], axis=1)
    return positions, rotations


def tip_distance(radius: float, half: float) -> float:
    """Distance between the facing tips of neighbours in a 6-ring (tips at ±half along y)."""
    a = np.deg2rad(60.0)
    tip = np.array([radius, half])
    other = np.array([radius * np.cos(a) + half * np.sin(a), radius * np.sin(a) - half * np.cos(a)])
    return float(np.linalg.norm(tip - other))


def test_a_ring_of_tangential_rods_is_cleared_by_a_small_rigid_motion():
    """Six rods tangential to a ring of radius 10 Å whose tips are 1.86 Å apart: moving the rod
    outwards by Δ clears them (tips at CLASH_DISTANCE + MARGIN for a Δ found by bisection);
    the relief clears all contacts with a rigid motion about that large."""
    from scipy.optimize import brentq

    from tomosim.clash_relief import LEVER, MARGIN

    half = 4.7
    atoms = np.stack([np.zeros(7), np.linspace(-half, half, 7), np.zeros(7)], axis=1)
    positions, rotations = ring(10.0)
    placement = lattice_placement(positions, rotations, 0, reach=30.0)
    assert tip_distance(10.0, half) == pytest.approx(1.86, abs=0.01)
    assert clashing_atoms(atoms, placement) == 2
    radial = brentq(lambda d: tip_distance(10.0 + d, half) - CLASH_DISTANCE - MARGIN, 0.0, 5.0)
    relief = relieve_clashes(atoms, [placement])
    moved = relief.motion.apply(atoms)
    assert relief.clashes_before == (2,) and relief.clashes_after == (0,)
    assert clashing_atoms(moved, placement) == 0
    np.testing.assert_allclose(pdist(moved), pdist(atoms), atol=1e-9)  # rigid
    size = np.deg2rad(relief.angle_deg) * LEVER + relief.shift
    print(f"relief {relief.angle_deg:.2f} deg, {relief.shift:.2f} A; radial shift alone {radial:.2f} A")
    assert 0 < size <= 1.2 * radial


def test_relief_that_needs_a_large_motion_is_refused():
    """Translations move every copy of a straight stack alike; only a tilt of several degrees
    shortens the rod enough, beyond MAX_ANGLE_DEG."""
    atoms = rod(21.0)
    with pytest.raises(TomosimError, match=r"does not fit its lattice: \[6\] atoms clash"):
        relieve_clashes(atoms, [stack(20.0)])


def test_lattice_placement_neighbours_map_subunits_onto_each_other():
    rng = np.random.default_rng(1)
    angles = np.deg2rad(np.arange(6) * -166.6)
    rotations = np.stack([[[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]]
                          for a in angles])
    positions = np.stack([16.0 * np.cos(angles), 16.0 * np.sin(angles), np.arange(6) * 27.5],
                         axis=1)
    atoms = rng.normal(scale=5.0, size=(20, 3))
    placement = lattice_placement(positions, rotations, 2, reach=60.0)
    assert len(placement.neighbours) == 4  # subunits 0, 1, 3, 4 (5 is 82.5 Å away)
    own = placement.subunit.apply(atoms)
    expected = [atoms @ rotations[k].T + positions[k] for k in (0, 1, 3, 4)]
    for motion, target in zip(placement.neighbours, expected, strict=True):
        np.testing.assert_allclose(motion.apply(own), target, atol=1e-9)


def test_compose_applies_first_then_second():
    rng = np.random.default_rng(2)
    a = RigidMotion(np.array([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]]), rng.normal(size=3))
    b = RigidMotion(np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]]), rng.normal(size=3))
    points = rng.normal(size=(5, 3))
    np.testing.assert_allclose(compose(a, b).apply(points), b.apply(a.apply(points)))
