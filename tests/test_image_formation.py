"""The whole image-formation chain: reproducibility, contrast sign, dose scaling, errors applied."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage

from tomosim.config import (
    AcquisitionConfig,
    DetectorConfig,
    DoseConfig,
    MicroscopeConfig,
    OpticsConfig,
    TiltConfig,
)
from tomosim.errors import TomosimError
from tomosim.microscope.image_formation import depth_slabs, simulate_tilt_series
from tomosim.recipe import acquisition, optics

PIXEL = 5.0


def _ball(shape=(24, 48, 48), radius_px=8.0, volts=2.0, centre_offset=(0, 0, 0)) -> np.ndarray:
    z, y, x = np.indices(shape, dtype=np.float64)
    cz, cy, cx = (s // 2 + o for s, o in zip(shape, centre_offset, strict=True))
    inside = (z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2 < radius_px**2
    return (inside * volts).astype(np.float32)


def _config(tilt=None, optics=None, dose=None, detector=None, acquisition=None) -> MicroscopeConfig:
    # the ideal acquisition profile: these tests check the physics of image formation alone
    return MicroscopeConfig(
        acquisition=AcquisitionConfig(**{"profile": "ideal", **(acquisition or {})}),
        tilt=TiltConfig(**{"min_angle": -30, "max_angle": 30, "step": 15, **(tilt or {})}),
        optics=OpticsConfig(**{"defocus_um": 2.0, **(optics or {})}),
        dose=DoseConfig(**(dose or {})),
        detector=DetectorConfig(**{"write_noise_free": True, **(detector or {})}),
    )


def _simulate(volume, config, seed=0, thickness=1000.0):
    return simulate_tilt_series(
        volume, pixel_size=PIXEL, ice_thickness=thickness, acquisition=acquisition(config),
        optics=optics(config.optics), ice_potential_v=4.5, rng=np.random.default_rng(seed),
    )


def test_same_seed_gives_byte_identical_series():
    config = _config(
        tilt={"shift_error": 10.0, "rotation_error": 1.0, "angle_error": 0.5,
              "tilt_axis_angle": 8.0},
        optics={"defocus_jitter_um": 0.2, "astigmatism_um": 0.3, "astigmatism_angle": 20.0},
        detector={"write_half_sets": True, "read_noise": 0.5},
    )
    volume = _ball()
    first, second = _simulate(volume, config, seed=11), _simulate(volume, config, seed=11)
    for name in ("images", "noise_free", "odd", "even", "defocus_u", "angles_deg"):
        assert getattr(first, name).tobytes() == getattr(second, name).tobytes(), name
    np.testing.assert_array_equal(first.scheme.shifts, second.scheme.shifts)
    assert _simulate(volume, config, seed=12).images.tobytes() != first.images.tobytes()
    assert first.images.dtype == np.float32 and first.images.shape == (5, 48, 48)
    np.testing.assert_allclose(first.odd + first.even, first.images, rtol=1e-5, atol=1e-4)


def _low_pass_contrast(image: np.ndarray) -> tuple[float, float]:
    smooth = scipy.ndimage.gaussian_filter(image.astype(np.float64), 3.0)
    centre = smooth[20:29, 20:29].mean()
    background = np.concatenate([smooth[:8].ravel(), smooth[-8:].ravel()]).mean()
    return centre, background


def test_protein_ball_is_darker_than_ice_in_underfocus():
    series = _simulate(_ball(), _config(tilt={"min_angle": 0, "max_angle": 0}))
    centre, background = _low_pass_contrast(series.noise_free[0])
    assert centre < 0.99 * background
    # overfocus without amplitude contrast: the phase contrast flips, the ball is bright
    over = _simulate(_ball(), _config(tilt={"min_angle": 0, "max_angle": 0},
                                      optics={"defocus_um": -2.0, "amplitude_contrast": 0.0}))
    centre, background = _low_pass_contrast(over.noise_free[0])
    assert centre > 1.005 * background


def test_counts_scale_with_dose_and_transmission():
    volume = _ball(volts=0.5)
    config = _config(dose={"total_dose_e_per_a2": 50.0})
    series = _simulate(volume, config, thickness=2000.0)
    zero_loss = np.exp(-2000.0 / (3500.0 * np.cos(np.deg2rad(series.angles_deg))))
    expected_mean = series.scheme.dose * PIXEL**2 * zero_loss
    np.testing.assert_allclose(series.noise_free.mean(axis=(1, 2)), expected_mean, rtol=0.01)
    np.testing.assert_allclose(series.images.mean(axis=(1, 2)), expected_mean, rtol=0.02)
    double = _simulate(volume, _config(dose={"total_dose_e_per_a2": 100.0,
                                             "exposure_filter": False}), thickness=2000.0)
    single = _simulate(volume, _config(dose={"total_dose_e_per_a2": 50.0,
                                             "exposure_filter": False}), thickness=2000.0)
    np.testing.assert_allclose(double.noise_free, 2 * single.noise_free, rtol=1e-5, atol=1e-3)
    unfiltered = _simulate(volume, _config(dose={"total_dose_e_per_a2": 50.0,
                                                 "energy_filter": False}), thickness=2000.0)
    np.testing.assert_allclose(unfiltered.noise_free.mean(axis=(1, 2)),
                               series.scheme.dose * PIXEL**2, rtol=0.01)


def test_shift_errors_are_applied_and_recorded():
    series = _simulate(_ball(radius_px=5.0), _config(tilt={"shift_error": 25.0}), seed=3)
    assert np.abs(series.scheme.shifts).max() > 5.0
    rows, cols = np.indices((48, 48))
    for image, shift in zip(series.noise_free, series.scheme.shifts, strict=True):
        smooth = scipy.ndimage.gaussian_filter(image.astype(np.float64), 2.0)
        darkness = np.clip(np.median(smooth) - smooth, 0, None)
        darkness[darkness < 0.5 * darkness.max()] = 0
        centroid = np.array([(darkness * cols).sum(), (darkness * rows).sum()]) / darkness.sum()
        np.testing.assert_allclose(centroid - 24, shift / PIXEL, atol=1.0)


def test_series_metadata():
    config = _config(optics={"astigmatism_um": 0.4, "astigmatism_angle": 30.0},
                     tilt={"order": "dose_symmetric", "group_size": 1})
    series = _simulate(_ball(), config)
    np.testing.assert_allclose(series.angles_deg, [-30, -15, 0, 15, 30])
    np.testing.assert_allclose(series.defocus_u - series.defocus_v, 4000.0)
    np.testing.assert_allclose((series.defocus_u + series.defocus_v) / 2, 20000.0)
    np.testing.assert_allclose(series.astigmatism_angle, 30.0)
    assert series.scheme.acquisition_index.tolist() == [4, 2, 0, 1, 3]
    assert series.odd is None and series.even is None
    assert series.optics.voltage_kv == 300.0 and series.pixel_size == PIXEL


def test_depth_slabs_cover_the_volume_with_heights_towards_the_source():
    slabs = depth_slabs(100, pixel_size=2.0, tilt_angle=60.0, defocus_step=100.0)
    assert len(slabs) == 4  # 200 Å of sample is 400 Å along the beam at 60°
    assert slabs[0][0] == 0 and slabs[-1][1] == 100
    assert all(a[1] == b[0] for a, b in zip(slabs[:-1], slabs[1:], strict=True))
    assert slabs[0][2] < 0 < slabs[-1][2]  # high z index = towards the source = positive height
    assert depth_slabs(10, pixel_size=1.0, tilt_angle=0.0, defocus_step=1e4) == [(0, 10, -0.5)]


def test_depth_defocus_runs_and_agrees_for_a_thin_sample():
    volume = _ball(shape=(8, 48, 48), radius_px=3.0)
    plain = _simulate(volume, _config())
    depth = _simulate(volume, _config(optics={"depth_defocus": True}))
    np.testing.assert_allclose(depth.noise_free, plain.noise_free, rtol=1e-3)


def test_bad_input_raises():
    with pytest.raises(TomosimError, match="volume"):
        _simulate(np.zeros((8, 8)), _config())
    with pytest.raises(TomosimError, match="ice_thickness"):
        _simulate(_ball(), _config(), thickness=-1.0)
    with pytest.raises(TomosimError, match="NaN"):
        _simulate(np.full((4, 8, 8), np.nan, dtype=np.float32), _config())
