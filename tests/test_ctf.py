"""CTF: wavelength, interaction constant, zeros, contrast sign, astigmatism, tilted defocus."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from tomosim.errors import TomosimError
from tomosim.microscope.ctf import (
    Optics,
    apply_ctf,
    ctf_2d,
    defocus_in_tilted_image,
    electron_wavelength,
    interaction_constant,
    phase_aberration,
)

OPTICS = dict(voltage_kv=300.0, cs_mm=2.7)


def test_relativistic_wavelength_matches_literature():
    assert electron_wavelength(300) == pytest.approx(0.019687, abs=2e-6)
    assert electron_wavelength(200) == pytest.approx(0.025079, abs=2e-6)
    assert electron_wavelength(100) == pytest.approx(0.037014, abs=2e-6)


def test_interaction_constant_matches_kirkland():
    # Kirkland (2010), Advanced Computing in Electron Microscopy: σ in rad/(V·Å)
    assert interaction_constant(300) == pytest.approx(0.000653, rel=2e-3)
    assert interaction_constant(200) == pytest.approx(0.000729, rel=2e-3)


def _analytic_zeros(defocus: float, amplitude_contrast: float, count: int) -> np.ndarray:
    """k of the CTF zeros: χ = nπ − ψ_A, ψ_A = atan(A / √(1 − A²)), solved for k²."""
    wavelength = electron_wavelength(300)
    cs = 2.7e7
    psi = np.arctan2(amplitude_contrast, np.sqrt(1 - amplitude_contrast**2))
    zeros = []
    for n in range(count + 1):
        target = n - psi / np.pi  # χ / π
        # (Cs λ³ / 2) k⁴ − λ Δf k² + target = 0, smaller root
        a, b = cs * wavelength**3 / 2, -wavelength * defocus
        disc = b * b - 4 * a * target
        k2 = (-b - np.sqrt(disc)) / (2 * a)
        if k2 > 0:
            zeros.append(np.sqrt(k2))
    return np.array(zeros[:count])


@pytest.mark.parametrize("defocus, amplitude", [(15000.0, 0.0), (30000.0, 0.07), (8000.0, 0.1)])
def test_ctf_zeros_at_analytic_frequencies(defocus, amplitude):
    pixel, n = 1.0, 2048
    ctf = ctf_2d(
        (2, n), pixel, defocus_u=defocus, defocus_v=defocus, astigmatism_angle=0.0,
        amplitude_contrast=amplitude, **OPTICS,
    )[0]
    k = np.fft.rfftfreq(n, d=pixel)
    crossings = np.nonzero(np.sign(ctf[1:]) != np.sign(ctf[:-1]))[0]
    # linear interpolation of each sign change
    found = k[crossings] - ctf[crossings] * (k[1] - k[0]) / (ctf[crossings + 1] - ctf[crossings])
    found = found[found > 1e-9]  # with A = 0 the CTF is also 0 at k = 0
    expected = _analytic_zeros(defocus, amplitude, 6)
    np.testing.assert_allclose(found[:6], expected, atol=2e-5)


def test_ctf_value_and_low_frequency_sign():
    ctf = ctf_2d((64, 64), 2.0, defocus_u=2e4, defocus_v=2e4, astigmatism_angle=0.0,
                 amplitude_contrast=0.07, **OPTICS)
    assert ctf[0, 0] == pytest.approx(-0.07, abs=1e-6)  # −A at k = 0
    assert ctf[0, 1] < 0  # underfocus: negative at low frequency
    chi = phase_aberration(np.array([0.01]), defocus=2e4, **OPTICS)[0]
    assert chi == pytest.approx(np.pi * electron_wavelength(300) * 2e4 * 1e-4
                                - np.pi / 2 * 2.7e7 * electron_wavelength(300) ** 3 * 1e-8)


def _gaussian_phase(n: int, pixel: float, sigma: float, amplitude: float) -> np.ndarray:
    y, x = (np.mgrid[:n, :n] - n // 2) * pixel
    return amplitude * np.exp(-(x**2 + y**2) / (2 * sigma**2))


def _weak_phase_image(phase, pixel, defocus, amplitude_contrast=0.0):
    ctf = ctf_2d(phase.shape, pixel, defocus_u=defocus, defocus_v=defocus, astigmatism_angle=0.0,
                 amplitude_contrast=amplitude_contrast, rfft=False, **OPTICS)
    return 1 + 2 * np.fft.ifft2(np.fft.fft2(phase - phase.mean()) * ctf).real


def test_weak_phase_object_is_dark_in_underfocus_and_bright_in_overfocus():
    pixel, n = 2.0, 128
    phase = _gaussian_phase(n, pixel, sigma=15.0, amplitude=0.05)  # a ~4 nm blob, 0.05 rad
    centre = (slice(n // 2 - 3, n // 2 + 4),) * 2
    under = _weak_phase_image(phase, pixel, 30000.0, 0.07)
    over = _weak_phase_image(phase, pixel, -30000.0, 0.07)
    assert under[centre].mean() < 1 - 0.01  # dark
    assert over[centre].mean() > 1 + 0.01  # bright


def test_weak_phase_image_is_the_small_phase_limit_of_wave_optics_sign_both_ways():
    """|F⁻¹[F[e^{iφ}] e^{+iχ}]|² ≈ 1 + 2 F⁻¹[−sin χ · F[φ]]; the other sign flips the contrast."""
    pixel, n, defocus = 2.0, 128, 20000.0
    phase = _gaussian_phase(n, pixel, sigma=15.0, amplitude=0.01)
    k = np.hypot(*np.meshgrid(np.fft.fftfreq(n, pixel), np.fft.fftfreq(n, pixel), indexing="ij"))
    chi = phase_aberration(k, defocus=defocus, **OPTICS)
    wave = np.fft.fft2(np.exp(1j * phase))
    plus = np.abs(np.fft.ifft2(wave * np.exp(1j * chi))) ** 2
    minus = np.abs(np.fft.ifft2(wave * np.exp(-1j * chi))) ** 2
    linear = _weak_phase_image(phase, pixel, defocus)
    contrast = linear - linear.mean()
    np.testing.assert_allclose(plus - plus.mean(), contrast, atol=0.02 * np.abs(contrast).max())
    np.testing.assert_allclose(minus - minus.mean(), -contrast, atol=0.02 * np.abs(contrast).max())


def test_astigmatism_angle_rotates_the_pattern_counter_clockwise():
    n, pixel = 128, 2.0
    common = dict(defocus_u=25000.0, defocus_v=15000.0, amplitude_contrast=0.07, rfft=False,
                  **OPTICS)
    k = np.fft.fftfreq(n, pixel)

    def isotropic(defocus: float, kk: np.ndarray) -> np.ndarray:
        chi = phase_aberration(kk, defocus=defocus, **OPTICS)
        return -(np.sqrt(1 - 0.07**2) * np.sin(chi) + 0.07 * np.cos(chi))

    index = np.arange(1, 40)
    radius = np.sqrt(2) * k[index]
    ctf45 = ctf_2d((n, n), pixel, astigmatism_angle=45.0, **common)
    # the u axis at 45° counter-clockwise from x points along (+x, +y): k_x = k_y
    np.testing.assert_allclose(ctf45[index, index], isotropic(25000.0, radius), atol=1e-5)
    np.testing.assert_allclose(ctf45[-index, index], isotropic(15000.0, radius), atol=1e-5)
    ctf90 = ctf_2d((n, n), pixel, astigmatism_angle=90.0, **common)
    np.testing.assert_allclose(ctf90[index, 0], isotropic(25000.0, k[index]), atol=1e-5)
    np.testing.assert_allclose(ctf90[0, index], isotropic(15000.0, k[index]), atol=1e-5)
    ctf0 = ctf_2d((n, n), pixel, astigmatism_angle=0.0, **common)
    np.testing.assert_allclose(ctf0, ctf90.T, atol=1e-5)


def test_envelopes_damp_high_frequencies():
    base = dict(defocus_u=2e4, defocus_v=2e4, astigmatism_angle=0.0, amplitude_contrast=0.07,
                **OPTICS)
    plain = ctf_2d((64, 64), 2.0, **base)
    k2 = np.fft.fftfreq(64, 2.0)[:, None] ** 2 + np.fft.rfftfreq(64, 2.0)[None, :] ** 2
    np.testing.assert_allclose(ctf_2d((64, 64), 2.0, b_factor=100.0, **base),
                               plain * np.exp(-25.0 * k2), atol=1e-6)
    wavelength = electron_wavelength(300)
    k = np.sqrt(k2)
    spatial = np.exp(-((np.pi * 0.05e-3 / wavelength) ** 2)
                     * (2.7e7 * wavelength**3 * k**3 - 2e4 * wavelength * k) ** 2)
    np.testing.assert_allclose(ctf_2d((64, 64), 2.0, source_spread_mrad=0.05, **base),
                               plain * spatial, atol=1e-5)
    focus_spread = 2.7e7 * 1.0 / 300e3  # Cc ΔE / E, Å
    temporal = np.exp(-((np.pi * wavelength * focus_spread * k2) ** 2) / (16 * np.log(2)))
    np.testing.assert_allclose(
        ctf_2d((64, 64), 2.0, energy_spread_ev=1.0, chromatic_aberration_mm=2.7, **base),
        plain * temporal, atol=1e-5)
    assert spatial.min() < 0.5  # the test is not vacuous


def test_tilted_defocus_follows_the_geometry():
    # +x side of the sample moves down (away from the source) at positive tilt: more underfocus
    assert defocus_in_tilted_image(1000.0, defocus=3e4, tilt_angle=30.0) == pytest.approx(
        3e4 + 1000 * np.tan(np.pi / 6))
    assert defocus_in_tilted_image(1000.0, defocus=3e4, tilt_angle=-30.0) < 3e4
    # independent check: rotate sample points with R_y(θ) (CONVENTIONS), Δf = Δf₀ − z'
    rng = np.random.default_rng(0)
    points = rng.uniform(-2000, 2000, size=(20, 3))
    for angle in (-50.0, 20.0, 60.0):
        rotated = Rotation.from_euler("y", angle, degrees=True).apply(points)
        u = points[:, 0] * np.cos(np.deg2rad(angle)) + points[:, 2] * np.sin(np.deg2rad(angle))
        np.testing.assert_allclose(rotated[:, 0], u)  # the image column of CONVENTIONS.md
        defocus = defocus_in_tilted_image(u, defocus=3e4, tilt_angle=angle, height=points[:, 2])
        np.testing.assert_allclose(defocus, 3e4 - rotated[:, 2])
    with pytest.raises(TomosimError, match="tilt angle"):
        defocus_in_tilted_image(0.0, defocus=1e4, tilt_angle=90.0)


def _fit_defocus(window: np.ndarray, pixel: float, candidates: np.ndarray) -> float:
    """Defocus whose CTF best matches the Fourier transform of a centred point response."""
    spectrum = np.fft.rfft2(np.fft.ifftshift(window)).real
    errors = [
        np.sum((spectrum - ctf_2d(window.shape, pixel, defocus_u=d, defocus_v=d,
                                  astigmatism_angle=0.0, amplitude_contrast=0.0, **OPTICS)) ** 2)
        for d in candidates
    ]
    return float(candidates[int(np.argmin(errors))])


@pytest.mark.parametrize("axis_angle", [0.0, 90.0])
def test_point_at_two_positions_gets_the_local_defocus(axis_angle):
    """Same point object at u = ±800 Å in a 60° image: its CTF shows Δf₀ ± 800 Å · tan 60°."""
    n, pixel, angle, defocus = 512, 4.0, 60.0, 20000.0
    offset_px = 200
    image = np.zeros((n, n))
    for sign in (-1, 1):
        if axis_angle == 0.0:
            image[n // 2, n // 2 + sign * offset_px] = 1.0
        else:  # tilt axis along x: u runs along +y
            image[n // 2 + sign * offset_px, n // 2] = 1.0
    filtered = apply_ctf(
        image - image.mean(), pixel_size=pixel, defocus_u=defocus, defocus_v=defocus,
        astigmatism_angle=0.0, optics=Optics(amplitude_contrast=0.0, **OPTICS), tilt_angle=angle,
        tilt_axis_angle=axis_angle, padding=0.5,
    )
    candidates = np.arange(15000.0, 25000.0, 25.0)
    half = 32
    for sign in (-1, 1):
        if axis_angle == 0.0:
            row, col = n // 2, n // 2 + sign * offset_px
        else:
            row, col = n // 2 + sign * offset_px, n // 2
        window = filtered[row - half:row + half, col - half:col + half]
        expected = defocus + sign * offset_px * pixel * np.tan(np.deg2rad(angle))
        assert _fit_defocus(window, pixel, candidates) == pytest.approx(expected, abs=100)


def test_padding_prevents_wrap_around():
    n, pixel = 128, 2.0
    image = np.zeros((n, n))
    image[n // 2, 1] = 1.0  # near the left edge
    kwargs = dict(pixel_size=pixel, defocus_u=3e4, defocus_v=3e4, astigmatism_angle=0.0,
                  optics=Optics(amplitude_contrast=0.07, **OPTICS))
    wrapped = apply_ctf(image, padding=0.0, **kwargs)
    padded = apply_ctf(image, padding=1.0, **kwargs)
    far = (slice(None), slice(n - 20, n))  # the right edge
    assert np.abs(padded[far]).max() < 0.1 * np.abs(wrapped[far]).max()


def test_untilted_apply_ctf_equals_direct_filtering():
    rng = np.random.default_rng(2)
    image = rng.normal(size=(64, 64))
    kwargs = dict(defocus_u=2e4, defocus_v=1.6e4, astigmatism_angle=30.0, amplitude_contrast=0.1)
    out = apply_ctf(
        image, pixel_size=2.0, padding=0.0, defocus_u=2e4, defocus_v=1.6e4, astigmatism_angle=30.0,
        optics=Optics(amplitude_contrast=0.1, **OPTICS),
    )
    ctf = ctf_2d((64, 64), 2.0, **kwargs, **OPTICS)
    direct = np.fft.irfft2(np.fft.rfft2(image) * ctf, s=(64, 64))
    np.testing.assert_allclose(out, direct, atol=1e-4)
