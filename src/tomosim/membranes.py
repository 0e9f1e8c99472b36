"""Membranes: lipid vesicles as spherical or ellipsoidal bilayers with a radial potential profile.

A vesicle is an ellipsoid (centre, semi-axes, rotation), optionally deformed into a free-form,
star-shaped surface by a smooth random radius function on the sphere (:class:`Deformation`),
whose surface is the *mid-plane* of the bilayer. Every voxel gets the potential of the bilayer
profile at its signed distance ``d`` from that surface (``d < 0`` inside), in volts, as the excess
over vitreous ice (CONVENTIONS.md). For a deformed vesicle ``d`` is the first-order distance
``F / |∇F|`` of the level function ``F(q) = |q| − r(q / |q|)`` (:func:`deformed_distance`),
exact on the mid-plane, and the membrane-protein normal is ``∇F / |∇F|``.

Positions are ``(x, y, z)`` in Å in sample coordinates (from the centre of voxel ``[0, 0, 0]``);
arrays are ``(z, y, x)``.

The bilayer profile
-------------------
The profile is built as in the scattering-density-profile models of X-ray and neutron
diffraction on fluid phosphatidylcholine bilayers (Nagle & Wiener 1988, *BBA* 942, 1; Nagle et al.
1996, *Biophys. J.* 70, 1419; Nagle & Tristram-Nagle 2000, *BBA* 1469, 159; Kučerka et al. 2008,
*Biophys. J.* 95, 2356): each component group occupies a volume fraction ``P_g(d)`` of the slab,
water fills the rest, and the potential excess over ice is ``V(d) = Σ_g P_g(d) (V_g − V_ice)``.

- **Head groups** (phosphocholine + glycerol + carbonyls, C10H18NO8P, 319 Å³ per lipid, Nagle &
  Wiener 1988): one Gaussian per leaflet centred at ``±thickness/2`` (the head-to-head distance
  ``D_HH`` ≈ 36–40 Å: 38 Å for fluid DPPC, Nagle et al. 1996), width σ = 3.0 Å, integral
  ``V_head / A`` (the head-group volume per area).
- **Hydrocarbon core** (CH2 and CH3 of two C16 chains, 28 CH2 + 2 CH3 with
  ``V_CH3 = 2 V_CH2``, ``V_CH2`` = 27.7 Å³): a slab of half-thickness ``D_C = thickness/2 − 4.8 Å``
  (``D_HH/2 − D_C`` = 19.0 − 14.2 Å for DPPC, Nagle et al. 1996) with error-function edges of
  σ = 2.4 Å, the terminal methyls a Gaussian trough of σ = 2.9 Å at the mid-plane (Kučerka et al.
  2008). The area per lipid follows from volume conservation, ``A = V_chains / D_C``
  (58 Å² at the default 40 Å thickness; 64 Å² fluid DPPC, 48 Å² gel).
- **Mean inner potential of each group** ``V_g = 47.878 V·Å² · Σ f_e(0) / volume``: the same
  neutral-atom electron scattering factors (Peng et al. 1996, International Tables C 4.3.2.2,
  ``f_e(0) = Σ a_i`` from ``gemmi``) as the atomic potentials of proteins, and the excess taken
  over the same ice potential as proteins (:data:`tomosim.potential.ICE_POTENTIAL_V`, 4.48 V), so
  membranes and proteins have consistent contrast. Head groups 8.73 V (+4.25 V over ice), CH2
  6.16 V (+1.68 V), CH3 3.54 V (−0.94 V).

The result at the default 40 Å thickness: ``V(d)`` is 0 in the ice, peaks at ≈ +3.1 V over ice at
the head groups (``|d| = thickness/2``), holds ≈ +1.6 V through the core and dips to ≈ +0.3 V at
the methyl trough — head groups denser than ice, the core less dense than protein (≈ +3.5 V in
the same model: an average residue, C4.9 H7.8 N1.35 O1.5, in 135 Å³). The profile integrates to
≈ 88 V·Å across the bilayer. Because of the methyl trough the potential drops below a typical
label threshold (0.5 V) at the mid-plane for pixels finer than ~8 Å: label membranes with the
``|d| ≤ thickness/2`` mask, not with a potential threshold. The membrane dipole potential
(0.26–0.51 V inside the core; Wang, Bose & Sigworth 2006, *PNAS* 103, 18528) is not included.

**Anti-aliasing.** Voxels hold the mean of the potential over their cube (CONVENTIONS.md). For a
locally flat bilayer the distance ``d`` of a point uniform in a voxel has variance
``pixel_size² / 12`` in every direction, so the voxel mean is the profile convolved with that
spread. It is applied analytically by widening every Gaussian and error function:
``σ² → σ² + pixel_size² / 12``. This keeps the integral and the spread exactly; against
8 × 8 × 8 point supersampling of an ellipsoidal vesicle the voxel values differ by at most
0.02 V at 6 Å pixels and 0.09 V at 10 Å (peak ≈ 2.4–2.7 V).

**Labels.** The membrane label covers the bilayer: voxels whose centre has ``|d| ≤ thickness/2``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import gemmi
import numba
import numpy as np
from scipy.spatial.transform import Rotation
from scipy.special import erf

from tomosim.errors import TomosimError
from tomosim.orientations import random_rotations
from tomosim.potential import ICE_POTENTIAL_V

POTENTIAL_CONSTANT = 47.878
"""``h² / (2π m₀ e)`` in V·Å² (CONVENTIONS.md): potential integral = constant · f_e(0)."""

HEAD_GROUP_FORMULA = {"C": 10, "H": 18, "N": 1, "O": 8, "P": 1}
"""Phosphatidylcholine head group with glycerol and carbonyls (Nagle & Wiener 1988)."""
HEAD_GROUP_VOLUME = 319.0
"""Å³ per lipid (Nagle & Wiener 1988; Nagle & Tristram-Nagle 2000)."""
METHYLENE_VOLUME = 27.7
"""Å³ per CH2 in a fluid bilayer near room temperature; CH3 is twice this (Nagle & Wiener 1988)."""
CHAIN_METHYLENES = 28
CHAIN_METHYLS = 2
HEAD_SIGMA = 3.0
"""Å, width of the head-group Gaussian."""
CORE_EDGE_SIGMA = 2.4
"""Å, width of the hydrocarbon edges (Kučerka et al. 2008)."""
METHYL_SIGMA = 2.9
"""Å, width of the methyl trough (Kučerka et al. 2008)."""
HEAD_TO_CORE = 4.8
"""Å from a head-group peak to the hydrocarbon edge, ``D_HH/2 − D_C`` (DPPC, Nagle et al. 1996)."""
PROFILE_REACH_SIGMAS = 5.0
"""The profile is evaluated up to this many (widened) head-group widths beyond ``thickness/2``."""


def _scattering_sum(formula: dict[str, int]) -> float:
    """``Σ f_e(0)`` in Å of a formula, Peng et al. (1996) coefficients via gemmi."""
    return float(
        sum(count * sum(gemmi.Element(symbol).c4322.a) for symbol, count in formula.items())
    )


def mean_inner_potential(formula: dict[str, int], volume: float) -> float:
    """Mean potential of atoms filling ``volume`` Å³: ``47.878 · Σ f_e(0) / volume``, volts."""
    return POTENTIAL_CONSTANT * _scattering_sum(formula) / volume


HEAD_POTENTIAL_V = mean_inner_potential(HEAD_GROUP_FORMULA, HEAD_GROUP_VOLUME)
METHYLENE_POTENTIAL_V = mean_inner_potential({"C": 1, "H": 2}, METHYLENE_VOLUME)
METHYL_POTENTIAL_V = mean_inner_potential({"C": 1, "H": 3}, 2.0 * METHYLENE_VOLUME)


def membrane_profile(
    distance: np.ndarray,
    *,
    thickness: float,
    pixel_size: float = 0.0,
    ice_potential_v: float | None = None,
) -> np.ndarray:
    """Potential of a lipid bilayer (excess over ice, V) at signed distance from its mid-plane.

    Parameters
    ----------
    distance
        Signed distance from the bilayer mid-plane, Å (any shape).
    thickness
        Head-to-head distance ``D_HH``, Å: the head-group peaks sit at ``±thickness/2``.
    pixel_size
        Voxel size, Å, for the voxel average (every width widened by ``pixel_size² / 12``);
        0 gives the point profile.
    ice_potential_v
        Mean potential of the ice the excess is taken over, V; ``None`` = the project default
        :data:`tomosim.potential.ICE_POTENTIAL_V` (4.48 V), as for proteins; 0 gives the
        absolute potential (``solvent="none"``).

    Returns
    -------
    numpy.ndarray
        Same shape as ``distance``, float64, volts.
    """
    if not thickness > 2.0 * HEAD_TO_CORE:
        raise TomosimError(f"membrane thickness must be > {2 * HEAD_TO_CORE} Å, got {thickness}")
    ice = ICE_POTENTIAL_V if ice_potential_v is None else float(ice_potential_v)
    d = np.abs(np.asarray(distance, dtype=np.float64))
    blur = pixel_size**2 / 12.0
    half = thickness / 2.0
    core = half - HEAD_TO_CORE
    area = (CHAIN_METHYLENES + 2 * CHAIN_METHYLS) * METHYLENE_VOLUME / core  # Å² per lipid

    s_head = math.sqrt(HEAD_SIGMA**2 + blur)
    s_edge = math.sqrt(CORE_EDGE_SIGMA**2 + blur)
    s_methyl = math.sqrt(METHYL_SIGMA**2 + blur)
    head = (HEAD_GROUP_VOLUME / area) / (s_head * math.sqrt(2 * math.pi)) * (
        np.exp(-0.5 * ((d - half) / s_head) ** 2) + np.exp(-0.5 * ((d + half) / s_head) ** 2)
    )
    edge = math.sqrt(2.0) * s_edge
    chains = 0.5 * (erf((d + core) / edge) - erf((d - core) / edge))
    methyl_integral = 2 * CHAIN_METHYLS * 2.0 * METHYLENE_VOLUME / area  # both leaflets, Å
    methyl = (
        methyl_integral / (s_methyl * math.sqrt(2 * math.pi)) * np.exp(-0.5 * (d / s_methyl) ** 2)
    )
    methyl = np.minimum(methyl, chains)
    return (
        head * (HEAD_POTENTIAL_V - ice)
        + (chains - methyl) * (METHYLENE_POTENTIAL_V - ice)
        + methyl * (METHYL_POTENTIAL_V - ice)
    )


# --------------------------------------------------------------------------------------------
# Vesicles
# --------------------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class LocalBox:
    """A sub-volume of the sample: ``volume[z0:z0+nz, y0:y0+ny, x0:x0+nx]``.

    Attributes
    ----------
    data
        ``(nz, ny, nx)`` array (float32 volts for potentials).
    corner
        ``(z0, y0, x0)`` index of ``data[0, 0, 0]`` in the sample volume.
    mask
        ``(nz, ny, nx)`` bool label mask of the object, or None.
    """

    data: np.ndarray
    corner: tuple[int, int, int]
    mask: np.ndarray | None = None

    @property
    def slices(self) -> tuple[slice, slice, slice]:
        """Index of the box in the sample volume."""
        (z0, y0, x0), (nz, ny, nx) = self.corner, self.data.shape
        return slice(z0, z0 + nz), slice(y0, y0 + ny), slice(x0, x0 + nx)


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


@dataclass(frozen=True)
class Sheet:
    """A bilayer sheet; its mid-plane is the height field ``z' = h(x', y')`` in its own frame.

    ``h(x', y') = Σ_j A_j cos(2π (k_j · (x', y')) + φ_j)``: a sum of plane waves (amplitudes
    ``A_j`` Å, wave vectors ``k_j`` 1/Å, phases ``φ_j``); no waves is a flat sheet. The frame is
    placed by ``centre`` and ``rotation``: a point ``q`` of the sheet frame lies at
    ``centre + rotation @ q`` in the sample.

    The signed distance of a point ``q`` (sheet frame) from the mid-plane is taken as
    ``(q_z − h) / √(1 + |∇h|²)`` (positive on the +z' side), exact for a flat sheet and within
    ``κ d² / 2`` for a sheet of curvature ``κ`` at distance ``d`` (< 1 Å within a bilayer for
    curvature radii above ~1000 Å).

    Attributes
    ----------
    centre
        ``(3,)`` ``(x, y, z)`` Å.
    rotation
        ``(3, 3)`` active rotation from the sheet frame to the sample.
    amplitudes, phases
        ``(m,)`` Å and radians.
    wave_vectors
        ``(m, 2)`` 1/Å, in the sheet's x', y' plane.
    """

    centre: np.ndarray
    rotation: np.ndarray
    amplitudes: np.ndarray
    wave_vectors: np.ndarray
    phases: np.ndarray

    def height(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return ``h``, ``∂h/∂x'`` and ``∂h/∂y'`` at sheet-frame points (Å, broadcasting)."""
        h = np.zeros(np.broadcast(x, y).shape)
        hx = np.zeros_like(h)
        hy = np.zeros_like(h)
        for a, (kx, ky), phi in zip(self.amplitudes, self.wave_vectors, self.phases, strict=True):
            arg = 2 * np.pi * (kx * x + ky * y) + phi
            h = h + a * np.cos(arg)
            hx = hx - a * 2 * np.pi * kx * np.sin(arg)
            hy = hy - a * 2 * np.pi * ky * np.sin(arg)
        return h, hx, hy

    def signed_distance(self, points: np.ndarray) -> np.ndarray:
        """Signed distance (Å) of sample points ``(..., 3)`` ``(x, y, z)`` from the mid-plane."""
        q = (np.asarray(points, dtype=np.float64) - self.centre) @ self.rotation
        h, hx, hy = self.height(q[..., 0], q[..., 1])
        return (q[..., 2] - h) / np.sqrt(1 + hx**2 + hy**2)

    def normal(self, points: np.ndarray) -> np.ndarray:
        """Return unit normals ``(..., 3)`` (sample frame, towards +z') at the points' x', y'."""
        q = (np.asarray(points, dtype=np.float64) - self.centre) @ self.rotation
        _, hx, hy = self.height(q[..., 0], q[..., 1])
        n = np.stack([-hx, -hy, np.ones_like(hx)], axis=-1)
        n /= np.linalg.norm(n, axis=-1, keepdims=True)
        return n @ self.rotation.T


@numba.njit(cache=True, parallel=True)
def _sheet_distance_grid(
    shape, pixel_size, centre, rotation, amplitudes, wave_vectors, phases, band
):  # pragma: no cover - numba
    """:meth:`Sheet.signed_distance` at every voxel centre, float32 ``(z, y, x)``.

    Voxels farther than ``band`` Å from the sheet's frame plane plus its largest height get
    ``±inf`` without evaluating the waves.
    """
    bound = band
    for j in range(amplitudes.shape[0]):
        bound += abs(amplitudes[j])
    out = np.empty((shape[0], shape[1], shape[2]), np.float32)
    two_pi = 2.0 * math.pi
    for iz in numba.prange(shape[0]):
        pz = iz * pixel_size - centre[2]
        for iy in range(shape[1]):
            py = iy * pixel_size - centre[1]
            for ix in range(shape[2]):
                px = ix * pixel_size - centre[0]
                qx = rotation[0, 0] * px + rotation[1, 0] * py + rotation[2, 0] * pz
                qy = rotation[0, 1] * px + rotation[1, 1] * py + rotation[2, 1] * pz
                qz = rotation[0, 2] * px + rotation[1, 2] * py + rotation[2, 2] * pz
                if abs(qz) > bound:
                    out[iz, iy, ix] = math.inf if qz > 0 else -math.inf
                    continue
                h = 0.0
                hx = 0.0
                hy = 0.0
                for j in range(amplitudes.shape[0]):
                    arg = two_pi * (wave_vectors[j, 0] * qx + wave_vectors[j, 1] * qy) + phases[j]
                    h += amplitudes[j] * math.cos(arg)
                    s = amplitudes[j] * two_pi * math.sin(arg)
                    hx -= s * wave_vectors[j, 0]
                    hy -= s * wave_vectors[j, 1]
                out[iz, iy, ix] = (qz - h) / math.sqrt(1.0 + hx * hx + hy * hy)
    return out


def sheet_potential(
    sheet: Sheet,
    *,
    pixel_size: float,
    shape: tuple[int, int, int],
    thickness: float,
    ice_potential_v: float | None = None,
) -> LocalBox:
    """Voxel-averaged bilayer potential of a sheet on the z range it reaches, with its label mask.

    As :func:`vesicle_potential`: :func:`membrane_profile` of the signed distance at each voxel
    centre (``data`` float32 V, excess over ice), ``mask`` = ``|d| ≤ thickness / 2``. The box
    spans the whole x and y of the volume and the z planes within reach of the mid-plane.
    """
    if not pixel_size > 0:
        raise TomosimError(f"pixel_size must be > 0 Å, got {pixel_size}")
    widest = math.sqrt(HEAD_SIGMA**2 + pixel_size**2 / 12.0)
    reach = thickness / 2.0 + PROFILE_REACH_SIGMAS * widest + pixel_size
    nz, ny, nx = shape
    distance = _sheet_distance_grid(
        np.array(shape, np.int64), float(pixel_size), np.asarray(sheet.centre, np.float64),
        np.asarray(sheet.rotation, np.float64), np.asarray(sheet.amplitudes, np.float64),
        np.asarray(sheet.wave_vectors, np.float64).reshape(-1, 2),
        np.asarray(sheet.phases, np.float64), float(reach),
    )
    near = np.abs(distance) <= reach
    z_any = np.flatnonzero(near.any(axis=(1, 2)))
    if z_any.size == 0:
        return LocalBox(np.zeros((0, ny, nx), np.float32), (0, 0, 0), np.zeros((0, ny, nx), bool))
    z0, z1 = int(z_any[0]), int(z_any[-1]) + 1
    d = distance[z0:z1]
    potential = np.zeros(d.shape, dtype=np.float32)
    inside = near[z0:z1]
    potential[inside] = membrane_profile(
        d[inside], thickness=thickness, pixel_size=pixel_size, ice_potential_v=ice_potential_v
    )
    return LocalBox(potential, (z0, 0, 0), np.abs(d) <= thickness / 2.0)


@dataclass(frozen=True)
class SheetPopulation:
    """How many membrane sheets to draw and how they undulate (see :func:`place_sheets`)."""

    count: int = 0
    amplitude: float = 150.0
    wavelength: float = 4000.0
    max_tilt: float = 20.0


def place_sheets(
    count: int,
    *,
    shape: tuple[int, int, int],
    pixel_size: float,
    rng: np.random.Generator,
    amplitude: float,
    wavelength: float,
    max_tilt: float,
    waves: int = 3,
) -> list[Sheet]:
    """Draw ``count`` sheets crossing the volume, stacked along z without crossing each other.

    Each sheet's frame is tilted from the sample's xy plane by an angle uniform in
    ``[0, max_tilt]`` degrees (uniform azimuth), its centre is at the volume's x, y centre and at
    evenly spaced z levels (jittered by a quarter of the spacing), and its height field is
    ``waves`` plane waves of random direction and phase, each of amplitude ``amplitude / waves``
    and wavelength uniform in ``[wavelength / 2, wavelength]`` Å.
    """
    if count < 0 or amplitude < 0 or not wavelength > 0 or not 0 <= max_tilt < 90:
        raise TomosimError(
            f"bad sheets: count {count}, amplitude {amplitude}, wavelength {wavelength}, "
            f"max_tilt {max_tilt}"
        )
    extent = np.asarray(shape[::-1], dtype=np.float64) * pixel_size
    spacing = extent[2] / max(count, 1)
    sheets = []
    for i in range(count):
        tilt = np.deg2rad(rng.uniform(0.0, max_tilt))
        azimuth = rng.uniform(0.0, 2 * np.pi)
        axis = np.array([-np.sin(azimuth), np.cos(azimuth), 0.0])
        rotation = Rotation.from_rotvec(axis * tilt).as_matrix()
        z = (i + 0.5) * spacing + rng.uniform(-0.25, 0.25) * spacing
        centre = np.array([extent[0] / 2, extent[1] / 2, z])
        directions = rng.uniform(0.0, 2 * np.pi, waves)
        lengths = rng.uniform(wavelength / 2, wavelength, waves)
        wave_vectors = np.stack([np.cos(directions), np.sin(directions)], axis=1) / lengths[:, None]
        amplitudes = np.full(waves, amplitude / max(waves, 1))
        phases = rng.uniform(0.0, 2 * np.pi, waves)
        sheets.append(Sheet(centre, rotation, amplitudes, wave_vectors, phases))
    return sheets


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


def sheet_surface_points(
    sheet: Sheet, count: int, rng: np.random.Generator, *, half_extent: float
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` points on a sheet's mid-plane over ``|x'|, |y'| ≤ half_extent``, with normals.

    Uniform in the frame's x', y' and kept with probability ``√(1 + |∇h|²) / max`` (uniform in
    area). Normals point towards +z' of the sheet frame.
    """
    points: list[np.ndarray] = []
    have = 0
    slope_max = 2 * np.pi * float(np.sum(np.abs(sheet.amplitudes)
                                         * np.linalg.norm(sheet.wave_vectors, axis=1)))
    bound = math.sqrt(1 + slope_max**2)
    while have < count:
        m = max(64, 2 * (count - have))
        x = rng.uniform(-half_extent, half_extent, m)
        y = rng.uniform(-half_extent, half_extent, m)
        h, hx, hy = sheet.height(x, y)
        keep = rng.random(m) < np.sqrt(1 + hx**2 + hy**2) / bound
        points.append(np.stack([x[keep], y[keep], h[keep]], axis=1))
        have += int(keep.sum())
    q = np.concatenate(points)[:count]
    sample = sheet.centre + q @ sheet.rotation.T
    return sample, sheet.normal(sample)


def vesicles_clear_of_sheets(
    vesicles: list[Vesicle], sheets: list[Sheet], *, thickness: float, min_gap: float = 20.0
) -> list[Vesicle]:
    """Keep the vesicles whose bilayer stays ``min_gap`` Å clear of every sheet's bilayer.

    Tested on the bounding sphere: ``|d(centre)| ≥ largest semi-axis + thickness + min_gap``
    (``d`` the sheet's signed distance).
    """
    keep = []
    for vesicle in vesicles:
        clearance = vesicle.bounding_radius + thickness + min_gap
        if all(abs(float(s.signed_distance(vesicle.centre))) >= clearance for s in sheets):
            keep.append(vesicle)
    return keep
