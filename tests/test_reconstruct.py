"""Weighted backprojection against analytic answers and scikit-image.

Every tilt series here is made by the test itself (analytic projections of points and balls, or
scikit-image ``radon``), never by :mod:`tomosim.microscope`, so these tests check the
reconstruction on its own. Geometry (CONVENTIONS.md): a point at ``(x, y, z)`` from the volume
centre ``shape // 2`` appears at column ``u = x cos θ + z sin θ`` from the image centre, row ``y``.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage

from tomosim.errors import TomosimError
from tomosim.microscope.ctf import Optics
from tomosim.reconstruct import (
    PhaseFlipSettings,
    exact_ramp,
    phase_flip_tilt_series,
    radial_filter,
    view_weights,
    weighted_backprojection,
)

# --------------------------------------------------------------------------------------------
# Analytic projectors (independent of tomosim)
# --------------------------------------------------------------------------------------------


def project_point(
    offset_xyz: tuple[float, float, float],
    angles_deg: np.ndarray,
    image_shape: tuple[int, int],
    tilt_axis_angle: float = 0.0,
) -> np.ndarray:
    """Tilt series of a unit point at ``offset_xyz`` from the volume centre, splatted bilinearly.

    The image of the point is at ``u = x cos θ + z sin θ``, row ``y`` (from the image centre
    ``shape // 2``), then rotated counter-clockwise by ``tilt_axis_angle`` about the centre:
    ``(u, y) -> (u cos φ − y sin φ, u sin φ + y cos φ)``.
    """
    x, y, z = offset_xyz
    n_y, n_x = image_shape
    phi = np.deg2rad(tilt_axis_angle)
    stack = np.zeros((len(angles_deg), n_y, n_x))
    for i, theta in enumerate(np.deg2rad(angles_deg)):
        u = x * np.cos(theta) + z * np.sin(theta)
        column = u * np.cos(phi) - y * np.sin(phi) + n_x // 2
        row = u * np.sin(phi) + y * np.cos(phi) + n_y // 2
        r0, c0 = int(np.floor(row)), int(np.floor(column))
        fr, fc = row - r0, column - c0
        stack[i, r0, c0] += (1 - fr) * (1 - fc)
        stack[i, r0, c0 + 1] += (1 - fr) * fc
        stack[i, r0 + 1, c0] += fr * (1 - fc)
        stack[i, r0 + 1, c0 + 1] += fr * fc
    return stack


def project_ball(
    centre_xyz: tuple[float, float, float],
    radius: float,
    angles_deg: np.ndarray,
    image_shape: tuple[int, int],
    supersampling: int = 4,
) -> np.ndarray:
    """Tilt series of a uniform ball (value 1): chord lengths ``2 √(r² − d²)``, pixel-averaged."""
    cx, cy, cz = centre_xyz
    n_y, n_x = image_shape
    rows = np.arange(n_y) - n_y // 2
    columns = np.arange(n_x) - n_x // 2
    sub = (np.arange(supersampling) + 0.5) / supersampling - 0.5
    stack = np.zeros((len(angles_deg), n_y, n_x))
    for i, theta in enumerate(np.deg2rad(angles_deg)):
        u_centre = cx * np.cos(theta) + cz * np.sin(theta)
        for dy in sub:
            for du in sub:
                d2 = (rows[:, None] + dy - cy) ** 2 + (columns[None, :] + du - u_centre) ** 2
                stack[i] += 2 * np.sqrt(np.clip(radius**2 - d2, 0, None))
    return stack / supersampling**2


def project_volume_by_rotation(volume: np.ndarray, angles_deg: np.ndarray) -> np.ndarray:
    """Ray sums of ``volume`` (z, y, x) after rotating it by ``+θ`` about y (scipy, linear).

    The rotated sample has ``x' = x cos θ + z sin θ``, ``z' = −x sin θ + z cos θ``; the image is
    the sum over ``z'``. In ``(z, y, x)`` index order the pull-back matrix is
    ``[[c, 0, s], [0, 1, 0], [−s, 0, c]]`` about the centre ``shape // 2``.
    """
    centre = np.array(volume.shape) // 2
    images = []
    for theta in np.deg2rad(angles_deg):
        c, s = np.cos(theta), np.sin(theta)
        matrix = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
        rotated = scipy.ndimage.affine_transform(
            volume, matrix, offset=centre - matrix @ centre, order=1
        )
        images.append(rotated.sum(axis=0))
    return np.array(images)


def ball_distance(shape: tuple[int, ...], centre_xyz: tuple[float, ...]) -> np.ndarray:
    z, y, x = np.meshgrid(*(np.arange(n) - n // 2 for n in shape), indexing="ij")
    return np.sqrt((x - centre_xyz[0]) ** 2 + (y - centre_xyz[1]) ** 2 + (z - centre_xyz[2]) ** 2)


# --------------------------------------------------------------------------------------------
# Geometry
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "angles",
    [np.arange(-60.0, 61.0, 3.0), np.arange(-90.0, 90.0, 2.0)],
    ids=["pm60-stretched", "pm90-with-direct-loop"],
)
def test_point_source_reconstructs_at_its_position(angles: np.ndarray) -> None:
    shape = (40, 48, 64)  # (z, y, x)
    offset = (7, -5, 9)  # x, y, z from the centre; off-centre in all three axes
    stack = project_point(offset, angles, shape[1:])
    volume = weighted_backprojection(stack, angles, thickness_px=shape[0])
    assert volume.shape == shape and volume.dtype == np.float32
    expected = (shape[0] // 2 + offset[2], shape[1] // 2 + offset[1], shape[2] // 2 + offset[0])
    assert np.unravel_index(np.argmax(volume), volume.shape) == expected
    # the mirror image in z (the wrong handedness) is not where the point is
    mirrored = (shape[0] // 2 - offset[2], expected[1], expected[2])
    assert volume[mirrored] < 0.2 * volume[expected]


def test_tilt_axis_angle_rotates_the_images_back() -> None:
    shape = (32, 48, 48)
    offset = (6, -8, 5)
    angles = np.arange(-60.0, 61.0, 4.0)
    stack = project_point(offset, angles, shape[1:], tilt_axis_angle=30.0)
    expected = (shape[0] // 2 + offset[2], shape[1] // 2 + offset[1], shape[2] // 2 + offset[0])
    right = weighted_backprojection(stack, angles, thickness_px=shape[0], tilt_axis_angle=30.0)
    assert np.unravel_index(np.argmax(right), shape) == expected
    wrong = weighted_backprojection(stack, angles, thickness_px=shape[0], tilt_axis_angle=-30.0)
    assert np.unravel_index(np.argmax(wrong), shape) != expected


def test_central_slice_agrees_with_skimage_iradon() -> None:
    """One x-z slice, full 180° sampling, against scikit-image's radon/iradon.

    skimage ``radon(image, θ_sk)`` rotates the image about ``shape // 2`` and sums over rows; an
    image pixel at (column c, row r) from the centre lands at detector position
    ``c cos θ_sk − r sin θ_sk``. With the x-z slice as the image (rows = z, columns = x) ours is
    ``x cos θ + z sin θ``, so ``θ_sk = −θ``. The sinogram is ``(position, angle)``; our tilt series
    is ``(angle, y, position)`` with one row.
    """
    from skimage.transform import iradon, radon

    n = 64
    rng = np.random.default_rng(1)
    z, x = np.mgrid[:n, :n] - n // 2
    image = np.zeros((n, n))
    for _ in range(6):
        cx, cz = rng.uniform(-18, 18, 2)
        image += rng.uniform(0.5, 2) * (((x - cx) ** 2 + (z - cz) ** 2) < rng.uniform(3, 8) ** 2)
    image[x**2 + z**2 > (n // 2 - 1) ** 2] = 0
    theta = np.arange(-90.0, 90.0, 1.0)
    sinogram = radon(image, theta=-theta, circle=True)
    reference = iradon(sinogram, theta=-theta, filter_name="ramp", circle=True, output_size=n)
    ours = weighted_backprojection(
        sinogram.T[:, None, :], theta, thickness_px=n, lowpass_cutoff=0.5, lowpass_falloff=0.0
    )[:, 0, :]
    inside = x**2 + z**2 < (n // 2 - 2) ** 2
    assert np.corrcoef(reference[inside], ours[inside])[0, 1] > 0.99
    assert np.corrcoef(image[inside], ours[inside])[0, 1] > 0.95
    mirrored = weighted_backprojection(
        sinogram.T[:, None, :], -theta, thickness_px=n, lowpass_cutoff=0.5, lowpass_falloff=0.0
    )[:, 0, :]
    assert np.corrcoef(reference[inside], mirrored[inside])[0, 1] < 0.5


def test_limited_tilt_volume_agrees_with_astra_fbp() -> None:
    """A ±60° series of a 3D phantom (our projector) against ASTRA's CPU FBP, row by row.

    ASTRA (an independent implementation, optional: skipped when not installed) measures its
    parallel-beam angle the other way round, so it gets ``-θ``; with ``+θ`` the volumes disagree
    (correlation ~0.56 here, 0.2 on larger volumes).
    """
    astra = pytest.importorskip("astra", reason="ASTRA Toolbox not installed (optional reference)")
    from tomosim.microscope.projection import project_volume

    nz, ny, nx = 48, 6, 96
    rng = np.random.default_rng(4)
    z, y, x = np.indices((nz, ny, nx))
    truth = np.zeros((nz, ny, nx), np.float32)
    for _ in range(12):
        centre = rng.uniform([10, 0, 10], [nz - 10, ny, nx - 10])
        truth[(z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2 < rng.uniform(3, 7) ** 2] += 1
    angles = np.linspace(-60.0, 60.0, 41)
    stack = project_volume(truth, angles, pixel_size=1.0).astype(np.float32)
    ours = weighted_backprojection(stack, angles, thickness_px=nz)

    def astra_volume(sign: float) -> np.ndarray:
        volume_geometry = astra.create_vol_geom(nz, nx)
        projection_geometry = astra.create_proj_geom("parallel", 1.0, nx, np.deg2rad(sign * angles))
        projector = astra.create_projector("linear", projection_geometry, volume_geometry)
        out = np.empty_like(ours)
        for row in range(ny):
            sinogram = astra.data2d.create("-sino", projection_geometry, stack[:, row, :])
            volume = astra.data2d.create("-vol", volume_geometry)
            config = astra.astra_dict("FBP")
            config.update({"ProjectorId": projector, "ProjectionDataId": sinogram,
                           "ReconstructionDataId": volume})
            algorithm = astra.algorithm.create(config)
            astra.algorithm.run(algorithm)
            out[:, row, :] = astra.data2d.get(volume)
            astra.algorithm.delete(algorithm)
            astra.data2d.delete([sinogram, volume])
        astra.projector.delete(projector)
        return out

    assert np.corrcoef(ours.ravel(), astra_volume(-1.0).ravel())[0, 1] > 0.95
    assert np.corrcoef(ours.ravel(), astra_volume(+1.0).ravel())[0, 1] < 0.8


# --------------------------------------------------------------------------------------------
# Scaling and Fourier content
# --------------------------------------------------------------------------------------------


def test_ball_with_full_sampling_has_small_bias() -> None:
    """Ray sums of a ball of value 1 over ±90° reconstruct to 1 inside and 0 outside."""
    n, radius, centre = 64, 8.0, (3.0, -2.0, 4.0)
    angles = np.arange(-90.0, 90.0, 1.0)
    stack = project_ball(centre, radius, angles, (n, n))
    volume = weighted_backprojection(
        stack, angles, thickness_px=n, lowpass_cutoff=0.5, lowpass_falloff=0.0
    )
    distance = ball_distance(volume.shape, centre)
    assert volume[distance < radius - 1.5].mean() == pytest.approx(1.0, abs=0.05)
    outside = volume[distance > radius + 2]
    assert abs(outside.mean()) < 0.01
    assert outside.std() < 0.02


def test_missing_wedge_is_empty() -> None:
    """With ±60° the reconstruction has (almost) no power where no projection sampled."""
    n = 64
    rng = np.random.default_rng(0)
    volume = scipy.ndimage.gaussian_filter(rng.standard_normal((n, n, n)), 1.0)
    z, _, x = np.mgrid[:n, :n, :n] - n // 2
    volume[x**2 + z**2 > 24**2] = 0  # a cylinder about y that every view sees whole
    angles = np.arange(-60.0, 61.0, 2.0)
    stack = project_volume_by_rotation(volume, angles)
    reconstruction = weighted_backprojection(
        stack, angles, thickness_px=n, lowpass_cutoff=0.5, lowpass_falloff=0.0
    )
    assert np.corrcoef(reconstruction.ravel(), volume.ravel())[0, 1] > 0.7

    hann = np.hanning(n)
    window = hann[:, None, None] * hann[None, :, None] * hann[None, None, :]
    k = np.fft.fftfreq(n)
    kz, _, kx = np.meshgrid(k, k, k, indexing="ij")
    k_xz = np.hypot(kx, kz)
    elevation = np.degrees(np.arctan2(np.abs(kz), np.abs(kx)))  # 90° = along the beam at 0°
    band = (k_xz > 0.1) & (k_xz < 0.3)
    in_wedge = band & (elevation > 70)
    sampled = band & (elevation < 50)
    for data, low, high in ((reconstruction, 0, 1e-3), (volume, 0.3, 3.0)):
        power = np.abs(np.fft.fftn(data * window)) ** 2
        ratio = power[in_wedge].mean() / power[sampled].mean()
        assert low <= ratio < high


def test_view_weights_cover_the_angular_range() -> None:
    assert view_weights(np.arange(-90.0, 90.0, 1.0)) == pytest.approx(np.full(180, np.pi / 180))
    shuffled = np.array([0.0, -60.0, 60.0, -30.0, 30.0])
    weights = view_weights(shuffled)
    assert weights == pytest.approx(np.deg2rad([30.0] * 5))
    uneven = view_weights(np.array([-10.0, 0.0, 30.0]))
    assert uneven == pytest.approx(np.deg2rad([10.0, 20.0, 30.0]))


def test_exact_ramp_is_ramp_with_positive_dc() -> None:
    length = 256
    ramp = exact_ramp(length)
    k = np.arange(ramp.size) / length
    assert 0 < ramp[0] < 0.5 / length
    assert ramp[1:] == pytest.approx(k[1:], abs=0.5 / length)
    assert ramp[-1] == pytest.approx(0.5, abs=1e-3)


def test_radial_lowpass_is_imod_gaussian() -> None:
    length = 1000
    ramp = exact_ramp(length)
    filtered = radial_filter(length, lowpass_cutoff=0.2, lowpass_falloff=0.05)
    ratio = filtered / ramp
    assert ratio[: 200 + 1] == pytest.approx(1.0)  # flat up to the cutoff (k = j / 1000)
    assert ratio[250] == pytest.approx(np.exp(-0.5))  # one sigma beyond
    assert ratio[300] == pytest.approx(np.exp(-2.0))
    hard = radial_filter(length, lowpass_cutoff=0.2, lowpass_falloff=0.0) / ramp
    assert hard[200] == 1.0 and hard[201] == 0.0


def test_sirt_like_filter_keeps_low_and_damps_high_frequencies() -> None:
    length, thickness = 512, 64
    plain = radial_filter(length, lowpass_cutoff=0.5, lowpass_falloff=0.0)
    windows = [
        radial_filter(
            length,
            lowpass_cutoff=0.5,
            lowpass_falloff=0.0,
            sirt_like_iterations=n,
            thickness_px=thickness,
        )
        / plain
        for n in (5, 20, 100)
    ]
    a = 1 / (np.pi * thickness)  # Zeng's constant for SIRT normalised by views and thickness
    k = np.arange(plain.size) / length
    low = k < a
    for window in windows:
        assert window[low] == pytest.approx(1.0)
        assert np.all(np.diff(window[k > a]) <= 1e-12)  # falls with frequency
    assert windows[0][-1] < 0.1  # 5 iterations: Nyquist strongly damped
    assert np.all(windows[0] <= windows[1] + 1e-12) and np.all(windows[1] <= windows[2] + 1e-12)
    j = 100  # closed form 1 - (1 - a/R)^N at one bin
    expected = 1 - (1 - a / exact_ramp(length)[j]) ** 20
    assert windows[1][j] == pytest.approx(expected)


def test_sirt_like_reconstruction_keeps_the_ball_level() -> None:
    n, radius = 48, 8.0
    angles = np.arange(-90.0, 90.0, 2.0)
    stack = project_ball((0.0, 0.0, 0.0), radius, angles, (n, n))
    distance = ball_distance((n, n, n), (0.0, 0.0, 0.0))
    plain = weighted_backprojection(stack, angles, thickness_px=n)
    sirt = weighted_backprojection(stack, angles, thickness_px=n, sirt_like_iterations=10)
    assert sirt[distance < radius / 2].mean() == pytest.approx(1.0, abs=0.1)
    # fewer high frequencies: a smoother image
    assert np.abs(np.diff(sirt, axis=2)).mean() < np.abs(np.diff(plain, axis=2)).mean()


# --------------------------------------------------------------------------------------------
# Binning, invert
# --------------------------------------------------------------------------------------------


def test_binning_averages_pixels_and_scales_the_volume() -> None:
    n, radius, centre = 64, 10.0, (6.0, -4.0, 8.0)
    angles = np.arange(-90.0, 90.0, 2.0)
    stack = project_ball(centre, radius, angles, (n, n))
    full = weighted_backprojection(stack, angles, thickness_px=n)
    binned = weighted_backprojection(stack, angles, thickness_px=n, binning=2)
    assert binned.shape == (n // 2, n // 2, n // 2) and binned.dtype == np.float32
    # the images stay ray sums in unbinned pixels, so the values are unchanged
    distance = ball_distance(binned.shape, tuple(c / 2 for c in centre))
    assert binned[distance < radius / 2 - 1.5].mean() == pytest.approx(1.0, abs=0.06)
    assert abs(binned[distance > radius / 2 + 2].mean()) < 0.02
    block = full.reshape(n // 2, 2, n // 2, 2, n // 2, 2).mean(axis=(1, 3, 5))
    assert np.corrcoef(block.ravel(), binned.ravel())[0, 1] > 0.95
    odd = weighted_backprojection(stack[:, :63, :61], angles, thickness_px=33, binning=4)
    assert odd.shape == (8, 15, 15)


def test_invert_flips_the_sign_exactly() -> None:
    angles = np.arange(-60.0, 61.0, 6.0)
    stack = project_point((3, 2, -4), angles, (24, 32))
    plain = weighted_backprojection(stack, angles, thickness_px=16)
    inverted = weighted_backprojection(stack, angles, thickness_px=16, invert=True)
    np.testing.assert_array_equal(inverted, -plain)


def test_same_input_gives_identical_output() -> None:
    rng = np.random.default_rng(3)
    stack = rng.standard_normal((11, 20, 30)).astype(np.float32)
    angles = np.linspace(-50, 50, 11)
    first = weighted_backprojection(stack, angles, thickness_px=12, tilt_axis_angle=5.0)
    second = weighted_backprojection(stack, angles, thickness_px=12, tilt_axis_angle=5.0)
    assert first.tobytes() == second.tobytes()


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stack_shape", "angles", "keywords", "message"),
    [
        ((5, 8, 8), [0, 1, 2, 3], {}, "4 tilt angles for a tilt series of 5 images"),
        ((3, 8, 8), [-91, 0, 10], {}, r"within \[-90, 90\]"),
        ((3, 8, 8), [0, np.nan, 10], {}, r"within \[-90, 90\]"),
        ((8, 8), [0] * 8, {}, "must be a 3D"),
        ((3, 8, 8), [0, 1, 2], {"thickness_px": 0}, "thickness must be"),
        ((3, 8, 8), [0, 1, 2], {"thickness_px": 2.5}, "thickness must be"),
        ((3, 8, 8), [0, 1, 2], {"binning": 9}, "binning must be"),
        ((3, 8, 8), [0, 1, 2], {"lowpass_cutoff": 0.0}, "low-pass cutoff"),
        ((3, 8, 8), [0, 1, 2], {"sirt_like_iterations": -1}, "SIRT-like"),
        ((3, 8, 8), [0, 1, 2], {"phase_flip": PhaseFlipSettings(1e4, 1e4)}, "pixel size"),
    ],
)
def test_bad_input_raises_one_line_error(stack_shape, angles, keywords, message) -> None:
    arguments = {"thickness_px": 4, **keywords}
    with pytest.raises(TomosimError, match=message) as error:
        weighted_backprojection(np.zeros(stack_shape), angles, **arguments)
    assert "\n" not in str(error.value)


def test_nan_images_are_rejected() -> None:
    stack = np.zeros((3, 8, 8))
    stack[1, 2, 3] = np.nan
    with pytest.raises(TomosimError, match="NaN"):
        weighted_backprojection(stack, [0, 1, 2], thickness_px=4)


# --------------------------------------------------------------------------------------------
# Phase flipping (uses tomosim.microscope.ctf.ctf_2d; checked against an independent CTF)
# --------------------------------------------------------------------------------------------


def reference_ctf(shape, pixel_size, defocus, voltage_kv=300.0, cs_mm=2.7, amplitude=0.07):
    """CTFFIND4 CTF, written here independently: −(√(1−A²) sin χ + A cos χ), full FFT plane."""
    volts = voltage_kv * 1e3
    wavelength = 12.2643247 / np.sqrt(volts * (1 + 0.978466e-6 * volts))  # Å
    ky = np.fft.fftfreq(shape[0], pixel_size)[:, None]
    kx = np.fft.fftfreq(shape[1], pixel_size)[None, :]
    k2 = kx**2 + ky**2
    chi = np.pi * wavelength * defocus * k2 - 0.5 * np.pi * cs_mm * 1e7 * wavelength**3 * k2**2
    return -(np.sqrt(1 - amplitude**2) * np.sin(chi) + amplitude * np.cos(chi))


def ctf_point_image(shape, pixel_size, positions, defoci):
    """Points at ``positions`` (row, column) imaged with their own defocus (on a 3× larger grid)."""
    big = (3 * shape[0], 3 * shape[1])
    image = np.zeros(big)
    for (row, column), defocus in zip(positions, defoci, strict=False):
        delta = np.zeros(big)
        delta[row + shape[0], column + shape[1]] = 1.0
        ctf = reference_ctf(big, pixel_size, defocus)
        image += np.real(np.fft.ifft2(np.fft.fft2(delta) * ctf))
    return image[shape[0] : 2 * shape[0], shape[1] : 2 * shape[1]]


def test_phase_flip_makes_every_band_take_the_first_lobe_sign() -> None:
    pytest.importorskip("tomosim.microscope.ctf")
    shape, pixel_size, defocus = (64, 64), 4.0, 1.5e4
    image = ctf_point_image(shape, pixel_size, [(32, 32)], [defocus])
    big = (3 * shape[0], 3 * shape[1])
    delta = np.zeros(big)
    delta[32 + shape[0], 32 + shape[1]] = 1.0
    flipped_ctf = -np.abs(reference_ctf(big, pixel_size, defocus))
    ideal = np.real(np.fft.ifft2(np.fft.fft2(delta) * flipped_ctf))[
        shape[0] : 2 * shape[0], shape[1] : 2 * shape[1]
    ]
    result = phase_flip_tilt_series(
        image[None],
        pixel_size=pixel_size,
        defocus_u=defocus,
        defocus_v=defocus,
        astigmatism_angle=0.0,
        optics=Optics(voltage_kv=300.0, cs_mm=2.7, amplitude_contrast=0.07),
    )[0]
    assert result.dtype == np.float32 and result.shape == shape
    assert np.corrcoef(result.ravel(), ideal.ravel())[0, 1] > 0.95
    assert np.corrcoef(image.ravel(), ideal.ravel())[0, 1] < 0.8
    assert result[32, 32] < 0  # the point stays dark, like protein in underfocus
    assert result[32, 32] < 1.5 * image[32, 32]  # and darker than before


def test_phase_flip_in_strips_follows_the_defocus_gradient() -> None:
    pytest.importorskip("tomosim.microscope.ctf")
    shape, pixel_size, defocus, tilt = (64, 256), 2.0, 5e3, 70.0
    columns = [28, 128, 228]
    positions = [(32, c) for c in columns]
    # Δf = Δf₀ + u tan θ, u in Å from the tilt axis (the image centre column)
    local = [defocus + (c - shape[1] // 2) * pixel_size * np.tan(np.deg2rad(tilt)) for c in columns]
    image = ctf_point_image(shape, pixel_size, positions, local)
    big = (3 * shape[0], 3 * shape[1])
    ideal = np.zeros(big)
    for (row, column), value in zip(positions, local, strict=False):
        delta = np.zeros(big)
        delta[row + shape[0], column + shape[1]] = 1.0
        flipped_ctf = -np.abs(reference_ctf(big, pixel_size, value))
        ideal += np.real(np.fft.ifft2(np.fft.fft2(delta) * flipped_ctf))
    ideal = ideal[shape[0] : 2 * shape[0], shape[1] : 2 * shape[1]]
    common = {
        "pixel_size": pixel_size,
        "defocus_u": defocus,
        "defocus_v": defocus,
        "astigmatism_angle": 0.0,
        "optics": Optics(voltage_kv=300.0, cs_mm=2.7, amplitude_contrast=0.07),
    }
    strips = phase_flip_tilt_series(image[None], tilt_angles=[tilt], strip_width_px=16, **common)
    single = phase_flip_tilt_series(image[None], **common)
    corr_strips = np.corrcoef(strips[0].ravel(), ideal.ravel())[0, 1]
    corr_single = np.corrcoef(single[0].ravel(), ideal.ravel())[0, 1]
    assert corr_strips > 0.9
    assert corr_strips > corr_single + 0.3


def test_backprojection_with_phase_flip_equals_flip_then_backprojection() -> None:
    pytest.importorskip("tomosim.microscope.ctf")
    rng = np.random.default_rng(5)
    stack = rng.standard_normal((5, 32, 32))
    angles = np.array([-40.0, -20.0, 0.0, 20.0, 40.0])
    settings = PhaseFlipSettings(defocus_u=2e4, defocus_v=1.8e4, astigmatism_angle=30.0)
    combined = weighted_backprojection(
        stack, angles, thickness_px=16, pixel_size=5.0, phase_flip=settings
    )
    flipped = phase_flip_tilt_series(
        stack,
        pixel_size=5.0,
        defocus_u=2e4,
        defocus_v=1.8e4,
        astigmatism_angle=30.0,
        optics=Optics(voltage_kv=300.0, cs_mm=2.7, amplitude_contrast=0.07),
    )
    separate = weighted_backprojection(flipped, angles, thickness_px=16)
    np.testing.assert_allclose(combined, separate, atol=1e-5)


def test_phase_flip_rejects_bad_parameters() -> None:
    pytest.importorskip("tomosim.microscope.ctf")
    common = {
        "defocus_u": [1e4, 2e4],
        "defocus_v": 1e4,
        "astigmatism_angle": 0.0,
        "optics": Optics(voltage_kv=300.0, cs_mm=2.7, amplitude_contrast=0.07),
    }
    with pytest.raises(TomosimError, match="defocus_u: 2 values for 3 tilts"):
        phase_flip_tilt_series(np.zeros((3, 8, 8)), pixel_size=2.0, **common)
    with pytest.raises(TomosimError, match="positive pixel size"):
        phase_flip_tilt_series(np.zeros((2, 8, 8)), pixel_size=0.0, **common)
    with pytest.raises(TomosimError, match="needs the tilt angles"):
        phase_flip_tilt_series(np.zeros((2, 8, 8)), pixel_size=2.0, strip_width_px=4, **common)
