"""Acquisition imperfections: recorded truth undoes them; defocus mismatch; correlated drift."""

import numpy as np
import pytest
import scipy.ndimage
from skimage.transform import ProjectiveTransform, warp

from tomosim import pipeline
from tomosim.config import (
    AcquisitionConfig,
    DetectorConfig,
    MicroscopeConfig,
    OpticsConfig,
    SimulationConfig,
    TiltConfig,
)
from tomosim.errors import TomosimError
from tomosim.microscope.acquisition import (
    AcquisitionSettings,
    correlated_series,
    motion_blur_transfer,
)
from tomosim.microscope.ctf import frequency_grid
from tomosim.microscope.image_formation import simulate_tilt_series
from tomosim.recipe import acquisition, optics
from tomosim.tilt_series_files import tilt_table

PIXEL = 8.0


def _blobs(shape=(24, 64, 64)) -> np.ndarray:
    rng = np.random.default_rng(5)
    z, y, x = np.indices(shape, dtype=np.float64)
    volume = np.zeros(shape)
    for _ in range(25):
        c = rng.uniform([8, 14, 14], [16, 50, 50])
        sigma = rng.uniform(1.5, 3.0)
        volume += np.exp(-((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2) / (2 * sigma**2))
    return volume.astype(np.float32)


def _config(acquisition: dict, angles=(-60.0, 60.0, 10.0), **optics) -> MicroscopeConfig:
    return MicroscopeConfig(
        tilt=TiltConfig(min_angle=angles[0], max_angle=angles[1], step=angles[2],
                        tilt_axis_angle=5.0),
        optics=OpticsConfig(**{"defocus_um": 2.0, **optics}),
        detector=DetectorConfig(noise=False),
        acquisition=AcquisitionConfig(**acquisition),
    )


def _simulate(volume, config, seed=3):
    return simulate_tilt_series(
        volume, pixel_size=PIXEL, ice_thickness=1500.0, acquisition=acquisition(config),
        optics=optics(config.optics), ice_potential_v=4.5, rng=np.random.default_rng(seed),
    )


def _undo(image: np.ndarray, shift_x: float, shift_y: float, rotation_deg: float) -> np.ndarray:
    """Undo 'rotate by rotation about shape // 2, then displace content by +shift' (skimage).

    The misaligned image shows the ideal point ``p`` (x, y from the centre) at ``R p + s``, so
    the restored image at ``p`` reads the misaligned one there.
    """
    cy, cx = image.shape[0] // 2, image.shape[1] // 2
    phi = np.deg2rad(rotation_deg)
    rotation = np.array([[np.cos(phi), -np.sin(phi), 0], [np.sin(phi), np.cos(phi), 0], [0, 0, 1]])
    to_centre = np.array([[1, 0, -cx], [0, 1, -cy], [0, 0, 1.0]])
    back = np.array([[1, 0, cx + shift_x / PIXEL], [0, 1, cy + shift_y / PIXEL], [0, 0, 1.0]])
    inverse_map = ProjectiveTransform(matrix=back @ rotation @ to_centre)  # (x, y) out -> in
    return warp(image, inverse_map, order=3, mode="edge", preserve_range=True)


def _correlation(a, b):
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def test_undoing_the_recorded_shifts_and_rotations_restores_the_aligned_series():
    volume = _blobs()
    errors = {"residual_shift": 20.0, "shift_correlation": 0.8, "residual_rotation": 2.0,
              "tilt_axis_error": 1.5, "tilt_offset": 0.0, "motion_blur": 0.0,
              "defocus_mismatch": 0.0}
    misaligned = _simulate(volume, _config(errors))
    aligned = _simulate(volume, _config({"profile": "ideal"}))
    table = tilt_table(misaligned)
    assert np.abs(table["shift_x_a"]).max() > 10 and np.abs(table["rotation_error_deg"]).max() > 1
    inner = (slice(12, -12), slice(12, -12))
    for i, row in table.iterrows():
        restored = _undo(misaligned.images[i], row.shift_x_a, row.shift_y_a, row.rotation_error_deg)
        before = _correlation(misaligned.images[i][inner], aligned.images[i][inner])
        after = _correlation(restored[inner], aligned.images[i][inner])
        assert after > 0.99, (i, before, after)
        assert after > before
    # with the signs flipped the undo goes the wrong way
    row = table.iloc[0]
    wrong = _undo(misaligned.images[0], -row.shift_x_a, -row.shift_y_a, -row.rotation_error_deg)
    assert _correlation(wrong[inner], aligned.images[0][inner]) < 0.95


def test_tilt_offset_is_one_constant_for_the_series():
    series = _simulate(_blobs((8, 32, 32)), _config(
        {"profile": "ideal", "tilt_offset": 1.0}, angles=(-30.0, 30.0, 15.0)))
    table = tilt_table(series)
    offset = table.true_angle_deg - table.angle_deg
    assert np.ptp(offset) < 1e-12 and abs(offset.iloc[0]) > 1e-3


def test_images_are_formed_with_the_true_defocus_and_corrected_with_the_assumed(monkeypatch):
    volume = _blobs((16, 48, 48))
    config = _config({"profile": "ideal", "defocus_mismatch": 800.0}, angles=(0.0, 0.0, 1.0))
    series = _simulate(volume, config)
    mismatch = series.acquisition.defocus_mismatch[0]
    assert abs(mismatch) > 1.0
    assert series.true_defocus_u[0] == pytest.approx(20000.0)
    # the image is the one formed at the true defocus, not at the assumed one
    at_true = _simulate(volume, _config({"profile": "ideal"}, angles=(0.0, 0.0, 1.0)))
    at_assumed = _simulate(volume, _config({"profile": "ideal"}, angles=(0.0, 0.0, 1.0),
                                           defocus_um=(20000.0 + mismatch) / 1e4))
    np.testing.assert_array_equal(series.images, at_true.images)
    assert np.abs(series.images - at_assumed.images).max() > 1e-2
    # CTF correction (phase flip in the reconstruction) uses the assumed defocus
    seen = {}

    def capture(images, angles, **kwargs):
        seen.update(kwargs)
        return np.zeros((4, 4, 4), np.float32)

    monkeypatch.setattr(pipeline, "weighted_backprojection", capture)
    sim_config = SimulationConfig(microscope=config, sample={"shape": (16, 48, 48),
                                                             "pixel_size": PIXEL},
                                  reconstruction={"phase_flip": True})
    pipeline.reconstruct_tomogram(series, sim_config)
    used = np.asarray(seen["phase_flip"].defocus_u)
    np.testing.assert_allclose(used - series.true_defocus_u, mismatch, rtol=0, atol=1e-9)


def test_defocus_mismatch_has_the_configured_spread():
    config = _config({"profile": "ideal", "defocus_mismatch": 500.0}, angles=(-60.0, 60.0, 0.5))
    series = _simulate(_blobs((8, 16, 16)), config)
    drawn = series.defocus_u - series.true_defocus_u
    assert drawn.size == 241
    assert np.std(drawn) == pytest.approx(500.0, rel=0.15)


def test_correlated_series_has_the_stated_spread_and_lag_one_correlation():
    rng = np.random.default_rng(11)
    series = correlated_series(40_000, scale=3.0, correlation=0.7, rng=rng, size=2)
    assert series.std(axis=0) == pytest.approx([3.0, 3.0], rel=0.03)
    for k in range(2):
        lag1 = np.corrcoef(series[:-1, k], series[1:, k])[0, 1]
        lag2 = np.corrcoef(series[:-2, k], series[2:, k])[0, 1]
        assert lag1 == pytest.approx(0.7, abs=0.02)
        assert lag2 == pytest.approx(0.49, abs=0.02)  # AR(1): rho**2


def test_motion_blur_transfer_equals_averaging_shifted_copies():
    rng = np.random.default_rng(2)
    image = scipy.ndimage.gaussian_filter(rng.normal(size=(64, 64)), 2.0)
    length, angle = 6.0, 30.0  # pixels (pixel size 1), degrees from x
    steps = np.linspace(-0.5, 0.5, 401)[:-1] + 0.5 / 400  # midpoints along the path
    spectrum = np.fft.fft2(image)
    direction = np.array([np.sin(np.deg2rad(angle)), np.cos(np.deg2rad(angle))]) * length
    average = np.mean(
        [np.fft.ifft2(scipy.ndimage.fourier_shift(spectrum, t * direction)).real for t in steps],
        axis=0,
    )
    k_y, k_x = frequency_grid((64, 64), 1.0)
    filtered = np.fft.irfft2(np.fft.rfft2(image) * motion_blur_transfer(
        k_y, k_x, length=length, angle_deg=angle), s=(64, 64))
    # the two differ only in how the Nyquist terms are shifted
    np.testing.assert_allclose(filtered, average, atol=5e-4 * np.abs(image).max())


def test_bad_acquisition_settings_are_refused():
    with pytest.raises(TomosimError, match="shift_correlation"):
        AcquisitionSettings(shift_correlation=1.0)
    with pytest.raises(TomosimError, match="residual_shift"):
        AcquisitionSettings(residual_shift=-1.0)


def test_wiener_correction_restores_more_than_phase_flipping():
    from tomosim.microscope.ctf import Optics, apply_ctf
    from tomosim.reconstruct import phase_flip_tilt_series

    rng = np.random.default_rng(4)
    truth = scipy.ndimage.gaussian_filter(rng.normal(size=(96, 96)), 1.5)
    optics = Optics()
    imaged = apply_ctf(
        truth, pixel_size=4.0, defocus_u=15000.0, defocus_v=15000.0, astigmatism_angle=0.0,
        optics=optics, padding=0.5,
    )
    common = dict(pixel_size=4.0, defocus_u=15000.0, defocus_v=15000.0, astigmatism_angle=0.0,
                  optics=optics)
    flipped = phase_flip_tilt_series(imaged[None], **common)[0]
    wiener = phase_flip_tilt_series(imaged[None], wiener_snr=50.0, **common)[0]
    inner = (slice(16, -16), slice(16, -16))
    # both keep protein dark (the truth's sign flipped) and Wiener recovers it better
    r_flip = _correlation(flipped[inner], -truth[inner])
    r_wiener = _correlation(wiener[inner], -truth[inner])
    assert r_wiener > r_flip > 0
    assert r_wiener > 0.8
    with pytest.raises(TomosimError, match="signal-to-noise"):
        phase_flip_tilt_series(imaged[None], wiener_snr=0.0, **common)
