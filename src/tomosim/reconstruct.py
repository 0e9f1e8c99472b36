"""Reconstruction: weighted backprojection (WBP) of a tilt series, as IMOD's ``tilt`` does it.

Geometry (CONVENTIONS.md, "Microscope geometry"): the tomogram is indexed ``(z, y, x)``, the tilt
series ``(tilt, y, x)``; the tilt axis is the y axis. A point at ``(x, y, z)`` relative to the
tomogram centre ``shape // 2`` appears in the image at tilt ``θ`` in the same row ``y`` and at
column ``u = x cos θ + z sin θ`` relative to the image centre ``x_size // 2``. This is the
geometry of IMOD's ``tilt`` with ``.tlt`` angles: the same tilt series and angles give a tomogram
with the same handedness in tomosim and IMOD.

Steps of :func:`weighted_backprojection`, in order:

1. optional phase flipping (:func:`phase_flip_tilt_series`, after rotating the images so that the
   tilt axis is along y);
2. binning by averaging ``b × b`` pixels;
3. rotation of each image by ``−tilt_axis_angle`` about its centre ``shape // 2``;
4. subtraction of each image's mean, padding of each row to at least twice its length by a linear
   blend from its last value back to its first (so the periodic row has no step), and the 1D
   filter along x (perpendicular to the tilt axis): the exact discrete ramp, the IMOD ``RADIAL``
   low-pass, the optional SIRT-like window, and the angular weight of the view;
5. backprojection in numba (rows ``y`` in parallel, an x-z slice per row kept in cache).

Scaling: a tilt series whose images are the sums of voxel values along the rays (the line
integral in units of value × voxel, i.e. ``volume.sum(axis=0)`` at 0°) reconstructs to the voxel
values themselves when the angles sample the full ±90° range: the filtered backprojection
``f(x, z) = Σᵢ Δθᵢ (pᵢ ∗ h)(uᵢ)`` with ``h`` the ramp ``|k|`` (k in cycles/pixel) and ``Δθᵢ`` the
angular interval (radians) that view ``i`` covers. A projection in V·Å (sum × pixel size) gives
the potential times the pixel size. Binning does not change this: the images are still taken as
ray sums in units of unbinned pixels, so the binned tomogram has the same values (averaged over
``b³`` voxels) as the unbinned one. With a limited tilt range the same weights are used, so
structures lose the part of their contrast that lies in the missing wedge, as in IMOD.

Mean level: each image's mean is subtracted before filtering (IMOD reconstructions also carry an
arbitrary offset), so a sample that fills the field of view (an ice slab) reconstructs with mean
≈ 0. For an object that lies wholly inside the field of view the subtraction changes the
reconstruction only by the constant ``−Σᵢ Δθᵢ mᵢ R(0)`` (``mᵢ`` the image mean, ``R(0) ≈
2 / (π² P)`` the zero-frequency weight of the exact discrete ramp on ``P`` padded samples): the
padded row is then the original row shifted by ``−mᵢ`` everywhere, which touches only the zero
frequency.

Speed: the backprojection follows the "cosine stretching" of IMOD's ``tilt`` (its manual page) for
tilts up to 80°: each filtered row is first resampled (cubic convolution, Keys 1981, *IEEE Trans.
Acoust. Speech Signal Process.* 29, 1153) on a grid of spacing ``cos θ``, after which
``u`` at ``(x, z)`` is ``x + z tan θ`` in stretched samples, the interpolation fraction is constant
along x, and the inner loop is a contiguous, vectorised two-tap blend. Tilts beyond 80° use a
direct loop (linear interpolation at ``u = x cos θ + z sin θ``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numba
import numpy as np
import scipy.fft
import scipy.ndimage

from tomosim.errors import TomosimError
from tomosim.microscope.ctf import Optics, ctf_2d, defocus_in_tilted_image

__all__ = [
    "PhaseFlipSettings",
    "exact_ramp",
    "phase_flip_tilt_series",
    "radial_filter",
    "view_weights",
    "weighted_backprojection",
]

#: Largest |tilt| (degrees) backprojected through cosine-stretched rows; beyond it the direct loop.
STRETCH_LIMIT_DEG = 80.0

PerTilt = float | Sequence[float] | np.ndarray
"""One value for all tilts, or one per tilt."""


@dataclass(frozen=True)
class PhaseFlipSettings:
    """CTF parameters for phase flipping (CTFFIND convention, see :mod:`tomosim.microscope.ctf`).

    Attributes
    ----------
    defocus_u, defocus_v
        Defocus along the astigmatism axes in Å, positive = underfocus; one value for all tilts or
        one per tilt.
    astigmatism_angle
        Degrees from the image x axis to the u axis, counter-clockwise, in the raw (unrotated)
        images; one value or one per tilt.
    optics
        Beam energy, spherical aberration, amplitude contrast and phase shift.
    strip_width_px
        Correct the defocus gradient of tilted images in strips of this width (pixels, along x);
        ``None`` uses one defocus per image.
    wiener_snr
        None: phase flipping; a number: a Wiener filter with this signal-to-noise ratio instead
        (:func:`phase_flip_tilt_series`).
    """

    defocus_u: PerTilt
    defocus_v: PerTilt
    astigmatism_angle: PerTilt = 0.0
    optics: Optics = Optics()
    strip_width_px: int | None = None
    wiener_snr: float | None = None


# --------------------------------------------------------------------------------------------
# Filters
# --------------------------------------------------------------------------------------------


def exact_ramp(padded_length: int) -> np.ndarray:
    """The exact discrete ramp filter on ``padded_length`` samples, rfft half spectrum.

    The DFT of the band-limited ramp kernel ``h[0] = 1/4``, ``h[n] = −1/(π n)²`` for odd ``n``,
    0 for even ``n`` (Ramachandran & Lakshminarayanan 1971, *PNAS* 68, 2236; Kak & Slaney 1988,
    *Principles of Computerized Tomographic Imaging*, ch. 3), whose continuous transform is
    ``|k|`` up to Nyquist. Sampled this way rather than as ``|k|`` on the DFT grid, the filter has
    a small positive zero-frequency value (≈ 2 / (π² ``padded_length``)) and gives reconstructions
    without the DC bias of a sampled ramp (Zeng 2015, *IEEE Trans. Nucl. Sci.* 62, 131).

    Returns
    -------
    numpy.ndarray
        ``(padded_length // 2 + 1,)`` float64, in cycles/pixel units (≈ ``k / padded_length``).
    """
    n = np.arange(padded_length)
    n = np.where(n > padded_length // 2, n - padded_length, n)  # signed offsets, circular
    kernel = np.zeros(padded_length)
    kernel[0] = 0.25
    odd = n % 2 == 1
    kernel[odd] = -1.0 / (np.pi * n[odd]) ** 2
    return np.real(scipy.fft.rfft(kernel))


def radial_filter(
    padded_length: int,
    *,
    lowpass_cutoff: float = 0.35,
    lowpass_falloff: float = 0.035,
    sirt_like_iterations: int = 0,
    thickness_px: int = 1,
    angular_range_rad: float = np.pi,
) -> np.ndarray:
    """The 1D filter applied along x to every padded image row: ramp × low-pass × SIRT window.

    - Ramp: :func:`exact_ramp`.
    - Low-pass, IMOD ``tilt`` ``RADIAL cutoff falloff`` with ``FalloffIsTrueSigma 1``: 1 up to
      ``lowpass_cutoff`` (cycles/pixel), then ``exp(−(k − cutoff)² / (2 falloff²))``; ``falloff``
      0 is a hard cut.
    - SIRT-like window (IMOD ``FakeSIRTiterations``; IMOD documentation "SIRT and SIRT-like Filter
      Reconstructions", bio3d.colorado.edu/imod/doc/SIRTexample.html): the ramp ``R`` becomes
      ``R · (1 − (1 − a/R)^N)``. This is Zeng's (2012, *Med. Phys.* 39, 603) FBP equivalent of
      ``N`` Landweber/SIRT iterations started from zero: ``x_N = [1 − (1 − λ AᵀA)^N] (AᵀA)⁻¹ Aᵀ p``,
      where ``λ AᵀA`` is, in the Fourier domain, ``a/|k|``. For SIRT normalised by the number of
      views and the ray length (the slab thickness ``T``) over an angular range ``Θ`` this is
      ``a = 1 / (Θ T)`` (cycles/pixel); frequencies with ``a/R ≥ 1`` (converged after one
      iteration) keep the plain ramp. IMOD tuned its own ``a`` and a rescaling of ``N`` against its
      SIRT and has not published them, so ``N`` here matches IMOD's only approximately.

    Returns
    -------
    numpy.ndarray
        ``(padded_length // 2 + 1,)`` float64 for ``rfft`` bins ``k = j / padded_length``.
    """
    ramp = exact_ramp(padded_length)
    k = np.arange(ramp.size) / padded_length
    if lowpass_falloff > 0:
        gaussian = np.exp(-((k - lowpass_cutoff) ** 2) / (2 * lowpass_falloff**2))
        lowpass = np.where(k <= lowpass_cutoff, 1.0, gaussian)
    else:
        lowpass = (k <= lowpass_cutoff).astype(np.float64)
    window = np.ones_like(ramp)
    if sirt_like_iterations > 0:
        a = 1.0 / (angular_range_rad * max(thickness_px, 1))
        remaining = np.clip(1.0 - a / ramp, 0.0, 1.0)
        window = 1.0 - remaining**sirt_like_iterations
    return ramp * lowpass * window


def view_weights(angles_deg: np.ndarray) -> np.ndarray:
    """Angular interval (radians) covered by each view: the weights ``Δθᵢ`` of the backprojection.

    Each view covers half the gap to each neighbour in sorted order; the two end views cover half
    their one inner gap on the outside as well, so equally spaced views get equal weights (for
    ``n`` views over 180°, ``π / n`` each). A single view gets ``π``.
    """
    angles = np.deg2rad(np.asarray(angles_deg, dtype=np.float64))
    if angles.size == 1:
        return np.array([np.pi])
    order = np.argsort(angles, kind="stable")
    gaps = np.diff(angles[order])
    left = np.concatenate([[gaps[0]], gaps])
    right = np.concatenate([gaps, [gaps[-1]]])
    weights = np.empty_like(angles)
    weights[order] = 0.5 * (left + right)
    return weights


# --------------------------------------------------------------------------------------------
# Backprojection kernel
# --------------------------------------------------------------------------------------------


@numba.njit(cache=True, fastmath=True, boundscheck=False, error_model="numpy", inline="always")
def _cubic_sample(line: np.ndarray, position: float) -> float:
    """Keys (1981) cubic convolution (a = −0.5) of ``line`` at ``position``; 0 outside."""
    width = line.shape[0]
    if position < -2.0 or position > width + 1.0:
        return 0.0
    base = math.floor(position)
    t = position - base
    i = int(base)
    t2 = t * t
    t3 = t2 * t
    w0 = -0.5 * t3 + t2 - 0.5 * t
    w1 = 1.5 * t3 - 2.5 * t2 + 1.0
    w2 = -1.5 * t3 + 2.0 * t2 + 0.5 * t
    w3 = 0.5 * t3 - 0.5 * t2
    total = 0.0
    if 0 <= i - 1 < width:
        total += w0 * line[i - 1]
    if 0 <= i < width:
        total += w1 * line[i]
    if 0 <= i + 1 < width:
        total += w2 * line[i + 1]
    if 0 <= i + 2 < width:
        total += w3 * line[i + 2]
    return total


@numba.njit(parallel=True, cache=True, fastmath=True, boundscheck=False, error_model="numpy")
def _backproject(
    filtered: np.ndarray,
    cosines: np.ndarray,
    sines: np.ndarray,
    tangents: np.ndarray,
    stretch: np.ndarray,
    stretch_offsets: np.ndarray,
    stretch_lengths: np.ndarray,
    buffer_length: int,
    u_centre: float,
    x_centre: float,
    z_centre: float,
    out: np.ndarray,
) -> None:
    """Backproject filtered rows ``filtered[y, tilt, u]`` into ``out[z, y, x]`` (float32).

    Stretched tilts: ``s[j] = line(u_centre + (j − offset − x_centre) cos θ)``; voxel ``(x, z)``
    reads ``s`` at ``x + offset + (z − z_centre) tan θ``. Direct tilts: ``line`` at
    ``u_centre + (x − x_centre) cos θ + (z − z_centre) sin θ``, 0 outside the detector.
    """
    n_rows, n_tilts, width = filtered.shape
    n_z, _, n_x = out.shape
    margin = n_x + n_z + 4
    for y in numba.prange(n_rows):
        acc = np.zeros((n_z, n_x), dtype=np.float32)
        buffer = np.zeros(max(buffer_length, width + 2 * margin), dtype=np.float32)
        for t in range(n_tilts):
            line = filtered[y, t]
            if stretch[t]:
                c = cosines[t]
                tn = np.float32(tangents[t])
                offset = stretch_offsets[t]
                for j in range(stretch_lengths[t]):
                    buffer[j] = _cubic_sample(line, u_centre + (j - offset - x_centre) * c)
                for z in range(n_z):
                    shift = np.float32(offset) + (np.float32(z) - np.float32(z_centre)) * tn
                    k = int(shift)
                    f = shift - np.float32(k)
                    g = np.float32(1.0) - f
                    row = acc[z]
                    segment = buffer[k : k + n_x + 1]
                    for x in range(n_x):
                        row[x] += g * segment[x] + f * segment[x + 1]
            else:
                # zero-padded copy: every u below lands inside the buffer
                buffer[:] = 0.0
                buffer[margin : margin + width] = line
                c = np.float32(cosines[t])
                s = np.float32(sines[t])
                for z in range(n_z):
                    u0 = np.float32(margin + u_centre - x_centre * cosines[t]) + (
                        np.float32(z) - np.float32(z_centre)
                    ) * s
                    row = acc[z]
                    for x in range(n_x):
                        u = u0 + np.float32(x) * c
                        i = int(u)
                        f = u - np.float32(i)
                        a = buffer[i]
                        row[x] += a + f * (buffer[i + 1] - a)
        for z in range(n_z):
            out[z, y, :] = acc[z]


# --------------------------------------------------------------------------------------------
# Image preparation
# --------------------------------------------------------------------------------------------


def _rotate_images(stack: np.ndarray, angle_deg: float) -> np.ndarray:
    """Rotate every image counter-clockwise by ``angle_deg`` about its centre ``shape // 2``.

    Same convention as :func:`tomosim.microscope.projection.rotate_and_shift`: a point at
    ``(x, y)`` (y = array row axis) moves to ``(x cos φ − y sin φ, x sin φ + y cos φ)``. Cubic
    spline interpolation; what enters from outside takes the image mean.
    """
    phi = np.deg2rad(angle_deg)
    # pull-back: output (x, y) reads the input at R(-φ) (x, y); in (y, x) index order that is
    # [[cos, -sin], [sin, cos]]
    inverse = np.array([[np.cos(phi), -np.sin(phi)], [np.sin(phi), np.cos(phi)]])
    centre = np.array([stack.shape[1] // 2, stack.shape[2] // 2], dtype=np.float64)
    offset = centre - inverse @ centre
    out = np.empty(stack.shape, dtype=np.float32)
    for i, image in enumerate(stack):
        out[i] = scipy.ndimage.affine_transform(
            image.astype(np.float64),
            inverse,
            offset=offset,
            order=3,
            mode="constant",
            cval=float(image.mean()),
        )
    return out


def _bin_images(stack: np.ndarray, binning: int) -> np.ndarray:
    """Average ``binning × binning`` pixel blocks; rows/columns beyond a multiple are dropped."""
    if binning == 1:
        return stack
    n, ny, nx = stack.shape
    ny_b, nx_b = ny // binning, nx // binning
    cropped = stack[:, : ny_b * binning, : nx_b * binning]
    return cropped.reshape(n, ny_b, binning, nx_b, binning).mean(axis=(2, 4), dtype=np.float64)


def _filter_rows(
    stack: np.ndarray,
    angles_deg: np.ndarray,
    row_filter: np.ndarray,
    padded_length: int,
    scale: float = 1.0,
) -> np.ndarray:
    """Mean-subtract, pad, filter and weight (× ``scale``) every row; ``(y, tilt, x)`` float32."""
    n_tilts, n_y, n_x = stack.shape
    weights = view_weights(angles_deg) * scale
    filtered = np.empty((n_y, n_tilts, n_x), dtype=np.float32)
    n_pad = padded_length - n_x
    blend = (np.arange(1, n_pad + 1) / (n_pad + 1)).astype(np.float32)  # 0 -> 1 across the pad
    workers = numba.get_num_threads()
    for i in range(n_tilts):
        image = stack[i].astype(np.float32)
        image -= np.float32(image.mean(dtype=np.float64))
        padded = np.empty((n_y, padded_length), dtype=np.float32)
        padded[:, :n_x] = image
        last = image[:, -1:]
        padded[:, n_x:] = last + (image[:, :1] - last) * blend
        spectrum = scipy.fft.rfft(padded, axis=1, workers=workers)
        spectrum *= (row_filter * weights[i]).astype(np.float32)
        filtered[:, i, :] = scipy.fft.irfft(spectrum, n=padded_length, axis=1, workers=workers)[
            :, :n_x
        ]
    return filtered


# --------------------------------------------------------------------------------------------
# Public functions
# --------------------------------------------------------------------------------------------


def _check_stack(tilt_series: np.ndarray, what: str = "tilt series") -> np.ndarray:
    stack = np.asarray(tilt_series)
    if stack.ndim != 3:
        raise TomosimError(f"{what} must be a 3D (tilt, y, x) stack, got shape {stack.shape}")
    if min(stack.shape) < 1:
        raise TomosimError(f"{what} is empty: shape {stack.shape}")
    if not np.issubdtype(stack.dtype, np.number) or np.iscomplexobj(stack):
        raise TomosimError(f"{what} must hold real numbers, got dtype {stack.dtype}")
    if not np.isfinite(stack).all():
        raise TomosimError(f"{what} contains NaN or infinite values")
    return stack


def _per_tilt(value: PerTilt, n_tilts: int, name: str) -> np.ndarray:
    array = np.asarray(value, dtype=np.float64).reshape(-1)
    if array.size == 1:
        array = np.full(n_tilts, array[0])
    if array.size != n_tilts:
        raise TomosimError(f"{name}: {array.size} values for {n_tilts} tilts")
    if not np.isfinite(array).all():
        raise TomosimError(f"{name} contains NaN or infinite values")
    return array


def phase_flip_tilt_series(
    tilt_series: np.ndarray,
    *,
    pixel_size: float,
    defocus_u: PerTilt,
    defocus_v: PerTilt,
    astigmatism_angle: PerTilt,
    optics: Optics,
    tilt_angles: PerTilt | None = None,
    strip_width_px: int | None = None,
    wiener_snr: float | None = None,
) -> np.ndarray:
    """Phase-flip every image: multiply its Fourier transform by ``−sign(CTF)``.

    With ``wiener_snr`` = S the factor is the Wiener filter ``−CTF / (CTF² + 1/S)`` instead: it
    flips the bands like phase flipping and also restores their amplitude where the CTF is
    strong compared with ``1/√S``, damping the zeros (the sign convention keeps protein dark).

    The CTF is :func:`tomosim.microscope.ctf.ctf_2d` (CTFFIND convention, negative at low
    frequency in underfocus). Multiplying by ``−sign(CTF)`` turns every band to the sign of the
    first lobe, as IMOD ``ctfphaseflip`` does, so the contrast at low resolution is unchanged
    (protein stays dark) and later bands no longer cancel it. Each image is padded by reflection
    to a fast length ≥ 1.5× its size before the transform, against wrap-around of the flip's long
    point-spread function, and cropped back.

    Tilted images have a defocus gradient perpendicular to the tilt axis (the image x axis here):
    ``Δf(u) = Δf₀ + u tan θ`` at ``u`` Å from the axis (:func:`tomosim.microscope.ctf.
    defocus_in_tilted_image`). With ``tilt_angles`` and ``strip_width_px`` the image is corrected
    in vertical strips of that width, each with the defocus at its centre (in the manner of
    ``ctfphaseflip``); otherwise one defocus per image is used, which is exact only near the tilt
    axis.

    Parameters
    ----------
    tilt_series
        ``(tilt, y, x)`` images with the tilt axis along y.
    pixel_size
        Å per pixel.
    defocus_u, defocus_v
        Å, positive = underfocus; scalars or one per tilt.
    astigmatism_angle
        Degrees from the image x axis to the u axis, counter-clockwise; scalar or one per tilt.
    optics
        Beam energy, spherical aberration, amplitude contrast and phase shift (the envelopes
        do not change the sign of the CTF and are not used).
    tilt_angles
        Tilt of each image (degrees), needed for strips.
    strip_width_px
        Strip width in pixels for the defocus-gradient correction; ``None``: no strips.
    wiener_snr
        Signal-to-noise ratio of a Wiener filter used instead of the sign flip; None: flip.

    Returns
    -------
    numpy.ndarray
        ``(tilt, y, x)`` float32 phase-flipped images.
    """
    stack = _check_stack(tilt_series)
    if not (np.isfinite(pixel_size) and pixel_size > 0):
        raise TomosimError(f"phase flipping needs a positive pixel size, got {pixel_size}")
    n_tilts, n_y, n_x = stack.shape
    if wiener_snr is not None and not (np.isfinite(wiener_snr) and wiener_snr > 0):
        raise TomosimError(
            f"the Wiener filter needs a positive signal-to-noise ratio, got {wiener_snr}"
        )
    du = _per_tilt(defocus_u, n_tilts, "defocus_u")
    dv = _per_tilt(defocus_v, n_tilts, "defocus_v")
    astigmatism = _per_tilt(astigmatism_angle, n_tilts, "astigmatism_angle")
    if strip_width_px is not None:
        if tilt_angles is None:
            raise TomosimError("phase flipping in strips needs the tilt angles")
        if int(strip_width_px) < 1:
            raise TomosimError(f"strip width must be at least 1 pixel, got {strip_width_px}")
        tilts = _per_tilt(tilt_angles, n_tilts, "tilt_angles")
    pad_y = scipy.fft.next_fast_len(int(np.ceil(1.5 * n_y)), real=True)
    pad_x = scipy.fft.next_fast_len(int(np.ceil(1.5 * n_x)), real=True)
    before_y, before_x = (pad_y - n_y) // 2, (pad_x - n_x) // 2
    out = np.empty(stack.shape, dtype=np.float32)
    workers = numba.get_num_threads()
    for i in range(n_tilts):
        padded = np.pad(
            stack[i].astype(np.float32),
            ((before_y, pad_y - n_y - before_y), (before_x, pad_x - n_x - before_x)),
            mode="reflect" if min(n_y, n_x) > 1 else "edge",
        )
        spectrum = scipy.fft.rfft2(padded, workers=workers)

        def flipped(
            mean_defocus: float, i: int = i, spectrum: np.ndarray = spectrum
        ) -> np.ndarray:
            half = 0.5 * (du[i] - dv[i])
            ctf = ctf_2d(
                (pad_y, pad_x),
                pixel_size,
                defocus_u=mean_defocus + half,
                defocus_v=mean_defocus - half,
                astigmatism_angle=float(astigmatism[i]),
                voltage_kv=optics.voltage_kv,
                cs_mm=optics.cs_mm,
                amplitude_contrast=optics.amplitude_contrast,
                phase_shift=optics.phase_shift,
                rfft=True,
            )
            if wiener_snr is None:
                factor = np.where(ctf > 0, -1.0, 1.0).astype(np.float32)
            else:
                factor = (-ctf / (ctf * ctf + 1.0 / wiener_snr)).astype(np.float32)
            image = scipy.fft.irfft2(spectrum * factor, s=(pad_y, pad_x), workers=workers)
            return image[before_y : before_y + n_y, before_x : before_x + n_x]

        centre_defocus = 0.5 * (du[i] + dv[i])
        if strip_width_px is None or abs(tilts[i]) < 1e-6:
            out[i] = flipped(centre_defocus)
            continue
        width = int(strip_width_px)
        for start in range(0, n_x, width):
            stop = min(start + width, n_x)
            u = (0.5 * (start + stop - 1) - n_x // 2) * pixel_size
            strip_defocus = float(
                defocus_in_tilted_image(u, defocus=centre_defocus, tilt_angle=float(tilts[i]))
            )
            out[i, :, start:stop] = flipped(strip_defocus)[:, start:stop]
    return out


def weighted_backprojection(
    tilt_series: np.ndarray,
    angles_deg: Sequence[float] | np.ndarray,
    *,
    thickness_px: int,
    tilt_axis_angle: float = 0.0,
    lowpass_cutoff: float = 0.35,
    lowpass_falloff: float = 0.035,
    sirt_like_iterations: int = 0,
    binning: int = 1,
    invert: bool = False,
    pixel_size: float | None = None,
    phase_flip: PhaseFlipSettings | None = None,
) -> np.ndarray:
    """Reconstruct a tomogram from a tilt series by weighted (filtered) backprojection.

    Geometry, scaling and the steps are described in the module docstring: a point at
    ``(x, y, z)`` from the tomogram centre ``shape // 2`` is read from image row ``y`` at column
    ``u = x cos θ + z sin θ`` from the image centre, and with full ±90° sampling a tilt series of
    ray sums of a volume reconstructs to that volume.

    Parameters
    ----------
    tilt_series
        ``(tilt, y, x)`` images, any real dtype. The tilt axis is along y after rotating each image
        by ``−tilt_axis_angle``.
    angles_deg
        Tilt angle of each image in degrees, within [−90, 90] (IMOD ``.tlt`` convention).
    thickness_px
        Tomogram thickness in unbinned pixels (the z size before binning).
    tilt_axis_angle
        In-plane angle of the tilt axis in the images, degrees counter-clockwise from the image y
        axis (CONVENTIONS.md); the images are rotated by its negative about ``shape // 2`` first.
    lowpass_cutoff, lowpass_falloff
        IMOD ``RADIAL`` low-pass in cycles/pixel of the (binned) images: flat to ``cutoff``, then a
        Gaussian of standard deviation ``falloff``. ``cutoff = 0.5, falloff = 0`` switches it off.
    sirt_like_iterations
        ``N > 0`` replaces the ramp by the SIRT-like filter of ``N`` iterations
        (:func:`radial_filter`); 0 is plain WBP.
    binning
        Average ``binning × binning`` pixels of each image first (rows/columns beyond a multiple
        are dropped); the output has ``(max(1, thickness_px // binning), y // binning, x //
        binning)`` voxels of size ``binning`` pixels, with the values of the unbinned tomogram
        (averaged). The binned grids keep their own centres ``shape // 2``, which may lie up to
        half a binned pixel from the unbinned centre.
    invert
        Multiply the result by −1 (protein bright for underfocus data).
    pixel_size
        Å per unbinned pixel; needed only for ``phase_flip``.
    phase_flip
        CTF parameters to phase-flip the images with (:func:`phase_flip_tilt_series`) before
        binning; ``None``: no CTF correction.

    Returns
    -------
    numpy.ndarray
        ``(thickness, y, x)`` float32 tomogram.

    Raises
    ------
    TomosimError
        On a stack that is not 3D, a number of angles different from the number of images,
        angles outside ±90°, a thickness below 1, a bad binning or filter parameter, or phase
        flipping without a pixel size.
    """
    stack = _check_stack(tilt_series)
    angles = np.asarray(angles_deg, dtype=np.float64).reshape(-1)
    n_tilts = stack.shape[0]
    if angles.size != n_tilts:
        raise TomosimError(f"{angles.size} tilt angles for a tilt series of {n_tilts} images")
    if not np.isfinite(angles).all() or np.abs(angles).max() > 90:
        bad = angles[~(np.abs(angles) <= 90)]
        raise TomosimError(f"tilt angles must lie within [-90, 90] degrees, got {bad[0]}")
    if int(thickness_px) != thickness_px or thickness_px < 1:
        raise TomosimError(f"thickness must be a whole number of pixels >= 1, got {thickness_px}")
    if int(binning) != binning or binning < 1 or binning > min(stack.shape[1:]):
        raise TomosimError(
            f"binning must be a whole number from 1 to the image size, got {binning} "
            f"for images of {stack.shape[1]} x {stack.shape[2]}"
        )
    if not 0 < lowpass_cutoff <= 0.5:
        raise TomosimError(f"low-pass cutoff must be in (0, 0.5] cycles/pixel: {lowpass_cutoff}")
    if not 0 <= lowpass_falloff <= 0.5:
        raise TomosimError(f"low-pass falloff must be in [0, 0.5] cycles/pixel: {lowpass_falloff}")
    if int(sirt_like_iterations) != sirt_like_iterations or sirt_like_iterations < 0:
        raise TomosimError(
            f"SIRT-like iterations must be a whole number >= 0, got {sirt_like_iterations}"
        )
    if not np.isfinite(tilt_axis_angle):
        raise TomosimError(f"tilt-axis angle must be finite, got {tilt_axis_angle}")
    binning = int(binning)

    images = stack
    rotated = False
    if phase_flip is not None:
        if pixel_size is None or not (np.isfinite(pixel_size) and pixel_size > 0):
            raise TomosimError(f"phase flipping needs a positive pixel size, got {pixel_size}")
        if tilt_axis_angle != 0:
            images = _rotate_images(images, -tilt_axis_angle)
            rotated = True
        astigmatism = _per_tilt(phase_flip.astigmatism_angle, n_tilts, "astigmatism_angle")
        images = phase_flip_tilt_series(
            images,
            pixel_size=float(pixel_size),
            defocus_u=phase_flip.defocus_u,
            defocus_v=phase_flip.defocus_v,
            astigmatism_angle=astigmatism - tilt_axis_angle,
            optics=phase_flip.optics,
            tilt_angles=angles,
            strip_width_px=phase_flip.strip_width_px,
            wiener_snr=phase_flip.wiener_snr,
        )
    images = _bin_images(images, binning)
    if tilt_axis_angle != 0 and not rotated:
        images = _rotate_images(images, -tilt_axis_angle)

    _, n_y, n_x = images.shape
    n_z = max(1, int(thickness_px) // binning)
    padded_length = int(scipy.fft.next_fast_len(max(64, 2 * n_x), real=True))
    weights = view_weights(angles)
    row_filter = radial_filter(
        padded_length,
        lowpass_cutoff=lowpass_cutoff,
        lowpass_falloff=lowpass_falloff,
        sirt_like_iterations=int(sirt_like_iterations),
        thickness_px=n_z,
        angular_range_rad=float(weights.sum()),
    )
    # ray sums in unbinned pixels are `binning` times those in binned pixels
    filtered = _filter_rows(images, angles, row_filter, padded_length, scale=1.0 / binning)

    theta = np.deg2rad(angles)
    cosines = np.cos(theta).astype(np.float32)
    sines = np.sin(theta).astype(np.float32)
    stretch = np.abs(angles) <= STRETCH_LIMIT_DEG
    tangents = np.where(stretch, np.tan(np.where(stretch, theta, 0.0)), 0.0).astype(np.float32)
    z_centre = n_z // 2
    # stretched-row offsets: offset + (z - z_centre) tan θ >= 0 for every z
    lowest = np.minimum(-z_centre * tangents, (n_z - 1 - z_centre) * tangents)
    highest = np.maximum(-z_centre * tangents, (n_z - 1 - z_centre) * tangents)
    offsets = (np.ceil(-lowest) + 1).astype(np.int64)
    lengths = (offsets + np.floor(highest) + n_x + 3).astype(np.int64)
    volume = np.empty((n_z, n_y, n_x), dtype=np.float32)
    _backproject(
        filtered,
        cosines,
        sines,
        tangents,
        stretch,
        offsets,
        lengths,
        int(lengths.max()),
        float(n_x // 2),
        float(n_x // 2),
        float(z_centre),
        volume,
    )
    if invert:
        np.negative(volume, out=volume)
    return volume
