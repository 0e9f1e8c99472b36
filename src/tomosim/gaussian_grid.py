"""Gaussian grid: exact voxel averages of many 3D Gaussians, summed on a grid (numba kernel).

The kernel of :mod:`tomosim.potential`. Each voxel gets the exact mean of each isotropic Gaussian
over its cube: a 3D Gaussian is separable, so its voxel mean is the product of three 1D voxel
means, each a difference of two error functions at the voxel edges. Per Gaussian, three short 1D
arrays over the footprint (:data:`FOOTPRINT_SIGMAS` per axis; the tails beyond it are given to the
outermost voxels) are computed and their outer product is accumulated; erf comes from a cubic
Hermite table (error < 1e-9). The volume integral is therefore exact at every pixel size.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from scipy.special import erf

FOOTPRINT_SIGMAS = 4.5
"""Each Gaussian is evaluated out to this many σ per axis; its tails (< 7·10⁻⁶ per side) are
added to the outermost voxels, so no integral is lost."""

_ERF_SAMPLES_PER_UNIT = 64
_ERF_LIMIT = 6.0


def _erf_table() -> tuple[np.ndarray, np.ndarray]:
    """Erf and its derivative (times the step) on ``[0, 6]`` every 1/64, for :func:`_table_erf`."""
    x = np.arange(int(_ERF_LIMIT * _ERF_SAMPLES_PER_UNIT) + 2) / _ERF_SAMPLES_PER_UNIT
    slope = 2.0 / math.sqrt(math.pi) * np.exp(-(x**2)) / _ERF_SAMPLES_PER_UNIT
    return erf(x), slope


@numba.njit(cache=True, fastmath=True, inline="always")
def _table_erf(x: float, values: np.ndarray, slopes: np.ndarray) -> float:  # pragma: no cover
    """erf(x) by cubic Hermite interpolation of a table (abs. error < 1e-9, 5x faster than libm)."""
    magnitude = abs(x)
    if magnitude >= _ERF_LIMIT:
        result = 1.0
    else:
        u = magnitude * _ERF_SAMPLES_PER_UNIT
        i = int(u)
        t = u - i
        t2 = t * t
        t3 = t2 * t
        result = (
            (2.0 * t3 - 3.0 * t2 + 1.0) * values[i]
            + (t3 - 2.0 * t2 + t) * slopes[i]
            + (3.0 * t2 - 2.0 * t3) * values[i + 1]
            + (t3 - t2) * slopes[i + 1]
        )
    return result if x >= 0.0 else -result


@numba.njit(cache=True, fastmath=True, inline="always")
def _voxel_profile(
    out: np.ndarray,
    centre: float,
    sigma: float,
    span: float,
    lower: int,
    upper: int,
    scale: float,
    values: np.ndarray,
    slopes: np.ndarray,
) -> tuple[int, int]:  # pragma: no cover
    """1D voxel means of a unit Gaussian along one axis, written to ``out[0 : hi - lo + 1]``.

    Voxel ``i`` covers ``[i - 0.5, i + 0.5)``; the footprint is the voxels that meet
    ``centre ± span``, clipped to ``[lower, upper]``. The two outer edges of the unclipped
    footprint are taken at ±infinity (the tails beyond ``span`` go to the end voxels), so the
    profile sums exactly to 1 whenever the box holds the footprint; a voxel's value does not
    depend on the clipping. Returns ``(lo, hi)``; ``lo > hi`` if empty.
    """
    first = int(math.floor(centre - span + 0.5))
    last = int(math.floor(centre + span + 0.5))
    lo = max(first, lower)
    hi = min(last, upper)
    if lo > hi:
        return lo, hi
    half_scale = scale / sigma
    previous = -1.0 if lo == first else _table_erf((lo - 0.5 - centre) * half_scale, values, slopes)
    for i in range(lo, hi + 1):
        if i == last:
            current = 1.0
        else:
            current = _table_erf((i + 0.5 - centre) * half_scale, values, slopes)
        out[i - lo] = 0.5 * (current - previous)
        previous = current
    return lo, hi


@numba.njit(cache=True, fastmath=True, parallel=True)
def _accumulate_gaussians(
    grid: np.ndarray,
    centres: np.ndarray,
    weights: np.ndarray,
    sigmas: np.ndarray,
    radius: float,
    n_slabs: int,
    erf_values: np.ndarray,
    erf_slopes: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Add the voxel means of isotropic 3D Gaussians to ``grid`` in place.

    Parameters
    ----------
    grid
        ``(nz, ny, nx)`` float32 accumulator.
    centres
        ``(n, 3)`` Gaussian centres in voxel units, ``(x, y, z)``; voxel ``i`` covers
        ``[i - 0.5, i + 0.5)``.
    weights
        ``(n, g)`` integral of each Gaussian divided by the voxel volume (so that the voxel mean
        is ``weight × fraction of the Gaussian inside the voxel``); 0 skips it.
    sigmas
        ``(n, g)`` standard deviation per axis, voxels.
    radius
        Footprint half-width in σ; the tails beyond it are added to the outermost voxels.
    n_slabs
        The box is split into this many z-slabs processed in parallel; each slab visits the atoms
        in their given order and every voxel value is computed the same way whatever the slab,
        so the result does not depend on the number of slabs or threads.
    erf_values, erf_slopes
        The table of :func:`_erf_table`.
    """
    nz, ny, nx = grid.shape
    n_atoms, n_gauss = weights.shape
    reach = np.zeros(n_atoms)
    for atom in range(n_atoms):
        widest = 0.0
        for g in range(n_gauss):
            if weights[atom, g] != 0.0 and sigmas[atom, g] > widest:
                widest = sigmas[atom, g]
        reach[atom] = radius * widest
    longest = int(2.0 * reach.max() + 3.0) if n_atoms > 0 else 1
    inv_sqrt2 = 1.0 / math.sqrt(2.0)
    for slab in numba.prange(n_slabs):
        z_start = slab * nz // n_slabs
        z_stop = (slab + 1) * nz // n_slabs
        local = np.zeros((min(longest, nz), min(longest, ny), min(longest, nx)))
        profile_x = np.empty(min(longest, nx))
        profile_y = np.empty(min(longest, ny))
        profile_z = np.empty(min(longest, nz))
        for atom in range(n_atoms):
            if reach[atom] == 0.0:
                continue
            cx = centres[atom, 0]
            cy = centres[atom, 1]
            cz = centres[atom, 2]
            z_lo = max(int(math.floor(cz - reach[atom] + 0.5)), z_start)
            z_hi = min(int(math.floor(cz + reach[atom] + 0.5)), z_stop - 1)
            if z_lo > z_hi:
                continue
            y_lo = max(int(math.floor(cy - reach[atom] + 0.5)), 0)
            y_hi = min(int(math.floor(cy + reach[atom] + 0.5)), ny - 1)
            x_lo = max(int(math.floor(cx - reach[atom] + 0.5)), 0)
            x_hi = min(int(math.floor(cx + reach[atom] + 0.5)), nx - 1)
            if y_lo > y_hi or x_lo > x_hi:
                continue
            fz = z_hi - z_lo + 1
            fy = y_hi - y_lo + 1
            fx = x_hi - x_lo + 1
            local[:fz, :fy, :fx] = 0.0
            for g in range(n_gauss):
                weight = weights[atom, g]
                if weight == 0.0:
                    continue
                sigma = sigmas[atom, g]
                span = radius * sigma
                gz_lo, gz_hi = _voxel_profile(
                    profile_z, cz, sigma, span, z_lo, z_hi, inv_sqrt2, erf_values, erf_slopes
                )
                if gz_lo > gz_hi:
                    continue
                gy_lo, gy_hi = _voxel_profile(
                    profile_y, cy, sigma, span, 0, ny - 1, inv_sqrt2, erf_values, erf_slopes
                )
                gx_lo, gx_hi = _voxel_profile(
                    profile_x, cx, sigma, span, 0, nx - 1, inv_sqrt2, erf_values, erf_slopes
                )
                if gy_lo > gy_hi or gx_lo > gx_hi:
                    continue
                for k in range(gz_lo, gz_hi + 1):
                    wz = weight * profile_z[k - gz_lo]
                    for j in range(gy_lo, gy_hi + 1):
                        wzy = wz * profile_y[j - gy_lo]
                        row = local[k - z_lo, j - y_lo]
                        for i in range(gx_lo, gx_hi + 1):
                            row[i - x_lo] += wzy * profile_x[i - gx_lo]
            for k in range(fz):
                for j in range(fy):
                    out = grid[z_lo + k, y_lo + j]
                    row = local[k, j]
                    for i in range(fx):
                        out[x_lo + i] += row[i]


_ERF_VALUES, _ERF_SLOPES = _erf_table()


def gaussians_to_grid(
    shape: tuple[int, int, int], centres: np.ndarray, weights: np.ndarray, sigmas: np.ndarray
) -> np.ndarray:
    """Voxel means of Gaussians (see :func:`_accumulate_gaussians`) on a new float32 grid."""
    grid = np.zeros(shape, dtype=np.float32)
    n_slabs = max(1, min(shape[0], 2 * numba.get_num_threads()))  # measured best on 2 cores
    _accumulate_gaussians(
        grid,
        np.ascontiguousarray(centres, dtype=np.float64),
        np.ascontiguousarray(weights, dtype=np.float64),
        np.ascontiguousarray(sigmas, dtype=np.float64),
        FOOTPRINT_SIGMAS,
        n_slabs,
        _ERF_VALUES,
        _ERF_SLOPES,
    )
    return grid
