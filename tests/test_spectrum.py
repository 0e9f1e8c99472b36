"""Radial amplitude spectra and spectrum matching."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from tomosim.errors import TomosimError
from tomosim.spectrum import (
    RadialSpectrum,
    match_spectrum,
    mean_spectrum,
    radial_amplitude_spectrum,
    spectrum_difference,
)


def test_white_noise_has_flat_spectrum_of_rayleigh_mean():
    # |F| of white Gaussian noise (s.d. σ) is Rayleigh distributed with mean σ sqrt(N π) / 2
    rng = np.random.default_rng(0)
    sigma = 2.5
    noise = rng.normal(scale=sigma, size=(48, 56, 64))
    spectrum = radial_amplitude_spectrum(noise, pixel_size=3.0)
    expected = sigma * np.sqrt(np.pi) / 2
    assert np.allclose(spectrum.amplitude[2:], expected, rtol=0.1)  # few coefficients per band
    assert np.mean(spectrum.amplitude[2:]) == pytest.approx(expected, rel=0.02)
    assert spectrum.frequency[-1] < 0.5 / 3.0 and spectrum.frequency[0] > 0


@pytest.mark.parametrize("seed", [0, 1])
def test_matching_makes_spectrum_equal_target_within_5_percent(seed):
    rng = np.random.default_rng(seed)
    # "phantom": blobs in white noise; "target": differently filtered noise, another box
    phantom = ndimage.gaussian_filter(rng.normal(size=(48, 64, 64)), 0.8)
    phantom[20:28, 30:40, 30:40] -= 3.0
    shape = (40, 72, 56)
    target_volume = ndimage.gaussian_filter(rng.normal(size=shape), 2.0)
    target_volume += 0.3 * rng.normal(size=shape)
    target = radial_amplitude_spectrum(target_volume, pixel_size=8.0)
    before = radial_amplitude_spectrum(phantom, pixel_size=8.0)
    assert np.max(np.abs(spectrum_difference(before, target)[1:])) > 0.3  # they differ at first
    matched = match_spectrum(phantom, pixel_size=8.0, target=target)
    after = radial_amplitude_spectrum(matched, pixel_size=8.0)
    assert np.all(np.abs(spectrum_difference(after, target)[1:]) < 0.05)
    assert matched.shape == phantom.shape and matched.dtype == np.float32
    assert matched.mean() == pytest.approx(phantom.mean(), abs=1e-4)
    # phases kept: the matched volume still correlates with the input
    assert np.corrcoef(matched.ravel(), phantom.ravel())[0, 1] > 0.3


def test_matching_refuses_another_pixel_size():
    volume = np.random.default_rng(0).normal(size=(16, 16, 16))
    target = radial_amplitude_spectrum(volume, pixel_size=10.0)
    with pytest.raises(TomosimError, match="10 Å/voxel, the volume is at 12"):
        match_spectrum(volume, pixel_size=12.0, target=target)


def test_mean_spectrum_and_round_trip():
    a = RadialSpectrum(pixel_size=5.0, amplitude=np.array([1.0, 2.0]))
    b = RadialSpectrum(pixel_size=5.0, amplitude=np.array([3.0, 4.0]))
    assert np.allclose(mean_spectrum([a, b], [1, 3]).amplitude, [2.5, 3.5])
    assert np.allclose(RadialSpectrum.from_dict(a.as_dict()).amplitude, a.amplitude)
    with pytest.raises(TomosimError):
        mean_spectrum([a, RadialSpectrum(pixel_size=6.0, amplitude=np.array([1.0, 1.0]))])
