"""Filament paths: the axes of filaments (straight, worm-like chains, sheets, bundles).

A path is a polyline in sample coordinates (Å, x y z) with a rotation-minimising frame on each
segment (:class:`FilamentPath`). :func:`filament_paths` draws the axes of one species in its
arrangement, keeping every axis ``outer_radius`` inside the volume and clear of occupied voxels;
:mod:`tomosim.filaments` wraps the helical lattice around them.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numba
import numpy as np
from scipy.optimize import brentq
from scipy.spatial import cKDTree

from tomosim.config import FilamentSpecies
from tomosim.errors import TomosimError
from tomosim.filament_lattice import species_outer_radius

DEFAULT_MIN_GAP = 10.0
"""Å of clearance kept between filament surfaces (outer radii) in ``random`` arrangements."""

MAX_ATTEMPTS = 500
"""Placement attempts per filament before it is given up (with a warning)."""

MAX_PATH_STEP = 50.0
"""Å, the longest segment of a curved filament's axis polyline."""


# --------------------------------------------------------------------------------------------
# Paths
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FilamentPath:
    """A filament axis: a polyline with a rotation-minimising frame on each segment.

    Attributes
    ----------
    points
        ``(m + 1, 3)`` float64 node positions ``(x, y, z)`` in Å (sample coordinates).
    frames
        ``(m, 3, 3)`` float64 frame of each segment; columns ``(n, b, t)``: normal, binormal,
        tangent (``t`` points along the segment, ``n × b = t``). Consecutive frames differ by the
        smallest rotation taking one tangent to the next (discrete parallel transport).
    """

    points: np.ndarray
    frames: np.ndarray

    @property
    def arc_lengths(self) -> np.ndarray:
        """``(m + 1,)`` arc length at each node, Å (0 at the first)."""
        steps = np.linalg.norm(np.diff(self.points, axis=0), axis=1)
        return np.concatenate([[0.0], np.cumsum(steps)])

    @property
    def length(self) -> float:
        """Total arc length, Å."""
        return float(self.arc_lengths[-1])

    def at(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Axis points and frames at arc lengths ``s`` (Å, clipped to the path).

        Returns
        -------
        centres
            ``(n, 3)`` points on the axis.
        frames
            ``(n, 3, 3)`` frames of the segments they lie on.
        """
        s = np.clip(np.asarray(s, dtype=np.float64), 0.0, self.length)
        cumulative = self.arc_lengths
        segment = np.clip(np.searchsorted(cumulative, s, side="right") - 1, 0, len(self.frames) - 1)
        frames = self.frames[segment]
        centres = self.points[segment] + (s - cumulative[segment])[:, None] * frames[:, :, 2]
        return centres, frames

    def translated(self, shift: np.ndarray) -> FilamentPath:
        """Return the same path moved by ``shift`` (Å, x y z)."""
        return FilamentPath(self.points + np.asarray(shift, dtype=np.float64), self.frames)


def _perpendicular(direction: np.ndarray) -> np.ndarray:
    """Return a unit vector perpendicular to unit ``direction``."""
    helper = np.eye(3)[int(np.argmin(np.abs(direction)))]
    n = np.cross(direction, helper)
    return n / np.linalg.norm(n)


def straight_path(start: np.ndarray, direction: np.ndarray, length: float) -> FilamentPath:
    """Return a straight axis from ``start`` along ``direction`` (normalised), ``length`` Å."""
    t = np.asarray(direction, dtype=np.float64)
    t = t / np.linalg.norm(t)
    n = _perpendicular(t)
    frame = np.stack([n, np.cross(t, n), t], axis=1)
    start = np.asarray(start, dtype=np.float64)
    return FilamentPath(np.stack([start, start + length * t]), frame[None])


def _vmf_concentration(mean_cosine: float) -> float:
    """Concentration κ of the von Mises–Fisher distribution on S² with ``E[cos θ] = mean_cosine``.

    ``E[cos θ] = coth κ − 1/κ`` (the Langevin function); for κ > 20 it equals ``1 − 1/κ`` to
    double precision.
    """
    if mean_cosine >= 1.0 - 1.0 / 20.0:
        return 1.0 / (1.0 - mean_cosine)
    return float(brentq(lambda k: 1.0 / math.tanh(k) - 1.0 / k - mean_cosine, 1e-9, 25.0))


@numba.njit(cache=True, fastmath=True)
def _grow_chain(
    t0: np.ndarray, n0: np.ndarray, cosines: np.ndarray, azimuths: np.ndarray, step: float
) -> tuple[np.ndarray, np.ndarray]:
    """Polyline nodes and parallel-transported frames from per-node bending angles."""
    m = cosines.shape[0] + 1
    points = np.zeros((m + 1, 3))
    frames = np.zeros((m, 3, 3))
    t = t0.copy()
    n = n0.copy()
    for i in range(m):
        if i > 0:
            b = np.cross(t, n)
            w = cosines[i - 1]
            sw = math.sqrt(max(0.0, 1.0 - w * w))
            ca, sa = math.cos(azimuths[i - 1]), math.sin(azimuths[i - 1])
            t_new = w * t + sw * (ca * n + sa * b)
            t_new /= math.sqrt(t_new[0] ** 2 + t_new[1] ** 2 + t_new[2] ** 2)
            # smallest rotation taking t to t_new, applied to n (discrete parallel transport)
            axis = np.cross(t, t_new)
            s = math.sqrt(axis[0] ** 2 + axis[1] ** 2 + axis[2] ** 2)
            if s > 1e-12:
                axis /= s
                c = t[0] * t_new[0] + t[1] * t_new[1] + t[2] * t_new[2]
                n = n * c + np.cross(axis, n) * s + axis * (axis[0] * n[0] + axis[1] * n[1]
                                                            + axis[2] * n[2]) * (1.0 - c)
            n = n - (n[0] * t_new[0] + n[1] * t_new[1] + n[2] * t_new[2]) * t_new
            n /= math.sqrt(n[0] ** 2 + n[1] ** 2 + n[2] ** 2)
            t = t_new
        b = np.cross(t, n)
        for k in range(3):
            frames[i, k, 0] = n[k]
            frames[i, k, 1] = b[k]
            frames[i, k, 2] = t[k]
            points[i + 1, k] = points[i, k] + step * t[k]
    return points, frames


def path_step(length: float, persistence_length: float) -> float:
    """Segment length used for a worm-like chain: ≤ ``MAX_PATH_STEP`` and ≤ Lp / 100."""
    target = min(MAX_PATH_STEP, max(persistence_length / 100.0, 1.0))
    return length / max(1, math.ceil(length / target))


def worm_like_chain(
    length: float,
    persistence_length: float,
    *,
    rng: np.random.Generator,
    step: float | None = None,
) -> FilamentPath:
    """Grow a worm-like chain from the origin in a uniformly random direction.

    The tangent performs a random walk on the sphere: at every node it is deflected by an angle
    drawn from a von Mises–Fisher distribution with ``E[cos θ] = exp(-step / Lp)`` and a uniform
    azimuth, so the tangent correlation is exactly ``<t(s)·t(0)> = exp(-s / Lp)`` at the nodes
    (the 3D worm-like chain definition of the persistence length, Doi & Edwards 1986).

    Parameters
    ----------
    length
        Arc length, Å.
    persistence_length
        ``Lp``, Å.
    rng
        Random generator.
    step
        Segment length, Å; ``None`` = :func:`path_step`.

    Returns
    -------
    FilamentPath
        Nodes every ``step`` Å starting at the origin, with parallel-transported frames.
    """
    if not (length > 0 and persistence_length > 0):
        raise TomosimError(
            f"worm-like chain needs length > 0 and persistence_length > 0, got {length}, "
            f"{persistence_length}"
        )
    if step is None:
        step = path_step(length, persistence_length)
    n_segments = max(1, int(round(length / step)))
    step = length / n_segments
    t0 = rng.standard_normal(3)
    t0 /= np.linalg.norm(t0)
    n0 = _perpendicular(t0)
    kappa = _vmf_concentration(math.exp(-step / persistence_length))
    u = 1.0 - rng.random(n_segments - 1)  # (0, 1]
    cosines = 1.0 + np.log(u + (1.0 - u) * math.exp(-2.0 * kappa)) / kappa
    azimuths = rng.uniform(0.0, 2.0 * np.pi, n_segments - 1)
    points, frames = _grow_chain(t0, n0, np.clip(cosines, -1.0, 1.0), azimuths, step)
    return FilamentPath(points, frames)


# --------------------------------------------------------------------------------------------
# Geometry helpers: box, chords, distances, occupancy
# --------------------------------------------------------------------------------------------


def _usable_box(
    shape: tuple[int, int, int], pixel_size: float, margin: float
) -> tuple[np.ndarray, np.ndarray]:
    """``(lo, hi)`` ``(x, y, z)`` Å where an axis may run: voxel-centre extent shrunk by margin."""
    extent = (np.asarray(shape[::-1], dtype=np.float64) - 1.0) * pixel_size
    return np.full(3, float(margin)), extent - margin


def _chord(
    point: np.ndarray, direction: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> tuple[float, float]:
    """Parameters ``(t_in, t_out)`` where the line ``point + t·direction`` crosses the box.

    Returns ``(nan, nan)`` when the line misses it (slab method).
    """
    t_in, t_out = -np.inf, np.inf
    for axis in range(3):
        d = direction[axis]
        if abs(d) < 1e-12:
            if point[axis] < lo[axis] - 1e-9 or point[axis] > hi[axis] + 1e-9:
                return math.nan, math.nan
            continue
        a, b = (lo[axis] - point[axis]) / d, (hi[axis] - point[axis]) / d
        t_in, t_out = max(t_in, min(a, b)), min(t_out, max(a, b))
    if t_out < t_in:
        return math.nan, math.nan
    return float(t_in), float(t_out)


@numba.njit(cache=True, fastmath=True)
def _segment_distance(p0: np.ndarray, p1: np.ndarray, q0: np.ndarray, q1: np.ndarray) -> float:
    """Shortest distance between segments ``p0p1`` and ``q0q1`` (closest points by clamping)."""
    d1 = p1 - p0
    d2 = q1 - q0
    r = p0 - q0
    a = d1[0] * d1[0] + d1[1] * d1[1] + d1[2] * d1[2]
    e = d2[0] * d2[0] + d2[1] * d2[1] + d2[2] * d2[2]
    f = d2[0] * r[0] + d2[1] * r[1] + d2[2] * r[2]
    eps = 1e-12
    if a <= eps and e <= eps:
        s = 0.0
        t = 0.0
    elif a <= eps:
        s = 0.0
        t = min(max(f / e, 0.0), 1.0)
    else:
        c = d1[0] * r[0] + d1[1] * r[1] + d1[2] * r[2]
        if e <= eps:
            t = 0.0
            s = min(max(-c / a, 0.0), 1.0)
        else:
            b = d1[0] * d2[0] + d1[1] * d2[1] + d1[2] * d2[2]
            denom = a * e - b * b
            s = min(max((b * f - c * e) / denom, 0.0), 1.0) if denom > eps else 0.0
            t = (b * s + f) / e
            if t < 0.0:
                t = 0.0
                s = min(max(-c / a, 0.0), 1.0)
            elif t > 1.0:
                t = 1.0
                s = min(max((b - c) / a, 0.0), 1.0)
    dx = p0 + d1 * s - (q0 + d2 * t)
    return math.sqrt(dx[0] * dx[0] + dx[1] * dx[1] + dx[2] * dx[2])


@numba.njit(cache=True)
def _pairs_closer_than(
    starts_a: np.ndarray, ends_a: np.ndarray, starts_b: np.ndarray, ends_b: np.ndarray,
    pairs: np.ndarray, limit: float,
) -> bool:
    """Return True if any listed segment pair ``(i in a, j in b)`` is closer than ``limit``."""
    for k in range(pairs.shape[0]):
        i, j = pairs[k, 0], pairs[k, 1]
        if _segment_distance(starts_a[i], ends_a[i], starts_b[j], ends_b[j]) < limit:
            return True
    return False


class _SegmentIndex:
    """Segments of the filaments placed so far, for clearance checks against a new one."""

    def __init__(self) -> None:
        self.starts = np.zeros((0, 3))
        self.ends = np.zeros((0, 3))
        self.longest = 0.0
        self.tree: cKDTree | None = None

    def add(self, path: FilamentPath) -> None:
        self.starts = np.concatenate([self.starts, path.points[:-1]])
        self.ends = np.concatenate([self.ends, path.points[1:]])
        lengths = np.linalg.norm(self.ends - self.starts, axis=1)
        self.longest = float(lengths.max())
        self.tree = cKDTree(0.5 * (self.starts + self.ends))

    def clashes(self, path: FilamentPath, limit: float) -> bool:
        """Return True if ``path`` comes closer than ``limit`` to any stored segment."""
        if self.tree is None:
            return False
        starts, ends = path.points[:-1], path.points[1:]
        longest = max(self.longest, float(np.linalg.norm(ends - starts, axis=1).max()))
        tree = cKDTree(0.5 * (starts + ends))
        hits = tree.query_ball_tree(self.tree, r=limit + longest)
        pairs = [(i, j) for i, row in enumerate(hits) for j in row]
        if not pairs:
            return False
        pair_array = np.asarray(pairs, dtype=np.int64)
        return bool(_pairs_closer_than(starts, ends, self.starts, self.ends, pair_array, limit))


@numba.njit(cache=True)
def _span(centre: float, radius: float, size: int) -> tuple[int, int]:
    """Index range ``[lo, hi)`` of voxel centres within ``radius`` of ``centre`` on an axis."""
    return max(0, int(math.ceil(centre - radius))), min(size, int(math.floor(centre + radius)) + 1)


@numba.njit(cache=True)
def visit_balls(mask: np.ndarray, centres_px: np.ndarray, radius_px: float, mark: bool) -> bool:
    """Visit voxel centres within ``radius_px`` of any centre (x, y, z px).

    Set them in ``mask`` if ``mark``, else return True at the first one already set in ``mask``.
    """
    nz, ny, nx = mask.shape
    r2 = radius_px * radius_px
    for k in range(centres_px.shape[0]):
        cx, cy, cz = centres_px[k, 0], centres_px[k, 1], centres_px[k, 2]
        z0, z1 = _span(cz, radius_px, nz)
        y0, y1 = _span(cy, radius_px, ny)
        x0, x1 = _span(cx, radius_px, nx)
        for z in range(z0, z1):
            for y in range(y0, y1):
                d2 = (z - cz) ** 2 + (y - cy) ** 2
                if d2 > r2:
                    continue
                for x in range(x0, x1):
                    if d2 + (x - cx) ** 2 <= r2:
                        if mark:
                            mask[z, y, x] = True
                        elif mask[z, y, x]:
                            return True
    return False


def _hits_occupancy(
    path: FilamentPath, occupancy: np.ndarray | None, pixel_size: float, radius: float
) -> bool:
    """Return True if the tube of ``radius`` Å around ``path`` has an occupied voxel centre."""
    if occupancy is None:
        return False
    spacing = min(pixel_size, radius / 2.0)
    n = max(2, int(math.ceil(path.length / spacing)) + 1)
    centres, _ = path.at(np.linspace(0.0, path.length, n))
    return bool(visit_balls(occupancy, centres / pixel_size, radius / pixel_size, False))


def subunit_occupancy(
    positions: np.ndarray, *, shape: tuple[int, int, int], pixel_size: float, radius: float
) -> np.ndarray:
    """Boolean ``(z, y, x)`` mask of voxels within ``radius`` Å of any position (x, y, z Å).

    Use it to mark placed filament subunits (``radius`` ≈ subunit size) in the occupancy passed
    to the next species' :func:`place_filaments`.
    """
    mask = np.zeros(shape, dtype=bool)
    visit_balls(mask, np.asarray(positions, dtype=np.float64).reshape(-1, 3) / pixel_size,
                 radius / pixel_size, True)
    return mask


# --------------------------------------------------------------------------------------------
# Arrangements
# --------------------------------------------------------------------------------------------


def _draw_length(
    rng: np.random.Generator, lengths: tuple[float, float], longest: float
) -> float:
    """Uniform length in ``[min, min(max, longest)]``."""
    low, high = float(lengths[0]), min(float(lengths[1]), longest)
    return float(rng.uniform(low, high)) if high > low else low


def _place_on_line(
    point: np.ndarray,
    direction: np.ndarray,
    t_range: tuple[float, float],
    species: FilamentSpecies,
    *, rng: np.random.Generator, occupancy: np.ndarray | None, pixel_size: float, radius: float,
    max_attempts: int,
) -> FilamentPath | None:
    """Place a straight filament on the line ``point + t·direction`` in ``t_range`` (or None)."""
    t_in, t_out = t_range
    length = _draw_length(rng, species.length, t_out - t_in)
    for _ in range(max_attempts):
        t0 = rng.uniform(t_in, t_out - length) if t_out - length > t_in else t_in
        path = straight_path(point + t0 * direction, direction, length)
        if not _hits_occupancy(path, occupancy, pixel_size, radius):
            return path
    return None


def _sheet_paths(
    species: FilamentSpecies, *, lo: np.ndarray, hi: np.ndarray, radius: float, gap: float,
    rng: np.random.Generator, occupancy: np.ndarray | None, pixel_size: float, max_attempts: int,
) -> tuple[list[FilamentPath], int]:
    """Straight filaments in xy planes stacked along z, each plane turned by the angle step."""
    count, per_sheet = species.count, species.filaments_per_sheet
    n_sheets = -(-count // per_sheet)
    z_span = hi[2] - lo[2]
    spacing_z = z_span / n_sheets
    if n_sheets > 1 and spacing_z < 2.0 * radius + gap:
        raise TomosimError(
            f"filament {species.name!r}: {n_sheets} sheets of filaments {2 * radius:.0f} Å thick "
            f"do not fit in the {z_span + 2 * radius:.0f} Å z extent (sheet spacing "
            f"{spacing_z:.0f} Å); lower count or raise filaments_per_sheet"
        )
    theta0 = float(rng.uniform(0.0, 360.0))
    min_length = float(species.length[0])
    paths: list[FilamentPath] = []
    failed = 0
    for sheet in range(n_sheets):
        z = lo[2] + (sheet + 0.5) * spacing_z
        theta = np.deg2rad(theta0 + sheet * species.sheet_angle_step)
        direction = np.array([np.cos(theta), np.sin(theta), 0.0])
        normal = np.array([-np.sin(theta), np.cos(theta), 0.0])
        centre = np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, z])
        half = 0.5 * (abs((hi[0] - lo[0]) * normal[0]) + abs((hi[1] - lo[1]) * normal[1]))
        offsets = np.linspace(-half, half, 1001)
        chords = np.array(
            [np.diff(_chord(centre + o * normal, direction, lo, hi))[0] for o in offsets]
        )
        fits = np.nan_to_num(chords, nan=-1.0) >= min_length - 1e-6
        if not fits.any():
            longest = float(np.nanmax(chords)) if np.isfinite(chords).any() else 0.0
            raise TomosimError(
                f"filament {species.name!r}: min length {min_length:.0f} Å does not fit in a sheet "
                f"at in-plane angle {np.rad2deg(theta) % 360:.1f}° (longest {longest:.0f} Å)"
            )
        o_lo, o_hi = offsets[fits][0], offsets[fits][-1]
        k = min(per_sheet, count - sheet * per_sheet)
        spacing = (o_hi - o_lo) / k
        if k > 1 and spacing < 2.0 * radius + gap:
            most = max(1, int((o_hi - o_lo) // (2.0 * radius + gap)))
            raise TomosimError(
                f"filament {species.name!r}: {k} filaments of min length {min_length:.0f} Å do not "
                f"fit side by side in a sheet at {np.rad2deg(theta) % 360:.1f}° (at most {most})"
            )
        for j in range(k):
            point = centre + (o_lo + (j + 0.5) * spacing) * normal
            t_range = _chord(point, direction, lo, hi)
            path = _place_on_line(
                point, direction, t_range, species, rng=rng, occupancy=occupancy,
                pixel_size=pixel_size, radius=radius + gap, max_attempts=max_attempts,
            )
            if path is None:
                failed += 1
            else:
                paths.append(path)
    return paths, failed


def _hexagonal_offsets(count: int, spacing: float, half_height: float) -> np.ndarray:
    """``(count, 2)`` ``(u, w)`` positions of a hexagonal bundle cross-section, centre first.

    Lattice points ``spacing · (a + b/2, b·√3/2)`` with ``|w| ≤ half_height``, nearest to the
    bundle axis first (ties by angle).
    """
    rows = int(half_height // (spacing * np.sqrt(3) / 2))
    b = np.arange(-rows, rows + 1)
    a = np.arange(-count - rows, count + rows + 1)
    aa, bb = np.meshgrid(a, b, indexing="ij")
    u = spacing * (aa + bb / 2.0)
    w = spacing * bb * np.sqrt(3) / 2.0
    u, w = u.ravel(), w.ravel()
    order = np.lexsort((np.round(np.arctan2(w, u), 9), np.round(np.hypot(u, w), 6)))
    return np.stack([u[order], w[order]], axis=1)[:count]


def _bundle_paths(
    species: FilamentSpecies, *, lo: np.ndarray, hi: np.ndarray, radius: float,
    rng: np.random.Generator, occupancy: np.ndarray | None, pixel_size: float, max_attempts: int,
) -> tuple[list[FilamentPath], int]:
    """One bundle of parallel filaments in hexagonal packing, its axis in the xy plane."""
    spacing = species.bundle_spacing
    if spacing < 2.0 * radius:
        raise TomosimError(
            f"filament {species.name!r}: bundle_spacing {spacing:.0f} Å is smaller than the "
            f"filament diameter {2 * radius:.0f} Å"
        )
    if hi[2] < lo[2]:
        raise TomosimError(
            f"filament {species.name!r}: the volume is thinner than the filament diameter "
            f"{2 * radius:.0f} Å"
        )
    offsets = _hexagonal_offsets(species.count, spacing, (hi[2] - lo[2]) / 2.0)
    theta = float(rng.uniform(0.0, 2.0 * np.pi))
    direction = np.array([np.cos(theta), np.sin(theta), 0.0])
    across = np.array([-np.sin(theta), np.cos(theta), 0.0])
    min_length = float(species.length[0])
    z_low, z_high = lo[2] - offsets[:, 1].min(), hi[2] - offsets[:, 1].max()

    def lines(centre: np.ndarray) -> list[tuple[np.ndarray, tuple[float, float]]]:
        out = []
        for u, w in offsets:
            point = centre + u * across + np.array([0.0, 0.0, w])
            out.append((point, _chord(point, direction, lo, hi)))
        return out

    def fits(candidate: list[tuple[np.ndarray, tuple[float, float]]]) -> bool:
        return all(np.isfinite(t[0]) and t[1] - t[0] >= min_length - 1e-6 for _, t in candidate)

    middle = (lo + hi) / 2.0
    if not fits(lines(middle)):
        raise TomosimError(
            f"filament {species.name!r}: a bundle of {species.count} filaments of min length "
            f"{min_length:.0f} Å at spacing {spacing:.0f} Å does not fit in the volume"
        )
    chosen = lines(middle)
    for _ in range(max_attempts):
        centre = np.array([rng.uniform(lo[0], hi[0]), rng.uniform(lo[1], hi[1]),
                           rng.uniform(z_low, z_high)])
        candidate = lines(centre)
        if fits(candidate):
            chosen = candidate
            break
    paths: list[FilamentPath] = []
    failed = 0
    for point, t_range in chosen:
        path = _place_on_line(
            point, direction, t_range, species, rng=rng, occupancy=occupancy,
            pixel_size=pixel_size, radius=radius, max_attempts=max_attempts,
        )
        if path is None:
            failed += 1
        else:
            paths.append(path)
    return paths, failed


def _random_paths(
    species: FilamentSpecies, *, lo: np.ndarray, hi: np.ndarray, radius: float, gap: float,
    rng: np.random.Generator, occupancy: np.ndarray | None, pixel_size: float, max_attempts: int,
) -> tuple[list[FilamentPath], int]:
    """Worm-like chains at random positions and directions, kept apart and inside the volume."""
    lp = species.persistence_length
    min_length = float(species.length[0])
    # Root-mean-square end-to-end distance of a worm-like chain (Kratky & Porod 1949).
    rms = math.sqrt(2.0 * lp * min_length - 2.0 * lp * lp * (1.0 - math.exp(-min_length / lp)))
    diagonal = float(np.linalg.norm(np.maximum(hi - lo, 0.0)))
    if np.any(hi < lo) or rms > diagonal:
        raise TomosimError(
            f"filament {species.name!r}: min length {min_length:.0f} Å (end-to-end "
            f"≈ {rms:.0f} Å at persistence length {lp:.0f} Å) does not fit in the volume "
            f"(usable diagonal {diagonal:.0f} Å for outer radius {radius:.0f} Å)"
        )
    placed = _SegmentIndex()
    paths: list[FilamentPath] = []
    failed = 0
    for _ in range(species.count):
        length = _draw_length(rng, species.length, math.inf)
        for _attempt in range(max_attempts):
            chain = worm_like_chain(length, lp, rng=rng)
            low, high = lo - chain.points.min(axis=0), hi - chain.points.max(axis=0)
            if np.any(high < low):
                continue
            path = chain.translated(rng.uniform(low, high))
            if placed.clashes(path, 2.0 * radius + gap):
                continue
            if _hits_occupancy(path, occupancy, pixel_size, radius + gap):
                continue
            placed.add(path)
            paths.append(path)
            break
        else:
            failed += 1
    return paths, failed


def filament_paths(
    species: FilamentSpecies,
    *,
    shape: tuple[int, int, int],
    pixel_size: float,
    rng: np.random.Generator,
    occupancy: np.ndarray | None = None,
    min_gap: float = DEFAULT_MIN_GAP,
    max_attempts: int = MAX_ATTEMPTS,
) -> list[FilamentPath]:
    """Axes of ``species.count`` filaments in their arrangement.

    ``sheets``
        Straight filaments in xy planes stacked along z (planes evenly spaced through the usable
        z range, ``filaments_per_sheet`` parallel filaments per plane, evenly spaced across the
        part of the plane where the minimum length fits); plane ``i`` is turned in-plane by
        ``i · sheet_angle_step`` from a random first angle, so every direction relative to the
        tilt axis and the missing wedge is sampled.
    ``random``
        Worm-like chains (:func:`worm_like_chain`) at random positions and directions; a chain
        closer than ``2·outer_radius + min_gap`` (segment to segment) to another is redrawn.
    ``bundle``
        One bundle: parallel straight filaments on a hexagonal lattice of ``bundle_spacing``
        (centre to centre) across a bundle axis in the xy plane at a random angle; all filaments
        point the same way (a unipolar bundle).

    Filament lengths are uniform in ``species.length`` (capped by what fits). Every axis keeps
    ``outer_radius`` from the outermost voxel centres (kept inside, never clipped) and, with
    ``occupancy``, ``outer_radius + min_gap`` (random) or ``outer_radius`` (sheets, bundle) from
    occupied voxels. A filament not placed within ``max_attempts`` is skipped with a warning
    that says how many were placed.

    Parameters
    ----------
    species
        The filament species.
    shape
        ``(z, y, x)`` volume shape, voxels.
    pixel_size
        Å per voxel.
    rng
        Random generator.
    occupancy
        Optional ``(z, y, x)`` bool array of voxels already taken (vesicles, other filaments).
    min_gap
        Extra clearance between filament surfaces, Å.
    max_attempts
        Attempts per filament.

    Returns
    -------
    list of FilamentPath
        In sample coordinates.

    Raises
    ------
    TomosimError
        The minimum length does not fit in the arrangement; sheets or bundle spacing too tight.
    """
    if species.count == 0:
        return []
    if occupancy is not None and tuple(occupancy.shape) != tuple(shape):
        raise TomosimError(
            f"occupancy shape {occupancy.shape} differs from the volume {tuple(shape)}"
        )
    radius = species_outer_radius(species)
    lo, hi = _usable_box(shape, pixel_size, radius)
    if np.any(hi < lo):
        raise TomosimError(
            f"filament {species.name!r}: the volume {tuple(shape)} at {pixel_size} Å/px is smaller "
            f"than the filament diameter {2 * radius:.0f} Å"
        )
    if species.arrangement == "sheets":
        paths, failed = _sheet_paths(
            species, lo=lo, hi=hi, radius=radius, gap=min_gap, rng=rng, occupancy=occupancy,
            pixel_size=pixel_size, max_attempts=max_attempts,
        )
    elif species.arrangement == "bundle":
        paths, failed = _bundle_paths(
            species, lo=lo, hi=hi, radius=radius, rng=rng, occupancy=occupancy,
            pixel_size=pixel_size, max_attempts=max_attempts,
        )
    else:
        paths, failed = _random_paths(
            species, lo=lo, hi=hi, radius=radius, gap=min_gap, rng=rng, occupancy=occupancy,
            pixel_size=pixel_size, max_attempts=max_attempts,
        )
    if failed:
        warnings.warn(
            f"filament {species.name!r}: placed {len(paths)} of {species.count} filaments "
            f"({failed} found no free place in {max_attempts} attempts)",
            stacklevel=2,
        )
    return paths
