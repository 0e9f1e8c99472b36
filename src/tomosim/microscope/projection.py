"""Projection: line integrals of the potential along the tilted beam (V·Å).

Geometry (CONVENTIONS.md, "Microscope geometry"): the beam travels along −z; the tilt axis is the
volume's y axis; a tilt by ``+θ`` sends a point ``(x, y, z)`` (relative to the box centre voxel
``shape // 2``) to image column ``u = x cos θ + z sin θ`` (relative to the image centre column
``nx // 2``) and the same row ``y``. The detector image has the volume's ``(y, x)`` size; what
projects outside it is lost (the field of view). The image is then rotated by the in-plane
tilt-axis angle (counter-clockwise) and shifted.

Each y slice of the volume is an independent 2D problem, so the numba kernel runs over y rows in
parallel. It is voxel-driven and mass-conserving, in two steps per y slice and tilt: each z row
is shifted by ``z tan θ`` with linear weights and summed into a sheared row (a contiguous,
vectorised loop; the shear ``x' = x + z tan θ``), then the sheared row is compressed by ``cos θ``
onto the detector (``u = x' cos θ``), each sample, ``cos θ`` pixels wide, split between the
pixels it overlaps (the distance-driven scheme of De Man & Basu 2004, *Phys. Med. Biol.* 49,
2463, which unlike linear splatting leaves no moiré at non-integer spacings). The integral is kept
exactly; positions to a small fraction of a pixel (< 0.01 pixel for smooth content, < 0.1 for a
single voxel). The price is a slight blur at nonzero tilt (an added variance of 0.15–0.35
pixel²; none at 0°, where the image is exactly the z sum).
"""

from __future__ import annotations

import numba
import numpy as np
import scipy.ndimage

from tomosim.errors import TomosimError

__all__ = ["ice_projection", "project_volume", "rotate_and_shift"]


@numba.njit(parallel=True, fastmath=True, cache=True)
def _shear_project_rows(
    volume: np.ndarray,
    cosines: np.ndarray,
    sines: np.ndarray,
    z_start: int,
    z_stop: int,
    out: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Accumulate ``volume[z_start:z_stop]`` into ``out[t, y, u]`` (voxel units, no scaling).

    Per y slice and tilt, ``u = x cos θ + z sin θ`` is done in two mass-conserving steps: each
    z row is shifted by ``z tan θ`` (linear interpolation) and summed into a sheared row ``g``
    (contiguous, vectorised), then ``g`` is compressed by ``cos θ`` onto the detector row, each
    sample (width ``cos θ``) split between pixels by overlap.
    """
    nz, ny, nx = volume.shape
    n_tilts = out.shape[0]
    n_u = out.shape[2]
    centre_z = nz // 2
    centre_x = nx // 2
    centre_u = n_u // 2
    max_shift = 0
    for t in range(n_tilts):
        shift = int(np.ceil(nz * abs(sines[t] / cosines[t]))) + 2
        max_shift = max(max_shift, shift)
    length = nx + 2 * max_shift + 2
    for y in numba.prange(ny):
        sheared = np.empty(length, dtype=np.float32)
        for t in range(n_tilts):
            c = cosines[t]
            tangent = sines[t] / c
            offset = centre_x + max_shift  # g index of x' = 0
            sheared[:] = 0.0
            for z in range(z_start, z_stop):
                position = offset - centre_x + (z - centre_z) * tangent  # g index of voxel x = 0
                first = int(np.floor(position))
                f = np.float32(position - first)
                g = np.float32(1.0) - f
                voxels = volume[z, y]
                target = sheared[first : first + nx]
                for x in range(nx):
                    target[x] += g * voxels[x]
                target = sheared[first + 1 : first + 1 + nx]
                for x in range(nx):
                    target[x] += f * voxels[x]
            row = out[t, y]
            half_width = 0.5 * c
            for k in range(length):
                value = sheared[k]
                if value == 0.0:
                    continue
                # sample k covers [u - c/2, u + c/2] on the detector; pixel i covers
                # [i - 1/2, i + 1/2): split the value by overlap (c <= 1: at most two pixels)
                u = (k - offset) * c + centre_u
                low = u - half_width
                i = int(np.floor(low + 0.5))
                boundary = i + 0.5
                left = min(boundary - low, c) / c
                if 0 <= i < n_u:
                    row[i] += value * left
                if left < 1.0 and 0 <= i + 1 < n_u:
                    row[i + 1] += value * (1.0 - left)


def rotate_and_shift(
    image: np.ndarray,
    *,
    angle_deg: float = 0.0,
    shift: tuple[float, float] = (0.0, 0.0),
    pixel_size: float = 1.0,
) -> np.ndarray:
    """Rotate an image counter-clockwise about its centre ``shape // 2``, then shift it.

    A point at ``(x, y)`` (relative to the centre, y = array row axis) moves to
    ``(x cos φ − y sin φ, x sin φ + y cos φ) + shift``. Linear interpolation; what enters from
    outside the image is 0.

    Parameters
    ----------
    image
        ``(ny, nx)`` image.
    angle_deg
        Rotation φ, degrees counter-clockwise (from +x towards +y).
    shift
        ``(x, y)`` displacement in Å.
    pixel_size
        Å per pixel, to convert ``shift``.
    """
    image = np.asarray(image)
    if angle_deg == 0 and shift[0] == 0 and shift[1] == 0:
        return image.copy()
    phi = np.deg2rad(angle_deg)
    cos_phi, sin_phi = np.cos(phi), np.sin(phi)
    # output (y, x) -> input (y, x): inverse rotation, acting on (y, x) index order
    matrix = np.array([[cos_phi, -sin_phi], [sin_phi, cos_phi]])
    centre = np.array([image.shape[0] // 2, image.shape[1] // 2], dtype=np.float64)
    shift_yx = np.array([shift[1], shift[0]], dtype=np.float64) / pixel_size
    offset = centre - matrix @ (centre + shift_yx)
    return scipy.ndimage.affine_transform(
        image, matrix, offset=offset, order=1, mode="constant", cval=0.0, prefilter=False
    )


def project_volume(
    volume: np.ndarray,
    angles_deg: np.ndarray | list[float] | float,
    *,
    pixel_size: float,
    tilt_axis_angle: float | np.ndarray = 0.0,
    shifts: np.ndarray | None = None,
    z_range: tuple[int, int] | None = None,
) -> np.ndarray:
    """Line integrals of a volume along the tilted beam, in V·Å.

    Parameters
    ----------
    volume
        ``(z, y, x)`` potential in volts (converted to contiguous float32 if needed).
    angles_deg
        ``(n_tilts,)`` tilt angles θ, degrees, each within (−90, 90).
    pixel_size
        Å per voxel; the result is ``Σ V · pixel_size`` along the beam.
    tilt_axis_angle
        In-plane angle of the tilt axis in the image, degrees counter-clockwise from the y axis:
        one value, or one per tilt (nominal angle plus in-plane rotation error). The projected
        image is rotated by it about the centre ``(ny // 2, nx // 2)``.
    shifts
        Optional ``(n_tilts, 2)`` image shifts ``(x, y)`` in Å, applied after the rotation; image
        content moves by ``+shift``.
    z_range
        Optional ``(start, stop)`` voxel range of z to project (a slab); positions stay relative
        to the full box centre.

    Returns
    -------
    numpy.ndarray
        ``(n_tilts, ny, nx)`` float32. Without rotation or shifts, the 0° image is
        ``volume.sum(axis=0) * pixel_size`` exactly, and ``image.sum() * pixel_size**2`` equals
        ``volume.sum() * pixel_size**3`` whenever everything projects inside the detector.

    Raises
    ------
    TomosimError
        Volume not 3D, angles outside (−90, 90), or shifts of the wrong shape.
    """
    volume = np.ascontiguousarray(volume, dtype=np.float32)
    if volume.ndim != 3:
        raise TomosimError(f"project_volume expects a (z, y, x) volume, got shape {volume.shape}")
    if not pixel_size > 0:
        raise TomosimError(f"pixel_size must be positive, got {pixel_size}")
    angles = np.atleast_1d(np.asarray(angles_deg, dtype=np.float64))
    if angles.ndim != 1:
        raise TomosimError(f"angles must be a 1D list of degrees, got shape {angles.shape}")
    if np.any(~np.isfinite(angles)) or np.any(np.abs(angles) >= 90):
        raise TomosimError(f"tilt angles must lie within (-90, 90) degrees, got {angles.tolist()}")
    n_tilts = angles.shape[0]
    axis_angles = np.broadcast_to(np.asarray(tilt_axis_angle, dtype=np.float64), (n_tilts,))
    if shifts is not None:
        shifts = np.asarray(shifts, dtype=np.float64)
        if shifts.shape != (n_tilts, 2):
            raise TomosimError(
                f"shifts must have shape ({n_tilts}, 2) for {n_tilts} tilts, got {shifts.shape}"
            )
    nz, ny, nx = volume.shape
    z_start, z_stop = (0, nz) if z_range is None else (int(z_range[0]), int(z_range[1]))
    if not 0 <= z_start <= z_stop <= nz:
        raise TomosimError(f"z_range {z_range} is outside the volume's z size {nz}")
    theta = np.deg2rad(angles)
    out = np.zeros((n_tilts, ny, nx), dtype=np.float32)
    _shear_project_rows(volume, np.cos(theta), np.sin(theta), z_start, z_stop, out)
    out *= np.float32(pixel_size)
    for t in range(n_tilts):
        shift = (0.0, 0.0) if shifts is None else (float(shifts[t, 0]), float(shifts[t, 1]))
        if axis_angles[t] != 0 or shift != (0.0, 0.0):
            out[t] = rotate_and_shift(
                out[t], angle_deg=float(axis_angles[t]), shift=shift, pixel_size=pixel_size
            )
    return out


def ice_projection(
    thickness: float, angles_deg: np.ndarray | list[float] | float, *, ice_potential_v: float
) -> np.ndarray:
    """Line integral of a flat ice slab along the tilted beam, V·Å.

    The beam crosses a slab of thickness ``t`` at tilt θ over a path ``t / cos θ``, so the
    projection is ``V_ice · t / cos θ``, uniform over the image.

    Parameters
    ----------
    thickness
        Slab thickness ``t``, Å.
    angles_deg
        ``(n_tilts,)`` tilt angles, degrees.
    ice_potential_v
        Mean potential of vitreous ice, V.

    Returns
    -------
    numpy.ndarray
        ``(n_tilts,)`` float64, V·Å.
    """
    angles = np.atleast_1d(np.asarray(angles_deg, dtype=np.float64))
    if thickness < 0 or np.any(np.abs(angles) >= 90):
        raise TomosimError(f"bad ice slab: thickness {thickness} Å, angles {angles.tolist()}")
    return ice_potential_v * thickness / np.cos(np.deg2rad(angles))
