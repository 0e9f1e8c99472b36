"""Orientation conventions: RELION ZYZ Euler angles, active rotations, uniform SO(3) sampling."""

from __future__ import annotations

import numpy as np
import pytest

from tomosim.orientations import (
    euler_to_matrix,
    matrix_to_euler,
    random_rotations,
    rotation_taking_z_to,
)


def relion_euler_angles2matrix(rot: float, tilt: float, psi: float) -> np.ndarray:
    """RELION's Euler_angles2matrix, typed from its published formula (Heymann et al. 2005)."""
    a, b, g = np.deg2rad([rot, tilt, psi])
    ca, cb, cg = np.cos([a, b, g])
    sa, sb, sg = np.sin([a, b, g])
    cc, cs, sc, ss = cb * ca, cb * sa, sb * ca, sb * sa
    return np.array(
        [
            [cg * cc - sg * sa, cg * cs + sg * ca, -cg * sb],
            [-sg * cc - cg * sa, -sg * cs + cg * ca, sg * sb],
            [sc, ss, cb],
        ]
    )


@pytest.mark.parametrize("angles", [(0, 0, 0), (30, 0, 0), (10, 50, -70), (-120, 170, 33)])
def test_active_matrix_is_transpose_of_relion(angles):
    np.testing.assert_allclose(euler_to_matrix(np.array(angles)), relion_euler_angles2matrix(*angles).T, atol=1e-12)


def test_rot_is_counter_clockwise_about_z():
    # a pure rot of +90 deg takes +x to +y (right-handed, active)
    r = euler_to_matrix(np.array([90.0, 0.0, 0.0]))
    np.testing.assert_allclose(r @ [1, 0, 0], [0, 1, 0], atol=1e-12)
    # tilt of +90 about y takes +z to +x
    r = euler_to_matrix(np.array([0.0, 90.0, 0.0]))
    np.testing.assert_allclose(r @ [0, 0, 1], [1, 0, 0], atol=1e-12)


def test_euler_round_trip():
    rng = np.random.default_rng(1)
    mats = random_rotations(200, rng)
    back = euler_to_matrix(matrix_to_euler(mats))
    np.testing.assert_allclose(back, mats, atol=1e-9)
    assert np.all((matrix_to_euler(mats)[:, 1] >= 0) & (matrix_to_euler(mats)[:, 1] <= 180))


def test_random_rotations_are_proper_and_reproducible():
    a = random_rotations(50, np.random.default_rng(7))
    b = random_rotations(50, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(np.linalg.det(a), 1.0, atol=1e-12)
    np.testing.assert_allclose(a @ a.transpose(0, 2, 1), np.broadcast_to(np.eye(3), a.shape), atol=1e-12)


def test_rotation_taking_z_to():
    for d in ([1, 0, 0], [0, 0, -1], [1, 2, 3], [0, 0, 1]):
        d = np.asarray(d, float) / np.linalg.norm(d)
        np.testing.assert_allclose(rotation_taking_z_to(d) @ [0, 0, 1], d, atol=1e-12)
