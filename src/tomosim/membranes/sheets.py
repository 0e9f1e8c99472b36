"""Membrane sheets: flat or curved bilayers crossing the volume (ER, nuclear envelope).

See :mod:`tomosim.membranes.bilayer` for the bilayer profile, the anti-aliasing and the label rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np
from scipy.spatial.transform import Rotation

from tomosim.errors import TomosimError
from tomosim.membranes.bilayer import (
    HEAD_SIGMA,
    PROFILE_REACH_SIGMAS,
    LocalBox,
    membrane_profile,
)
from tomosim.membranes.vesicles import (
    Vesicle,
)


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
