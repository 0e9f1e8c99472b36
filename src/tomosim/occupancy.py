"""Occupancy: placement envelopes of templates, their rotated voxel masks and the occupancy grid.

Every placed object marks its voxels in a boolean *occupancy* grid on the output grid (vesicle
membranes with :func:`mark_boxes`, filament subunits with :func:`mark_occupancy`, proteins as
:mod:`tomosim.packing` places them), so that objects placed later never overlap them. A template's
*envelope* is where its potential exceeds :data:`ENVELOPE_FRACTION` of the label threshold.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numba
import numpy as np
from scipy import ndimage

from tomosim.errors import TomosimError
from tomosim.phantom import Placements, PotentialBox
from tomosim.potential import Potential
from tomosim.rendering import max_squared_distance

ENVELOPE_FRACTION = 0.5
"""The placement envelope of a template is where it exceeds this fraction of ``label_threshold``."""


@dataclass(frozen=True)
class EnvelopeShape:
    """A template's placement envelope: distance (Å) to its envelope on the template grid."""

    distance: np.ndarray  # (z, y, x) float32, 0 inside the envelope
    centre: np.ndarray  # (x, y, z) index of the reference point in ``distance``
    radius: float  # Å: the envelope lies within this distance of the reference point
    volume: float  # Å³ of the envelope


def template_envelope(template: Potential, threshold: float, gap: float) -> EnvelopeShape:
    """The envelope of ``template`` (where it exceeds ``threshold`` V) as a distance map.

    The distance (Å) to the envelope is computed on the template grid, padded to hold a dilation
    by ``gap`` Å. A template that never exceeds ``threshold`` uses half its maximum (warned).
    """
    data = np.asarray(template.data, np.float32)
    t = float(template.pixel_size)
    level = threshold
    if not (data > level).any():
        level = 0.5 * float(data.max())
        if level <= 0:
            raise TomosimError(f"template {template.name!r} has no positive potential to place")
        warnings.warn(
            f"template {template.name!r} never exceeds the envelope threshold {threshold:.3g} V "
            f"(max {data.max():.3g} V); using half its maximum for its placement envelope",
            stacklevel=3,
        )
    envelope = data > level
    pad = int(math.ceil(gap / t)) + 2
    envelope = np.pad(envelope, pad)
    distance = (ndimage.distance_transform_edt(~envelope) * t).astype(np.float32)
    centre = np.array(data.shape[::-1]) // 2 + pad
    radius = (math.sqrt(max_squared_distance(envelope, centre)) + 1.0) * t
    return EnvelopeShape(
        distance=distance,
        centre=centre.astype(np.float64),
        radius=radius,
        volume=float(envelope.sum()) * t**3,
    )


@numba.njit(cache=True, fastmath=True)
def rotated_mask(distance, centre, ratio, rotation, frac, gap, radius):  # pragma: no cover
    """Output-grid voxels of a rotated envelope dilated by ``gap``.

    Returns ``(offsets (m, 3) int64 (z, y, x) relative to the base voxel, core (m,) bool)`` where
    the copy's reference point sits at ``base + frac`` (``frac`` in ``x y z`` voxels) and ``core``
    marks voxels inside the undilated envelope. Nearest-neighbour lookup at each voxel centre.
    """
    nzt, nyt, nxt = distance.shape
    reach = int(math.ceil(radius))
    n = 2 * reach + 1
    offsets = np.empty((n * n * n, 3), np.int64)
    core = np.empty(n * n * n, np.bool_)
    m = 0
    for oz in range(-reach, reach + 1):
        dz = oz - frac[2]
        for oy in range(-reach, reach + 1):
            dy = oy - frac[1]
            for ox in range(-reach, reach + 1):
                dx = ox - frac[0]
                if dx * dx + dy * dy + dz * dz > radius * radius:
                    continue
                r = rotation
                ux = centre[0] + ratio * (r[0, 0] * dx + r[1, 0] * dy + r[2, 0] * dz)
                uy = centre[1] + ratio * (r[0, 1] * dx + r[1, 1] * dy + r[2, 1] * dz)
                uz = centre[2] + ratio * (r[0, 2] * dx + r[1, 2] * dy + r[2, 2] * dz)
                ix = int(math.floor(ux + 0.5))
                iy = int(math.floor(uy + 0.5))
                iz = int(math.floor(uz + 0.5))
                if ix < 0 or iy < 0 or iz < 0 or ix >= nxt or iy >= nyt or iz >= nzt:
                    continue
                value = distance[iz, iy, ix]
                if value <= gap:
                    offsets[m, 0] = oz
                    offsets[m, 1] = oy
                    offsets[m, 2] = ox
                    core[m] = value <= 0.0
                    m += 1
    return offsets[:m].copy(), core[:m].copy()


@numba.njit(cache=True)
def first_fit_kernel(
    occupancy, interior, offsets, core, bases, constraint, zlo, zhi
):  # pragma: no cover - numba
    """Index of the first candidate base ``(z, y, x)`` where the mask fits, or -1.

    A mask fits when none of its voxels inside the volume is occupied, its core voxels lie within
    z planes ``zlo..zhi``, and (``constraint`` 1) all core voxels are in ``interior`` or
    (``constraint`` 2) none is. Voxels outside the volume in x and y are free.
    """
    nz, ny, nx = occupancy.shape
    for c in range(bases.shape[0]):
        bz = bases[c, 0]
        by = bases[c, 1]
        bx = bases[c, 2]
        if 0 <= bz < nz and 0 <= by < ny and 0 <= bx < nx and occupancy[bz, by, bx]:
            continue
        ok = True
        for j in range(offsets.shape[0]):
            z = bz + offsets[j, 0]
            y = by + offsets[j, 1]
            x = bx + offsets[j, 2]
            if core[j] and (z < zlo or z > zhi):
                ok = False
                break
            if z < 0 or z >= nz or y < 0 or y >= ny or x < 0 or x >= nx:
                if constraint == 1 and core[j]:
                    ok = False
                    break
                continue
            if occupancy[z, y, x]:
                ok = False
                break
            if constraint == 1 and core[j] and not interior[z, y, x]:
                ok = False
                break
            if constraint == 2 and core[j] and interior[z, y, x]:
                ok = False
                break
        if ok:
            return c
    return -1


@numba.njit(cache=True)
def mark_mask(occupancy, offsets, core, base):  # pragma: no cover - numba
    """Set the core voxels of a mask at ``base`` ``(z, y, x)`` in ``occupancy``."""
    nz, ny, nx = occupancy.shape
    for j in range(offsets.shape[0]):
        if not core[j]:
            continue
        z = base[0] + offsets[j, 0]
        y = base[1] + offsets[j, 1]
        x = base[2] + offsets[j, 2]
        if 0 <= z < nz and 0 <= y < ny and 0 <= x < nx:
            occupancy[z, y, x] = True


@numba.njit(cache=True, parallel=True)
def _mark_envelopes(
    occupancy, flat, t_offset, t_dims, t_centre, t_ratio, t_radius, centres, rotations, template,
    n_tasks,
):  # pragma: no cover - numba
    """Set the voxels whose centres fall in each rotated copy's envelope (nearest neighbour).

    ``flat`` holds the envelope masks (uint8) of the templates; concurrent tasks only ever write
    True, so the result does not depend on the order.
    """
    nz, ny, nx = occupancy.shape
    n = centres.shape[0]
    for task in numba.prange(n_tasks):
        for i in range(task, n, n_tasks):
            t = template[i]
            off = t_offset[t]
            nzt = t_dims[t, 0]
            nyt = t_dims[t, 1]
            nxt = t_dims[t, 2]
            q = t_ratio[t]
            radius = t_radius[t]
            rot = rotations[i]
            cx = centres[i, 0]
            cy = centres[i, 1]
            cz = centres[i, 2]
            z0 = max(0, int(math.ceil(cz - radius)))
            z1 = min(nz, int(math.floor(cz + radius)) + 1)
            y0 = max(0, int(math.ceil(cy - radius)))
            y1 = min(ny, int(math.floor(cy + radius)) + 1)
            x0 = max(0, int(math.ceil(cx - radius)))
            x1 = min(nx, int(math.floor(cx + radius)) + 1)
            for z in range(z0, z1):
                dz = z - cz
                for y in range(y0, y1):
                    dy = y - cy
                    for x in range(x0, x1):
                        dx = x - cx
                        ux = t_centre[t, 0] + q * (rot[0, 0] * dx + rot[1, 0] * dy + rot[2, 0] * dz)
                        uy = t_centre[t, 1] + q * (rot[0, 1] * dx + rot[1, 1] * dy + rot[2, 1] * dz)
                        uz = t_centre[t, 2] + q * (rot[0, 2] * dx + rot[1, 2] * dy + rot[2, 2] * dz)
                        ix = int(math.floor(ux + 0.5))
                        iy = int(math.floor(uy + 0.5))
                        iz = int(math.floor(uz + 0.5))
                        if ix < 0 or iy < 0 or iz < 0 or ix >= nxt or iy >= nyt or iz >= nzt:
                            continue
                        if flat[off + (iz * nyt + iy) * nxt + ix]:
                            occupancy[z, y, x] = True


def mark_occupancy(
    occupancy: np.ndarray,
    placements: Placements,
    templates: Mapping[str, Potential],
    *,
    pixel_size: float,
    envelope_threshold: float,
) -> None:
    """Mark the envelopes of placed copies (e.g. filament subunits) in ``occupancy``, in place.

    Parameters
    ----------
    occupancy
        ``(z, y, x)`` bool on the output grid.
    placements, templates
        As for :func:`render_objects`.
    pixel_size
        Å per output voxel.
    envelope_threshold
        Volts; a template's envelope is where it exceeds this. Voxels whose centre falls inside a
        copy's rotated envelope are set (copies are clipped at the volume border).
    """
    if len(placements) == 0:
        return
    parts, offset, dims, centre, ratio, radius = [], [], [], [], [], []
    at = 0
    for name in placements.template_names:
        template = templates[name]
        shape = template_envelope(template, envelope_threshold, 0.0)
        envelope = (shape.distance <= 0).astype(np.uint8)
        parts.append(envelope.ravel())
        offset.append(at)
        at += envelope.size
        dims.append(envelope.shape)
        centre.append(shape.centre)
        ratio.append(pixel_size / template.pixel_size)
        radius.append(shape.radius / pixel_size + 1.0)
    _mark_envelopes(
        occupancy, np.concatenate(parts), np.array(offset, np.int64), np.array(dims, np.int64),
        np.array(centre, np.float64), np.array(ratio, np.float64), np.array(radius, np.float64),
        np.asarray(placements.positions, np.float64) / pixel_size,
        np.ascontiguousarray(placements.rotations, np.float64),
        np.asarray(placements.template, np.int64), max(1, numba.get_num_threads()),
    )


def mark_boxes(
    occupancy: np.ndarray,
    boxes: Sequence[PotentialBox],
    *,
    envelope_threshold: float,
    interior: np.ndarray | None = None,
) -> None:
    """Mark potential boxes (vesicles) in ``occupancy`` and their enclosed space in ``interior``.

    ``occupancy`` gets the voxels where a box exceeds ``envelope_threshold`` (the membrane);
    ``interior`` (optional, bool like ``occupancy``) gets the space the membrane encloses
    (holes filled, membrane excluded). Both are updated in place; boxes are clipped.
    """
    shape = np.array(occupancy.shape)
    for box in boxes:
        data = np.asarray(box.data)
        wall = data > envelope_threshold
        lo = np.array(box.corner, np.int64)
        a = np.maximum(lo, 0)
        b = np.minimum(lo + data.shape, shape)
        if np.any(b <= a):
            continue
        dst = tuple(slice(int(i), int(j)) for i, j in zip(a, b, strict=False))
        src = tuple(slice(int(i - c), int(j - c)) for i, j, c in zip(a, b, lo, strict=False))
        occupancy[dst] |= wall[src]
        if interior is not None:
            enclosed = ndimage.binary_fill_holes(wall) & ~wall
            interior[dst] |= enclosed[src]
