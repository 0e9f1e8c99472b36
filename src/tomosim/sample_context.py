"""Sample context: the slab the molecules sit in, carbon, gold fiducials and surface contamination.

Real tomograms are not a box of flat ice. This module adds, to a phantom's potential (V, excess
over vitreous ice), what surrounds the molecules:

- **Slab** (:func:`slab_surfaces`): the ice layer of a plunge-frozen sample or a FIB-milled
  lamella, between a bottom and a top surface ``z_b(x, y) < z_t(x, y)``. Its mean thickness is
  ``thickness``; the thickness changes linearly by ``thickness_gradient`` Å per µm along a random
  in-plane direction (a wedge-shaped lamella or an ice meniscus); each surface is rough, a Gaussian
  random field of standard deviation ``roughness`` Å and correlation length ``roughness_length``
  Å; **milling curtains** are grooves along the milling direction (y): the top surface is lowered
  by ``curtain_amplitude`` × a random profile in x made of Gaussian grooves ``curtain_period`` Å
  apart on average. Outside the slab is vacuum, ``−V_ice`` relative to ice; each voxel gets the
  fraction of its z extent inside the slab (anti-aliased surfaces). Whatever sticks out of the slab
  is milled or melted away: its potential and labels are removed, and particles whose centre lies
  outside are dropped from the particle list.
- **Carbon** (:func:`carbon_film`): an amorphous-carbon support film of ``thickness`` Å under
  the slab, beyond a straight edge (the rim of a hole) at a random position and angle; its mean
  inner potential is that of amorphous carbon at 2.0 g/cm³ (:data:`CARBON_POTENTIAL_V`, from the
  same Peng et al. scattering factors as proteins), with a grainy ±``texture`` relative
  fluctuation on a 5 Å scale.
- **Gold fiducials** (:func:`gold_template`): balls of gold (:data:`GOLD_POTENTIAL_V`, bulk gold
  19.3 g/cm³), placed as particles of their own class with their own particle rows.
- **Contamination** (:func:`contamination`): crystalline ice lumps (ellipsoids, potential of
  ice) sitting on the top or bottom surface, in the vacuum.

Sizes are free parameters: typical lamellae are 1000–2500 Å thick with a few hundred Å of
gradient over the field of view, rms roughness of 20–50 Å and curtains of tens of Å; plunge-frozen
ice is 300–2000 Å with smoother surfaces; fiducials are 50–150 Å across.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import gemmi
import numpy as np
import scipy.fft

from tomosim.errors import TomosimError
from tomosim.potential import ICE_POTENTIAL_V, Potential

__all__ = [
    "CARBON_POTENTIAL_V",
    "GOLD_POTENTIAL_V",
    "SampleContext",
    "SlabSettings",
    "SlabSurfaces",
    "apply_slab",
    "carbon_film",
    "contamination",
    "gaussian_random_field",
    "gold_template",
    "slab_surfaces",
]

_POTENTIAL_CONSTANT = 47.878  # V·Å², h²/(2π m₀ e) (CONVENTIONS.md)
_AVOGADRO = 6.02214076e23


@dataclass(frozen=True)
class SlabSettings:
    """The slab's shape (see :func:`slab_surfaces`); ``thickness`` None: the recipe's default."""

    thickness: float | None = None
    thickness_gradient: float = 0.0
    roughness: float = 0.0
    roughness_length: float = 500.0
    curtain_amplitude: float = 0.0
    curtain_period: float = 400.0


@dataclass(frozen=True)
class SampleContext:
    """What surrounds the molecules, as plain values (all off by default).

    Attributes
    ----------
    slab
        The slab, or None (no vacuum, the flat ice of the microscope stage only).
    carbon_thickness, carbon_texture
        Carbon film thickness (Å, None: no film) and relative grain.
    fiducial_count, fiducial_radius, fiducial_name, fiducial_class_id
        Gold beads: how many, radius (Å), template/species name and label class.
    contamination_count, contamination_size
        Ice lumps on the surfaces and their ``(min, max)`` diameter, Å.
    """

    slab: SlabSettings | None = None
    carbon_thickness: float | None = None
    carbon_texture: float = 0.3
    fiducial_count: int = 0
    fiducial_radius: float = 50.0
    fiducial_name: str = "gold"
    fiducial_class_id: int = 0
    contamination_count: int = 0
    contamination_size: tuple[float, float] = (150.0, 500.0)


def _mean_inner_potential(symbol: str, density_g_cm3: float) -> float:
    """``47.878 · f_e(0) · n`` volts for an element at a mass density (atoms per Å³ ``n``)."""
    element = gemmi.Element(symbol)
    atoms_per_a3 = density_g_cm3 / element.weight * _AVOGADRO * 1e-24
    return _POTENTIAL_CONSTANT * float(sum(element.c4322.a)) * atoms_per_a3


GOLD_POTENTIAL_V = _mean_inner_potential("Au", 19.3)
"""Mean inner potential of bulk gold from the Peng et al. (1996) ``f_e(0)``, V (≈ 29.9 V)."""

CARBON_POTENTIAL_V = _mean_inner_potential("C", 2.0)
"""Mean inner potential of amorphous carbon at 2.0 g/cm³, neutral atoms, V (≈ 12.0 V)."""


def gaussian_random_field(
    shape: tuple[int, int], *, pixel_size: float, rms: float, length: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Draw a stationary Gaussian random field with a Gaussian correlation of ``length`` Å.

    White noise filtered by ``exp(−2π² (length / 2)² k²)`` (the covariance is then
    ``∝ exp(−r² / length²)``), scaled to standard deviation ``rms`` over the image.

    Returns
    -------
    numpy.ndarray
        ``shape`` float64, mean 0, standard deviation ``rms`` (0 when ``rms`` is 0).
    """
    if rms == 0:
        return np.zeros(shape)
    noise = rng.standard_normal(shape)
    k_y = np.fft.fftfreq(shape[0], d=pixel_size)[:, None]
    k_x = np.fft.rfftfreq(shape[1], d=pixel_size)[None, :]
    sigma = length / 2
    kernel = np.exp(-2 * np.pi**2 * sigma**2 * (k_y**2 + k_x**2))
    field = scipy.fft.irfft2(scipy.fft.rfft2(noise) * kernel, s=shape)
    field -= field.mean()
    std = field.std()
    return field * (rms / std) if std > 0 else field


@dataclass(frozen=True)
class SlabSurfaces:
    """Bottom and top surface heights of the slab, ``(ny, nx)`` Å (z of sample coordinates)."""

    bottom: np.ndarray
    top: np.ndarray

    @property
    def thickness(self) -> np.ndarray:
        """``(ny, nx)`` local thickness, Å."""
        return self.top - self.bottom


def slab_surfaces(
    shape: tuple[int, int, int],
    *,
    pixel_size: float,
    thickness: float,
    thickness_gradient: float = 0.0,
    roughness: float = 0.0,
    roughness_length: float = 500.0,
    curtain_amplitude: float = 0.0,
    curtain_period: float = 400.0,
    rng: np.random.Generator,
) -> SlabSurfaces:
    """Surfaces of a slab of mean ``thickness`` Å centred on z plane ``nz // 2``.

    Parameters
    ----------
    shape
        ``(z, y, x)`` voxels of the sample volume.
    pixel_size
        Å per voxel.
    thickness
        Mean thickness, Å.
    thickness_gradient
        Change of thickness per µm along a random in-plane direction, Å/µm.
    roughness, roughness_length
        Standard deviation (Å) and correlation length (Å) of each surface's height.
    curtain_amplitude, curtain_period
        Depth (Å) and mean spacing (Å, along x) of milling curtains cut into the top surface.
    rng
        Random generator.

    Raises
    ------
    TomosimError
        A slab (mean thickness plus three standard deviations of its variation) thicker than the
        volume, or a thickness that falls to zero or below somewhere.
    """
    nz, ny, nx = shape
    if not thickness > 0:
        raise TomosimError(f"slab thickness must be positive, got {thickness} Å")
    box = nz * pixel_size
    y, x = np.meshgrid(np.arange(ny) * pixel_size, np.arange(nx) * pixel_size, indexing="ij")
    direction = rng.uniform(0.0, 2 * np.pi)
    along = (x - x.mean()) * np.cos(direction) + (y - y.mean()) * np.sin(direction)
    local = thickness + thickness_gradient * along / 1e4
    bottom_rough = gaussian_random_field(
        (ny, nx), pixel_size=pixel_size, rms=roughness, length=roughness_length, rng=rng
    )
    top_rough = gaussian_random_field(
        (ny, nx), pixel_size=pixel_size, rms=roughness, length=roughness_length, rng=rng
    )
    curtains = np.zeros(nx)
    if curtain_amplitude > 0:
        count = max(1, int(round(nx * pixel_size / curtain_period)))
        centres = rng.uniform(0, nx * pixel_size, count)
        widths = rng.uniform(0.1, 0.3, count) * curtain_period
        depths = rng.uniform(0.5, 1.0, count)
        xs = np.arange(nx) * pixel_size
        for c, w, d in zip(centres, widths, depths, strict=True):
            curtains += d * np.exp(-0.5 * ((xs - c) / w) ** 2)
        curtains *= curtain_amplitude / max(float(curtains.max()), 1e-12)
    centre = (nz // 2) * pixel_size
    bottom = centre - local / 2 + bottom_rough
    top = centre + local / 2 + top_rough - curtains[None, :]
    spread = float(np.std(top - bottom))
    if thickness + 3 * spread > box or np.ptp(local) + thickness > 2 * box:
        raise TomosimError(
            f"the slab (thickness {thickness:g} Å, variation ±{spread:.0f} Å) is thicker than the "
            f"sample box ({box:g} Å = {nz} voxels × {pixel_size:g} Å)"
        )
    if np.any(top - bottom <= 0):
        raise TomosimError(
            f"the slab's thickness falls to zero somewhere (thickness {thickness:g} Å, gradient "
            f"{thickness_gradient:g} Å/µm, roughness {roughness:g} Å, curtains "
            f"{curtain_amplitude:g} Å)"
        )
    return SlabSurfaces(bottom=bottom, top=top)


def _z_coverage(low: np.ndarray, high: np.ndarray, nz: int, pixel_size: float) -> np.ndarray:
    """``(nz, ny, nx)`` float32: fraction of each voxel's z extent inside ``[low, high]`` (Å)."""
    low32 = np.asarray(low, np.float32) / np.float32(pixel_size)
    high32 = np.asarray(high, np.float32) / np.float32(pixel_size)
    out = np.empty((nz, *low32.shape), np.float32)
    for iz in range(nz):  # plane by plane: no full-volume float64 temporaries
        lower = np.float32(iz - 0.5)
        plane = np.minimum(high32, lower + 1) - np.maximum(low32, lower)
        np.clip(plane, 0.0, 1.0, out=out[iz])
    return out


def apply_slab(
    potential: np.ndarray, surfaces: SlabSurfaces, *, pixel_size: float, ice_potential_v: float
) -> np.ndarray:
    """Put vacuum outside the slab: ``V ← c V + (1 − c)(−V_ice)`` with ``c`` the z coverage.

    Parameters
    ----------
    potential
        ``(z, y, x)`` V, excess over ice (modified in place and returned).
    surfaces
        The slab.
    pixel_size
        Å per voxel.
    ice_potential_v
        Potential of vitreous ice, V.

    Returns
    -------
    numpy.ndarray
        ``(z, y, x)`` float32 coverage ``c`` of each voxel by the slab.
    """
    coverage = _z_coverage(surfaces.bottom, surfaces.top, potential.shape[0], pixel_size)
    ice = np.float32(ice_potential_v)
    for iz in range(potential.shape[0]):  # V c − V_ice (1 − c), plane by plane
        plane = potential[iz]
        plane += ice
        plane *= coverage[iz]
        plane -= ice
    return coverage


def carbon_film(
    potential: np.ndarray,
    surfaces: SlabSurfaces,
    *,
    pixel_size: float,
    thickness: float,
    ice_potential_v: float,
    texture: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Add a carbon film under the slab beyond a random straight edge, in place.

    ``ice_potential_v`` is unused (the film fills vacuum, whose −V_ice is already there); it is
    kept for symmetry with :func:`contamination`.

    The edge passes through a point uniform in the middle half of the field of view at a
    uniformly random angle; on one side the film fills ``[bottom − thickness, bottom]`` (Å),
    where it replaces vacuum: ``V = V_C (1 + texture · n) − V_ice`` with ``n`` a unit Gaussian
    field of 5 Å correlation length.

    Returns
    -------
    numpy.ndarray
        ``(ny, nx)`` bool, the film's footprint.
    """
    nz, ny, nx = potential.shape
    y, x = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    angle = rng.uniform(0.0, 2 * np.pi)
    point = rng.uniform(0.25, 0.75, 2) * np.array([nx, ny])
    footprint = (x - point[0]) * np.cos(angle) + (y - point[1]) * np.sin(angle) > 0
    coverage = _z_coverage(surfaces.bottom - thickness, surfaces.bottom, nz, pixel_size)
    coverage *= footprint[None]
    for iz in np.flatnonzero(coverage.any(axis=(1, 2))):  # only the planes the film reaches
        grain = gaussian_random_field(
            (ny, nx), pixel_size=pixel_size, rms=1.0, length=max(5.0, pixel_size), rng=rng
        ) if texture > 0 else 0.0
        carbon = CARBON_POTENTIAL_V * (1 + texture * grain)
        potential[iz] += (coverage[iz] * carbon).astype(np.float32)  # fills vacuum (−V_ice)
    return footprint


def contamination(
    potential: np.ndarray,
    surfaces: SlabSurfaces,
    *,
    pixel_size: float,
    count: int,
    size: tuple[float, float],
    ice_potential_v: float,
    rng: np.random.Generator,
) -> int:
    """Add ``count`` crystalline-ice lumps on the slab surfaces, in the vacuum, in place.

    Each lump is an ellipsoid with semi-axes uniform in ``size / 2`` (Å), centred on the top or
    bottom surface (equally likely) at a uniform x, y; where it lies in the vacuum the voxel gets
    ice back (``+V_ice`` on the vacuum's ``−V_ice``). Returns the number of lumps.
    """
    nz, ny, nx = potential.shape
    z = np.arange(nz) * pixel_size
    for _ in range(count):
        semi = rng.uniform(size[0] / 2, size[1] / 2, 3)
        cx, cy = rng.uniform(0, nx * pixel_size), rng.uniform(0, ny * pixel_size)
        iy, ix = int(min(ny - 1, cy // pixel_size)), int(min(nx - 1, cx // pixel_size))
        top = rng.random() < 0.5
        cz = surfaces.top[iy, ix] if top else surfaces.bottom[iy, ix]
        lo = np.maximum(np.floor((np.array([cx, cy]) - semi[:2]) / pixel_size).astype(int), 0)
        hi = np.minimum(np.ceil((np.array([cx, cy]) + semi[:2]) / pixel_size).astype(int) + 1,
                        [nx, ny])
        if np.any(hi <= lo):
            continue
        xs = np.arange(lo[0], hi[0]) * pixel_size
        ys = np.arange(lo[1], hi[1]) * pixel_size
        r2 = (((xs[None, None, :] - cx) / semi[0]) ** 2 + ((ys[None, :, None] - cy) / semi[1]) ** 2
              + ((z[:, None, None] - cz) / semi[2]) ** 2)
        lump = r2 <= 1.0
        sub = potential[:, lo[1]:hi[1], lo[0]:hi[0]]
        bottom = surfaces.bottom[lo[1]:hi[1], lo[0]:hi[0]]
        upper = surfaces.top[lo[1]:hi[1], lo[0]:hi[0]]
        vacuum = (z[:, None, None] > upper[None]) | (z[:, None, None] < bottom[None])
        sub[lump & vacuum] += np.float32(ice_potential_v)
    return count


def gold_template(
    radius: float, pixel_size: float, *, ice_potential_v: float = ICE_POTENTIAL_V
) -> Potential:
    """Build a gold ball of ``radius`` Å as a voxel-averaged template (excess over ice, V).

    Each voxel holds ``(V_Au − V_ice) × `` the fraction of its cube inside the ball (4³
    sub-samples); the reference point is the voxel ``shape // 2``, at the ball's centre.

    Raises
    ------
    TomosimError
        A non-positive radius or pixel size.
    """
    if not radius > 0 or not pixel_size > 0:
        raise TomosimError(f"bad gold bead: radius {radius} Å, pixel size {pixel_size} Å")
    size = 2 * int(math.ceil(radius / pixel_size)) + 3
    sub = 4
    offsets = (np.arange(sub) + 0.5) / sub - 0.5
    grid = (np.arange(size) - size // 2)[:, None] + offsets[None, :]
    coordinate = grid.ravel() * pixel_size
    inside = (coordinate[:, None, None] ** 2 + coordinate[None, :, None] ** 2
              + coordinate[None, None, :] ** 2) <= radius**2
    fraction = inside.reshape(size, sub, size, sub, size, sub).mean(axis=(1, 3, 5))
    data = (fraction * (GOLD_POTENTIAL_V - ice_potential_v)).astype(np.float32)
    return Potential(data, float(pixel_size), (0.0, 0.0, 0.0), "ice", "gold")
