"""Fourier binning: fine-pixel simulation binned 4x against the equivalent at the output pixel."""

import numpy as np
import pytest
from scipy.special import erf

from tomosim.config import (
    AcquisitionConfig,
    DetectorConfig,
    DoseConfig,
    MicroscopeConfig,
    OpticsConfig,
    TiltConfig,
)
from tomosim.errors import TomosimError
from tomosim.microscope.binning import fourier_bin
from tomosim.microscope.ctf import frequency_grid
from tomosim.microscope.detector import DETECTOR_PRESETS, detector_mtf
from tomosim.microscope.image_formation import simulate_tilt_series
from tomosim.recipe import acquisition, optics

COARSE = 10.0
FACTOR = 4
SHAPE = (16, 32, 32)  # coarse voxels; the fine volume is FACTOR times larger along each axis


def _blobs(pixel_size: float, shape: tuple[int, int, int]) -> np.ndarray:
    """Voxel-averaged potential of Gaussian blobs, exact (products of erf differences)."""
    rng = np.random.default_rng(7)
    size = np.array(shape[::-1]) * pixel_size  # x, y, z extent in Å
    volume = np.zeros(shape)
    axes = [np.arange(n) * pixel_size for n in shape[::-1]]  # voxel centres, x y z
    for _ in range(12):
        centre = size * 0.5 + rng.uniform(-0.25, 0.25, 3) * size * [1, 1, 0.5]
        sigma = rng.uniform(8.0, 20.0)
        factors = []
        for axis, c in zip(axes, centre, strict=True):
            lo = (axis - pixel_size / 2 - c) / (np.sqrt(2) * sigma)
            hi = (axis + pixel_size / 2 - c) / (np.sqrt(2) * sigma)
            factors.append(0.5 * (erf(hi) - erf(lo)) / pixel_size * sigma * np.sqrt(2 * np.pi))
        fx, fy, fz = factors
        volume += fz[:, None, None] * fy[None, :, None] * fx[None, None, :]
    return volume.astype(np.float32)


def _series(volume, pixel_size, *, binning, preset="k3", angles=(-60.0, 60.0, 30.0), padding=0.25):
    config = MicroscopeConfig(
        tilt=TiltConfig(min_angle=angles[0], max_angle=angles[1], step=angles[2]),
        optics=OpticsConfig(defocus_um=1.5, padding=padding),
        dose=DoseConfig(total_dose_e_per_a2=60.0),
        detector=DetectorConfig(preset=preset, noise=False, binning=binning),
        acquisition=AcquisitionConfig(profile="ideal"),
    )
    return simulate_tilt_series(
        volume, pixel_size=pixel_size, ice_thickness=1500.0, acquisition=acquisition(config),
        optics=optics(config.optics), ice_potential_v=4.5, rng=np.random.default_rng(0),
    ).images


def _correlation(a, b):
    a = a - a.mean()
    b = b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def test_fourier_bin_keeps_band_limited_content_and_counts():
    # images are mirror-extended before cropping, so DCT-II cosines (mirror-periodic) with
    # frequencies below the new Nyquist survive exactly, sampled at fine pixels 0, 4, 8, ...
    y, x = np.mgrid[:48, :64].astype(float)
    wave = 3.0 + np.cos(np.pi * 5 * (y + 0.5) / 48) * np.cos(np.pi * 7 * (x + 0.5) / 64)
    yb, xb = np.mgrid[:12, :16].astype(float) * 4
    expected = 3.0 + np.cos(np.pi * 5 * (yb + 0.5) / 48) * np.cos(np.pi * 7 * (xb + 0.5) / 64)
    np.testing.assert_allclose(fourier_bin(wave, 4, normalize="mean"), expected, atol=1e-5)
    np.testing.assert_allclose(fourier_bin(wave, 4), 16 * expected, rtol=1e-5)  # counts summed
    rng = np.random.default_rng(1)
    stack = rng.poisson(20.0, size=(2, 96, 128)).astype(np.float32)
    binned = fourier_bin(stack, 4)
    assert binned.shape == (2, 24, 32)
    np.testing.assert_allclose(binned.sum(axis=(1, 2)), stack.sum(axis=(1, 2)), rtol=2e-3)


def test_fourier_bin_refuses_a_factor_that_does_not_divide_the_shape():
    with pytest.raises(TomosimError, match="does not divide"):
        fourier_bin(np.zeros((30, 32)), 4)


def test_fine_simulation_binned_matches_the_equivalent_at_the_output_pixel():
    fine = _blobs(COARSE / FACTOR, tuple(n * FACTOR for n in SHAPE))
    coarse = _blobs(COARSE, SHAPE)
    binned = fourier_bin(_series(fine, COARSE / FACTOR, binning=1), FACTOR)
    equivalent = _series(coarse, COARSE, binning=FACTOR)
    naive = _series(coarse, COARSE, binning=1)  # pixel integrated twice
    # the outermost coarse pixels differ by construction: coarse voxel 0 covers [-5, 5] Å, the
    # fine box starts at -1.25 Å; compare the interior
    inner = (slice(None), slice(2, -2), slice(2, -2))
    binned, equivalent, naive = binned[inner], equivalent[inner], naive[inner]
    for tilt in range(binned.shape[0]):
        good = _correlation(binned[tilt], equivalent[tilt])
        assert good > 0.99, (tilt, good)
        # the equivalent is closer than the simulation that integrates over the pixel twice
        err_good = np.abs(binned[tilt] - equivalent[tilt]).mean()
        err_naive = np.abs(binned[tilt] - naive[tilt]).mean()
        assert err_good < 0.7 * err_naive, (tilt, err_good, err_naive)


def test_binned_image_carries_the_fine_detector_mtf_only():
    # 0° with no padding: the filters act on the image grid exactly, so spectra divide cleanly
    fine = _blobs(COARSE / FACTOR, tuple(n * FACTOR for n in SHAPE))
    coarse = _blobs(COARSE, SHAPE)
    k3 = DETECTOR_PRESETS["k3"]
    k_y, k_x = frequency_grid(SHAPE[1:], COARSE)
    expected = detector_mtf(k_y, k_x, pixel_size=COARSE / FACTOR, mtf_falloff=k3.mtf_falloff)
    at_binned_pixel = detector_mtf(k_y, k_x, pixel_size=COARSE, mtf_falloff=k3.mtf_falloff)
    cases = {
        "fine then binned": [
            fourier_bin(_series(fine, COARSE / FACTOR, binning=1, preset=p, angles=(0, 0, 1),
                                padding=0.0), FACTOR)[0]
            for p in ("k3", "ideal")
        ],
        "equivalent": [
            _series(coarse, COARSE, binning=FACTOR, preset=p, angles=(0, 0, 1), padding=0.0)[0]
            for p in ("k3", "ideal")
        ],
    }
    for name, (real, ideal) in cases.items():
        s_real = np.fft.rfft2(real - real.mean())
        s_ideal = np.fft.rfft2(ideal - ideal.mean())
        use = np.abs(s_ideal) > 1e-3 * np.abs(s_ideal).max()
        use[0, 0] = False
        ratio = np.abs(s_real[use] / s_ideal[use])
        np.testing.assert_allclose(ratio, expected[use], atol=5e-3, err_msg=name)
        # and not the binned pixel's aperture, which is far lower near Nyquist
        assert np.abs(ratio - at_binned_pixel[use]).max() > 0.2
