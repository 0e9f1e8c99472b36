"""Exposure filter (Grant & Grigorieff 2015) and inelastic scattering against their formulas."""

from __future__ import annotations

import numpy as np
import pytest

from tomosim.errors import TomosimError
from tomosim.microscope.dose import (
    critical_exposure,
    exposure_filter,
    inelastic_transfer,
    zero_loss_fraction,
)


@pytest.mark.parametrize("k", [0.01, 0.05, 0.1, 0.2, 0.33])
@pytest.mark.parametrize("dose", [0.0, 3.0, 20.0, 120.0])
def test_exposure_filter_equals_published_formula(k, dose):
    critical = 0.245 * k**-1.665 + 2.81  # Grant & Grigorieff 2015, e/Å²
    assert critical_exposure(k) == pytest.approx(critical)
    assert exposure_filter(k, dose_start=dose) == pytest.approx(np.exp(-dose / (2 * critical)))


def test_published_values_by_hand():
    # Nₑ(0.1 Å⁻¹) = 0.245 · 0.1^-1.665 + 2.81 = 14.138 e/Å²
    assert critical_exposure(0.1) == pytest.approx(14.138, abs=1e-3)
    assert exposure_filter(0.1, dose_start=14.138) == pytest.approx(np.exp(-0.5), rel=1e-4)


def test_dose_range_uses_the_average_over_the_exposure():
    k = np.array([0.02, 0.08, 0.25])
    doses = np.linspace(10.0, 13.0, 20001)
    numeric = np.mean([exposure_filter(k, dose_start=d) for d in doses], axis=0)
    average = exposure_filter(k, dose_start=10.0, dose_end=13.0)
    np.testing.assert_allclose(average, numeric, rtol=1e-6)
    # a zero-length range is the single-dose filter
    np.testing.assert_allclose(exposure_filter(k, dose_start=5.0, dose_end=5.0),
                               exposure_filter(k, dose_start=5.0))


def test_zero_frequency_is_not_attenuated():
    k = np.array([0.0, 0.1])
    assert exposure_filter(k, dose_start=50.0)[0] == 1.0
    assert exposure_filter(k, dose_start=50.0, dose_end=60.0)[0] == 1.0


def test_200_kv_critical_exposure_is_0_8_times():
    k = np.array([0.03, 0.1, 0.3])
    np.testing.assert_allclose(critical_exposure(k, voltage_kv=200), 0.8 * critical_exposure(k))


def test_zero_loss_fraction_and_inelastic_transfer():
    assert zero_loss_fraction(3500.0, 0.0, mean_free_path=3500.0) == pytest.approx(np.exp(-1))
    assert zero_loss_fraction(1750.0, 60.0, mean_free_path=3500.0) == pytest.approx(np.exp(-1))
    k = np.array([0.0, 0.001, 0.1])
    np.testing.assert_allclose(inelastic_transfer(k, zero_loss=0.6, energy_filter=True), 0.6)
    unfiltered = inelastic_transfer(k, zero_loss=0.6, energy_filter=False, inelastic_blur=200.0)
    assert unfiltered[0] == pytest.approx(1.0)  # counts are kept
    assert unfiltered[2] == pytest.approx(0.6)  # fine detail comes only from zero-loss electrons
    assert unfiltered[1] == pytest.approx(0.6 + 0.4 * np.exp(-2 * np.pi**2 * 200.0**2 * 1e-6))


def test_bad_input_raises():
    with pytest.raises(TomosimError, match="exposure range"):
        exposure_filter(0.1, dose_start=5.0, dose_end=4.0)
    with pytest.raises(TomosimError, match="inelastic"):
        zero_loss_fraction(100.0, 0.0, mean_free_path=0.0)
