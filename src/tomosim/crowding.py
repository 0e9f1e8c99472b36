"""Crowding: random sequential placement fast enough to reach cellular density.

Cytoplasm holds 30–40 % of its volume in macromolecules. Random sequential placement (each new
particle at a random free position, never moved again) of mixed sizes, largest first, reaches
such fractions, but it needs many candidate positions per particle once the volume is crowded.
This module runs the candidate tests in one compiled loop over a stream of candidates:

- every species keeps a small **bank** of ``BANK_SIZE`` rotated envelope masks (each a fresh
  uniform random orientation and sub-voxel offset). A candidate is a position plus a bank slot;
  when a candidate fits, the particle takes that slot's orientation and the slot is refilled with
  a new orientation, so no two placed particles share an orientation;
- :func:`first_fit_stream` scans candidates in order and returns the first that fits (its
  envelope voxels free, its core inside the ice slab, inside or outside vesicles as asked), or
  gives up after ``patience`` consecutive misses, marking nothing.

The caller (:func:`tomosim.assemble.place_proteins`) draws the candidates from the seeded
generator in blocks whose size depends only on the counts, so results do not depend on timing or
threads. The volume fraction a species reaches is ``placed × envelope volume / slab volume``
(:func:`volume_fraction`); ``tests/test_crowding.py`` checks it against the envelopes rebuilt
independently from the placed rows, and checks that no two envelopes overlap.
"""

from __future__ import annotations

import math

import numba

__all__ = [
    "BANK_SIZE",
    "CANDIDATE_BLOCK",
    "CLUSTER_BLOCK",
    "first_fit_stream",
    "mark_slot",
    "mask_capacity",
    "volume_fraction",
]

BANK_SIZE = 16
"""Rotated masks kept per species; a used one is replaced by a new random orientation."""

CANDIDATE_BLOCK = 4096
"""Candidates drawn from the generator at a time."""

CLUSTER_BLOCK = 64
"""Candidates per block with clustering: a block ends at its first hit, so that the next block
can put candidates next to the particle just placed."""


@numba.njit(cache=True)
def first_fit_stream(
    occupancy, interior, bank_offsets, bank_core, bank_size, bases, slots, start, constraint,
    zlo, zhi, patience,
):  # pragma: no cover - numba
    """Index of the first candidate at or after ``start`` that fits, and the misses before it.

    Parameters
    ----------
    occupancy
        ``(z, y, x)`` bool, taken voxels.
    interior
        ``(z, y, x)`` bool, space enclosed by vesicles (read with ``constraint`` 1 or 2).
    bank_offsets, bank_core, bank_size
        ``(k, m, 3)`` int32 voxel offsets ``(z, y, x)`` of each slot's dilated mask, ``(k, m)``
        bool core flags (inside the undilated envelope), ``(k,)`` used length of each slot.
    bases, slots
        ``(n, 3)`` int64 candidate base voxels ``(z, y, x)`` and ``(n,)`` their bank slots.
    start
        First candidate to test.
    constraint
        0 anywhere, 1 core inside ``interior``, 2 core outside it.
    zlo, zhi
        Core voxels must lie in z planes ``zlo..zhi`` (the ice slab).
    patience
        Give up after this many consecutive misses.

    Returns
    -------
    (index, misses)
        ``index`` of the fitting candidate or -1 (none before the end or patience ran out);
        ``misses`` tested candidates that did not fit.
    """
    nz, ny, nx = occupancy.shape
    misses = 0
    for c in range(start, bases.shape[0]):
        bz = bases[c, 0]
        by = bases[c, 1]
        bx = bases[c, 2]
        if 0 <= bz < nz and 0 <= by < ny and 0 <= bx < nx and occupancy[bz, by, bx]:
            misses += 1
            if misses >= patience:
                return -1, misses
            continue
        s = slots[c]
        ok = True
        for j in range(bank_size[s]):
            z = bz + bank_offsets[s, j, 0]
            y = by + bank_offsets[s, j, 1]
            x = bx + bank_offsets[s, j, 2]
            is_core = bank_core[s, j]
            if is_core and (z < zlo or z > zhi):
                ok = False
                break
            if z < 0 or z >= nz or y < 0 or y >= ny or x < 0 or x >= nx:
                if constraint == 1 and is_core:
                    ok = False
                    break
                continue
            if occupancy[z, y, x]:
                ok = False
                break
            if constraint == 1 and is_core and not interior[z, y, x]:
                ok = False
                break
            if constraint == 2 and is_core and interior[z, y, x]:
                ok = False
                break
        if ok:
            return c, misses
        misses += 1
        if misses >= patience:
            return -1, misses
    return -1, misses


@numba.njit(cache=True)
def mark_slot(occupancy, offsets, core, size, base):  # pragma: no cover - numba
    """Set the core voxels of one bank slot's mask at ``base`` ``(z, y, x)``."""
    nz, ny, nx = occupancy.shape
    for j in range(size):
        if not core[j]:
            continue
        z = base[0] + offsets[j, 0]
        y = base[1] + offsets[j, 1]
        x = base[2] + offsets[j, 2]
        if 0 <= z < nz and 0 <= y < ny and 0 <= x < nx:
            occupancy[z, y, x] = True


def volume_fraction(placed: int, envelope_volume: float, region_volume: float) -> float:
    """Share of a region taken by ``placed`` copies of an envelope (Å³ / Å³).

    Copies sticking out of the volume in x or y count whole, as in the target
    ``volume_fraction × region / envelope volume`` that set how many were asked for.
    """
    if not region_volume > 0:
        return 0.0
    return float(placed) * float(envelope_volume) / float(region_volume)


def mask_capacity(radius_px: float) -> int:
    """Voxels in the cube that bounds a ball of ``radius_px`` (a slot's mask never exceeds it)."""
    reach = int(math.ceil(radius_px))
    return (2 * reach + 1) ** 3
