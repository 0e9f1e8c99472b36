"""Detector: counts, DQE noise model, half sets, MTF, presets, reproducibility."""

from __future__ import annotations

import numpy as np
import pytest

from tomosim.errors import TomosimError
from tomosim.microscope.detector import (
    DETECTOR_PRESETS,
    detect_electrons,
    detector_model,
    detector_mtf,
    expected_counts,
)


def test_flat_image_mean_and_variance():
    dose, pixel, dqe = 2.5, 4.0, 0.8
    expected = expected_counts(np.ones((400, 400)), dose=dose, pixel_size=pixel)
    np.testing.assert_allclose(expected, dose * pixel**2)  # 40 electrons per pixel
    counts = detect_electrons(expected, dqe=dqe, rng=np.random.default_rng(0)).image
    n = counts.size
    mean, variance = 40.0, 40.0 / dqe
    assert counts.mean() == pytest.approx(mean, abs=5 * np.sqrt(variance / n))
    # standard error of a sample variance ≈ variance · √(2 / n)
    assert counts.var() == pytest.approx(variance, abs=5 * variance * np.sqrt(2 / n))


def test_read_noise_adds_its_variance():
    expected = np.full((300, 300), 20.0)
    counts = detect_electrons(expected, dqe=1.0, read_noise=3.0, rng=np.random.default_rng(1)).image
    assert counts.var() == pytest.approx(20.0 + 9.0, rel=0.03)


def test_same_seed_same_bytes_and_noise_free_mode():
    expected = np.random.default_rng(5).uniform(0, 50, size=(64, 64))
    first = detect_electrons(expected, dqe=0.7, read_noise=1.0, rng=np.random.default_rng(3))
    second = detect_electrons(expected, dqe=0.7, read_noise=1.0, rng=np.random.default_rng(3))
    assert first.image.tobytes() == second.image.tobytes()
    other = detect_electrons(expected, dqe=0.7, read_noise=1.0, rng=np.random.default_rng(4))
    assert other.image.tobytes() != first.image.tobytes()
    clean = detect_electrons(expected, dqe=0.7, noise=False, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(clean.image, expected.astype(np.float32))


def test_half_sets_are_independent_halves_of_the_full_image():
    expected = np.full((300, 300), 30.0)
    with_halves = detect_electrons(expected, dqe=0.9, half_sets=True, rng=np.random.default_rng(8))
    without = detect_electrons(expected, dqe=0.9, rng=np.random.default_rng(8))
    assert with_halves.image.tobytes() == without.image.tobytes()  # same full image either way
    odd, even = with_halves.odd, with_halves.even
    np.testing.assert_allclose(odd + even, with_halves.image, rtol=1e-6)
    for half in (odd, even):
        assert half.mean() == pytest.approx(15.0, rel=0.01)
        assert half.var() == pytest.approx(15.0 / 0.9, rel=0.03)
    assert abs(np.corrcoef(odd.ravel(), even.ravel())[0, 1]) < 0.02


def test_noise_is_the_same_for_any_thread_count_and_blocks_are_independent():
    import numba

    from tomosim.microscope.detector import ROWS_PER_BLOCK

    expected = np.full((2 * ROWS_PER_BLOCK + 44, 200), 25.0)  # 3 blocks of rows, the last partial
    previous = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        serial = detect_electrons(expected, dqe=0.8, read_noise=1.0, half_sets=True,
                                  rng=np.random.default_rng(11))
    finally:
        numba.set_num_threads(previous)
    parallel = detect_electrons(expected, dqe=0.8, read_noise=1.0, half_sets=True,
                                rng=np.random.default_rng(11))
    for a, b in ((serial.image, parallel.image), (serial.odd, parallel.odd), (serial.even, parallel.even)):
        assert a.tobytes() == b.tobytes()
    # neighbouring blocks draw from different generators: no repeated rows across a block edge
    image, n = serial.image, ROWS_PER_BLOCK
    assert not np.array_equal(image[:n], image[n : 2 * n])
    assert abs(np.corrcoef(image[:n].ravel(), image[n : 2 * n].ravel())[0, 1]) < 0.05


def test_mtf_shape_and_presets():
    k = np.array([0.0, 0.05, 0.125])  # 1/Å at 4 Å pixels: 0, 0.2, 0.5 cycles/pixel
    ideal = detector_model("ideal")
    assert ideal.dqe == 1.0
    np.testing.assert_allclose(
        detector_mtf(0.0, k, pixel_size=4.0, mtf_falloff=0.0, pixel_aperture=False), 1.0)
    k3 = detector_model("k3")
    mtf = detector_mtf(0.0, k, pixel_size=4.0, mtf_falloff=k3.mtf_falloff)
    assert mtf[0] == 1.0
    assert mtf[2] == pytest.approx(np.sinc(0.5) * np.exp(-k3.mtf_falloff), rel=1e-9)
    assert set(DETECTOR_PRESETS) == {"ideal", "k3", "falcon4"}
    assert detector_model("falcon4", dqe=0.5).dqe == 0.5


def test_bad_input_raises():
    with pytest.raises(TomosimError, match="unknown detector preset"):
        detector_model("film")
    with pytest.raises(TomosimError, match="dqe"):
        detect_electrons(np.ones((4, 4)), dqe=0.0, rng=np.random.default_rng(0))
    with pytest.raises(TomosimError, match="non-negative"):
        detect_electrons(-np.ones((4, 4)), dqe=1.0, rng=np.random.default_rng(0))
