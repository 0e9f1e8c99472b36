"""Rendering: placed copies and potential boxes -> potential, semantic labels and instances.

This is where labels are made (:func:`render_objects`). Each copy's template is resampled onto the
output grid, rotated and shifted. Templates are oversampled (:data:`TEMPLATE_OVERSAMPLING`:
computed at half the output pixel size) and each output voxel is the mean of ``k x k x k``
trilinear samples spread over its cube, ``k`` = output pixel / template pixel; every copy is then
rescaled so that its potential integral equals the template's exactly.

Labels (same pass): an *object* is a particle, a filament segment (consecutive subunit rows
sharing an instance id, whose potentials are summed before thresholding) or a potential box (a
vesicle). A voxel takes an object's class where that object's own potential exceeds
``label_threshold``; where several objects qualify, the largest own potential wins and
``instances`` holds the winner's id (ties: the earlier object).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numba
import numpy as np

from tomosim.errors import TomosimError
from tomosim.phantom import Placements, PotentialBox
from tomosim.potential import Potential

TEMPLATE_OVERSAMPLING = 2
"""Templates for rendering should be computed at ``pixel_size / TEMPLATE_OVERSAMPLING``."""


def template_pixel_size(pixel_size: float) -> float:
    """Pixel size (Å) at which templates should be computed for rendering at ``pixel_size``."""
    return pixel_size / TEMPLATE_OVERSAMPLING


# Rendering kernels
# --------------------------------------------------------------------------------------------


@numba.njit(cache=True, fastmath=True)
def _trilinear(flat, off, nz, ny, nx, ux, uy, uz):  # pragma: no cover - numba
    """Trilinear sample of a zero-padded template stored flat at ``off``; 0 outside."""
    if ux < 0.0 or uy < 0.0 or uz < 0.0:
        return 0.0
    x0 = int(ux)  # truncation is floor for non-negative values
    y0 = int(uy)
    z0 = int(uz)
    if x0 >= nx - 1 or y0 >= ny - 1 or z0 >= nz - 1:
        return 0.0
    fx0 = float(x0)
    fy0 = float(y0)
    fz0 = float(z0)
    fx = ux - fx0
    fy = uy - fy0
    fz = uz - fz0
    plane = ny * nx
    b = off + (z0 * ny + y0) * nx + x0
    c00 = flat[b] + fx * (flat[b + 1] - flat[b])
    c01 = flat[b + nx] + fx * (flat[b + nx + 1] - flat[b + nx])
    c10 = flat[b + plane] + fx * (flat[b + plane + 1] - flat[b + plane])
    c11 = flat[b + plane + nx] + fx * (flat[b + plane + nx + 1] - flat[b + plane + nx])
    c0 = c00 + fy * (c01 - c00)
    c1 = c10 + fy * (c11 - c10)
    return c0 + fz * (c1 - c0)


@numba.njit(cache=True, fastmath=True, parallel=True)
def _row_ranges(
    t_centre, t_ratio, t_radius, t_lo, t_hi, centres, rotations, template, box_lo, box_shape,
    row_offset, row_x0, row_len, n_tasks,
):  # pragma: no cover - numba
    """The x run of every box row ``(z, y)`` of every copy where the copy can be non-zero.

    A voxel is sampled when its centre lies within ``t_radius`` (output voxels) of the copy centre
    and its template coordinates ``u = centre + q R^T d`` fall in the support box
    ``[t_lo, t_hi]``; along a row ``u`` is linear in x, so the run is an interval. Row ``r`` of
    copy ``i`` is ``row_offset[i] + r``; writes its first x (absolute index) and its length.
    """
    n = centres.shape[0]
    for task in numba.prange(n_tasks):
        for i in range(task, n, n_tasks):
            bz = box_shape[i, 0]
            by = box_shape[i, 1]
            bx = box_shape[i, 2]
            if bz * by * bx == 0:
                continue
            t = template[i]
            q = t_ratio[t]
            radius = t_radius[t]
            rot = rotations[i]
            cx = centres[i, 0]
            cy = centres[i, 1]
            cz = centres[i, 2]
            for zz in range(bz):
                dz = box_lo[i, 0] + zz - cz
                for yy in range(by):
                    dy = box_lo[i, 1] + yy - cy
                    row = row_offset[i] + zz * by + yy
                    row_x0[row] = box_lo[i, 2]
                    row_len[row] = 0
                    rest = radius * radius - dy * dy - dz * dz
                    if rest < 0.0:
                        continue
                    half = math.sqrt(rest)
                    lo = -half
                    hi = half
                    for axis in range(3):  # u_axis(dx) = base + slope * dx within [t_lo, t_hi]
                        base = t_centre[t, axis] + q * (rot[1, axis] * dy + rot[2, axis] * dz)
                        slope = q * rot[0, axis]
                        a = t_lo[t, axis]
                        b = t_hi[t, axis]
                        if abs(slope) < 1e-12:
                            if base < a or base > b:
                                hi = lo - 1.0
                        else:
                            e0 = (a - base) / slope
                            e1 = (b - base) / slope
                            lo = max(lo, min(e0, e1))
                            hi = min(hi, max(e0, e1))
                    if hi < lo:
                        continue
                    xa = max(box_lo[i, 2], int(math.ceil(cx + lo)))
                    xb = min(box_lo[i, 2] + bx - 1, int(math.floor(cx + hi)))
                    if xb >= xa:
                        row_x0[row] = xa
                        row_len[row] = xb - xa + 1


@numba.njit(cache=True, fastmath=True, parallel=True)
def _render_copies(
    flat, t_offset, t_dims, t_centre, t_ratio, t_k, t_target, centres, rotations, template,
    box_lo, box_shape, row_offset, row_x0, row_len, value_offset, values, n_tasks,
):  # pragma: no cover - numba
    """Render each copy's rows (see :func:`_row_ranges`) into ``values``, integral-exact.

    Voxel ``x`` of row ``r`` goes to ``values[value_offset[r] + x - row_x0[r]]``: the mean of
    ``k^3`` trilinear samples of the zero-padded template at the sub-voxel centres. Each copy is
    then scaled so that its values sum to ``t_target`` (the template integral in voxel units).
    """
    n = centres.shape[0]
    for task in numba.prange(n_tasks):
        for i in range(task, n, n_tasks):
            bz = box_shape[i, 0]
            by = box_shape[i, 1]
            if bz * by * box_shape[i, 2] == 0:
                continue
            t = template[i]
            off = t_offset[t]
            nzt = t_dims[t, 0]
            nyt = t_dims[t, 1]
            nxt = t_dims[t, 2]
            q = t_ratio[t]
            k = t_k[t]
            rot = rotations[i]
            # u = centre + q * R^T d: entry (a, b) of R^T is rot[b, a]
            axx = q * rot[0, 0]
            axy = q * rot[1, 0]
            axz = q * rot[2, 0]
            ayx = q * rot[0, 1]
            ayy = q * rot[1, 1]
            ayz = q * rot[2, 1]
            azx = q * rot[0, 2]
            azy = q * rot[1, 2]
            azz = q * rot[2, 2]
            k3 = k * k * k
            sub = np.empty((k3, 3))
            s = 0
            for a in range(k):
                oz = (a + 0.5) / k - 0.5
                for b in range(k):
                    oy = (b + 0.5) / k - 0.5
                    for c in range(k):
                        ox = (c + 0.5) / k - 0.5
                        sub[s, 0] = axx * ox + axy * oy + axz * oz
                        sub[s, 1] = ayx * ox + ayy * oy + ayz * oz
                        sub[s, 2] = azx * ox + azy * oy + azz * oz
                        s += 1
            cx = centres[i, 0]
            cy = centres[i, 1]
            cz = centres[i, 2]
            tcx = t_centre[t, 0]
            tcy = t_centre[t, 1]
            tcz = t_centre[t, 2]
            first_row = row_offset[i]
            total = 0.0
            for zz in range(bz):
                dz = box_lo[i, 0] + zz - cz
                for yy in range(by):
                    row = first_row + zz * by + yy
                    x0 = row_x0[row]
                    dy = box_lo[i, 1] + yy - cy
                    at = value_offset[row]
                    for j in range(row_len[row]):
                        dx = x0 + j - cx
                        ux = tcx + axx * dx + axy * dy + axz * dz
                        uy = tcy + ayx * dx + ayy * dy + ayz * dz
                        uz = tcz + azx * dx + azy * dy + azz * dz
                        acc = 0.0
                        for s in range(k3):
                            acc += _trilinear(
                                flat, off, nzt, nyt, nxt,
                                ux + sub[s, 0], uy + sub[s, 1], uz + sub[s, 2],
                            )
                        v = acc / k3
                        values[at + j] = v
                        total += v
            target = t_target[t]
            if total * target > 0.0 and abs(total) > 1e-12 * abs(target):
                scale = target / total
                for j in range(value_offset[first_row], value_offset[first_row + bz * by]):
                    values[j] = values[j] * scale


@numba.njit(cache=True, fastmath=True)
def _stamp_slab(
    potential, labels, instances, best, values, value_offset, row_offset, row_x0, row_len,
    box_lo, box_shape, obj_start, obj_class, obj_instance, obj_zlo, obj_zhi, threshold, z0, z1,
    best_z0, accum, touched,
):  # pragma: no cover - numba
    """Stamp every object into z planes ``z0..z1-1``; returns ``touched`` (possibly grown).

    ``best[z - best_z0]`` holds the winning object's own potential of plane ``z``.
    """
    nz, ny, nx = potential.shape
    for ob in range(obj_class.shape[0]):
        if obj_zhi[ob] < z0 or obj_zlo[ob] >= z1:
            continue
        r0 = obj_start[ob]
        r1 = obj_start[ob + 1]
        cls = obj_class[ob]
        inst = obj_instance[ob]
        single = r1 - r0 == 1
        n_touched = 0
        for i in range(r0, r1):
            bz = box_shape[i, 0]
            by = box_shape[i, 1]
            if bz * by * box_shape[i, 2] == 0:
                continue
            lz = box_lo[i, 0]
            ly = box_lo[i, 1]
            for z in range(max(z0, lz), min(z1, lz + bz)):
                for y in range(max(0, ly), min(ny, ly + by)):
                    row = row_offset[i] + (z - lz) * by + (y - ly)
                    x0 = row_x0[row]
                    at = value_offset[row] - x0
                    for x in range(max(0, x0), min(nx, x0 + row_len[row])):
                        v = values[at + x]
                        if v == 0.0:
                            continue
                        if single:
                            potential[z, y, x] += v
                            if v > threshold and v > best[z - best_z0, y, x]:
                                best[z - best_z0, y, x] = v
                                labels[z, y, x] = cls
                                instances[z, y, x] = inst
                        else:
                            if accum[z - z0, y, x] == 0.0:
                                if n_touched == touched.shape[0]:
                                    bigger = np.empty(2 * n_touched, np.int64)
                                    bigger[:n_touched] = touched
                                    touched = bigger
                                touched[n_touched] = ((z - z0) * ny + y) * nx + x
                                n_touched += 1
                            accum[z - z0, y, x] += v
        for j in range(n_touched):
            idx = touched[j]
            x = idx % nx
            y = (idx // nx) % ny
            zl = idx // (nx * ny)
            v = accum[zl, y, x]
            if v == 0.0:
                continue  # listed twice (its sum passed through 0), already done
            accum[zl, y, x] = 0.0
            z = z0 + zl
            potential[z, y, x] += v
            if v > threshold and v > best[z - best_z0, y, x]:
                best[z - best_z0, y, x] = v
                labels[z, y, x] = cls
                instances[z, y, x] = inst
    return touched


@numba.njit(cache=True, parallel=True)
def _stamp_objects(
    potential, labels, instances, best, values, value_offset, row_offset, row_x0, row_len,
    box_lo, box_shape, obj_start, obj_class, obj_instance, obj_zlo, obj_zhi, threshold, slab,
    n_tasks,
):  # pragma: no cover - numba
    """Add rendered copies to ``potential`` and apply the label rule, object by object.

    The volume is cut into z slabs of ``slab`` planes; each task owns every ``n_tasks``-th slab and
    walks all objects in order, so each voxel sees the objects in the same order whatever the
    number of threads (byte-identical results). Multi-row objects (filament segments) are summed in
    a slab accumulator first and thresholded as one. ``best`` (the winning own potential) is the
    full volume when several calls share it, or empty: then each task keeps it for its slab only.
    """
    nz, ny, nx = potential.shape
    n_slabs = (nz + slab - 1) // slab
    multi = False
    for ob in range(obj_class.shape[0]):
        if obj_start[ob + 1] - obj_start[ob] > 1:
            multi = True
    local = best.shape[0] != nz
    for task in numba.prange(n_tasks):
        accum = np.zeros((slab if multi else 1, ny, nx), np.float32)
        own_best = np.zeros((slab if local else 1, ny, nx), np.float32)
        touched = np.empty(4096, np.int64)
        for s in range(task, n_slabs, n_tasks):
            z0 = s * slab
            z1 = min(nz, z0 + slab)
            if local:
                own_best[:] = 0.0
                touched = _stamp_slab(
                    potential, labels, instances, own_best, values, value_offset, row_offset,
                    row_x0, row_len, box_lo, box_shape, obj_start, obj_class, obj_instance,
                    obj_zlo, obj_zhi, threshold, z0, z1, z0, accum, touched,
                )
            else:
                touched = _stamp_slab(
                    potential, labels, instances, best, values, value_offset, row_offset,
                    row_x0, row_len, box_lo, box_shape, obj_start, obj_class, obj_instance,
                    obj_zlo, obj_zhi, threshold, z0, z1, 0, accum, touched,
                )


@dataclass(frozen=True)
class _RenderTemplates:
    """Templates packed for the numba kernels (zero-padded by one voxel, flattened)."""

    flat: np.ndarray
    offset: np.ndarray
    dims: np.ndarray
    centre: np.ndarray  # (m, 3) x y z index of the reference point in the padded template
    ratio: np.ndarray  # output pixel / template pixel
    k: np.ndarray  # sub-samples per axis and output voxel
    target: np.ndarray  # template integral in output-voxel units (sum of a rendered copy)
    radius: np.ndarray  # support radius in output voxels (beyond it a copy is exactly 0)
    support_lo: np.ndarray  # (m, 3) x y z padded-template coordinates outside which a
    support_hi: np.ndarray  # sub-sampled output voxel is exactly 0 (support box + margins)


def _extent(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and last index ``(z, y, x)`` of the True voxels of a non-empty mask."""
    first, last = [], []
    for axis in range(3):
        hit = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
        first.append(hit[0])
        last.append(hit[-1])
    return np.array(first, np.float64), np.array(last, np.float64)


def max_squared_distance(mask: np.ndarray, centre_xyz: np.ndarray) -> float:
    """Largest squared distance (voxels²) of a True voxel of ``mask`` from ``centre_xyz``."""
    z, y, x = np.ogrid[: mask.shape[0], : mask.shape[1], : mask.shape[2]]
    squared = (x - centre_xyz[0]) ** 2 + (y - centre_xyz[1]) ** 2 + (z - centre_xyz[2]) ** 2
    return float(np.where(mask, squared, 0).max())


INTERPOLATION_BLUR_VARIANCE = 1.0 / 12.0 + 1.0 / 6.0
"""Per-axis variance (template voxels²) that rendering adds to a template: its own voxel box
(1/12) and trilinear interpolation (1/6, averaged over sub-voxel offsets)."""


def _compensate_interpolation_blur(data: np.ndarray) -> np.ndarray:
    """Pre-sharpen a template so that rendering adds (to first order) no blur.

    Rendering averages trilinear samples of the oversampled template over each output voxel; the
    voxel average is the exact target, but the template's voxels and the trilinear kernel blur it
    further by a variance of :data:`INTERPOLATION_BLUR_VARIANCE` template voxels² per axis. A
    Gaussian blur of variance s² is undone to first order by ``f - (s² / 2) ∇² f``; the discrete
    6-neighbour Laplacian sums to zero, so the integral is unchanged. The result is one voxel
    larger on every side (the Laplacian reaches one voxel beyond the support).
    """
    f = np.pad(np.asarray(data, np.float64), 1)
    laplacian = -6.0 * f
    for axis in range(3):
        laplacian += np.roll(f, 1, axis) + np.roll(f, -1, axis)
    return (f - 0.5 * INTERPOLATION_BLUR_VARIANCE * laplacian).astype(np.float32)


def _pack_templates(templates: Sequence[Potential], pixel_size: float) -> _RenderTemplates:
    parts, offset, dims, centre, ratio, ks, target, radius = [], [], [], [], [], [], [], []
    support_lo, support_hi = [], []
    at = 0
    for template in templates:
        data = np.asarray(template.data, np.float32)
        if data.ndim != 3 or data.size == 0:
            raise TomosimError(
                f"template {template.name!r} is not a 3D potential (shape {data.shape})"
            )
        if not np.all(np.isfinite(data)):
            raise TomosimError(f"template {template.name!r} contains NaN or infinite values")
        t = float(template.pixel_size)
        data = _compensate_interpolation_blur(data)
        padded = np.pad(data, 1)
        parts.append(padded.ravel())
        offset.append(at)
        at += padded.size
        dims.append(padded.shape)
        c = np.array(data.shape[::-1]) // 2  # (x, y, z) index of the reference point
        centre.append(c + 1.0)
        q = pixel_size / t
        ratio.append(q)
        k = max(1, int(round(q))) if abs(q - round(q)) < 1e-6 else max(1, math.ceil(q))
        ks.append(k)
        target.append(float(data.sum(dtype=np.float64)) / q**3)
        nonzero = data != 0
        if nonzero.any():
            reach = math.sqrt(max_squared_distance(nonzero, c)) + math.sqrt(3.0)
            radius.append(reach / q + math.sqrt(3.0) / 2 + 1e-6)
            # trilinear samples are non-zero only for u in (j_min, j_max + 2) (padded
            # coordinates); the sub-samples of a voxel lie within q (k - 1) / (2 k) sqrt(3)
            # template voxels of its centre
            spread = q * (k - 1) / (2 * k) * math.sqrt(3.0) + 1e-6
            first, last = _extent(nonzero)
            support_lo.append(first[::-1] - spread)
            support_hi.append(last[::-1] + 2 + spread)
        else:
            radius.append(0.0)
            support_lo.append(np.zeros(3))
            support_hi.append(np.zeros(3))
    return _RenderTemplates(
        flat=np.concatenate(parts) if parts else np.zeros(1, np.float32),
        offset=np.array(offset, np.int64),
        dims=np.array(dims, np.int64).reshape(-1, 3),
        centre=np.array(centre, np.float64).reshape(-1, 3),
        ratio=np.array(ratio, np.float64),
        k=np.array(ks, np.int64),
        target=np.array(target, np.float64),
        radius=np.array(radius, np.float64),
        support_lo=np.array(support_lo, np.float64).reshape(-1, 3),
        support_hi=np.array(support_hi, np.float64).reshape(-1, 3),
    )


def _object_starts(instance_id: np.ndarray) -> np.ndarray:
    """Start rows of the runs of equal instance ids (+ the end); each run is one object."""
    n = instance_id.shape[0]
    if n == 0:
        return np.zeros(1, np.int64)
    change = np.flatnonzero(instance_id[1:] != instance_id[:-1]) + 1
    starts = np.concatenate([[0], change, [n]]).astype(np.int64)
    run_ids = instance_id[starts[:-1]]
    if np.unique(run_ids).size != run_ids.size:
        raise TomosimError(
            "placements: the rows of one object (same instance id) must be consecutive"
        )
    return starts


def render_objects(
    placements: Placements,
    templates: Mapping[str, Potential],
    *,
    shape: tuple[int, int, int],
    pixel_size: float,
    label_threshold: float,
    boxes: Sequence[PotentialBox] = (),
    batch_voxels: int = 1 << 26,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render every placed copy and box into a volume, with semantic and instance labels.

    Parameters
    ----------
    placements
        Copies to render. Rows sharing an instance id must be consecutive; such a run (a filament
        segment) is one object whose subunit potentials are summed before thresholding.
    templates
        ``{template name: Potential}`` for every name in ``placements.template_names``. A template's
        pixel size may be any fraction of ``pixel_size``; ``pixel_size / 2``
        (:func:`template_pixel_size`) is the intended one. The reference point is the template
        voxel ``shape // 2``.
    shape
        ``(z, y, x)`` output volume in voxels.
    pixel_size
        Output Å per voxel.
    label_threshold
        Volts; a voxel is labelled with an object where the object's own potential exceeds it.
    boxes
        Objects given directly on the output grid (vesicles); rendered before the copies.
    batch_voxels
        Memory bound: copies are rendered in batches whose bounding boxes hold at most this many
        voxels (only the voxels a copy can reach are stored, typically a fifth of that).

    Returns
    -------
    potential, labels, instances
        ``(z, y, x)`` float32 volts; uint8 class ids; uint32 instance ids. Objects are clipped at
        the volume border; each copy carries exactly its template's integral (before clipping).

    Notes
    -----
    Each output voxel of a copy is the mean of ``k^3`` trilinear samples of the template at the
    sub-voxel centres of its cube (``k = round(pixel_size / template pixel size)``), which is the
    voxel average of the rotated template; the copy is then rescaled to the template's integral.
    Where two objects exceed the threshold, the larger own potential wins (ties: the earlier one).

    Memory: the three outputs, plus per batch the rendered voxels of its copies (only the x runs
    of their boxes they can reach); a full-volume float32 of winning potentials is added only when
    the copies need more than one batch.
    """
    dims = tuple(int(s) for s in shape)
    if len(dims) != 3 or min(dims) < 1:
        raise TomosimError(f"render: shape must be three positive sizes (z, y, x), got {dims}")
    shape = (dims[0], dims[1], dims[2])
    if not pixel_size > 0:
        raise TomosimError(f"render: pixel size must be positive, got {pixel_size}")
    if not label_threshold > 0:
        raise TomosimError(f"render: label threshold must be positive, got {label_threshold} V")
    missing = [n for n in placements.template_names if n not in templates]
    if missing:
        raise TomosimError(f"render: no template for {missing}; have {sorted(templates)}")
    classes = np.concatenate(
        [np.asarray(placements.class_id, np.int64), np.array([b.class_id for b in boxes], np.int64)]
    )
    if classes.size and (classes.min() < 0 or classes.max() > 254):
        raise TomosimError("render: class ids must be in 0..254 (uint8 labels, 255 reserved)")
    for box in boxes:
        if np.ndim(box.data) != 3 or len(box.corner) != 3:
            raise TomosimError(f"render: box {box.name!r} needs 3D data and a (z, y, x) corner")
        if not np.all(np.isfinite(box.data)):
            raise TomosimError(f"render: box {box.name!r} contains NaN or infinite values")

    n_tasks = max(1, numba.get_num_threads())
    slab = max(4, math.ceil(shape[0] / (4 * n_tasks)))

    # boxes (vesicles): already on the output grid, every row in full
    box_rows = None
    if boxes:
        box_lo = np.array([b.corner for b in boxes], np.int64).reshape(-1, 3)
        box_shape = np.array([np.asarray(b.data).shape for b in boxes], np.int64).reshape(-1, 3)
        row_counts = box_shape[:, 0] * box_shape[:, 1]
        row_len = np.repeat(box_shape[:, 2], row_counts).astype(np.int32)
        box_rows = _Rows(
            values=np.concatenate([np.asarray(b.data, np.float32).ravel() for b in boxes]),
            value_offset=np.concatenate([[0], np.cumsum(row_len)]).astype(np.int64),
            row_offset=np.concatenate([[0], np.cumsum(row_counts)]).astype(np.int64),
            row_x0=np.repeat(box_lo[:, 2], row_counts).astype(np.int32),
            row_len=row_len,
            box_lo=box_lo,
            box_shape=box_shape,
            obj_start=np.arange(len(boxes) + 1, dtype=np.int64),
            obj_class=np.array([b.class_id for b in boxes], np.int64),
            obj_instance=np.array([b.instance_id for b in boxes], np.int64),
        )

    # copies: the box each can reach, and batches of them that end at object boundaries
    if len(placements):
        copies = _CopyLayout.build(placements, templates, shape=shape, pixel_size=pixel_size)
        batches = copies.batches(batch_voxels)
    else:
        copies, batches = None, []

    potential = np.zeros(shape, np.float32)
    labels = np.zeros(shape, np.uint8)
    instances = np.zeros(shape, np.uint32)
    # the winning own potential per voxel: slab-local inside the kernel when one pass does it all
    best = np.zeros(shape if len(batches) > 1 else (0, 1, 1), np.float32)
    for index, (first, end) in enumerate(batches or [(0, 0)]):
        rows = copies.render(first, end, n_tasks) if copies is not None else None
        if index == 0 and box_rows is not None:  # boxes are the first objects
            rows = box_rows if rows is None else _Rows.join(box_rows, rows)
        if rows is None:
            continue
        empty = rows.box_shape.prod(axis=1) == 0
        lo = np.where(empty, np.iinfo(np.int64).max, rows.box_lo[:, 0])
        hi = np.where(empty, -1, rows.box_lo[:, 0] + rows.box_shape[:, 0] - 1)
        _stamp_objects(
            potential, labels, instances, best, rows.values, rows.value_offset, rows.row_offset,
            rows.row_x0, rows.row_len, rows.box_lo, rows.box_shape, rows.obj_start,
            rows.obj_class, rows.obj_instance, np.minimum.reduceat(lo, rows.obj_start[:-1]),
            np.maximum.reduceat(hi, rows.obj_start[:-1]), np.float32(label_threshold), slab,
            n_tasks,
        )
        del rows
    return potential, labels, instances


@dataclass(frozen=True)
class _Rows:
    """Rendered objects as x runs of box rows (see :func:`_row_ranges`), ready to stamp."""

    values: np.ndarray  # float32 potentials of all runs
    value_offset: np.ndarray  # (rows + 1,) int64 start of each run in ``values``
    row_offset: np.ndarray  # (copies + 1,) int64 first row of each copy
    row_x0: np.ndarray  # (rows,) int32 x index of each run's first voxel
    row_len: np.ndarray  # (rows,) int32 run lengths
    box_lo: np.ndarray  # (copies, 3) int64 z y x box corner
    box_shape: np.ndarray  # (copies, 3) int64 box size (0 = nothing to draw)
    obj_start: np.ndarray  # (objects + 1,) int64 first copy of each object
    obj_class: np.ndarray  # (objects,) int64
    obj_instance: np.ndarray  # (objects,) int64

    @staticmethod
    def join(first: _Rows, second: _Rows) -> _Rows:
        """The objects of ``first`` followed by those of ``second``."""
        return _Rows(
            values=np.concatenate([first.values, second.values]),
            value_offset=np.concatenate(
                [first.value_offset[:-1], second.value_offset + first.value_offset[-1]]
            ),
            row_offset=np.concatenate(
                [first.row_offset[:-1], second.row_offset + first.row_offset[-1]]
            ),
            row_x0=np.concatenate([first.row_x0, second.row_x0]),
            row_len=np.concatenate([first.row_len, second.row_len]),
            box_lo=np.concatenate([first.box_lo, second.box_lo]),
            box_shape=np.concatenate([first.box_shape, second.box_shape]),
            obj_start=np.concatenate(
                [first.obj_start[:-1], second.obj_start + first.obj_start[-1]]
            ),
            obj_class=np.concatenate([first.obj_class, second.obj_class]),
            obj_instance=np.concatenate([first.obj_instance, second.obj_instance]),
        )


@dataclass(frozen=True)
class _CopyLayout:
    """Where each copy of ``placements`` can be non-zero on the output grid, and its objects."""

    packed: _RenderTemplates
    centres: np.ndarray  # (n, 3) x y z output voxels
    rotations: np.ndarray
    template: np.ndarray
    box_lo: np.ndarray  # (n, 3) z y x
    box_shape: np.ndarray  # (n, 3); 0 for copies entirely outside the volume
    starts: np.ndarray  # first row of each object (+ the end)
    class_id: np.ndarray  # per row
    instance_id: np.ndarray  # per row

    @classmethod
    def build(cls, placements, templates, *, shape, pixel_size) -> _CopyLayout:
        packed = _pack_templates([templates[n] for n in placements.template_names], pixel_size)
        template = np.asarray(placements.template, np.int64)
        centres = np.asarray(placements.positions, np.float64) / pixel_size
        rotations = np.ascontiguousarray(placements.rotations, np.float64)
        radius = packed.radius[template]
        # box: the extent of the rotated support box (sub-sample margin included) within the ball
        corners = np.stack(np.meshgrid(*[[0.0, 1.0]] * 3, indexing="ij"), axis=-1).reshape(8, 3)
        low = packed.support_lo[template] - packed.centre[template]  # template voxels, x y z
        span = packed.support_hi[template] - packed.support_lo[template]
        points = (low[:, None, :] + corners[None] * span[:, None, :])
        points /= packed.ratio[template][:, None, None]
        moved = np.einsum("nij,nkj->nki", rotations, points)  # output voxels from the centre
        lo_xyz = np.maximum(
            np.floor(centres - radius[:, None]), np.floor(centres + moved.min(axis=1))
        ).astype(np.int64)
        hi_xyz = np.minimum(
            np.ceil(centres + radius[:, None]), np.ceil(centres + moved.max(axis=1))
        ).astype(np.int64)
        box_lo = np.ascontiguousarray(lo_xyz[:, ::-1])
        box_shape = np.ascontiguousarray(np.maximum(hi_xyz - lo_xyz + 1, 0)[:, ::-1])
        outside = np.any((hi_xyz[:, ::-1] < 0) | (lo_xyz[:, ::-1] >= np.array(shape)), axis=1)
        box_shape[outside | (radius == 0)] = 0
        instance_id = np.asarray(placements.instance_id, np.int64)
        return cls(
            packed=packed, centres=centres, rotations=rotations, template=template,
            box_lo=box_lo, box_shape=box_shape, starts=_object_starts(instance_id),
            class_id=np.asarray(placements.class_id, np.int64), instance_id=instance_id,
        )

    def batches(self, batch_voxels: int) -> list[tuple[int, int]]:
        """``(first object, end object)`` ranges whose boxes hold at most ``batch_voxels``."""
        object_sizes = np.add.reduceat(self.box_shape.prod(axis=1), self.starts[:-1])
        first = [0]
        running = 0
        for index, size in enumerate(object_sizes):
            if running and running + size > batch_voxels:
                first.append(index)
                running = 0
            running += int(size)
        first.append(len(object_sizes))
        return list(zip(first[:-1], first[1:], strict=False))

    def render(self, first: int, end: int, n_tasks: int) -> _Rows:
        """Render the copies of objects ``first..end-1``."""
        part = slice(int(self.starts[first]), int(self.starts[end]))
        packed = self.packed
        centres, rotations, template = self.centres[part], self.rotations[part], self.template[part]
        box_lo, box_shape = self.box_lo[part], self.box_shape[part]
        rows = box_shape[:, 0] * box_shape[:, 1]
        row_offset = np.concatenate([[0], np.cumsum(rows)]).astype(np.int64)
        row_x0 = np.zeros(int(row_offset[-1]), np.int32)
        row_len = np.zeros(int(row_offset[-1]), np.int32)
        _row_ranges(
            packed.centre, packed.ratio, packed.radius, packed.support_lo, packed.support_hi,
            centres, rotations, template, box_lo, box_shape, row_offset, row_x0, row_len, n_tasks,
        )
        value_offset = np.concatenate([[0], np.cumsum(row_len)]).astype(np.int64)
        values = np.empty(int(value_offset[-1]), np.float32)
        _render_copies(
            packed.flat, packed.offset, packed.dims, packed.centre, packed.ratio, packed.k,
            packed.target, centres, rotations, template, box_lo, box_shape, row_offset, row_x0,
            row_len, value_offset, values, n_tasks,
        )
        starts = self.starts[first : end + 1]
        return _Rows(
            values=values, value_offset=value_offset, row_offset=row_offset, row_x0=row_x0,
            row_len=row_len, box_lo=box_lo, box_shape=box_shape, obj_start=starts - starts[0],
            obj_class=self.class_id[starts[:-1]], obj_instance=self.instance_id[starts[:-1]],
        )


# --------------------------------------------------------------------------------------------
# Placement: envelopes, rotated masks, occupancy
