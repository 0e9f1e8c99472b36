"""Membrane proteins: particles set into bilayers along the local membrane normal.

A membrane protein species states its **transmembrane axis** ``a`` (a unit vector in the frame
of its structure, pointing to the side that should face the membrane normal ``n``) and the
**offset** ``o`` (Å) along ``a`` from its reference point (the template centre) to the bilayer
mid-plane. A copy placed at the mid-plane point ``s`` with normal ``n`` gets the rotation

``R = A(a → n) · Rot(a, ψ)``

with ``ψ`` uniform in [0°, 360°) (a random spin about its own axis) and ``A(a → n)`` the
smallest rotation taking ``a`` to ``n``, so ``R a = n``; its reference point is at
``p = s − o n``, which puts the point ``o a`` of the template on the mid-plane. Particle rows
(STAR, CSV) carry ``p`` and ``R`` as RELION ZYZ angles, as for any particle.

Mid-plane points are drawn uniformly in area over the membranes inside the volume
(:func:`tomosim.membranes.vesicle_surface_points`, :func:`tomosim.membranes.sheet_surface_points`),
with each membrane chosen in proportion to its area. Two copies are kept apart by their
**radius about the axis** (the largest distance of an envelope voxel from the axis line through
the reference point) plus ``min_gap``: copies on one membrane, nearly parallel, then never
overlap. Inside the bilayer the protein displaces lipid: the caller removes the membrane
potential under the protein envelopes.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from tomosim.errors import TomosimError
from tomosim.membranes import (
    Sheet,
    Vesicle,
    sheet_surface_points,
    vesicle_area,
    vesicle_surface_points,
)
from tomosim.potential import Potential

__all__ = [
    "MembraneProteinSpecies",
    "MembraneProteinTarget",
    "MembraneProteins",
    "align_axis",
    "axial_radius",
    "membrane_protein_rotation",
    "place_membrane_proteins",
]


@dataclass(frozen=True)
class MembraneProteinTarget:
    """A membrane protein species as the recipe states it (its radius follows from its template).

    Attributes
    ----------
    name, class_id, count
        Species (template) name, label class, copies asked for.
    axis
        ``(x, y, z)`` transmembrane axis in the structure frame.
    offset
        Å along ``axis`` from the reference point to the bilayer mid-plane.
    """

    name: str
    class_id: int
    count: int
    axis: tuple[float, float, float]
    offset: float = 0.0


@dataclass(frozen=True)
class MembraneProteinSpecies:
    """What :func:`place_membrane_proteins` needs to know of one species.

    Attributes
    ----------
    name
        Species name.
    count
        Copies asked for.
    axis
        ``(3,)`` transmembrane axis in the structure frame ``(x, y, z)`` (normalised here).
    offset
        Å along ``axis`` from the reference point to the bilayer mid-plane.
    radius
        Å, radius of the envelope about the axis (:func:`axial_radius`).
    """

    name: str
    count: int
    axis: np.ndarray
    offset: float
    radius: float


@dataclass(frozen=True)
class MembraneProteins:
    """Placed membrane proteins.

    Attributes
    ----------
    positions
        ``(n, 3)`` reference points ``(x, y, z)`` Å.
    rotations
        ``(n, 3, 3)`` active rotations (``R a = n``).
    species
        ``(n,)`` index into the species list.
    midplane_points, normals
        ``(n, 3)`` the mid-plane point each copy sits at and the unit normal there.
    placed
        Copies placed per species.
    """

    positions: np.ndarray
    rotations: np.ndarray
    species: np.ndarray
    midplane_points: np.ndarray
    normals: np.ndarray
    placed: tuple[int, ...]


def align_axis(a: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Smallest rotation ``(3, 3)`` taking unit vector ``a`` onto unit vector ``n``."""
    a = np.asarray(a, dtype=np.float64) / np.linalg.norm(a)
    n = np.asarray(n, dtype=np.float64) / np.linalg.norm(n)
    cross = np.cross(a, n)
    sine = np.linalg.norm(cross)
    cosine = float(np.dot(a, n))
    if sine < 1e-12:
        if cosine > 0:
            return np.eye(3)
        # antiparallel: half a turn about any axis perpendicular to a
        other = np.array([1.0, 0.0, 0.0]) if abs(a[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
        perpendicular = np.cross(a, other)
        half_turn = np.pi * perpendicular / np.linalg.norm(perpendicular)
        return Rotation.from_rotvec(half_turn).as_matrix()
    return Rotation.from_rotvec(cross / sine * math.atan2(sine, cosine)).as_matrix()


def membrane_protein_rotation(axis: np.ndarray, normal: np.ndarray, spin_deg: float) -> np.ndarray:
    """``A(axis → normal) · Rot(axis, spin)``: the rotation of a copy (see the module docstring)."""
    a = np.asarray(axis, dtype=np.float64) / np.linalg.norm(axis)
    spin = Rotation.from_rotvec(a * np.deg2rad(spin_deg)).as_matrix()
    return align_axis(a, normal) @ spin


def axial_radius(template: Potential, axis: np.ndarray, *, envelope_threshold: float) -> float:
    """Largest distance (Å) of an envelope voxel centre from the axis through the reference point.

    The envelope is where the template exceeds ``envelope_threshold`` V; the reference point is
    the template voxel ``shape // 2``. Half a voxel diagonal is added for the voxel extent.
    """
    data = np.asarray(template.data)
    inside = np.argwhere(data > envelope_threshold)  # z, y, x
    if inside.size == 0:
        raise TomosimError(f"template {template.name!r} has no voxel above {envelope_threshold} V")
    a = np.asarray(axis, dtype=np.float64) / np.linalg.norm(axis)
    r = (inside[:, ::-1] - np.array(data.shape[::-1]) // 2) * template.pixel_size  # x y z Å
    along = r @ a
    across = np.sqrt(np.maximum(np.sum(r * r, axis=1) - along**2, 0.0))
    return float(across.max() + template.pixel_size * math.sqrt(3) / 2)


def _area(membrane: Vesicle | Sheet, half_extent: float) -> float:
    if isinstance(membrane, Vesicle) and membrane.deformation is not None:
        return vesicle_area(membrane)
    if isinstance(membrane, Vesicle):  # Knud Thomsen's approximation, within 1.1 %
        a, b, c = np.asarray(membrane.semi_axes, dtype=np.float64)
        p = 1.6075
        return float(4 * np.pi * (((a * b) ** p + (a * c) ** p + (b * c) ** p) / 3) ** (1 / p))
    return float((2 * half_extent) ** 2)


def place_membrane_proteins(
    species: Sequence[MembraneProteinSpecies],
    membranes: Sequence[Vesicle | Sheet],
    *,
    shape: tuple[int, int, int],
    pixel_size: float,
    rng: np.random.Generator,
    z_range: tuple[float, float] | None = None,
    min_gap: float = 10.0,
    max_attempts: int = 2000,
) -> MembraneProteins:
    """Place membrane proteins on mid-plane points of the membranes (see the module docstring).

    Parameters
    ----------
    species
        The species, placed in order of decreasing radius.
    membranes
        Vesicles and sheets.
    shape, pixel_size
        The sample volume ``(z, y, x)`` and Å per voxel; mid-plane points lie inside it.
    rng
        Random generator.
    z_range
        ``(low, high)`` Å: mid-plane points outside this z range (the ice slab) are not used.
    min_gap
        Å between the axial cylinders of two copies.
    max_attempts
        Consecutive failed candidates before a species stops (with a warning).

    Returns
    -------
    MembraneProteins

    Raises
    ------
    TomosimError
        Copies asked for but no membranes.
    """
    total = sum(s.count for s in species)
    empty = MembraneProteins(
        np.zeros((0, 3)), np.zeros((0, 3, 3)), np.zeros(0, np.int64), np.zeros((0, 3)),
        np.zeros((0, 3)), tuple(0 for _ in species),
    )
    if total == 0:
        return empty
    if not membranes:
        names = [s.name for s in species if s.count]
        raise TomosimError(f"membrane proteins {names} need membranes (vesicles or sheets)")
    extent = np.asarray(shape[::-1], dtype=np.float64) * pixel_size
    half_extent = 0.75 * float(np.linalg.norm(extent))  # sheets: cover the volume at any tilt
    areas = np.array([_area(m, half_extent) for m in membranes])
    weights = areas / areas.sum()
    z_low, z_high = (0.0, extent[2]) if z_range is None else z_range
    positions, rotations, kinds, points_out, normals_out = [], [], [], [], []
    centres: list[np.ndarray] = []
    radii: list[float] = []
    placed = [0] * len(species)
    for index in sorted(range(len(species)), key=lambda i: -species[i].radius):
        s = species[index]
        axis = np.asarray(s.axis, dtype=np.float64)
        if not np.linalg.norm(axis) > 0:
            raise TomosimError(f"membrane protein {s.name!r}: the transmembrane axis is zero")
        axis = axis / np.linalg.norm(axis)
        misses = 0
        while placed[index] < s.count and misses < max_attempts:
            block = 256
            which = rng.choice(len(membranes), size=block, p=weights)
            spins = rng.uniform(0.0, 360.0, block)
            candidates = np.zeros((block, 3))
            normals = np.zeros((block, 3))
            for m in np.unique(which):
                rows = np.flatnonzero(which == m)
                membrane = membranes[m]
                if isinstance(membrane, Vesicle):
                    pts, nrm = vesicle_surface_points(membrane, rows.size, rng)
                else:
                    pts, nrm = sheet_surface_points(membrane, rows.size, rng,
                                                    half_extent=half_extent)
                candidates[rows], normals[rows] = pts, nrm
            for j in range(block):
                point = candidates[j]
                if np.any(point < 0) or np.any(point > extent - pixel_size) or not (
                    z_low <= point[2] <= z_high
                ):
                    misses += 1
                elif centres and np.any(
                    np.linalg.norm(np.asarray(centres) - point, axis=1)
                    < np.asarray(radii) + s.radius + min_gap
                ):
                    misses += 1
                else:
                    rotation = membrane_protein_rotation(axis, normals[j], spins[j])
                    positions.append(point - s.offset * normals[j])
                    rotations.append(rotation)
                    kinds.append(index)
                    points_out.append(point)
                    normals_out.append(normals[j])
                    centres.append(point)
                    radii.append(s.radius)
                    placed[index] += 1
                    misses = 0
                if placed[index] >= s.count or misses >= max_attempts:
                    break
    short = [f"{s.name} {placed[i]} of {s.count}" for i, s in enumerate(species)
             if placed[i] < s.count]
    if short:
        warnings.warn(
            f"membrane proteins: target not reached, placed {', '.join(short)}; the membranes "
            "inside the volume are too small or crowded",
            stacklevel=2,
        )
    if not positions:
        return empty
    return MembraneProteins(
        positions=np.asarray(positions),
        rotations=np.asarray(rotations),
        species=np.asarray(kinds, np.int64),
        midplane_points=np.asarray(points_out),
        normals=np.asarray(normals_out),
        placed=tuple(placed),
    )
