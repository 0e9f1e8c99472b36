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
from dataclasses import dataclass

import gemmi
import numpy as np
from scipy.special import erf

from tomosim.errors import TomosimError
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
