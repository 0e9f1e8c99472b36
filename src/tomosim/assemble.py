"""Assemble: pack proteins, filaments and vesicles into a virtual cytoplasm with exact labels.

Positions are ``(x, y, z)`` in Å in *sample coordinates*: measured from the centre of voxel
``[0, 0, 0]`` of the sample volume, so a position ``p`` lies at array index ``p[::-1] / pixel_size``
(CONVENTIONS.md). Rotations are active: a template point at offset ``r`` (Å, ``x y z``) from the
template's reference point (its box centre voxel ``shape // 2``) goes to ``position + R @ r``.

The three steps, in the order :func:`assemble_phantom` runs them:

1. **Placement** (vesicles, then filaments, then proteins). Every placed object marks its voxels in
   a boolean *occupancy* grid on the output grid; :func:`place_proteins` tests each candidate
   against that grid with the voxel mask of the *rotated* template (its envelope, dilated by
   ``min_gap``), so proteins never overlap each other, the filaments or the membranes.
2. **Rendering** (:func:`render_objects`): each copy's template is resampled onto the output grid,
   rotated and shifted. Templates are oversampled (:data:`TEMPLATE_OVERSAMPLING`: computed at half
   the output pixel size) and each output voxel is the mean of ``k x k x k`` trilinear samples
   spread over its cube, ``k`` = output pixel / template pixel; every copy is then rescaled so that
   its potential integral equals the template's exactly.
3. **Labels** (same pass): an *object* is a particle, a filament segment (consecutive subunit rows
   sharing an instance id, whose potentials are summed before thresholding) or a potential box (a
   vesicle). A voxel takes an object's class where that object's own potential exceeds
   ``label_threshold``; where several objects qualify, the largest own potential wins and
   ``instances`` holds the winner's id (ties: the earlier object).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numba
import numpy as np
from scipy import ndimage

from tomosim.config import ProteinsConfig, ProteinSpecies, SimulationConfig
from tomosim.crowding import (
    BANK_SIZE,
    CANDIDATE_BLOCK,
    CLUSTER_BLOCK,
    first_fit_stream,
    mark_mask,
    mask_capacity,
    volume_fraction,
)
from tomosim.errors import TomosimError
from tomosim.membrane_proteins import (
    MembraneProteinSpecies,
    axial_radius,
    place_membrane_proteins,
)
from tomosim.orientations import random_rotations, rotation_about_axis
from tomosim.potential import ICE_POTENTIAL_V, Potential
from tomosim.sample_context import (
    apply_slab,
    carbon_film,
    contamination,
    gold_template,
    slab_surfaces,
)

TEMPLATE_OVERSAMPLING = 2
"""Templates for rendering should be computed at ``pixel_size / TEMPLATE_OVERSAMPLING``."""

ENVELOPE_FRACTION = 0.5
"""The placement envelope of a template is where it exceeds this fraction of ``label_threshold``."""

ATTEMPTS_PER_ORIENTATION = 8
"""Random placement tries this many positions per drawn orientation before drawing a new one."""

GLOBAL_ATTEMPTS_PER_PARTICLE = 50
"""All species together stop after ``50 x (total requested) + 1000`` candidate positions."""

NUMBER_PER_A3_PER_NM = 6.02214076e23 * 1e-9 * 1e-27
"""Copies per Å³ at 1 nmol/L: Avogadro's number x 1e-9 mol/L x 1e-27 L/Å³."""


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Placements:
    """Where every object copy sits: one row per placed particle or filament subunit.

    Attributes
    ----------
    positions
        ``(n, 3)`` float64 sample coordinates ``(x, y, z)`` in Å of each copy's reference point.
    rotations
        ``(n, 3, 3)`` float64 active rotations (CONVENTIONS.md: reference point at offset ``r``
        goes to ``position + R @ r``).
    template
        ``(n,)`` int, index into ``template_names``.
    template_names
        Names of the templates (the species / subunit name), e.g. ``("ribosome", "actin")``.
    class_id
        ``(n,)`` int, label class (0 = background / distractor).
    instance_id
        ``(n,)`` int, object id in ``instances.mrc`` (a particle, or one filament segment).
    filament_id
        ``(n,)`` int, filament number (``-1`` for globular particles).
    segment_id
        ``(n,)`` int, segment number within its filament (``-1`` for particles).
    subunit_index
        ``(n,)`` int, subunit number along its filament (``-1`` for particles).
    """

    positions: np.ndarray
    rotations: np.ndarray
    template: np.ndarray
    template_names: tuple[str, ...]
    class_id: np.ndarray
    instance_id: np.ndarray
    filament_id: np.ndarray
    segment_id: np.ndarray
    subunit_index: np.ndarray

    def __len__(self) -> int:
        return int(self.positions.shape[0])

    @classmethod
    def empty(cls) -> Placements:
        """No rows."""
        none = np.zeros(0, np.int64)
        return cls(
            np.zeros((0, 3)), np.zeros((0, 3, 3)), none, (), none, none, none, none, none
        )

    @classmethod
    def concatenate(cls, parts: Sequence[Placements]) -> Placements:
        """Rows of ``parts`` in order; template names are merged (first use order) and re-indexed.

        Ids (instance, filament, segment) are kept as they are: renumbering is the caller's job.
        """
        parts = [p for p in parts if len(p) > 0]
        if not parts:
            return cls.empty()
        names: list[str] = []
        remapped = []
        for part in parts:
            for name in part.template_names:
                if name not in names:
                    names.append(name)
            lookup = np.array([names.index(n) for n in part.template_names], np.int64)
            remapped.append(lookup[np.asarray(part.template, np.int64)])

        def cat(attribute: str) -> np.ndarray:
            return np.concatenate([np.asarray(getattr(p, attribute), np.int64) for p in parts])

        return cls(
            positions=np.concatenate([np.asarray(p.positions, np.float64) for p in parts]),
            rotations=np.concatenate([np.asarray(p.rotations, np.float64) for p in parts]),
            template=np.concatenate(remapped),
            template_names=tuple(names),
            class_id=cat("class_id"),
            instance_id=cat("instance_id"),
            filament_id=cat("filament_id"),
            segment_id=cat("segment_id"),
            subunit_index=cat("subunit_index"),
        )

    def select(self, rows: np.ndarray) -> Placements:
        """The rows picked by a boolean mask or an index array (template names unchanged)."""
        return Placements(
            positions=np.asarray(self.positions)[rows],
            rotations=np.asarray(self.rotations)[rows],
            template=np.asarray(self.template)[rows],
            template_names=self.template_names,
            class_id=np.asarray(self.class_id)[rows],
            instance_id=np.asarray(self.instance_id)[rows],
            filament_id=np.asarray(self.filament_id)[rows],
            segment_id=np.asarray(self.segment_id)[rows],
            subunit_index=np.asarray(self.subunit_index)[rows],
        )


@dataclass(frozen=True)
class PotentialBox:
    """An object given directly as a potential on a box of the output grid (e.g. a vesicle).

    Attributes
    ----------
    data
        ``(z, y, x)`` float32 potential in volts on the output grid (same pixel size).
    corner
        ``(z, y, x)`` index in the sample volume of ``data[0, 0, 0]``; the box may stick out of the
        volume on any side (it is clipped when rendered).
    class_id
        Label class of the object.
    instance_id
        Object id (``assemble_phantom`` renumbers it).
    name
        What it is, e.g. ``"vesicle"``.
    """

    data: np.ndarray
    corner: tuple[int, int, int]
    class_id: int
    instance_id: int = 0
    name: str = ""


@dataclass(frozen=True)
class SpeciesReport:
    """How many copies of one species were asked for and how many were placed.

    ``volume_fraction`` (proteins only) is the share of the region the species may occupy taken
    by the envelopes of its placed copies: ``placed × envelope volume / region volume``.
    """

    name: str
    kind: str  # "protein", "filament" or "vesicle"
    requested: int
    placed: int
    volume_fraction: float | None = None


@dataclass(frozen=True)
class Phantom:
    """An assembled sample: potential, labels, instances and the list of placed copies.

    Attributes
    ----------
    potential
        ``(z, y, x)`` float32, volts, excess over ice (the ice slab itself is the microscope's).
    labels
        ``(z, y, x)`` uint8 class ids, 0 = background.
    instances
        ``(z, y, x)`` uint32 object ids, 0 = none; ``labels == instance_class[instances]``.
    placements
        One row per particle / filament subunit (vesicles are in ``boxes``).
    class_names
        ``{id: name}`` for every class of the config, ``0: "background"`` included.
    pixel_size
        Å per voxel.
    ice_thickness
        Thickness of the ice slab in Å, centred on voxel ``shape[0] // 2`` along z.
    report
        Requested and placed counts per protein species, filament species and vesicles.
    boxes
        Objects given as potential boxes (vesicles).
    timings
        Wall-clock seconds per stage (``vesicles``, ``filaments``, ``proteins``, ``render``).
    membranes
        The geometry of the membranes (:class:`tomosim.membranes.Vesicle` and
        :class:`tomosim.membranes.Sheet`), in the order of their boxes.
    """

    potential: np.ndarray
    labels: np.ndarray
    instances: np.ndarray
    placements: Placements
    class_names: dict[int, str]
    pixel_size: float
    ice_thickness: float
    report: tuple[SpeciesReport, ...]
    boxes: tuple[PotentialBox, ...] = ()
    timings: dict[str, float] = field(default_factory=dict)
    membranes: tuple[object, ...] = ()

    @property
    def instance_class(self) -> np.ndarray:
        """``(max_id + 1,)`` int64: class id of every instance id (index 0: background)."""
        return instance_class_table(self.placements, self.boxes)


def instance_class_table(placements: Placements, boxes: Sequence[PotentialBox] = ()) -> np.ndarray:
    """``(max_id + 1,)`` int64 array mapping instance id -> class id (0 for unused ids)."""
    ids = np.concatenate(
        [np.asarray(placements.instance_id, np.int64), [b.instance_id for b in boxes]]
    ).astype(np.int64)
    classes = np.concatenate(
        [np.asarray(placements.class_id, np.int64), [b.class_id for b in boxes]]
    ).astype(np.int64)
    table = np.zeros(int(ids.max(initial=0)) + 1, np.int64)
    table[ids] = classes
    return table


def template_pixel_size(pixel_size: float) -> float:
    """Pixel size (Å) at which templates should be computed for rendering at ``pixel_size``."""
    return pixel_size / TEMPLATE_OVERSAMPLING


# --------------------------------------------------------------------------------------------
# Orientations
# --------------------------------------------------------------------------------------------


def sample_orientations(n: int, mode: str, rng: np.random.Generator) -> np.ndarray:
    """``n`` active rotation matrices for an orientation mode.

    Parameters
    ----------
    n
        Number of rotations.
    mode
        ``"random"``: uniform on SO(3) (Haar measure, from uniform unit quaternions; see
        :func:`tomosim.orientations.random_rotations`); ``"fixed"``: the identity (the template as
        given); ``"in_plane"``: a uniform random rotation about the z axis only.
    rng
        Random generator.

    Returns
    -------
    numpy.ndarray
        ``(n, 3, 3)`` float64.
    """
    if mode == "random":
        return random_rotations(n, rng) if n else np.zeros((0, 3, 3))
    if mode == "fixed":
        return np.repeat(np.eye(3)[None], n, axis=0)
    if mode == "in_plane":
        if n == 0:
            return np.zeros((0, 3, 3))
        angles = rng.uniform(0.0, 360.0, n)
        return np.asarray(rotation_about_axis(np.array([0.0, 0.0, 1.0]), angles)).reshape(n, 3, 3)
    raise TomosimError(f"unknown orientation mode {mode!r}; use random, fixed or in_plane")


# --------------------------------------------------------------------------------------------
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


def _max_squared_distance(mask: np.ndarray, centre_xyz: np.ndarray) -> float:
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
            reach = math.sqrt(_max_squared_distance(nonzero, c)) + math.sqrt(3.0)
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
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise TomosimError(f"render: shape must be three positive sizes (z, y, x), got {shape}")
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
        rows = box_shape[:, 0] * box_shape[:, 1]
        row_len = np.repeat(box_shape[:, 2], rows).astype(np.int32)
        box_rows = _Rows(
            values=np.concatenate([np.asarray(b.data, np.float32).ravel() for b in boxes]),
            value_offset=np.concatenate([[0], np.cumsum(row_len)]).astype(np.int64),
            row_offset=np.concatenate([[0], np.cumsum(rows)]).astype(np.int64),
            row_x0=np.repeat(box_lo[:, 2], rows).astype(np.int32),
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
        return list(zip(first[:-1], first[1:]))

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
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Shape:
    """A template's placement envelope: distance (Å) to its envelope on the template grid."""

    distance: np.ndarray  # (z, y, x) float32, 0 inside the envelope
    centre: np.ndarray  # (x, y, z) index of the reference point in ``distance``
    radius: float  # Å: the envelope lies within this distance of the reference point
    volume: float  # Å³ of the envelope


def _template_shape(template: Potential, threshold: float, gap: float) -> _Shape:
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
    radius = (math.sqrt(_max_squared_distance(envelope, centre)) + 1.0) * t
    return _Shape(
        distance=distance,
        centre=centre.astype(np.float64),
        radius=radius,
        volume=float(envelope.sum()) * t**3,
    )


@numba.njit(cache=True, fastmath=True)
def _rotated_mask(distance, centre, ratio, rotation, frac, gap, radius):  # pragma: no cover
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
def _first_fit(
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
def _mark(occupancy, offsets, core, base):  # pragma: no cover - numba
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
        shape = _template_shape(template, envelope_threshold, 0.0)
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
        dst = tuple(slice(int(i), int(j)) for i, j in zip(a, b))
        src = tuple(slice(int(i - l), int(j - l)) for i, j, l in zip(a, b, lo))
        occupancy[dst] |= wall[src]
        if interior is not None:
            enclosed = ndimage.binary_fill_holes(wall) & ~wall
            interior[dst] |= enclosed[src]


# --------------------------------------------------------------------------------------------
# Protein placement
# --------------------------------------------------------------------------------------------


def _ice_slab(
    shape: tuple[int, int, int], pixel_size: float, ice_thickness: float | None
) -> tuple[int, int]:
    """First and last z plane whose voxel centre lies inside the ice slab (centred on nz // 2)."""
    nz = shape[0]
    if ice_thickness is None:
        return 0, nz - 1
    half = 0.5 * ice_thickness / pixel_size
    lo = max(0, math.ceil(nz // 2 - half - 1e-9))
    hi = min(nz - 1, math.floor(nz // 2 + half + 1e-9))
    if hi < lo:
        raise TomosimError(f"sample.ice_thickness {ice_thickness} Å is thinner than one voxel")
    return lo, hi


def _requested_counts(species, shapes, region_volume: Mapping[str, float]) -> list[int]:
    """Copies per species: ``count``, or number concentration x region volume, or volume fraction
    x region volume / envelope volume (rounded)."""
    counts = []
    for s in species:
        region = region_volume[s.name]
        if s.count is not None:
            counts.append(int(s.count))
        elif s.concentration_nm is not None:
            counts.append(int(round(s.concentration_nm * NUMBER_PER_A3_PER_NM * region)))
        else:
            counts.append(int(round(s.volume_fraction * region / shapes[s.name].volume)))
    return counts


def _place_species_stream(
    index, need, budget, species, shapes, masks, accept, rng, *, occupancy, interior,
    interior_index, constraint, shape, zlo, zhi, pixel_size, gap, proteins, placed_centres,
    placed_radii,
) -> int:
    """Random sequential placement of one species from a candidate stream (see crowding).

    Candidates are drawn in blocks of ``CANDIDATE_BLOCK`` (positions uniform in the slab, or
    inside vesicles, or with probability ``clustering`` next to a placed particle), each with a
    slot of the species' bank of rotated masks; the compiled scan returns the first that fits.
    The species stops after ``max_attempts`` consecutive misses. Returns the remaining budget.
    """
    s = species[index]
    sh = shapes[s.name]
    own_radius = sh.radius / pixel_size
    capacity = mask_capacity((sh.radius + gap) / pixel_size + 1.0)
    k = min(BANK_SIZE, need)
    bank_offsets = np.zeros((k, capacity, 3), np.int32)
    bank_core = np.zeros((k, capacity), bool)
    bank_size = np.zeros(k, np.int64)
    bank_rotation = np.zeros((k, 3, 3))
    bank_frac = np.zeros((k, 3))
    z_from = np.zeros(k, np.int64)
    z_to = np.zeros(k, np.int64)
    pool: list[np.ndarray] = []

    def fill(slot: int) -> bool:
        for _ in range(64):  # orientations taller than the slab are drawn again
            if not pool:
                pool.extend(sample_orientations(max(k, 64), s.orientation, rng)[::-1])
            rotation = pool.pop()
            frac = rng.random(3) - 0.5
            offsets, core = masks(index, rotation, frac)
            if not core.any():
                continue
            core_z = offsets[core, 0]
            lo, hi = zlo - int(core_z.min()), zhi - int(core_z.max())
            if lo > hi:
                continue
            m = offsets.shape[0]
            bank_offsets[slot, :m] = offsets
            bank_core[slot, :m] = core
            bank_size[slot] = m
            bank_rotation[slot], bank_frac[slot] = rotation, frac
            z_from[slot], z_to[slot] = lo, hi
            return True
        return False

    if not all(fill(slot) for slot in range(k)):
        return budget  # no orientation fits in the slab
    placed = 0
    misses = 0  # consecutive, across blocks
    while placed < need and budget > 0 and misses < proteins.max_attempts:
        # with clustering, each block ends at its first hit, so the next block's candidates can
        # gather around the particle just placed too
        n = min(CLUSTER_BLOCK if proteins.clustering > 0 else CANDIDATE_BLOCK, budget)
        slots = rng.integers(0, k, n)
        if constraint == 1:
            flat = interior_index[rng.integers(0, interior_index.size, n)]
            bases = np.stack(np.unravel_index(flat, shape), axis=1).astype(np.int64)
        else:
            bases = np.stack(
                [
                    rng.integers(z_from[slots], z_to[slots] + 1),
                    rng.integers(0, shape[1], n),
                    rng.integers(0, shape[2], n),
                ],
                axis=1,
            ).astype(np.int64)
        if proteins.clustering > 0 and placed_centres:
            near = np.flatnonzero(rng.random(n) < proteins.clustering)
            partner = rng.integers(0, len(placed_centres), near.size)
            direction = rng.standard_normal((near.size, 3))
            direction /= np.linalg.norm(direction, axis=1, keepdims=True)
            reach = rng.uniform(0.7, 1.1, near.size)
            centres = np.asarray(placed_centres)[partner]
            contact = np.asarray(placed_radii)[partner] + own_radius + gap / pixel_size
            target = centres + direction * (contact * reach)[:, None] - bank_frac[slots[near]]
            bases[near] = np.floor(target + 0.5)[:, ::-1].astype(np.int64)
        start = 0
        while start < n and placed < need:
            hit, missed = first_fit_stream(
                occupancy, interior, bank_offsets, bank_core, bank_size, bases, slots, start,
                constraint, zlo, zhi, proteins.max_attempts - misses,
            )
            misses += missed
            budget -= missed
            if hit < 0:
                break
            slot = int(slots[hit])
            mark_mask(occupancy, bank_offsets[slot], bank_core[slot], bank_size[slot], bases[hit])
            accept(index, bank_rotation[slot].copy(), bank_frac[slot].copy(), bases[hit], None, None)
            placed += 1
            budget -= 1
            misses = 0
            start = n if proteins.clustering > 0 else hit + 1
            if placed < need and not fill(slot):
                return budget
    return budget


def place_proteins(
    proteins: ProteinsConfig,
    templates: Mapping[str, Potential],
    *,
    shape: tuple[int, int, int],
    pixel_size: float,
    class_ids: Mapping[str, int],
    rng: np.random.Generator,
    label_threshold: float,
    ice_thickness: float | None = None,
    occupancy: np.ndarray | None = None,
    interior: np.ndarray | None = None,
    inside: Sequence[str] = (),
    outside: Sequence[str] = (),
    first_instance_id: int = 1,
) -> tuple[Placements, tuple[SpeciesReport, ...]]:
    """Place globular proteins without overlaps (random or grid), largest species first.

    Parameters
    ----------
    proteins
        The ``proteins`` config section: species (count, ``concentration_nm`` or
        ``volume_fraction``), placement mode, ``grid_spacing``, ``min_gap``, ``clustering``,
        ``max_attempts``.
    templates
        ``{species name: Potential}``.
    shape, pixel_size
        Output volume ``(z, y, x)`` voxels and Å per voxel.
    class_ids
        ``{class name: id}``; a species is labelled ``label or name``; ``"background"`` is 0.
    rng
        Random generator (positions, orientations, species of grid sites).
    label_threshold
        Volts; a template's placement envelope is where it exceeds
        ``ENVELOPE_FRACTION * label_threshold`` (so labelled voxels of two particles never meet).
    ice_thickness
        Å; particles lie entirely within the slab centred on z plane ``nz // 2`` (None: all of z).
        In x and y they may stick out of the volume.
    occupancy
        ``(z, y, x)`` bool of voxels already taken (filaments, membranes); updated in place.
    interior
        ``(z, y, x)`` bool of space enclosed by vesicles (for ``inside`` / ``outside`` species).
    inside, outside
        Species names placed only inside vesicles / never inside.
    first_instance_id
        Instance id of the first placed particle; the others follow.

    Returns
    -------
    placements, report
        One row per particle (filament/segment/subunit ids -1); requested and placed per species.

    Raises
    ------
    TomosimError
        A species without a template, or requested particles whose envelopes add up to more than
        the free volume (they could never fit).

    Warns
    -----
    UserWarning
        When a target is not reached: the species stops after a particle fails ``max_attempts``
        candidate positions (or all species after the global bound of
        ``GLOBAL_ATTEMPTS_PER_PARTICLE`` x requested + 1000 candidates); the warning names how many
        of each species were placed.

    Notes
    -----
    Random placement draws an orientation (``species.orientation``) and a sub-voxel offset, builds
    the voxel mask of the rotated template envelope dilated by ``min_gap``, and tries
    ``ATTEMPTS_PER_ORIENTATION`` uniform positions (or, with probability ``clustering``, positions
    next to an already placed particle) against the occupancy grid before drawing a new
    orientation. Grid placement puts particles on a regular grid of ``grid_spacing`` (default: the
    largest envelope diameter + ``min_gap``) centred in the volume, each site a random species and
    orientation, as in the seed method; sites that collide with filaments or membranes stay empty.
    """
    shape = tuple(int(s) for s in shape)
    species = list(proteins.species)
    missing = [s.name for s in species if s.name not in templates]
    if missing:
        raise TomosimError(f"proteins: no template for species {missing}")
    if occupancy is None:
        occupancy = np.zeros(shape, bool)
    # 0: anywhere, 1: inside vesicles only, 2: outside vesicles only
    constraint_of = {
        s.name: 1 if s.name in inside else 2 if s.name in outside else 0 for s in species
    }
    if interior is None:  # no vesicles: nothing is inside, everything is outside
        interior = np.zeros(shape, bool) if any(v == 1 for v in constraint_of.values()) else None
        constraint_of = {k: (v if v != 2 else 0) for k, v in constraint_of.items()}
    interior_arg = interior if interior is not None else np.zeros((1, 1, 1), bool)
    zlo, zhi = _ice_slab(shape, pixel_size, ice_thickness)
    gap = float(proteins.min_gap)
    envelope_threshold = ENVELOPE_FRACTION * label_threshold
    shapes = {s.name: _template_shape(templates[s.name], envelope_threshold, gap) for s in species}

    voxel = pixel_size**3
    slab_volume = shape[1] * shape[2] * (zhi - zlo + 1) * voxel
    interior_volume = float(interior.sum()) * voxel if interior is not None else 0.0
    free_volume = slab_volume - float(occupancy[zlo : zhi + 1].sum()) * voxel
    region = {
        s.name: interior_volume if constraint_of[s.name] == 1
        else slab_volume - interior_volume if constraint_of[s.name] == 2 else slab_volume
        for s in species
    }
    requested = _requested_counts(species, shapes, region)
    chosen = proteins.species_per_phantom
    if chosen is not None and chosen < len(species):  # a different species list per phantom
        keep = set(rng.choice(len(species), size=chosen, replace=False).tolist())
        requested = [n if i in keep else 0 for i, n in enumerate(requested)]
    need = sum(n * shapes[s.name].volume for n, s in zip(requested, species))
    if need > free_volume:
        raise TomosimError(
            f"proteins: the requested particles need {need / 1e3:.4g} nm³ of envelope but only "
            f"{free_volume / 1e3:.4g} nm³ of the sample is free; lower the counts"
        )
    need_inside = sum(
        n * shapes[s.name].volume for n, s in zip(requested, species) if constraint_of[s.name] == 1
    )
    if need_inside > 0 and need_inside > interior_volume:
        raise TomosimError(
            f"proteins: species inside vesicles need {need_inside / 1e3:.4g} nm³ but the vesicles "
            f"enclose {interior_volume / 1e3:.4g} nm³"
        )

    rows: list[tuple[np.ndarray, np.ndarray, int]] = []  # (position Å x y z, rotation, species)
    placed = [0] * len(species)
    placed_centres: list[np.ndarray] = []  # voxel (x, y, z), for clustering
    placed_radii: list[float] = []

    def masks(index: int, rotation: np.ndarray, frac: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sh = shapes[species[index].name]
        t = templates[species[index].name].pixel_size
        return _rotated_mask(
            sh.distance, sh.centre, pixel_size / t, rotation, frac, gap,
            (sh.radius + gap) / pixel_size + 1.0,
        )

    def accept(index: int, rotation, frac, base, offsets, core) -> None:
        if offsets is not None:
            _mark(occupancy, offsets, core, base)
        centre = base[::-1] + frac  # (x, y, z) voxels
        rows.append((centre * pixel_size, rotation, index))
        placed[index] += 1
        placed_centres.append(centre)
        placed_radii.append(shapes[species[index].name].radius / pixel_size)

    if proteins.placement == "grid":
        largest = max((shapes[s.name].radius for s in species), default=0.0)
        spacing = proteins.grid_spacing or (2 * largest + gap)
        step = spacing / pixel_size
        axes = []
        for lo, hi in ((zlo, zhi), (0, shape[1] - 1), (0, shape[2] - 1)):
            count = max(1, int(math.floor((hi - lo + 1) / step)))
            axes.append(0.5 * (lo + hi) + (np.arange(count) - 0.5 * (count - 1)) * step)
        sites = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)  # z, y, x
        total = sum(requested)
        if total > len(sites):
            share = np.array(requested, float) / total * len(sites)
            allotted = np.floor(share).astype(int)
            for i in np.argsort(-(share - allotted), kind="stable")[: len(sites) - allotted.sum()]:
                allotted[i] += 1
        else:
            allotted = np.array(requested, int)
        kinds = rng.permutation(np.repeat(np.arange(len(species)), allotted))
        chosen = np.sort(rng.choice(len(sites), size=kinds.size, replace=False))
        for site_index, kind in zip(chosen, kinds):
            site = sites[site_index]
            base = np.floor(site + 0.5).astype(np.int64)
            frac = (site - base)[::-1]
            rotation = sample_orientations(1, species[kind].orientation, rng)[0]
            offsets, core = masks(kind, rotation, frac)
            constraint = constraint_of[species[kind].name]
            bases = base[None]
            if _first_fit(occupancy, interior_arg, offsets, core, bases, constraint, zlo, zhi) == 0:
                accept(kind, rotation, frac, base, offsets, core)
    else:
        order = sorted(range(len(species)), key=lambda i: -shapes[species[i].name].volume)
        budget = GLOBAL_ATTEMPTS_PER_PARTICLE * sum(requested) + 1000
        any_inside = any(v == 1 for v in constraint_of.values())
        interior_index = np.flatnonzero(interior) if any_inside else None
        for index in order:
            if requested[index] > 0 and budget > 0:
                budget = _place_species_stream(
                    index, requested[index], budget, species, shapes, masks, accept, rng,
                    occupancy=occupancy, interior=interior_arg, interior_index=interior_index,
                    constraint=constraint_of[species[index].name], shape=shape, zlo=zlo, zhi=zhi,
                    pixel_size=pixel_size, gap=gap, proteins=proteins,
                    placed_centres=placed_centres, placed_radii=placed_radii,
                )

    report = tuple(
        SpeciesReport(
            s.name, "protein", requested[i], placed[i],
            volume_fraction(placed[i], shapes[s.name].volume, region[s.name]),
        )
        for i, s in enumerate(species)
    )
    short = [r for r in report if r.placed < r.requested]
    if short:
        detail = ", ".join(f"{r.name} {r.placed} of {r.requested}" for r in short)
        warnings.warn(
            f"proteins: target not reached ({proteins.placement} placement): placed {detail}; "
            "the sample is too crowded (lower the counts, min_gap or grid_spacing, or enlarge "
            "the volume)",
            stacklevel=2,
        )

    n = len(rows)
    if n == 0:
        return Placements.empty(), report
    kinds = np.array([r[2] for r in rows], np.int64)
    names = tuple(s.name for s in species)
    unknown = [s.label or s.name for s in species if (s.label or s.name) not in class_ids]
    if unknown:
        raise TomosimError(f"proteins: no class id for label(s) {unknown}")
    species_class = [class_ids[s.label or s.name] for s in species]  # "background" -> 0
    classes = np.array([species_class[k] for k in kinds], np.int64)
    minus = np.full(n, -1, np.int64)
    placements = Placements(
        positions=np.array([r[0] for r in rows], np.float64),
        rotations=np.array([r[1] for r in rows], np.float64),
        template=kinds,
        template_names=names,
        class_id=classes,
        instance_id=np.arange(first_instance_id, first_instance_id + n, dtype=np.int64),
        filament_id=minus,
        segment_id=minus.copy(),
        subunit_index=minus.copy(),
    )
    return placements, report


# --------------------------------------------------------------------------------------------
# The whole phantom
# --------------------------------------------------------------------------------------------


def _membrane_protein_placements(
    config: SimulationConfig,
    templates: Mapping[str, Potential],
    membrane_list: list,
    boxes: list[PotentialBox],
    occupancy: np.ndarray,
    *,
    rng: np.random.Generator,
    shape: tuple[int, ...],
    pixel_size: float,
    envelope_threshold: float,
    class_ids: Mapping[str, int],
    first_instance_id: int,
    reports: list[SpeciesReport],
) -> Placements:
    """Place the ``in_membrane`` species (:mod:`tomosim.membrane_proteins`) as particle rows.

    Their envelopes are marked in ``occupancy``, and the membrane potential under them is set
    to 0 in ``boxes`` (the protein displaces the lipid).
    """
    chosen = [sp for sp in config.proteins.species if sp.in_membrane]
    if not chosen:
        return Placements.empty()
    missing = [sp.name for sp in chosen if sp.name not in templates]
    if missing:
        raise TomosimError(f"proteins: no template for membrane species {missing}")
    species = [
        MembraneProteinSpecies(
            sp.name, int(sp.count or 0), np.asarray(sp.membrane_axis, np.float64),
            float(sp.membrane_offset),
            axial_radius(templates[sp.name], np.asarray(sp.membrane_axis, np.float64),
                         envelope_threshold=envelope_threshold),
        )
        for sp in chosen
    ]
    zlo, zhi = _ice_slab(tuple(shape), pixel_size, config.sample.ice_thickness)
    result = place_membrane_proteins(
        species, membrane_list, shape=tuple(shape), pixel_size=pixel_size, rng=rng.spawn(1)[0],
        z_range=(zlo * pixel_size, zhi * pixel_size), min_gap=float(config.proteins.min_gap),
    )
    reports.extend(
        SpeciesReport(sp.name, "membrane protein", sp.count, result.placed[i])
        for i, sp in enumerate(species)
    )
    n = result.positions.shape[0]
    if n == 0:
        return Placements.empty()
    unknown = [sp.label or sp.name for sp in chosen if (sp.label or sp.name) not in class_ids]
    if unknown:
        raise TomosimError(f"proteins: no class id for label(s) {unknown}")
    species_class = np.array([class_ids[sp.label or sp.name] for sp in chosen], np.int64)
    minus = np.full(n, -1, np.int64)
    part = Placements(
        positions=result.positions,
        rotations=result.rotations,
        template=result.species,
        template_names=tuple(sp.name for sp in chosen),
        class_id=species_class[result.species],
        instance_id=np.arange(first_instance_id, first_instance_id + n, dtype=np.int64),
        filament_id=minus,
        segment_id=minus.copy(),
        subunit_index=minus.copy(),
    )
    under = np.zeros(occupancy.shape, bool)
    mark_occupancy(
        under, part, templates, pixel_size=pixel_size, envelope_threshold=envelope_threshold
    )
    for box in boxes:
        lo = np.array(box.corner, np.int64)
        a = np.maximum(lo, 0)
        b = np.minimum(lo + box.data.shape, np.array(occupancy.shape))
        if np.any(b <= a):
            continue
        dst = tuple(slice(int(i), int(j)) for i, j in zip(a, b, strict=True))
        src = tuple(slice(int(i - l), int(j - l)) for i, j, l in zip(a, b, lo, strict=True))
        box.data[src][under[dst]] = 0.0
    occupancy |= under
    return part


def _apply_context(
    config: SimulationConfig,
    potential: np.ndarray,
    labels: np.ndarray,
    instances: np.ndarray,
    placements: Placements,
    thickness: float,
    *,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, Placements, float]:
    """Slab with vacuum outside, carbon and contamination (:mod:`tomosim.sample_context`).

    What lies outside the slab loses its potential and labels; particles whose centre is outside
    are dropped. Returns the new arrays and placements and the slab's mean thickness (Å).
    """
    if config.potential.solvent != "ice":
        raise TomosimError("context.slab needs potential.solvent: ice (vacuum is −V_ice)")
    slab, pixel_size = config.context.slab, float(config.sample.pixel_size)
    ice_v = float(config.potential.ice_potential_v or ICE_POTENTIAL_V)
    surfaces = slab_surfaces(
        potential.shape, pixel_size=pixel_size, thickness=thickness,
        thickness_gradient=slab.thickness_gradient, roughness=slab.roughness,
        roughness_length=slab.roughness_length, curtain_amplitude=slab.curtain_amplitude,
        curtain_period=slab.curtain_period, rng=rng,
    )
    coverage = apply_slab(potential, surfaces, pixel_size=pixel_size, ice_potential_v=ice_v)
    outside = coverage < 0.5
    labels[outside] = 0
    instances[outside] = 0
    if len(placements):
        index = np.clip(np.floor(placements.positions / pixel_size + 0.5).astype(np.int64), 0,
                        np.array(potential.shape[::-1]) - 1)
        keep = ~outside[index[:, 2], index[:, 1], index[:, 0]]
        ids = np.asarray(placements.instance_id)
        gone = np.setdiff1d(ids[~keep], ids[keep])  # objects with no row left inside
        if gone.size:
            lookup = np.zeros(int(instances.max()) + 1, bool)
            lookup[gone[gone <= instances.max()]] = True
            vanished = lookup[instances]
            labels[vanished] = 0
            instances[vanished] = 0
        placements = placements.select(np.flatnonzero(keep))
    carbon = config.context.carbon
    if carbon.enabled:
        carbon_film(potential, surfaces, pixel_size=pixel_size, thickness=carbon.thickness,
                    ice_potential_v=ice_v, texture=carbon.texture, rng=rng)
    dirt = config.context.contamination
    if dirt.count:
        contamination(potential, surfaces, pixel_size=pixel_size, count=dirt.count,
                      size=dirt.size, ice_potential_v=ice_v, rng=rng)
    return potential, labels, instances, placements, float(surfaces.thickness.mean())


def assemble_phantom(
    config: SimulationConfig, templates: Mapping[str, Potential], rng: np.random.Generator
) -> Phantom:
    """Place vesicles, filaments and proteins, render the potential and label every voxel.

    Parameters
    ----------
    config
        The whole simulation config (``sample``, ``proteins``, ``filaments``, ``vesicles``,
        ``classes``).
    templates
        ``{name: Potential}`` for every protein species (by species name) and every filament
        subunit template (by the names :mod:`tomosim.filaments` gives them), computed at
        :func:`template_pixel_size` ``(config.sample.pixel_size)`` (any finer pixel size works).
    rng
        Random generator; the same seed gives byte-identical phantoms.

    Returns
    -------
    Phantom
        Instance ids: vesicles first, then filament segments, then proteins (1, 2, ...). Class ids
        come from ``config.class_ids()`` and never shift when a class places nothing.
    """
    sample = config.sample
    shape = tuple(int(s) for s in sample.shape)
    pixel_size = float(sample.pixel_size)
    ice_thickness = (
        float(sample.ice_thickness) if sample.ice_thickness is not None else shape[0] * pixel_size
    )
    class_ids = config.class_ids()
    if max(class_ids.values()) > 254:
        raise TomosimError(
            f"at most 254 classes fit in uint8 labels; the config has {len(class_ids) - 1}"
        )
    label_threshold = float(sample.label_threshold)
    envelope_threshold = ENVELOPE_FRACTION * label_threshold
    occupancy = np.zeros(shape, bool)
    reports: list[SpeciesReport] = []
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    from tomosim import filaments, membranes  # noqa: PLC0415 - import cycle (they use Placements)

    # 1. vesicles --------------------------------------------------------------------------
    boxes: list[PotentialBox] = []
    interior = None
    vesicles: list[membranes.Vesicle] = []
    sheets: list[membranes.Sheet] = []
    membrane_config = config.vesicles
    if membrane_config.count > 0 or membrane_config.sheets > 0:
        vesicles = membranes.place_vesicles(
            membrane_config, shape=shape, pixel_size=pixel_size, rng=rng
        )
        if membrane_config.sheets > 0:
            sheets = membranes.place_sheets(
                membrane_config.sheets, shape=shape, pixel_size=pixel_size,
                rng=rng.spawn(1)[0], amplitude=membrane_config.sheet_amplitude,
                wavelength=membrane_config.sheet_wavelength,
                max_tilt=membrane_config.sheet_max_tilt,
            )
            vesicles = membranes.vesicles_clear_of_sheets(
                vesicles, sheets, thickness=membrane_config.thickness
            )
        ice_v = 0.0 if config.potential.solvent == "none" else config.potential.ice_potential_v
        vesicle_class = class_ids[membrane_config.label]  # "background" -> 0
        for vesicle in vesicles:
            box = membranes.vesicle_potential(
                vesicle, pixel_size=pixel_size, shape=shape, thickness=membrane_config.thickness,
                ice_potential_v=ice_v,
            )
            boxes.append(
                PotentialBox(box.data, tuple(box.corner), vesicle_class, len(boxes) + 1, "vesicle")
            )
        for sheet in sheets:
            box = membranes.sheet_potential(
                sheet, pixel_size=pixel_size, shape=shape, thickness=membrane_config.thickness,
                ice_potential_v=ice_v,
            )
            boxes.append(
                PotentialBox(box.data, tuple(box.corner), vesicle_class, len(boxes) + 1, "sheet")
            )
        mark_boxes(occupancy, boxes, envelope_threshold=envelope_threshold)
        if vesicles:
            interior = membranes.inside_mask(
                vesicles, shape=shape, pixel_size=pixel_size, margin=membrane_config.thickness / 2
            )
        if membrane_config.count > 0:
            reports.append(
                SpeciesReport("vesicles", "vesicle", membrane_config.count, len(vesicles))
            )
        if membrane_config.sheets > 0:
            reports.append(SpeciesReport("sheets", "sheet", membrane_config.sheets, len(sheets)))
    next_instance = len(boxes) + 1

    # 1b. membrane proteins, set into the bilayers along the normal ------------------------
    membrane_part = _membrane_protein_placements(
        config, templates, vesicles + sheets, boxes, occupancy, rng=rng, shape=shape,
        pixel_size=pixel_size, envelope_threshold=envelope_threshold, class_ids=class_ids,
        first_instance_id=next_instance, reports=reports,
    )
    if len(membrane_part):
        next_instance = int(membrane_part.instance_id.max()) + 1
    timings["vesicles"] = time.perf_counter() - clock
    clock = time.perf_counter()

    # 2. filaments -------------------------------------------------------------------------
    filament_parts: list[Placements] = []
    next_filament = 0
    for species in config.filaments:
        needed = [n for n in filaments.filament_templates(species) if n not in templates]
        if species.count and needed:
            raise TomosimError(f"filament {species.name!r}: no template for {needed}")
        part = filaments.place_filaments(
            species, shape=shape, pixel_size=pixel_size, rng=rng, class_ids=class_ids,
            first_instance_id=next_instance, first_filament_id=next_filament, occupancy=occupancy,
        )
        if len(part):
            next_instance = int(part.instance_id.max()) + 1
            next_filament = int(part.filament_id.max()) + 1
            # subunit envelopes at half the protein level: up to four overlapping subunits
            # outside their envelopes stay below the label threshold together
            mark_occupancy(
                occupancy, part, templates, pixel_size=pixel_size,
                envelope_threshold=0.5 * envelope_threshold,
            )
            filament_parts.append(part)
        placed = int(np.unique(part.filament_id).size) if len(part) else 0
        reports.append(SpeciesReport(species.name, "filament", species.count, placed))
    timings["filaments"] = time.perf_counter() - clock
    clock = time.perf_counter()

    # 3. proteins --------------------------------------------------------------------------
    soluble_species = [sp for sp in config.proteins.species if not sp.in_membrane]
    context = config.context
    placement_thickness = sample.ice_thickness
    if context.slab.enabled:
        slab_thickness = context.slab.thickness or sample.ice_thickness or 0.8 * shape[0] * pixel_size
        placement_thickness = slab_thickness
    if context.fiducials.count:  # gold beads: particles of their own class
        gold = context.fiducials.label
        templates = {**templates, gold: gold_template(
            context.fiducials.radius, template_pixel_size(pixel_size),
            ice_potential_v=config.potential.ice_potential_v or ICE_POTENTIAL_V,
        )}
        soluble_species.append(ProteinSpecies(
            name=gold, source="analytic:gold", count=context.fiducials.count, label=gold
        ))
    soluble = config.proteins.model_copy(update={"species": soluble_species})
    proteins, protein_report = place_proteins(
        soluble, templates, shape=shape, pixel_size=pixel_size, class_ids=class_ids,
        rng=rng, label_threshold=label_threshold, ice_thickness=placement_thickness,
        occupancy=occupancy, interior=interior, inside=config.vesicles.proteins_inside,
        outside=config.vesicles.proteins_outside, first_instance_id=next_instance,
    )
    reports += protein_report
    del occupancy, interior
    timings["proteins"] = time.perf_counter() - clock
    clock = time.perf_counter()

    placements = Placements.concatenate([membrane_part, *filament_parts, proteins])
    potential, labels, instances = render_objects(
        placements, templates, shape=shape, pixel_size=pixel_size,
        label_threshold=label_threshold, boxes=boxes,
    )
    timings["render"] = time.perf_counter() - clock
    if context.slab.enabled:
        clock = time.perf_counter()
        potential, labels, instances, placements, ice_thickness = _apply_context(
            config, potential, labels, instances, placements, slab_thickness,
            rng=rng.spawn(1)[0],
        )
        timings["context"] = time.perf_counter() - clock
    return Phantom(
        potential=potential,
        labels=labels,
        instances=instances,
        placements=placements,
        class_names={i: name for name, i in class_ids.items()},
        pixel_size=pixel_size,
        ice_thickness=ice_thickness,
        report=tuple(reports),
        boxes=tuple(boxes),
        timings=timings,
        membranes=(*vesicles, *sheets),
    )
