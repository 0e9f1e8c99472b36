"""Tilt scheme: angles, acquisition orders (Hagen dose-symmetric), dose bookkeeping, errors."""

from __future__ import annotations

import numpy as np
import pytest

from tomosim.errors import TomosimError
from tomosim.microscope.tilt_scheme import acquisition_order, build_tilt_scheme, tilt_angles


def _acquired(min_angle, max_angle, step, **kwargs) -> list[float]:
    angles = tilt_angles(min_angle, max_angle, step)
    return angles[acquisition_order(angles, **kwargs)].tolist()


def test_angles_are_ascending_and_inclusive():
    assert tilt_angles(-60, 60, 2).tolist() == list(range(-60, 61, 2))
    assert tilt_angles(-6, 7, 3).tolist() == [-6, -3, 0, 3, 6]
    assert tilt_angles(0, 0, 1).tolist() == [0]


def test_dose_symmetric_matches_hagen_pattern():
    # Hagen et al. 2017 (J. Struct. Biol. 197, 191), groups of two: 0, +3, -3, -6, +6, +9, -9, ...
    assert _acquired(-60, 60, 3, order="dose_symmetric", group_size=2)[:11] == [
        0, 3, -3, -6, 6, 9, -9, -12, 12, 15, -15,
    ]
    assert _acquired(-6, 6, 2, order="dose_symmetric", group_size=2) == [0, 2, -2, -4, 4, 6, -6]
    assert _acquired(-6, 6, 2, order="dose_symmetric", group_size=1) == [0, 2, -2, 4, -4, 6, -6]
    assert _acquired(-6, 6, 2, order="dose_symmetric", group_size=3) == [0, 2, -2, -4, -6, 4, 6]


def test_dose_symmetric_finishes_the_longer_side():
    assert _acquired(-4, 8, 2, order="dose_symmetric", group_size=2) == [0, 2, -2, -4, 4, 6, 8]
    # a pre-tilted lamella: symmetric about start_angle
    assert _acquired(-20, 0, 5, order="dose_symmetric", group_size=1, start_angle=-10) == [
        -10, -5, -15, 0, -20,
    ]


def test_unidirectional_and_bidirectional_orders():
    assert _acquired(-4, 4, 2, order="unidirectional") == [-4, -2, 0, 2, 4]
    assert _acquired(-6, 6, 2, order="bidirectional", start_angle=-2) == [-2, 0, 2, 4, 6, -4, -6]


def test_each_tilt_acquired_exactly_once():
    angles = tilt_angles(-57, 61, 2)
    for order in ("unidirectional", "bidirectional", "dose_symmetric"):
        for group in (1, 2, 4):
            seq = acquisition_order(angles, order=order, group_size=group, start_angle=3)
            assert sorted(seq.tolist()) == list(range(len(angles)))


def test_uniform_and_cosine_dose():
    scheme = build_tilt_scheme(min_angle=-60, max_angle=60, step=3, total_dose=120)
    np.testing.assert_allclose(scheme.dose, 120 / 41)
    cosine = build_tilt_scheme(
        min_angle=-60, max_angle=60, step=3, total_dose=120, weighting="cosine"
    )
    assert cosine.dose.sum() == pytest.approx(120)
    ratio = cosine.dose * np.cos(np.deg2rad(cosine.angles_deg))
    np.testing.assert_allclose(ratio, ratio[0])
    assert cosine.dose[0] == pytest.approx(2 * cosine.dose[20])  # 1/cos 60° = 2


def test_cumulative_dose_follows_acquisition_order():
    scheme = build_tilt_scheme(
        min_angle=-30, max_angle=30, step=10, total_dose=70, order="dose_symmetric", group_size=2
    )
    order = scheme.order
    assert scheme.angles_deg[order].tolist() == [0, 10, -10, -20, 20, 30, -30]
    assert scheme.dose_before[order[0]] == 0
    np.testing.assert_allclose(scheme.dose_after, scheme.dose_before + scheme.dose)
    np.testing.assert_allclose(scheme.dose_before[order[1:]], scheme.dose_after[order[:-1]])
    assert scheme.dose_after.max() == pytest.approx(70)
    assert scheme.acquisition_index[order].tolist() == list(range(7))


def test_errors_are_reproducible_and_scaled():
    kwargs = dict(
        min_angle=-60, max_angle=60, step=1, total_dose=100, defocus=30000, defocus_jitter=500,
        angle_error=0.3, shift_error=20, rotation_error=0.5,
    )
    first = build_tilt_scheme(**kwargs, rng=np.random.default_rng(7))
    second = build_tilt_scheme(**kwargs, rng=np.random.default_rng(7))
    for name in ("defocus", "angle_errors", "shifts", "rotations"):
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name))
    assert first.shifts.shape == (121, 2)
    assert np.std(first.defocus - 30000) == pytest.approx(500, rel=0.25)
    assert np.std(first.angle_errors) == pytest.approx(0.3, rel=0.25)
    assert np.std(first.shifts) == pytest.approx(20, rel=0.25)
    np.testing.assert_allclose(first.true_angles_deg, first.angles_deg + first.angle_errors)
    clean = build_tilt_scheme(min_angle=-6, max_angle=6, step=2, total_dose=10, defocus=1e4)
    assert not clean.shifts.any() and not clean.angle_errors.any()
    np.testing.assert_array_equal(clean.defocus, 1e4)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(min_angle=10, max_angle=-10, step=2, total_dose=1), "larger than max_angle"),
        (dict(min_angle=-90, max_angle=60, step=2, total_dose=1), "within (-90, 90)"),
        (dict(min_angle=-60, max_angle=60, step=0, total_dose=1), "step must be positive"),
        (dict(min_angle=-60, max_angle=60, step=2, total_dose=0), "total dose"),
        (dict(min_angle=-6, max_angle=6, step=2, total_dose=1, order="spiral"), "tilt order"),
        (dict(min_angle=-6, max_angle=6, step=2, total_dose=1, weighting="sine"), "dose weighting"),
        (dict(min_angle=-6, max_angle=6, step=2, total_dose=1, shift_error=5), "needs an rng"),
    ],
)
def test_bad_input_raises(kwargs, message):
    with pytest.raises(TomosimError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_tilt_scheme(**kwargs)
