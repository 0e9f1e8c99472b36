"""Clash relief: the smallest rigid motion of a template subunit that clears its lattice contacts.

A template subunit taken from one model and repeated on an ideal lattice does not always fit its
neighbours as well as it did in its source: a subunit of a molecular-dynamics frame is placed by
the *average* screw of all subunits (the cofilactin 18-mer of Hocky et al. fits its screw to an
RMS residual of 2.5 Å), and the αβ-tubulin dimer of PDB 5IJ0 is placed on the lattice of another
model (the 3J6E patch; Cα RMSD 0.93 Å after superposition) whose side chains at the lateral
contacts differ. A few heavy atoms then come closer to a neighbour than any non-bonded contact
allows (:data:`CLASH_DISTANCE`), although the source has none there.

:func:`relieve_clashes` removes them by the rigid motion of the template that is smallest in
size, ``|ω| · LEVER + |t|`` (rotation ``ω`` about the template's mean atom position, a lever arm
of :data:`LEVER` Å turning angles into distances, and translation ``t``), among those that leave
at most ``allowed`` clashing atoms: a least-squares fit (``scipy.optimize.least_squares``) of the
penetration depths ``max(0, CLASH_DISTANCE + MARGIN − d_i)`` of the template's interface atoms,
with the motion itself as a weak regulariser. The same motion applies to every subunit, so the
lattice keeps its symmetry (twist, rise, protofilaments); one template can be relieved against
several lattices at once (13- and 14-protofilament microtubules). The motions found are small
against the uncertainty of the placement they correct (a fraction of a degree, about 1 Å: see
``tomosim/data/filaments/README.md`` and :class:`tomosim.filament_templates.SubunitTemplate`).

This is rigid-body clash relief only: no atom moves relative to the others, so bond geometry and
side-chain conformations are those of the source.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from tomosim.errors import TomosimError
from tomosim.helix import RigidMotion

CLASH_DISTANCE = 2.2
"""Å; heavy atoms of different subunits closer than this overlap (below any non-bonded contact:
van der Waals radii are ≥ 1.5 Å each)."""

MARGIN = 0.3
"""Å the relief aims beyond :data:`CLASH_DISTANCE`, so that rounding the coordinates to 0.001 Å
cannot bring a cleared atom back."""

LEVER = 30.0
"""Å per radian: how rotations are weighed against translations (a subunit's radius of gyration
is 20–30 Å)."""

INTERFACE = 8.0
"""Å; template atoms farther than this from every neighbour cannot clash within the motions
considered and are left out of the fit."""

MAX_ANGLE_DEG = 3.0
"""Largest relief rotation accepted, degrees."""

MAX_SHIFT = 2.5
"""Largest relief translation accepted, Å."""


@dataclass(frozen=True)
class Placement:
    """One lattice a template is placed on, seen from one subunit.

    Attributes
    ----------
    subunit
        Motion from template coordinates to the subunit's place in the filament frame.
    neighbours
        Motions from that subunit to each neighbour it may touch (filament frame to filament
        frame): copies of the template, which move with it.
    fixed
        ``(m, 3)`` atoms of other templates nearby (filament frame, Å), which do not move: the
        bare subunits next to a decorated one, say.
    """

    subunit: RigidMotion
    neighbours: tuple[RigidMotion, ...]
    fixed: np.ndarray | None = None

    def others(self, placed: np.ndarray) -> np.ndarray:
        """Atoms of the neighbours of ``placed`` (the template at its place), ``(k, 3)``."""
        parts = [m.apply(placed) for m in self.neighbours]
        if self.fixed is not None:
            parts.append(np.asarray(self.fixed, dtype=np.float64))
        return np.concatenate(parts) if parts else np.empty((0, 3))


@dataclass(frozen=True)
class Relief:
    """The relief motion of a template and what it achieved.

    Attributes
    ----------
    motion
        Rigid motion of the template's coordinates (rotation about ``centre``, then translation).
    centre
        ``(3,)`` the template's mean atom position, template coordinates, Å.
    angle_deg
        Rotation angle, degrees.
    shift
        Length of the translation, Å.
    clashes_before, clashes_after
        Template atoms within :data:`CLASH_DISTANCE` of a neighbour, per placement, before and
        after.
    n_atoms
        Atoms of the template.
    """

    motion: RigidMotion
    centre: np.ndarray
    angle_deg: float
    shift: float
    clashes_before: tuple[int, ...]
    clashes_after: tuple[int, ...]
    n_atoms: int


def lattice_placement(
    positions: np.ndarray, rotations: np.ndarray, index: int, *, reach: float
) -> Placement:
    """Placement of subunit ``index`` of a lattice and its neighbours within ``reach`` Å.

    ``positions`` ``(n, 3)`` and ``rotations`` ``(n, 3, 3)`` place the template (coordinates
    relative to its reference point) at every subunit, as
    :func:`tomosim.filament_lattice.helical_lattice` returns them.
    """
    own_r, own_p = rotations[index], positions[index]
    neighbours = []
    for k in range(len(positions)):
        if k == index or np.linalg.norm(positions[k] - own_p) > reach:
            continue
        rotation = rotations[k] @ own_r.T
        neighbours.append(RigidMotion(rotation, positions[k] - rotation @ own_p))
    return Placement(RigidMotion(own_r, own_p), tuple(neighbours))


def clashing_atoms(atoms: np.ndarray, placement: Placement, clash: float = CLASH_DISTANCE) -> int:
    """Atoms of the placed template closer than ``clash`` Å to an atom of a neighbour."""
    placed = placement.subunit.apply(atoms)
    others = placement.others(placed)
    if not len(others):
        return 0
    distance, _ = cKDTree(others).query(placed, distance_upper_bound=clash)
    return int(np.sum(distance < clash))


def _moved(atoms: np.ndarray, centre: np.ndarray, p: np.ndarray) -> np.ndarray:
    rotation = Rotation.from_rotvec(p[:3]).as_matrix()
    return (atoms - centre) @ rotation.T + centre + p[3:]


def relieve_clashes(
    atoms: np.ndarray,
    placements: Sequence[Placement],
    *,
    allowed: Sequence[int] | None = None,
) -> Relief:
    """Find the smallest rigid motion of ``atoms`` that clears their lattice contacts.

    Parameters
    ----------
    atoms
        ``(n, 3)`` heavy atoms of the template, template coordinates, Å.
    placements
        The lattices (and the subunit seen from) to clear, :func:`lattice_placement`.
    allowed
        Clashing atoms tolerated per placement (e.g. as many as the source model has); 0 each
        by default. When every placement is within it already, the motion is the identity.

    Returns
    -------
    Relief

    Raises
    ------
    TomosimError
        No motion within :data:`MAX_ANGLE_DEG` and :data:`MAX_SHIFT` gets every placement within
        ``allowed`` (the template does not fit the lattice).
    """
    atoms = np.asarray(atoms, dtype=np.float64)
    limits = tuple(allowed) if allowed is not None else (0,) * len(placements)
    centre = atoms.mean(axis=0)
    before = tuple(clashing_atoms(atoms, p) for p in placements)
    identity = RigidMotion(np.eye(3), np.zeros(3))
    if all(b <= a for b, a in zip(before, limits, strict=True)):
        return Relief(identity, centre, 0.0, 0.0, before, before, len(atoms))
    interfaces = []
    for placement in placements:
        placed = placement.subunit.apply(atoms)
        others = placement.others(placed)
        if not len(others):  # nothing to touch: no residuals from this placement
            interfaces.append(np.empty(0, dtype=np.intp))
            continue
        distance, _ = cKDTree(others).query(placed, distance_upper_bound=INTERFACE)
        interfaces.append(np.flatnonzero(distance < INTERFACE))
    regulariser = 0.05

    def residuals(p: np.ndarray) -> np.ndarray:
        out = []
        moved = _moved(atoms, centre, p)
        for placement, interface in zip(placements, interfaces, strict=True):
            if not len(interface):
                continue
            placed = placement.subunit.apply(moved)
            distance, _ = cKDTree(placement.others(placed)).query(placed[interface])
            out.append(np.maximum(0.0, CLASH_DISTANCE + MARGIN - distance))
        out.append(regulariser * np.concatenate([p[:3] * LEVER, p[3:]]))
        return np.concatenate(out)

    fit = least_squares(residuals, np.zeros(6), diff_step=1e-3)
    p = fit.x
    rotation = Rotation.from_rotvec(p[:3]).as_matrix()
    motion = RigidMotion(rotation, centre - rotation @ centre + p[3:])
    moved = motion.apply(atoms)
    after = tuple(clashing_atoms(moved, placement) for placement in placements)
    angle = float(np.degrees(np.linalg.norm(p[:3])))
    shift = float(np.linalg.norm(p[3:]))
    if (any(b > a for b, a in zip(after, limits, strict=True))
            or angle > MAX_ANGLE_DEG or shift > MAX_SHIFT):
        raise TomosimError(
            f"the template does not fit its lattice: {list(before)} atoms clash with neighbours "
            f"(at most {list(limits)} allowed) and the best rigid relief ({angle:.2f}°, "
            f"{shift:.2f} Å) leaves {list(after)}"
        )
    return Relief(motion, centre, angle, shift, before, after, len(atoms))

