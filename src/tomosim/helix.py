"""Helix: the screw transform that relates consecutive subunits of a filament model.

A helical filament is one subunit repeated by a *screw operation*: a rotation by the twist ``Δφ``
about the filament axis combined with a translation by the rise ``Δz`` along it. Given the
matched atoms of consecutive subunits ``X_0, X_1, …, X_{n-1}`` (``n ≥ 2``), :func:`fit_helix`
finds the single rigid motion ``x ↦ R x + t`` that maps every ``X_i`` onto ``X_{i+1}`` best in
the least-squares sense: one Kabsch superposition (Kabsch 1976, *Acta Cryst. A* 32, 922) of all
stacked pairs ``(X_i, X_{i+1})``. Chasles' theorem decomposes that motion into a screw:

- the axis direction ``u`` is the rotation axis of ``R`` (its eigenvector of eigenvalue 1),
  oriented so that the rise is positive, i.e. ``+u`` points from subunit ``i`` to ``i + 1``;
- the twist is the right-handed rotation angle of ``R`` about ``u``, in ``(-180°, 180°]``;
- the rise is ``t · u``;
- a point ``c`` on the axis solves ``(I − R) c = t − (t · u) u`` (with ``c · u = 0``).

The handedness of the helix does not depend on the direction chosen for ``u``: reversing it
flips the signs of both the twist and the rise, and we keep the rise positive. F-actin's
1-start genetic helix has a twist of about −166.7° (left-handed) per 27.5 Å.

The residual is the root-mean-square distance between ``R X_i + t`` and ``X_{i+1}`` over all
matched atoms: a model whose subunits are not one screw transform apart has a large residual.

:func:`filament_frame` gives the rigid motion that moves one subunit into the *filament frame*
of :mod:`tomosim.filaments`: filament axis along ``+z`` through the origin, the subunit's
reference point (its mean atom position) on the ``+x`` axis at height 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tomosim.errors import TomosimError


@dataclass(frozen=True)
class RigidMotion:
    """``x ↦ rotation @ x + translation`` for column vectors ``(x, y, z)`` in Å."""

    rotation: np.ndarray
    translation: np.ndarray

    def apply(self, points: np.ndarray) -> np.ndarray:
        """``(n, 3)`` points moved by the motion."""
        return np.asarray(points, dtype=np.float64) @ self.rotation.T + self.translation


def compose(first: RigidMotion, then: RigidMotion) -> RigidMotion:
    """The motion ``then ∘ first`` (apply ``first``, then ``then``)."""
    return RigidMotion(
        then.rotation @ first.rotation, then.rotation @ first.translation + then.translation
    )


def rotation_z(angle_deg: np.ndarray | float) -> np.ndarray:
    """``(..., 3, 3)`` active rotations about ``+z`` by ``angle_deg`` (degrees)."""
    a = np.deg2rad(np.asarray(angle_deg, dtype=np.float64))
    c, s = np.cos(a), np.sin(a)
    out = np.zeros(a.shape + (3, 3))
    out[..., 0, 0] = c
    out[..., 0, 1] = -s
    out[..., 1, 0] = s
    out[..., 1, 1] = c
    out[..., 2, 2] = 1.0
    return out


def onto_x_axis(points: np.ndarray) -> RigidMotion:
    """The turn about ``z`` and shift along it that put the mean of ``points`` on ``+x`` at z = 0.

    In the filament frame this is a symmetry of every helical lattice: applied to a template, it
    moves the whole filament, not the subunits relative to each other.
    """
    centre = np.asarray(points, dtype=np.float64).mean(axis=0)
    turn = rotation_z(-math.degrees(math.atan2(centre[1], centre[0])))
    return RigidMotion(turn, np.array([0.0, 0.0, -centre[2]]))


@dataclass(frozen=True)
class HelixFit:
    """The screw transform between consecutive subunits of a filament model.

    Attributes
    ----------
    twist
        Rotation per subunit about ``axis_direction``, degrees in ``(-180, 180]``.
    rise
        Translation per subunit along ``axis_direction``, Å (≥ 0).
    axis_point
        ``(3,)`` a point on the filament axis ``(x, y, z)`` in model coordinates, Å.
    axis_direction
        ``(3,)`` unit vector along the axis, pointing from subunit ``i`` to ``i + 1``.
    residual
        Root-mean-square distance, Å, between the screw-moved subunits and their successors over
        all matched atoms.
    worst_pair_residual
        The largest per-pair RMS distance, Å, and ``worst_pair`` the index ``i`` of that pair
        ``(i, i + 1)``.
    worst_pair
        See ``worst_pair_residual``.
    n_subunits
        Number of subunits fitted.
    n_matched
        Matched atoms per pair, summed over all pairs.
    motion
        The least-squares rigid motion ``X_i -> X_{i+1}``.
    """

    twist: float
    rise: float
    axis_point: np.ndarray
    axis_direction: np.ndarray
    residual: float
    worst_pair_residual: float
    worst_pair: int
    n_subunits: int
    n_matched: int
    motion: RigidMotion

    def radius_of(self, point: np.ndarray) -> float:
        """Distance of ``point`` (x, y, z Å) from the filament axis, Å."""
        offset = np.asarray(point, dtype=np.float64) - self.axis_point
        return float(np.linalg.norm(offset - (offset @ self.axis_direction) * self.axis_direction))


def superpose(moving: np.ndarray, fixed: np.ndarray) -> RigidMotion:
    """Least-squares rigid motion (no reflection) that maps ``moving`` onto ``fixed``.

    Kabsch's algorithm: the SVD of the covariance of the centred point sets, with the sign of the
    smallest singular direction fixed so that ``det R = +1``.

    Parameters
    ----------
    moving, fixed
        ``(n, 3)`` corresponding points ``(x, y, z)``, Å, ``n ≥ 3``.

    Returns
    -------
    RigidMotion
        Minimises ``Σ |R moving_k + t − fixed_k|²``.
    """
    p = np.asarray(moving, dtype=np.float64)
    q = np.asarray(fixed, dtype=np.float64)
    if p.shape != q.shape or p.ndim != 2 or p.shape[1] != 3 or p.shape[0] < 3:
        raise TomosimError(
            f"superposition needs two (n >= 3, 3) point sets, got {p.shape}, {q.shape}"
        )
    pc, qc = p.mean(axis=0), q.mean(axis=0)
    covariance = (p - pc).T @ (q - qc)
    u, _, vt = np.linalg.svd(covariance)
    sign = np.sign(np.linalg.det(vt.T @ u.T)) or 1.0
    rotation = vt.T @ np.diag([1.0, 1.0, sign]) @ u.T
    return RigidMotion(rotation, qc - rotation @ pc)


def screw_parameters(motion: RigidMotion) -> tuple[float, float, np.ndarray, np.ndarray]:
    """Chasles decomposition of a rigid motion into a screw.

    Returns
    -------
    twist, rise, axis_point, axis_direction
        Degrees in ``(-180, 180]``, Å (≥ 0), a point on the axis (the one closest to the origin)
        and the unit axis direction (oriented so that the rise is ≥ 0).

    Raises
    ------
    TomosimError
        For a pure translation (no rotation, so no axis).
    """
    r, t = motion.rotation, motion.translation
    angle_cos = (np.trace(r) - 1.0) / 2.0
    # Rotation axis from the antisymmetric part; near 180° use the symmetric part instead.
    axis = np.array([r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]])
    if np.linalg.norm(axis) < 1e-6:
        if angle_cos > 0.0:
            raise TomosimError("the subunits are related by a pure translation: no helical axis")
        values, vectors = np.linalg.eigh((r + r.T) / 2.0)
        axis = vectors[:, int(np.argmax(values))]
    axis = axis / np.linalg.norm(axis)
    sine = float(np.array([r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]]) @ axis) / 2.0
    twist = math.degrees(math.atan2(sine, float(np.clip(angle_cos, -1.0, 1.0))))
    rise = float(t @ axis)
    if rise < 0.0:
        axis, twist, rise = -axis, -twist, -rise
    if twist <= -180.0:
        twist += 360.0
    perpendicular = t - rise * axis
    system = np.vstack([np.eye(3) - r, axis[None, :]])
    point = np.linalg.lstsq(system, np.concatenate([perpendicular, [0.0]]), rcond=None)[0]
    return float(twist), rise, point, axis


def fit_helix(pairs: Sequence[tuple[np.ndarray, np.ndarray]]) -> HelixFit:
    """Fit the one screw transform that best maps each subunit onto the next.

    Parameters
    ----------
    pairs
        For each consecutive pair ``(i, i + 1)`` of an ``n``-subunit model, the matched atom
        positions ``(X_i, X_{i+1})``, each ``(m_i, 3)`` ``(x, y, z)`` Å with row ``k`` of both the
        same atom of the two subunits.

    Returns
    -------
    HelixFit
        Twist, rise, axis and the RMS residual of the single least-squares screw (see the module
        docstring).

    Raises
    ------
    TomosimError
        No pair, a pair with fewer than 3 matched atoms, or no helical axis.
    """
    if len(pairs) == 0:
        raise TomosimError("a helical fit needs at least two subunits")
    for i, (a, b) in enumerate(pairs):
        if np.shape(a) != np.shape(b) or np.shape(a)[0] < 3:
            raise TomosimError(
                f"subunits {i} and {i + 1} share fewer than 3 matched atoms ({np.shape(a)[0]})"
            )
    moving = np.concatenate([np.asarray(a, dtype=np.float64) for a, _ in pairs])
    fixed = np.concatenate([np.asarray(b, dtype=np.float64) for _, b in pairs])
    motion = superpose(moving, fixed)
    twist, rise, point, direction = screw_parameters(motion)
    per_pair = [
        float(np.sqrt(np.mean(np.sum((motion.apply(a) - b) ** 2, axis=1)))) for a, b in pairs
    ]
    residual = float(np.sqrt(np.mean(np.sum((motion.apply(moving) - fixed) ** 2, axis=1))))
    worst = int(np.argmax(per_pair))
    return HelixFit(
        twist=twist, rise=rise, axis_point=point, axis_direction=direction, residual=residual,
        worst_pair_residual=per_pair[worst], worst_pair=worst, n_subunits=len(pairs) + 1,
        n_matched=int(moving.shape[0]), motion=motion,
    )


def filament_frame(fit: HelixFit, reference_point: np.ndarray) -> RigidMotion:
    """Return the motion from model coordinates into the filament frame of one subunit.

    In the filament frame the axis is ``+z`` (``fit.axis_direction``) through the origin and
    ``reference_point`` (e.g. the subunit's mean atom position) lies on the ``+x`` axis at
    height 0, at ``fit.radius_of(reference_point)`` from the axis.

    Raises
    ------
    TomosimError
        When the reference point lies on the axis (no azimuth to define ``+x``).
    """
    z = fit.axis_direction
    offset = np.asarray(reference_point, dtype=np.float64) - fit.axis_point
    height = float(offset @ z)
    radial = offset - height * z
    if np.linalg.norm(radial) < 1e-6:
        raise TomosimError("the subunit's reference point lies on the helical axis")
    x = radial / np.linalg.norm(radial)
    y = np.cross(z, x)
    rotation = np.stack([x, y, z])  # rows: new axes in model coordinates
    origin = fit.axis_point + height * z
    return RigidMotion(rotation, -rotation @ origin)
