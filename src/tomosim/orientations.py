"""Orientations: RELION ZYZ Euler angles, rotation matrices, uniform sampling on SO(3).

Convention (CONVENTIONS.md): :func:`euler_to_matrix` gives ``R = Rz(rot) @ Ry(tilt) @ Rz(psi)``
acting on column vectors ``(x, y, z)``, equal to ``Rotation.from_euler("ZYZ", [rot, tilt, psi],
degrees=True)`` and the transpose of RELION's ``Euler_angles2matrix``. Particle STAR files hold the
angles RELION reads, those of the transpose of a particle's active rotation
(:func:`tomosim.particles.relion_angles`).
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.spatial.transform import Rotation

from tomosim.errors import TomosimError


def euler_to_matrix(angles: np.ndarray) -> np.ndarray:
    """Active rotation matrices from RELION Euler angles.

    Parameters
    ----------
    angles
        ``(3,)`` or ``(n, 3)`` array of ``(rot, tilt, psi)`` in degrees.

    Returns
    -------
    numpy.ndarray
        ``(3, 3)`` or ``(n, 3, 3)`` matrices ``R`` acting on column vectors ``(x, y, z)``.
    """
    a = np.asarray(angles, dtype=np.float64)
    return Rotation.from_euler("ZYZ", a, degrees=True).as_matrix()


def matrix_to_euler(matrices: np.ndarray) -> np.ndarray:
    """RELION Euler angles ``(rot, tilt, psi)`` in degrees from active rotation matrices.

    The inverse of :func:`euler_to_matrix`; tilt is in [0, 180].
    """
    m = np.asarray(matrices, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # gimbal lock at tilt 0/180: scipy sets psi = 0
        return Rotation.from_matrix(m).as_euler("ZYZ", degrees=True)


def random_rotations(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` rotation matrices drawn uniformly on SO(3) (Haar measure).

    Uniform unit quaternions (four independent normal deviates, normalised) give the uniform
    distribution on SO(3) (Shoemake 1992); uniform Euler angles would not.

    Returns
    -------
    numpy.ndarray
        ``(n, 3, 3)`` active rotation matrices.
    """
    q = rng.standard_normal((n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return Rotation.from_quat(q).as_matrix().reshape(n, 3, 3)


def rotation_about_axis(axis: np.ndarray, angle_deg: float | np.ndarray) -> np.ndarray:
    """Active rotation(s) by ``angle_deg`` about unit ``axis`` ``(x, y, z)`` (right-handed)."""
    ax = np.asarray(axis, dtype=np.float64)
    ax = ax / np.linalg.norm(ax)
    ang = np.deg2rad(np.asarray(angle_deg, dtype=np.float64))
    return Rotation.from_rotvec(np.multiply.outer(ang, ax)).as_matrix()


def rotation_taking_z_to(direction: np.ndarray) -> np.ndarray:
    """The smallest active rotation taking the +z axis onto unit ``direction`` ``(x, y, z)``."""
    d = np.asarray(direction, dtype=np.float64)
    d = d / np.linalg.norm(d)
    z = np.array([0.0, 0.0, 1.0])
    axis = np.cross(z, d)
    s = np.linalg.norm(axis)
    c = float(np.dot(z, d))
    if s < 1e-12:
        return np.eye(3) if c > 0 else np.diag([1.0, -1.0, -1.0])
    return Rotation.from_rotvec(axis / s * np.arctan2(s, c)).as_matrix()


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
