"""Potential: atomic models and maps become electrostatic potentials in volts on a voxel grid.

See CONVENTIONS.md ("Potentials") for the formula, units and the solvent convention.

Physics in one place
--------------------
Atoms
    Each atom is the sum of the five Gaussians of its elastic electron scattering factor
    ``f(s) = Σ a_i exp(-b_i s²)`` (``s = sin θ / λ``, Å⁻¹) of Peng, Ren, Dudarev & Whelan (1996),
    *Acta Cryst. A* 52, 257–276, tabulated in International Tables for Crystallography Vol. C,
    Table 4.3.2.2 and taken here from gemmi (``gemmi.Element(symbol).c4322``). Its potential is::

        V(r) = 47.878 V·Å² · Σ a_i (4π / (b_i + B))^{3/2} exp(-4π² r² / (b_i + B))

    i.e. Gaussians of variance ``σ_i² = (b_i + B) / (8π²)`` per axis and volume integral
    ``47.878 · a_i`` V·Å³, times the occupancy. ``B`` is the atom's B-factor (negative values are
    taken as 0) plus the global ``b_factor`` plus the B of the optional resolution low-pass.
Resolution
    A low-pass to resolution ``d`` is the extra B-factor ``B = 4 d²``: the Fourier amplitude of
    every atom is multiplied by ``exp(-B k² / 4)`` (``k = 2s = 1/spacing``), which falls to
    ``1/e`` at ``k = 1/d``, and the real-space Gaussian widens by ``σ = d / (π √2) ≈ 0.225 d``.
    This is the convention of ChimeraX ``molmap`` (default ``sigmaFactor`` 1/(π√2)).
Implicit hydrogens
    ``atoms.hydrogens[i]`` H atoms (Peng's H coefficients) are added at the position of atom
    ``i`` with its B-factor and occupancy (``hydrogens=True``).
Sampling without aliasing
    Each voxel holds the exact mean of ``V`` over its cube. A 3D Gaussian is separable, so its
    voxel mean is the product of three 1D voxel means, each a difference of two error functions
    at the voxel edges. Per atom and Gaussian, three short 1D arrays over the footprint
    (``±4.5σ`` per axis; the tails beyond it, < 7·10⁻⁶ per side, are given to the outermost
    voxels) are computed and their outer product is accumulated (numba kernel
    :func:`tomosim.gaussian_grid.gaussians_to_grid`; erf from a cubic Hermite table, error
    < 10⁻⁹). The volume integral is therefore exact at every pixel size, and coarse maps are the
    box average of the fine potential (no point-sampling aliasing).
Solvent (``solvent="ice"``)
    The result is the excess over vitreous ice: ``V_atoms - V_ice · E + shell``. ``E`` in [0, 1]
    is the fraction of each voxel occupied by the molecule, built from Gaussian excluded volumes
    in the spirit of Fraser, MacRae & Suzuki (1978), *J. Appl. Cryst.* 11, 693–694: atom ``i``
    displaces ``g_i(r) = exp(-π r² / v_i^{2/3})`` (a Gaussian of integral ``v_i``), here further
    smoothed by a Gaussian of σ = :data:`ENVELOPE_SMOOTHING` (2 Å; a soft solvent boundary, and
    without it the atomic-scale ripples of ``Σ g_i`` above 1 are clipped away and the envelope
    loses ~20 % of its volume at 1 Å sampling, against 2 % with it). ``E = clip(Σ g_i, 0, 1)``,
    voxel-averaged like the potential (the clip is applied to the voxel means). The atom volume
    ``v_i`` = occupancy × (atom mass + mass of its implicit H) × :data:`PROTEIN_VOLUME_A3_PER_DA`
    (1.23 Å³/Da, i.e. the customary mean protein density 1.35 g/cm³ = 1 / (0.74 cm³/g partial
    specific volume), Matthews 1968, *J. Mol. Biol.* 33, 491; Fischer, Polikarpov & Craievich
    2004, *Protein Sci.* 13, 2825 discuss its mass dependence). Implicit H count towards the
    volume whether or not their scattering is added (they are physically there).
    The default ice potential :data:`ICE_POTENTIAL_V` = 4.48 V is the mean inner potential of
    liquid water measured by electron holography (Yesibolati et al. 2020, *Phys. Rev. Lett.* 124,
    065502). The independent-atom value for vitreous ice of density 0.94 g/cm³ from the same
    Peng factors, :func:`independent_atom_ice_potential`, is 4.57 V, 2 % higher.
Hydration shell (``hydration_shell=True``, ice only)
    The first hydration shell is about 3 Å thick and ~10 % denser than bulk water (Svergun et al.
    1998, *PNAS* 95, 2267–2272). It is modelled as ``+0.10 · V_ice · clip(D − E, 0, 1)``, where
    ``D`` is an envelope grown by :data:`HYDRATION_SHELL_THICKNESS`: the excluded-volume sum
    blurred by a Gaussian of σ = thickness / 2 and scaled so that, at a flat protein surface,
    ``D`` falls to ½ one thickness outside the surface where ``E`` falls to ½. The resulting shell
    is ≈3–3.5 Å thick (a little thicker at pixel sizes above 5 Å, where clipping acts on
    coarse voxel means).
Maps
    See :func:`map_to_potential`.

Box convention: a :class:`Potential` puts the model's reference point (mean atom position unless
``centre`` is given) exactly at voxel ``shape // 2`` and records it in ``centre_a``, so atom
position ``r`` (Å, x y z) lies at array position ``(r - centre_a) / pixel_size + shape // 2``
(reversed to z y x for indexing).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import numpy as np

from tomosim.atoms import Atoms
from tomosim.errors import TomosimError
from tomosim.gaussian_grid import FOOTPRINT_SIGMAS, gaussians_to_grid
from tomosim.structures import DensityMap, resample_map, threshold_mask

POTENTIAL_CONSTANT_V_A2 = 47.878
"""``h² / (2π m₀ e)`` in V·Å²: the integral of an atom's potential is this times ``f_e(0)``."""

ICE_POTENTIAL_V = 4.48
"""Default mean potential of vitreous ice, V.

Liquid water, Yesibolati et al. 2020, PRL 124, 065502.
"""

ICE_DENSITY_G_CM3 = 0.94
"""Density of low-density amorphous (vitreous) ice, g/cm³."""

PROTEIN_DENSITY_G_CM3 = 1.35
"""Mean protein density, g/cm³.

Partial specific volume 0.74 cm³/g; Matthews 1968, J. Mol. Biol. 33, 491.
"""

AVOGADRO = 6.02214076e23
PROTEIN_VOLUME_A3_PER_DA = 1.0 / (PROTEIN_DENSITY_G_CM3 * AVOGADRO * 1e-24)
"""Volume per dalton at protein density, Å³/Da (1.230)."""

ENVELOPE_SMOOTHING = 2.0
"""σ (Å) of the Gaussian that smooths the molecular envelope at the atomic scale."""

HYDRATION_SHELL_THICKNESS = 3.0
"""Hydration shell thickness, Å (Svergun et al. 1998, PNAS 95, 2267)."""

HYDRATION_SHELL_EXCESS = 0.10
"""Hydration shell density excess over bulk water (Svergun et al. 1998)."""

AVERAGINE = {"C": 4.9384, "H": 7.7583, "N": 1.3577, "O": 1.4773, "S": 0.0417}
"""Average amino-acid residue composition, 111.1254 Da ("averagine"; Senko, Beu & McLafferty
1995, J. Am. Soc. Mass Spectrom. 6, 229)."""

MAX_PIXEL_SIZE = 50.0
"""Largest accepted pixel size, Å."""

MAX_VOXELS = 2**30
"""Largest potential box, voxels (4 GiB of float32)."""

POTENTIAL_CODE_VERSION = 1
"""Bumped whenever a change alters computed potentials; part of every cache key."""



@dataclass(frozen=True)
class Potential:
    """A potential map and where the model sits in it.

    Attributes
    ----------
    data
        ``(z, y, x)`` float32, voxel-averaged potential in volts (excess over ice when the solvent
        is ``ice``).
    pixel_size
        Å per voxel (cubic voxels).
    centre_a
        ``(x, y, z)`` model coordinates in Å of the box centre voxel ``shape // 2``: atom position
        ``r`` lies at array position ``(r - centre_a) / pixel_size + shape // 2`` (x, y, z order).
    solvent
        ``"none"`` or ``"ice"``.
    name
        Provenance: the structure it came from.
    """

    data: np.ndarray
    pixel_size: float
    centre_a: tuple[float, float, float]
    solvent: str = "none"
    name: str = ""

    @property
    def integral(self) -> float:
        """Volume integral in V·Å³: ``sum(data) * pixel_size**3``."""
        return float(self.data.sum(dtype=np.float64) * self.pixel_size**3)


# --------------------------------------------------------------------------------------------
# Scattering factors and derived constants
# --------------------------------------------------------------------------------------------


@cache
def scattering_coefficients(element: str) -> tuple[np.ndarray, np.ndarray, float]:
    """Peng et al. (1996) five-Gaussian coefficients and atomic mass of an element.

    Parameters
    ----------
    element
        Element symbol, any capitalisation ("C", "FE", "Fe").

    Returns
    -------
    a, b, mass
        ``a`` (5,) in Å (``Σ a = f_e(0)``), ``b`` (5,) in Å², ``mass`` in Da
        (International Tables C Table 4.3.2.2, via ``gemmi.Element(symbol).c4322``).

    Raises
    ------
    TomosimError
        For a symbol that is not an element.
    """
    import gemmi

    symbol = str(element).strip()
    entry = gemmi.Element(symbol) if symbol else None
    if entry is None or entry.atomic_number == 0 or entry.name.upper() != symbol.upper():
        raise TomosimError(f"unknown chemical element {symbol!r}: no electron scattering factor")
    coefficients = entry.c4322
    a = np.asarray(coefficients.a, dtype=np.float64)
    b = np.asarray(coefficients.b, dtype=np.float64)
    if a.shape != (5,) or not np.any(a > 0):
        raise TomosimError(f"no electron scattering factor tabulated for element {element!r}")
    return a, b, float(entry.weight)


def resolution_to_b_factor(resolution: float) -> float:
    """B-factor (Å²) of the low-pass to ``resolution`` (Å): ``B = 4 d²``.

    The Fourier amplitude ``exp(-B k²/4)`` then falls to 1/e at ``k = 1/d`` and the real-space
    σ grows by ``d / (π√2)`` (ChimeraX ``molmap`` convention).
    """
    return 4.0 * float(resolution) ** 2


def independent_atom_ice_potential(density_g_cm3: float = ICE_DENSITY_G_CM3) -> float:
    """Mean potential (V) of water ice of the given density from Peng's neutral-atom factors.

    ``47.878 · (f_O(0) + 2 f_H(0)) · n`` with ``n`` water molecules per Å³; 4.57 V at 0.94 g/cm³
    (the measured value for water, :data:`ICE_POTENTIAL_V`, is 4.48 V; bonding lowers it).
    """
    a_o, _, m_o = scattering_coefficients("O")
    a_h, _, m_h = scattering_coefficients("H")
    molecules_per_a3 = density_g_cm3 * 1e-24 * AVOGADRO / (m_o + 2 * m_h)
    return POTENTIAL_CONSTANT_V_A2 * float(a_o.sum() + 2 * a_h.sum()) * molecules_per_a3


def protein_potential_integral_per_kda() -> float:
    """Potential integral of 1 kDa of protein, V·Å³ (about 9.76·10³).

    ``47.878 · Σ f_e(0)`` of the averagine residue (:data:`AVERAGINE`, hydrogens included),
    divided by its mass.
    """
    total_f0 = 0.0
    total_mass = 0.0
    for element, count in AVERAGINE.items():
        a, _, mass = scattering_coefficients(element)
        total_f0 += count * float(a.sum())
        total_mass += count * mass
    return POTENTIAL_CONSTANT_V_A2 * total_f0 / total_mass * 1000.0


def check_pixel_size(pixel_size: float, what: str = "") -> float:
    """``pixel_size`` as a float in (0, :data:`MAX_PIXEL_SIZE`] Å, or a TomosimError naming it."""
    try:
        value = float(pixel_size)
    except (TypeError, ValueError):
        raise TomosimError(f"pixel size must be a number, got {pixel_size!r}{what}") from None
    if not (math.isfinite(value) and 0 < value <= MAX_PIXEL_SIZE):
        raise TomosimError(
            f"pixel size must be in (0, {MAX_PIXEL_SIZE:g}] Å, got {pixel_size}{what}"
        )
    return value


def _check_solvent(solvent: str, ice_potential_v: float | None) -> float:
    if solvent not in ("none", "ice"):
        raise TomosimError(f"solvent must be 'none' or 'ice', got {solvent!r}")
    ice = ICE_POTENTIAL_V if ice_potential_v is None else float(ice_potential_v)
    if not (math.isfinite(ice) and ice >= 0):
        raise TomosimError(f"ice potential must be a non-negative number of volts, got {ice}")
    return ice


# --------------------------------------------------------------------------------------------
# Atomic models
# --------------------------------------------------------------------------------------------


def _box_shape(
    positions: np.ndarray, centre: np.ndarray, pixel_size: float, margin: float
) -> tuple[int, int, int]:
    """``(z, y, x)`` shape that holds ``positions ± margin`` with ``centre`` at ``shape // 2``."""
    low = (positions.min(axis=0) - margin - centre) / pixel_size
    high = (positions.max(axis=0) + margin - centre) / pixel_size
    below = np.maximum(-np.floor(low + 0.5), 0).astype(np.int64)
    above = np.maximum(np.floor(high + 0.5), 0).astype(np.int64)
    sizes_xyz = 2 * np.maximum(below, above + 1)  # even: shape // 2 leaves room on both sides
    return int(sizes_xyz[2]), int(sizes_xyz[1]), int(sizes_xyz[0])


def atoms_to_potential(
    atoms: Atoms,
    pixel_size: float,
    *,
    b_factor: float = 0.0,
    resolution: float | None = None,
    hydrogens: bool = True,
    solvent: str = "none",
    hydration_shell: bool = False,
    ice_potential_v: float | None = None,
    margin: float | None = None,
    centre: tuple[float, float, float] | None = None,
) -> Potential:
    """Electrostatic potential (V) of an atomic model, voxel-averaged on a cubic grid.

    The physics (Peng et al. 1996 scattering factors, resolution B = 4 d², exact voxel averaging,
    excluded-volume solvent, hydration shell) is described in the module docstring.

    Parameters
    ----------
    atoms
        The model: positions ``(x, y, z)`` Å, elements, B-factors Å², occupancies, implicit H.
    pixel_size
        Å per voxel, in (0, 50].
    b_factor
        Global B-factor (Å², >= 0) added to every atom's own B-factor.
    resolution
        Optional low-pass to this resolution (Å), as the extra B-factor ``4 d²``.
    hydrogens
        Add the scattering of ``atoms.hydrogens`` implicit H at their parent atoms.
    solvent
        ``"none"``: the potential in vacuum. ``"ice"``: the excess over vitreous ice (displaced
        ice subtracted inside the molecular envelope; far from the molecule the box reads 0).
    hydration_shell
        Add a ~3 Å hydration shell 10 % denser than ice (needs ``solvent="ice"``).
    ice_potential_v
        Mean potential of vitreous ice, V; default :data:`ICE_POTENTIAL_V` (4.48 V).
    margin
        Å added around the atoms' extent on every side. Default: 4.5 σ of the widest Gaussian
        (atom, excluded volume or hydration shell) + 2 Å, so that nothing is cut off.
    centre
        ``(x, y, z)`` Å of the model point placed at voxel ``shape // 2``; default the mean atom
        position.

    Returns
    -------
    Potential
        ``(z, y, x)`` float32 volts; ``centre_a`` is the model point at voxel ``shape // 2``, so
        atom position ``r`` is at array position ``(r - centre_a) / pixel_size + shape // 2``.

    Raises
    ------
    TomosimError
        Empty model, unknown element, non-finite coordinates, bad pixel size / B-factor /
        resolution / solvent, or a box larger than :data:`MAX_VOXELS`.
    """
    pixel = check_pixel_size(pixel_size, f" for {atoms.name or 'the model'}")
    ice = _check_solvent(solvent, ice_potential_v)
    label = atoms.name or "the model"
    if len(atoms) == 0:
        raise TomosimError(f"model has no atoms: {label}")
    if hydration_shell and solvent != "ice":
        raise TomosimError(f"hydration_shell needs solvent='ice' (got {solvent!r}) for {label}")
    if not (math.isfinite(b_factor) and 0 <= b_factor <= 1e5):
        raise TomosimError(f"global B-factor must be in [0, 1e5] Å², got {b_factor}")
    extra_b = float(b_factor)
    if resolution is not None:
        if not (math.isfinite(resolution) and 0 < resolution <= 200):
            raise TomosimError(f"resolution must be in (0, 200] Å, got {resolution}")
        extra_b += resolution_to_b_factor(resolution)

    positions = np.asarray(atoms.positions, dtype=np.float64).reshape(-1, 3)
    atom_b = np.asarray(atoms.b_factors, dtype=np.float64)
    occupancy = np.asarray(atoms.occupancies, dtype=np.float64)
    implicit = np.asarray(atoms.hydrogens, dtype=np.float64) if hydrogens else None
    if not (np.all(np.isfinite(positions)) and np.all(np.isfinite(atom_b))):
        raise TomosimError(f"non-finite atom coordinates or B-factors in {label}")
    if not np.all(np.isfinite(occupancy)):
        raise TomosimError(f"non-finite occupancies in {label}")
    total_b = np.maximum(atom_b, 0.0) + extra_b

    # per-element table, then per-atom Gaussians: 5 for the atom (+5 for its implicit H)
    symbols, element_index = np.unique(np.asarray(atoms.elements, dtype=str), return_inverse=True)
    table = [scattering_coefficients(str(symbol)) for symbol in symbols]
    a_table = np.array([entry[0] for entry in table])
    b_table = np.array([entry[1] for entry in table])
    mass_table = np.array([entry[2] for entry in table])
    a_h, b_h, mass_h = scattering_coefficients("H")

    voxel_volume = pixel**3
    eight_pi2 = 8.0 * math.pi**2
    with_h = implicit is not None and bool(np.any(implicit > 0))
    n_gauss = 10 if with_h else 5
    weights = np.zeros((len(atoms), n_gauss))
    variances = np.ones((len(atoms), n_gauss))
    weights[:, :5] = POTENTIAL_CONSTANT_V_A2 * a_table[element_index] * occupancy[:, None]
    variances[:, :5] = (b_table[element_index] + total_b[:, None]) / eight_pi2
    if with_h:
        assert implicit is not None
        weights[:, 5:] = POTENTIAL_CONSTANT_V_A2 * a_h[None, :] * (implicit * occupancy)[:, None]
        variances[:, 5:] = (b_h[None, :] + total_b[:, None]) / eight_pi2
    sigmas = np.sqrt(variances)

    # excluded volumes (Fraser et al. 1978): exp(-π r²/v^{2/3}) = v · N(0, σ² = v^{2/3}/2π)
    if solvent == "ice":
        h_count = np.asarray(atoms.hydrogens, dtype=np.float64)
        volumes = PROTEIN_VOLUME_A3_PER_DA * (mass_table[element_index] + h_count * mass_h)
        volumes = volumes * np.clip(occupancy, 0.0, 1.0)
        envelope_sigma = np.sqrt(np.cbrt(volumes) ** 2 / (2.0 * math.pi) + ENVELOPE_SMOOTHING**2)
        shell_sigma = np.hypot(envelope_sigma, 0.5 * HYDRATION_SHELL_THICKNESS)
        widest = max(float(sigmas.max()), float(envelope_sigma.max()))
        if hydration_shell:
            widest = max(widest, float(shell_sigma.max()))
    else:
        widest = float(sigmas.max())

    centre_xyz = positions.mean(axis=0) if centre is None else np.asarray(centre, dtype=np.float64)
    if centre_xyz.shape != (3,) or not np.all(np.isfinite(centre_xyz)):
        raise TomosimError(f"centre must be three finite numbers (x, y, z) Å, got {centre}")
    if margin is None:
        margin = FOOTPRINT_SIGMAS * widest + 2.0
    elif not (math.isfinite(margin) and margin >= 0):
        raise TomosimError(f"margin must be a non-negative number of Å, got {margin}")
    shape = _box_shape(positions, centre_xyz, pixel, float(margin))
    if math.prod(shape) > MAX_VOXELS:
        raise TomosimError(
            f"potential box {shape} of {label} at {pixel:g} Å/pixel exceeds {MAX_VOXELS} voxels; "
            "use a larger pixel size or fewer chains"
        )
    box_centre = np.array(shape[::-1], dtype=np.float64) // 2
    centres_px = (positions - centre_xyz) / pixel + box_centre

    data = gaussians_to_grid(shape, centres_px, weights / voxel_volume, sigmas / pixel)
    if solvent == "ice":
        occupied = gaussians_to_grid(
            shape,
            centres_px,
            (volumes / voxel_volume)[:, None],
            (envelope_sigma / pixel)[:, None],
        )
        envelope = np.clip(occupied, 0.0, 1.0)
        data -= np.float32(ice) * envelope
        if hydration_shell:
            grown = gaussians_to_grid(
                shape,
                centres_px,
                (volumes / voxel_volume)[:, None],
                (shell_sigma / pixel)[:, None],
            )
            grown = np.clip(grown * np.float32(_shell_gain(float(np.median(shell_sigma)))), 0, 1)
            shell = np.clip(grown - envelope, 0.0, 1.0)
            data += np.float32(HYDRATION_SHELL_EXCESS * ice) * shell
    return Potential(
        data=data,
        pixel_size=pixel,
        centre_a=(float(centre_xyz[0]), float(centre_xyz[1]), float(centre_xyz[2])),
        solvent=solvent,
        name=atoms.name,
    )


def _shell_gain(sigma: float) -> float:
    """Gain that puts the ½ level of the blurred envelope one shell thickness outside.

    At a flat surface of unit occupancy the blurred sum is ``Φ(-d/σ)`` at distance ``d`` from
    the surface; ``gain · Φ(-t/σ) = ½`` makes the grown envelope reach ½ at ``d = t``.
    """
    tail = 0.5 * math.erfc(HYDRATION_SHELL_THICKNESS / (sigma * math.sqrt(2.0)))
    return 0.5 / tail


# --------------------------------------------------------------------------------------------
# Density maps
# --------------------------------------------------------------------------------------------


def map_to_potential(
    density_map: DensityMap,
    pixel_size: float,
    *,
    mass_kda: float | None = None,
    scale_v: float | None = None,
    threshold: float | None = None,
    solvent: str = "none",
    ice_potential_v: float | None = None,
) -> Potential:
    """Electrostatic potential (V) of a density map (EM map), resampled to ``pixel_size``.

    Method
    ------
    1. The molecule is the map's values at or above ``threshold`` (without a threshold: its
       positive values); everything else is set to 0.
    2. The map is padded and resampled to ``pixel_size`` with
       :func:`tomosim.structures.resample_map` (integral and box centre conserved). Small
       negative interpolation ripples are clipped to 0.
    3. Volts: ``scale_v`` (V per map unit) if given; otherwise the map is scaled so that its
       integral equals ``47.878 V·Å² · Σ f_e(0)`` of a protein of ``mass_kda`` with the averagine
       composition (Senko et al. 1995): :func:`protein_potential_integral_per_kda` ≈ 9.76·10³
       V·Å³ per kDa. With neither, the mass is estimated from the volume above ``threshold`` at
       1.23 Å³/Da (protein density 1.35 g/cm³; a threshold is then required).
    4. ``solvent="ice"`` subtracts ``ice_potential_v × occupied fraction`` as for atoms. The
       envelope is the thresholded map; without a threshold, the highest voxels whose volume is
       that of ``mass_kda`` at 1.23 Å³/Da (the usual "contour at the molecular volume"), or,
       with neither, every positive voxel (give a threshold for noisy maps). Its binary mask is
       resampled like the map, giving the occupied fraction of every output voxel.

    Parameters
    ----------
    density_map
        The map (``data`` z y x, ``pixel_size`` Å, ``origin`` x y z Å of voxel 0).
    pixel_size
        Output Å per voxel, in (0, 50].
    mass_kda
        Molecular mass of the map's content, kDa.
    scale_v
        Volts per map unit (takes precedence over ``mass_kda``).
    threshold
        Map value at and above which a voxel belongs to the molecule.
    solvent, ice_potential_v
        As in :func:`atoms_to_potential`.

    Returns
    -------
    Potential
        ``centre_a`` is the physical position (x, y, z Å, from the map origin) of the input
        map's centre voxel, which stays at ``shape // 2``.

    Raises
    ------
    TomosimError
        Bad pixel size, mass, scale or solvent; a map with nothing above the threshold; no way
        to scale to volts.
    """
    label = density_map.name or "the map"
    pixel = check_pixel_size(pixel_size, f" for {label}")
    ice = _check_solvent(solvent, ice_potential_v)
    if scale_v is not None and not (math.isfinite(scale_v) and scale_v > 0):
        raise TomosimError(f"map scale must be a positive number of volts, got {scale_v}")
    if mass_kda is not None and not (math.isfinite(mass_kda) and mass_kda > 0):
        raise TomosimError(f"molecular mass must be a positive number of kDa, got {mass_kda}")
    source_pixel = float(density_map.pixel_size)
    values = np.asarray(density_map.data, dtype=np.float64)
    if values.ndim != 3 or values.size == 0:
        raise TomosimError(f"not a 3D map (shape {values.shape}): {label}")
    if not (math.isfinite(source_pixel) and source_pixel > 0):
        raise TomosimError(f"map has zero voxel size: {label}")
    if not np.all(np.isfinite(values)):
        raise TomosimError(f"map holds NaN or infinite values: {label}")

    if threshold is not None:
        inside = threshold_mask(values, float(threshold))
    else:
        inside = values > 0
    if not np.any(inside):
        where = f"at or above threshold {threshold}" if threshold is not None else "positive"
        raise TomosimError(f"map has no values {where}: {label}")
    molecule = np.where(inside, values, 0.0)
    envelope = inside
    if threshold is None and mass_kda is not None:
        target_voxels = mass_kda * 1000.0 * PROTEIN_VOLUME_A3_PER_DA / source_pixel**3
        count = min(max(int(round(target_voxels)), 1), int(np.count_nonzero(inside)))
        cut = np.partition(molecule.ravel(), molecule.size - count)[molecule.size - count]
        envelope = molecule >= max(cut, np.nextafter(0.0, 1.0))
    if scale_v is None and mass_kda is None:
        if threshold is None:
            raise TomosimError(
                f"cannot scale map {label} to volts: give a molecular mass (kDa), "
                "a scale (V per map unit) or a threshold"
            )
        mass_kda = np.count_nonzero(inside) * source_pixel**3 / PROTEIN_VOLUME_A3_PER_DA / 1000.0

    pad = int(math.ceil(3.0 * pixel / source_pixel)) + 2
    molecule = np.pad(molecule, pad)
    fraction = np.pad(envelope.astype(np.float64), pad)
    factor = pixel / source_pixel
    nz, ny, nx = (max(1, int(math.ceil(n / factor))) for n in molecule.shape)
    out_shape = (nz, ny, nx)
    resampled = np.maximum(resample_map(molecule, source_pixel, pixel, shape=out_shape), 0.0)
    occupied = np.clip(resample_map(fraction, source_pixel, pixel, shape=out_shape), 0.0, 1.0)

    if scale_v is not None:
        volts: np.ndarray = resampled * np.float32(scale_v)
    else:
        integral = float(resampled.sum(dtype=np.float64)) * pixel**3
        if not integral > 0:
            raise TomosimError(f"map {label} has no positive density to scale to volts")
        target = protein_potential_integral_per_kda() * float(mass_kda)  # type: ignore[arg-type]
        volts = resampled * np.float32(target / integral)
    if solvent == "ice":
        volts = volts - np.float32(ice) * occupied
    centre_index_xyz = (np.array(values.shape[::-1]) // 2).astype(np.float64)
    centre = np.asarray(density_map.origin, dtype=np.float64) + centre_index_xyz * source_pixel
    return Potential(
        data=np.ascontiguousarray(volts, dtype=np.float32),
        pixel_size=pixel,
        centre_a=(float(centre[0]), float(centre[1]), float(centre[2])),
        solvent=solvent,
        name=density_map.name,
    )
