"""Vesicles: ellipsoidal or free-form (deformed) lipid bilayers.

See :mod:`tomosim.membranes.bilayer` for the bilayer profile, the anti-aliasing and the label rule.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numba
import numpy as np

from tomosim.errors import TomosimError
from tomosim.membranes.bilayer import (
    HEAD_SIGMA,
    PROFILE_REACH_SIGMAS,
    LocalBox,
    membrane_profile,
)
from tomosim.orientations import random_rotations


@dataclass(frozen=True)
class Deformation:
    """Smooth radial deformation of a vesicle: a sum of Gaussian bumps on the sphere.

    In the vesicle frame, the mid-plane in the direction of the unit vector ``u`` is at radius

    ``r(u) = ρ(u) + Σ_j a_j exp(κ (u · d_j − 1))``

    with ``ρ(u) = (Σ_i u_i² / e_i²)^(−1/2)`` the radius of the ellipsoid of semi-axes ``e``. Each
    bump is a von Mises–Fisher profile of angular width ``σ ≈ 1/√κ`` (radians) around ``d_j``.
    The surface is star-shaped about the centre as long as ``r > 0``: inside and outside and the
    normal are defined everywhere.

    Attributes
    ----------
    directions
        ``(m, 3)`` unit bump directions ``d_j`` in the vesicle frame.
    amplitudes
        ``(m,)`` bump heights ``a_j``, Å (either sign).
    concentration
        ``κ`` (dimensionless), ``1 / σ²`` for an angular width ``σ`` in radians.
    """

    directions: np.ndarray
    amplitudes: np.ndarray
    concentration: float

    @property
    def bound(self) -> float:
        """Upper bound of ``|r(u) − ρ(u)|``, Å: ``Σ |a_j|``."""
        return float(np.sum(np.abs(self.amplitudes)))


def _fibonacci_directions(count: int) -> np.ndarray:
    """``(count, 3)`` unit vectors of the Fibonacci sphere lattice (near-uniform, equal area)."""
    k = np.arange(count) + 0.5
    z = 1.0 - 2.0 * k / count
    phi = np.pi * (1.0 + math.sqrt(5.0)) * k
    rho = np.sqrt(1.0 - z * z)
    return np.stack([rho * np.cos(phi), rho * np.sin(phi), z], axis=1)


def _quadrature_directions() -> np.ndarray:
    """Equal-weight directions for averages over the sphere (Fibonacci lattice, 4096 points)."""
    return _fibonacci_directions(4096)


@dataclass(frozen=True)
class Vesicle:
    """An ellipsoidal vesicle, optionally deformed; its surface is the bilayer mid-plane.

    Attributes
    ----------
    centre
        ``(3,)`` float64 ``(x, y, z)`` Å, sample coordinates.
    semi_axes
        ``(3,)`` float64 semi-axes ``(a, b, c)`` Å along the vesicle's own x, y, z axes.
    rotation
        ``(3, 3)`` float64 active rotation from the vesicle's axes to the sample: a point ``q``
        in the vesicle frame is at ``centre + rotation @ q``.
    deformation
        Smooth radial deformation of the ellipsoid (:class:`Deformation`), or None.
    """

    centre: np.ndarray
    semi_axes: np.ndarray
    rotation: np.ndarray
    deformation: Deformation | None = None

    @property
    def bounding_radius(self) -> float:
        """Largest semi-axis plus the largest outward deformation, Å."""
        extra = 0.0 if self.deformation is None else self.deformation.bound
        return float(np.max(self.semi_axes)) + extra

    @property
    def volume(self) -> float:
        """Enclosed volume, Å³: ``4/3 π abc``, or ``(1/3) ∫ r(u)³ dΩ`` when deformed."""
        if self.deformation is None:
            return float(4.0 / 3.0 * np.pi * np.prod(self.semi_axes))
        r = radius_function(self, _quadrature_directions())[0]
        return float(4.0 / 3.0 * np.pi * np.mean(r**3))




@numba.njit(cache=True)
def _ellipsoid_distance(y: np.ndarray, e: np.ndarray) -> float:
    """Signed distance (negative inside) of point ``y`` from the ellipsoid of semi-axes ``e``.

    The closest surface point is ``x_i = e_i² y_i / (t + e_i²)`` with ``t`` the root of
    ``Σ (e_i y_i / (t + e_i²))² = 1`` on ``(−min e², ∞)``, found by Newton's method from the left
    of the root (Eberly 2013, "Distance from a point to an ellipse, an ellipsoid, or a
    hyperellipsoid").
    """
    a0, a1, a2 = abs(y[0]), abs(y[1]), abs(y[2])
    e0, e1, e2 = e[0], e[1], e[2]
    inside = (a0 / e0) ** 2 + (a1 / e1) ** 2 + (a2 / e2) ** 2 < 1.0
    emin = min(e0, e1, e2)
    # keep the coordinates on the smallest axis off zero so the root stays above -emin²
    tiny = 1e-9 * emin
    if e0 == emin:
        a0 = max(a0, tiny)
    if e1 == emin:
        a1 = max(a1, tiny)
    if e2 == emin:
        a2 = max(a2, tiny)
    # each term equals 1 at t = -e_i² + e_i·a_i, so F(t) >= 1 at the largest of these
    t = max(-e0 * e0 + e0 * a0, -e1 * e1 + e1 * a1, -e2 * e2 + e2 * a2)
    # F(t) - 1 is convex and decreasing on (-emin², inf) and >= 0 at the start, so Newton's steps
    # increase t monotonically to the root.
    for _ in range(100):
        q0 = e0 * a0 / (t + e0 * e0)
        q1 = e1 * a1 / (t + e1 * e1)
        q2 = e2 * a2 / (t + e2 * e2)
        f = q0 * q0 + q1 * q1 + q2 * q2 - 1.0
        slope = -2.0 * (q0 * q0 / (t + e0 * e0) + q1 * q1 / (t + e1 * e1) + q2 * q2 / (t + e2 * e2))
        step = -f / slope
        t += step
        if step <= 1e-13 * (abs(t) + e0 * e0 + e1 * e1 + e2 * e2):
            break
    x0 = e0 * e0 * a0 / (t + e0 * e0)
    x1 = e1 * e1 * a1 / (t + e1 * e1)
    x2 = e2 * e2 * a2 / (t + e2 * e2)
    # project back onto the surface along the smallest axis when rounding left it off
    g = (x0 / e0) ** 2 + (x1 / e1) ** 2 + (x2 / e2) ** 2
    if g > 1.0 + 1e-12:
        scale = 1.0 / math.sqrt(g)
        x0 *= scale
        x1 *= scale
        x2 *= scale
    dist = math.sqrt((a0 - x0) ** 2 + (a1 - x1) ** 2 + (a2 - x2) ** 2)
    return -dist if inside else dist


@numba.njit(cache=True, parallel=True)
def _distance_box(
    corner: np.ndarray, shape: np.ndarray, pixel_size: float, centre: np.ndarray,
    rotation: np.ndarray, semi_axes: np.ndarray, reach: float,
) -> np.ndarray:
    """Signed distances (Å) of the voxel centres of a box; ``±inf`` beyond ``reach`` Å."""
    out = np.empty((shape[0], shape[1], shape[2]))
    emax = max(semi_axes[0], semi_axes[1], semi_axes[2])
    emin = min(semi_axes[0], semi_axes[1], semi_axes[2])
    sphere = emax - emin < 1e-9 * emax
    for iz in numba.prange(shape[0]):
        y = np.empty(3)
        for iy in range(shape[1]):
            for ix in range(shape[2]):
                px = (corner[2] + ix) * pixel_size - centre[0]
                py = (corner[1] + iy) * pixel_size - centre[1]
                pz = (corner[0] + iz) * pixel_size - centre[2]
                for k in range(3):  # body frame: rotation.T @ p
                    y[k] = rotation[0, k] * px + rotation[1, k] * py + rotation[2, k] * pz
                if sphere:
                    out[iz, iy, ix] = math.sqrt(y[0] ** 2 + y[1] ** 2 + y[2] ** 2) - emax
                    continue
                # the point lies on the ellipsoid scaled by f, at least |f - 1|·emin from it
                f = math.sqrt((y[0] / semi_axes[0]) ** 2 + (y[1] / semi_axes[1]) ** 2
                              + (y[2] / semi_axes[2]) ** 2)
                if (f - 1.0) * emin > reach:
                    out[iz, iy, ix] = np.inf
                elif (1.0 - f) * emin > reach:
                    out[iz, iy, ix] = -np.inf
                else:
                    out[iz, iy, ix] = _ellipsoid_distance(y, semi_axes)
    return out


def radius_function(vesicle: Vesicle, directions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mid-plane radius of a vesicle in body-frame directions, and its tangential gradient.

    Parameters
    ----------
    vesicle
        The vesicle (ellipsoidal, deformed or not).
    directions
        ``(n, 3)`` unit vectors ``u`` in the vesicle frame ``(x, y, z)``.

    Returns
    -------
    radius, gradient
        ``(n,)`` ``r(u)`` Å and ``(n, 3)`` its gradient on the unit sphere, ``(I − u uᵀ) ∇r``
        (Å per radian, tangent to the sphere), both in the vesicle frame.
    """
    u = np.asarray(directions, dtype=np.float64).reshape(-1, 3)
    inverse_sq = 1.0 / np.asarray(vesicle.semi_axes, dtype=np.float64) ** 2
    quadric = np.sum(u * u * inverse_sq, axis=1)
    radius = quadric**-0.5
    gradient = -(quadric**-1.5)[:, None] * u * inverse_sq
    deformation = vesicle.deformation
    if deformation is not None:
        dirs = np.asarray(deformation.directions, dtype=np.float64)
        kappa = float(deformation.concentration)
        bumps = np.asarray(deformation.amplitudes) * np.exp(kappa * (u @ dirs.T - 1.0))
        radius = radius + bumps.sum(axis=1)
        gradient = gradient + kappa * bumps @ dirs
    gradient = gradient - np.sum(gradient * u, axis=1, keepdims=True) * u
    return radius, gradient


def deformed_distance(vesicle: Vesicle, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Signed distance (Å, negative inside) from a vesicle's mid-plane and the outward normal.

    With ``F(q) = |q| − r(q / |q|)`` (``q`` the point in the vesicle frame), the distance is
    taken to first order as ``F / |∇F|`` and the normal as ``∇F / |∇F|``, where
    ``∇F = u − (I − u uᵀ) ∇r / |q|``. Both are exact on the surface (``F = 0``: the mid-plane
    lies exactly at ``r(u)`` along every ray); off it the distance is within ``κ d² / 2`` of the
    true one for a surface of curvature ``κ`` (< 1 Å inside a bilayer for curvature radii above
    ~500 Å), as for sheets.

    Parameters
    ----------
    vesicle
        The vesicle.
    points
        ``(n, 3)`` sample points ``(x, y, z)`` Å.

    Returns
    -------
    distance, normal
        ``(n,)`` Å and ``(n, 3)`` unit vectors in the sample frame.
    """
    rotation = np.asarray(vesicle.rotation, dtype=np.float64)
    q = (np.asarray(points, dtype=np.float64).reshape(-1, 3) - vesicle.centre) @ rotation
    length = np.linalg.norm(q, axis=1)
    safe = np.maximum(length, 1e-12)
    u = np.where(length[:, None] > 1e-12, q / safe[:, None], np.array([0.0, 0.0, 1.0]))
    radius, gradient = radius_function(vesicle, u)
    grad_f = u - gradient / safe[:, None]
    norm = np.linalg.norm(grad_f, axis=1)
    return (length - radius) / norm, (grad_f / norm[:, None]) @ rotation.T


@numba.njit(cache=True, parallel=True)
def _deformed_distance_box(
    corner: np.ndarray, shape: np.ndarray, pixel_size: float, centre: np.ndarray,
    rotation: np.ndarray, semi_axes: np.ndarray, directions: np.ndarray,
    amplitudes: np.ndarray, kappa: float, reach: float,
) -> np.ndarray:  # pragma: no cover - numba
    """:func:`deformed_distance` at the voxel centres of a box; ``±inf`` beyond ``reach`` Å."""
    out = np.empty((shape[0], shape[1], shape[2]))
    inv0 = 1.0 / semi_axes[0] ** 2
    inv1 = 1.0 / semi_axes[1] ** 2
    inv2 = 1.0 / semi_axes[2] ** 2
    for iz in numba.prange(shape[0]):
        y = np.empty(3)
        g = np.empty(3)
        for iy in range(shape[1]):
            for ix in range(shape[2]):
                px = (corner[2] + ix) * pixel_size - centre[0]
                py = (corner[1] + iy) * pixel_size - centre[1]
                pz = (corner[0] + iz) * pixel_size - centre[2]
                for k in range(3):  # body frame: rotation.T @ p
                    y[k] = rotation[0, k] * px + rotation[1, k] * py + rotation[2, k] * pz
                length = math.sqrt(y[0] ** 2 + y[1] ** 2 + y[2] ** 2)
                if length < 1e-12:
                    y[0], y[1], y[2], length_safe = 0.0, 0.0, 1.0, 1e-12
                else:
                    length_safe = length
                    for k in range(3):
                        y[k] /= length
                quadric = y[0] ** 2 * inv0 + y[1] ** 2 * inv1 + y[2] ** 2 * inv2
                radius = quadric**-0.5
                scale = -(quadric**-1.5)
                g[0] = scale * y[0] * inv0
                g[1] = scale * y[1] * inv1
                g[2] = scale * y[2] * inv2
                for j in range(amplitudes.shape[0]):
                    cosine = (directions[j, 0] * y[0] + directions[j, 1] * y[1]
                              + directions[j, 2] * y[2])
                    bump = amplitudes[j] * math.exp(kappa * (cosine - 1.0))
                    radius += bump
                    for k in range(3):
                        g[k] += kappa * bump * directions[j, k]
                along = g[0] * y[0] + g[1] * y[1] + g[2] * y[2]
                norm_sq = 0.0
                for k in range(3):
                    component = y[k] - (g[k] - along * y[k]) / length_safe
                    norm_sq += component * component
                d = (length - radius) / math.sqrt(norm_sq)
                if d > reach:
                    d = np.inf
                elif d < -reach:
                    d = -np.inf
                out[iz, iy, ix] = d
    return out




def signed_distance(
    vesicle: Vesicle, *, shape: tuple[int, int, int], pixel_size: float, reach: float
) -> LocalBox:
    """Signed distance (Å, negative inside) of voxel centres from the vesicle surface.

    Covers the voxels within ``reach`` Å of the surface (clipped to the volume); entries beyond
    ``reach`` may read ``±inf``.
    """
    corner, size = _box_around(vesicle, reach, shape=shape, pixel_size=pixel_size)
    centre = np.asarray(vesicle.centre, dtype=np.float64)
    rotation = np.asarray(vesicle.rotation, dtype=np.float64)
    semi_axes = np.asarray(vesicle.semi_axes, dtype=np.float64)
    deformation = vesicle.deformation
    if deformation is None:
        data = _distance_box(
            corner, size, float(pixel_size), centre, rotation, semi_axes, float(reach)
        )
    else:
        data = _deformed_distance_box(
            corner, size, float(pixel_size), centre, rotation, semi_axes,
            np.asarray(deformation.directions, dtype=np.float64).reshape(-1, 3),
            np.asarray(deformation.amplitudes, dtype=np.float64),
            float(deformation.concentration), float(reach),
        )
    return LocalBox(data, (int(corner[0]), int(corner[1]), int(corner[2])))


def vesicle_potential(
    vesicle: Vesicle,
    *,
    pixel_size: float,
    shape: tuple[int, int, int],
    thickness: float,
    ice_potential_v: float | None = None,
) -> LocalBox:
    """Voxel-averaged bilayer potential of one vesicle as a local box, with its label mask.

    Parameters
    ----------
    vesicle
        The vesicle (surface = bilayer mid-plane).
    pixel_size
        Å per voxel.
    shape
        ``(z, y, x)`` shape of the sample volume; the box is clipped to it.
    thickness
        Head-to-head distance, Å (``VesiclesConfig.thickness``).
    ice_potential_v
        Ice potential the excess is taken over, V; None = :data:`tomosim.potential.ICE_POTENTIAL_V`
        (4.48 V); 0 gives the absolute potential.

    Returns
    -------
    LocalBox
        ``data`` float32 volts (excess over ice) from :func:`membrane_profile` with the
        voxel-average widening; ``mask`` the membrane label, ``|d| ≤ thickness / 2`` at the voxel
        centre; ``corner`` its place in the volume.
    """
    if not pixel_size > 0:
        raise TomosimError(f"pixel_size must be > 0 Å, got {pixel_size}")
    widest = math.sqrt(HEAD_SIGMA**2 + pixel_size**2 / 12.0)
    reach = thickness / 2.0 + PROFILE_REACH_SIGMAS * widest + pixel_size
    distance = signed_distance(vesicle, shape=shape, pixel_size=pixel_size, reach=reach)
    d = distance.data
    finite = np.isfinite(d)
    potential = np.zeros(d.shape, dtype=np.float32)
    potential[finite] = membrane_profile(
        d[finite], thickness=thickness, pixel_size=pixel_size, ice_potential_v=ice_potential_v
    )
    mask = np.abs(d) <= thickness / 2.0
    return LocalBox(potential, distance.corner, mask)


def membrane_mask(
    vesicle: Vesicle, *, pixel_size: float, shape: tuple[int, int, int], thickness: float
) -> LocalBox:
    """Membrane label of one vesicle: voxel centres with ``|d| ≤ thickness / 2`` (bool box)."""
    distance = signed_distance(vesicle, shape=shape, pixel_size=pixel_size, reach=thickness)
    return LocalBox(np.abs(distance.data) <= thickness / 2.0, distance.corner)


def inside_mask(
    vesicles: list[Vesicle], *, shape: tuple[int, int, int], pixel_size: float, margin: float = 0.0
) -> np.ndarray:
    """``(z, y, x)`` bool: voxel centres inside any vesicle, deeper than ``margin`` Å.

    ``margin = 0`` is the mid-plane surface (the volume approaches ``4/3 π abc``);
    ``margin = thickness / 2`` is the lumen inside the inner leaflet's head groups, where proteins
    placed "inside" may go (add the protein radius to keep whole proteins inside).
    """
    mask = np.zeros(shape, dtype=bool)
    for vesicle in vesicles:
        reach = max(margin, 0.0) + pixel_size
        distance = signed_distance(vesicle, shape=shape, pixel_size=pixel_size, reach=reach)
        mask[distance.slices] |= distance.data < -margin
    return mask


def points_inside(
    vesicles: list[Vesicle], points: np.ndarray, *, margin: float = 0.0
) -> np.ndarray:
    """``(n,)`` bool: points ``(x, y, z)`` Å inside any vesicle, deeper than ``margin`` Å."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    out = np.zeros(pts.shape[0], dtype=bool)
    for vesicle in vesicles:
        if vesicle.deformation is not None:
            out |= deformed_distance(vesicle, pts)[0] < -margin
            continue
        body = (pts - vesicle.centre) @ np.asarray(vesicle.rotation)
        semi = np.asarray(vesicle.semi_axes, dtype=np.float64)
        candidates = np.flatnonzero(~out & (np.sum((body / semi) ** 2, axis=1) < 1.0))
        for i in candidates:
            out[i] = _ellipsoid_distance(body[i], semi) < -margin
    return out


@dataclass(frozen=True)
class VesiclePopulation:
    """How many vesicles to draw, and their size and shape.

    Attributes
    ----------
    count
        Number of vesicles.
    radius
        ``(min, max)`` of the largest semi-axis, Å.
    max_aspect
        Largest ratio of the largest to a smaller semi-axis (1: spheres).
    thickness
        Bilayer thickness, Å.
    deformation
        Largest radial displacement of the deformed surface from the ellipsoid, Å; 0 keeps
        plain ellipsoids (see :class:`Deformation`).
    deformation_bumps
        Number of Gaussian bumps of a deformed vesicle.
    deformation_width
        Angular width ``σ`` of a bump, degrees (larger is smoother).
    """

    count: int
    radius: tuple[float, float]
    max_aspect: float
    thickness: float
    deformation: float = 0.0
    deformation_bumps: int = 6
    deformation_width: float = 40.0


def draw_deformation(
    amplitude: float, bumps: int, width_deg: float, rng: np.random.Generator
) -> Deformation:
    """A random :class:`Deformation` whose largest radial displacement is ``amplitude`` Å.

    Bump directions are uniform on the sphere and their relative heights uniform in
    ``[−1, 1]``; the heights are then scaled so that the largest ``|Σ_j a_j exp(κ(u·d_j − 1))|``
    over a 4096-direction Fibonacci lattice equals ``amplitude`` (the lattice spacing, ~3.2°, is
    far below the narrowest allowed bump, so this is the maximum to well under 1 %).
    ``κ = 1 / σ²`` with ``σ = width_deg`` in radians.
    """
    if not amplitude > 0 or bumps < 1 or not 10.0 <= width_deg <= 180.0:
        raise TomosimError(
            f"bad vesicle deformation: amplitude {amplitude} Å, bumps {bumps}, width {width_deg}°"
        )
    directions = rng.standard_normal((bumps, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    heights = rng.uniform(-1.0, 1.0, bumps)
    kappa = 1.0 / math.radians(width_deg) ** 2
    lattice = _quadrature_directions()
    field = np.exp(kappa * (lattice @ directions.T - 1.0)) @ heights
    peak = float(np.max(np.abs(field)))
    if not peak > 0:  # pragma: no cover - measure-zero draw
        peak = 1.0
    return Deformation(directions, heights * (amplitude / peak), kappa)


def check_deformation(population: VesiclePopulation) -> None:
    """Refuse a deformation that could bring the inner leaflet's head groups to the centre.

    The smallest radius of an undeformed vesicle is ``radius_min / max_aspect``; the deformation
    may lower it by up to ``deformation`` Å, and the inner head groups sit ``thickness / 2``
    further in, so ``deformation < radius_min / max_aspect − thickness / 2`` keeps every radius
    of the bilayer positive.
    """
    if population.deformation < 0:
        raise TomosimError(f"vesicle deformation must be >= 0 Å, got {population.deformation}")
    smallest = population.radius[0] / population.max_aspect - population.thickness / 2.0
    if population.deformation > 0 and not population.deformation < smallest:
        raise TomosimError(
            f"vesicle deformation {population.deformation} Å must be below the smallest inner "
            f"radius, radius_min / max_aspect - thickness / 2 = {smallest:.4g} Å (the radius "
            "would reach zero)"
        )


def place_vesicles(
    population: VesiclePopulation,
    *,
    shape: tuple[int, int, int],
    pixel_size: float,
    rng: np.random.Generator,
    min_gap: float = 20.0,
    max_attempts: int = 1000,
) -> list[Vesicle]:
    """Draw ``population.count`` non-overlapping vesicles in the volume.

    The largest semi-axis is uniform in ``population.radius``; the other two are it divided by
    factors uniform in ``[1, max_aspect]``; the orientation is uniform on SO(3). Vesicles are
    placed largest first at uniformly random centres inside the volume (voxel-centre extent) and
    may be cut by the volume faces, as in a lamella. Two vesicles are kept apart by their
    bounding spheres: centre distance ≥ sum of (largest semi-axis + thickness/2) + ``min_gap``.
    A vesicle without a free place after ``max_attempts`` is skipped with a warning saying how
    many were placed.

    Parameters
    ----------
    population
        Count, radius range, aspect ratio and bilayer thickness.
    shape
        ``(z, y, x)`` volume shape, voxels.
    pixel_size
        Å per voxel.
    rng
        Random generator.
    min_gap
        Clearance between bilayer outer surfaces, Å.
    max_attempts
        Centre draws per vesicle.

    Returns
    -------
    list of Vesicle
        In placement order (largest first).
    """
    if population.count == 0:
        return []
    if population.radius[0] > population.radius[1]:
        raise TomosimError(f"vesicle radius (min, max) has min > max: {population.radius}")
    if population.radius[0] <= population.thickness / 2.0:
        raise TomosimError(
            f"vesicle min radius {population.radius[0]} Å must exceed half the bilayer thickness "
            f"{population.thickness / 2.0} Å"
        )
    check_deformation(population)
    n = population.count
    largest = np.sort(rng.uniform(population.radius[0], population.radius[1], n))[::-1]
    ratios = rng.uniform(1.0, population.max_aspect, (n, 2))
    rotations = random_rotations(n, rng)
    extent = (np.asarray(shape[::-1], dtype=np.float64) - 1.0) * pixel_size
    half_thickness = population.thickness / 2.0
    placed: list[Vesicle] = []
    deformed = population.deformation > 0
    for i in range(n):
        semi_axes = np.array([largest[i], largest[i] / ratios[i, 0], largest[i] / ratios[i, 1]])
        reach = largest[i] + population.deformation + half_thickness
        centres = rng.uniform(0.0, 1.0, (max_attempts, 3)) * extent
        ok = np.ones(max_attempts, dtype=bool)
        for other in placed:
            limit = reach + other.bounding_radius + half_thickness + min_gap
            ok &= np.linalg.norm(centres - other.centre, axis=1) >= limit
        free = np.flatnonzero(ok)
        if free.size == 0:
            continue
        placed.append(Vesicle(centres[free[0]], semi_axes, rotations[i]))
    if deformed:  # drawn after the placements, so undeformed populations draw exactly as before
        placed = [
            Vesicle(
                v.centre, v.semi_axes, v.rotation,
                draw_deformation(population.deformation, population.deformation_bumps,
                                 population.deformation_width, rng),
            )
            for v in placed
        ]
    if len(placed) < n:
        warnings.warn(
            f"vesicles: placed {len(placed)} of {n} (no free place in {max_attempts} attempts)",
            stacklevel=2,
        )
    return placed


# --------------------------------------------------------------------------------------------
# Sheets: flat or gently curved bilayers crossing the volume (ER, nuclear envelope)
# --------------------------------------------------------------------------------------------




def vesicle_surface_points(
    vesicle: Vesicle, count: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` points uniform in area on a vesicle's mid-plane, with outward unit normals.

    Directions uniform on the unit sphere are mapped to the ellipsoid ``q = e ⊙ u`` and kept with
    probability proportional to the area element: for the map from the sphere,
    ``dA ∝ abc · |u / e|``, so acceptance ``|u / e| / max(1 / e)`` gives uniform area.

    Returns
    -------
    points, normals
        ``(count, 3)`` each, sample frame ``(x, y, z)`` Å and unit vectors.
    """
    if vesicle.deformation is not None:
        return _deformed_surface_points(vesicle, count, rng)
    e = np.asarray(vesicle.semi_axes, dtype=np.float64)
    out_q: list[np.ndarray] = []
    have = 0
    while have < count:
        u = rng.standard_normal((max(64, 2 * (count - have)), 3))
        u /= np.linalg.norm(u, axis=1, keepdims=True)
        weight = np.linalg.norm(u / e, axis=1) / np.max(1 / e)
        keep = u[rng.random(u.shape[0]) < weight]
        out_q.append(keep * e)
        have += keep.shape[0]
    q = np.concatenate(out_q)[:count]
    normal_body = q / e**2
    normal_body /= np.linalg.norm(normal_body, axis=1, keepdims=True)
    rotation = np.asarray(vesicle.rotation)
    return vesicle.centre + q @ rotation.T, normal_body @ rotation.T


def _area_elements(vesicle: Vesicle, u: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Radius, body-frame outward normal and area per solid angle ``dA/dΩ`` in directions ``u``.

    On the surface ``q = r(u) u`` the normal is ``∇F ∝ u − ∇r / r`` and
    ``dA/dΩ = r² |u − ∇r / r| = r √(r² + |∇r|²)``.
    """
    radius, gradient = radius_function(vesicle, u)
    normal = u - gradient / radius[:, None]
    stretch = np.linalg.norm(normal, axis=1)
    return radius, normal / stretch[:, None], radius**2 * stretch


def vesicle_area(vesicle: Vesicle) -> float:
    """Mid-plane area of a deformed vesicle, Å² (``∫ dA/dΩ dΩ`` on a 4096-point lattice)."""
    return float(4.0 * np.pi * np.mean(_area_elements(vesicle, _quadrature_directions())[2]))


def _deformed_surface_points(
    vesicle: Vesicle, count: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`vesicle_surface_points` for a deformed vesicle (rejection on ``dA/dΩ``)."""
    bound = 1.25 * float(np.max(_area_elements(vesicle, _quadrature_directions())[2]))
    points: list[np.ndarray] = []
    normals: list[np.ndarray] = []
    have = 0
    while have < count:
        u = rng.standard_normal((max(64, 2 * (count - have)), 3))
        u /= np.linalg.norm(u, axis=1, keepdims=True)
        radius, normal, element = _area_elements(vesicle, u)
        keep = rng.random(u.shape[0]) * bound < element
        points.append(u[keep] * radius[keep, None])
        normals.append(normal[keep])
        have += int(keep.sum())
    rotation = np.asarray(vesicle.rotation)
    q = np.concatenate(points)[:count]
    n = np.concatenate(normals)[:count]
    return vesicle.centre + q @ rotation.T, n @ rotation.T


def _box_around(
    vesicle: Vesicle, reach: float, *, shape: tuple[int, int, int], pixel_size: float
) -> tuple[np.ndarray, np.ndarray]:
    """Corner ``(z0, y0, x0)`` and size of the voxel box within ``reach`` Å of the surface."""
    extent = vesicle.bounding_radius + reach
    centre_zyx = np.asarray(vesicle.centre, dtype=np.float64)[::-1]
    low = np.floor((centre_zyx - extent) / pixel_size).astype(np.int64)
    high = np.ceil((centre_zyx + extent) / pixel_size).astype(np.int64) + 1
    low = np.clip(low, 0, np.asarray(shape))
    high = np.clip(high, 0, np.asarray(shape))
    return low, np.maximum(high - low, 0)


