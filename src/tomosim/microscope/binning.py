"""Fourier binning: images recorded at a fine detector pixel, reduced to the output pixel.

Real tilt series are recorded at a fine physical pixel (1–5 Å) and reduced to the pixel that is
reconstructed (10–20 Å) by **Fourier cropping** (IMOD ``newstack -ftreduce``, RELION, warp): the
spectrum is cut at the new Nyquist frequency. The binned image therefore carries the detector
MTF of the *fine* pixel (its pixel aperture ``sinc(f p_fine)`` and falloff), and **no** aperture
of the binned pixel.

:func:`fourier_bin` does the cropping. Simulating a whole phantom at the fine pixel costs
``factor³`` more voxels, so :mod:`tomosim.microscope.image_formation` offers a documented
equivalent at the output pixel (``microscope.detector.binning``): the projected potential is
deconvolved by the transfer of its own voxel averaging (:func:`voxel_average_transfer`, the
box average of each coarse voxel seen along the tilted beam), and the detector MTF is that of the
fine pixel (:func:`tomosim.microscope.detector.detector_mtf` with ``pixel_size / factor``).
Without that correction a simulation at the output pixel integrates over the pixel twice: once
in the voxel-averaged potential and once in the detector's pixel aperture (×0.64·0.81 ≈ 0.52 at
Nyquist along an axis for the k3 preset). Shot noise needs no correction: the sum of Poisson
counts of ``factor²`` fine pixels is the Poisson count of the binned pixel, and Fourier cropping
keeps white noise white. ``tests/test_binning.py`` checks the equivalent against a phantom
simulated at the fine pixel and binned (correlation > 0.99).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.fft

from tomosim.errors import TomosimError

__all__ = ["fourier_bin", "voxel_average_transfer"]


def fourier_bin(
    images: np.ndarray, factor: int, *, normalize: Literal["sum", "mean"] = "sum"
) -> np.ndarray:
    """Bin images by cropping their spectrum to the lower Nyquist frequency.

    Parameters
    ----------
    images
        ``(..., ny, nx)`` real images (one image or a stack), ``ny`` and ``nx`` multiples of
        ``factor``.
    factor
        Integer binning factor ≥ 1; the output pixel is ``factor`` times the input pixel.
    normalize
        ``"sum"``: a binned pixel holds the sum of the ``factor²`` pixels it replaces (electron
        counts stay counts, the total is conserved); ``"mean"``: their mean (for potentials,
        contrast, or densities).

    Returns
    -------
    numpy.ndarray
        ``(..., ny // factor, nx // factor)`` float32. The spectrum inside the new Nyquist
        frequency is unchanged (scaled by ``factor²`` for ``"sum"``); the ±Nyquist row of the
        output is the mean of the two input rows it replaces (Hermitian symmetry).

    Raises
    ------
    TomosimError
        A factor below 1, fewer than two dimensions, or a shape not divisible by the factor.
    """
    images = np.asarray(images)
    factor = int(factor)
    if factor < 1:
        raise TomosimError(f"bin factor must be a positive integer, got {factor}")
    if images.ndim < 2:
        raise TomosimError(f"fourier_bin expects (..., ny, nx) images, got shape {images.shape}")
    ny, nx = images.shape[-2:]
    if ny % factor or nx % factor:
        raise TomosimError(
            f"bin factor {factor} does not divide the image shape ({ny}, {nx})"
        )
    if factor == 1:
        return images.astype(np.float32)
    my, mx = ny // factor, nx // factor
    if normalize not in ("sum", "mean"):
        raise TomosimError(f"normalize must be 'sum' or 'mean', got {normalize!r}")
    # mirror extension to (2 ny, 2 nx): periodic and continuous, so cropping the spectrum does not
    # ring at the image edges (a non-periodic image would wrap its left edge onto its right)
    extended = np.concatenate([images, images[..., ::-1, :]], axis=-2)
    extended = np.concatenate([extended, extended[..., ::-1]], axis=-1).astype(np.float64)
    big_y, my2, mx2 = 2 * ny, 2 * my, 2 * mx
    spectrum = scipy.fft.rfft2(extended, axes=(-2, -1))[..., : mx2 // 2 + 1]
    # output row r holds frequency f = fftfreq(my2) * my2, read from input row f mod 2 ny
    rows = np.round(np.fft.fftfreq(my2) * my2).astype(int) % big_y
    cropped = spectrum[..., rows, :]
    # the ±Nyquist row of the output stands for both input rows ±my2/2; the ±Nyquist column needs
    # nothing: irfft keeps its Hermitian (real) part, the same mean
    cropped[..., my, :] = 0.5 * (spectrum[..., my, :] + spectrum[..., big_y - my, :])
    out = scipy.fft.irfft2(cropped, s=(my2, mx2), axes=(-2, -1))[..., :my, :mx]
    scale = 1.0 if normalize == "sum" else 1.0 / factor**2
    return (out * scale).astype(np.float32)


def voxel_average_transfer(
    k_y: np.ndarray,
    k_x: np.ndarray,
    *,
    pixel_size: float,
    tilt_angle: float,
    tilt_axis_angle: float = 0.0,
) -> np.ndarray:
    """Transfer of cubic voxel averaging, seen in the projection at a tilt.

    A voxel-averaged potential is the true potential convolved with a cube of side ``p``, whose
    3D transfer is ``sinc(p k_x) sinc(p k_y) sinc(p k_z)`` (``sinc(t) = sin(πt)/(πt)``). The
    projection at tilt θ is the central slice through the sample frequencies
    ``k_u (cos θ, sin θ)`` in the (x, z) plane and ``k_v`` along the tilt axis, so in the image the
    averaging multiplies the spectrum by ``sinc(p k_u cos θ) sinc(p k_u sin θ) sinc(p k_v)``.

    Parameters
    ----------
    k_y, k_x
        Image spatial frequencies, 1/Å (broadcasting arrays, e.g. from
        :func:`tomosim.microscope.ctf.frequency_grid`).
    pixel_size
        Voxel side ``p``, Å.
    tilt_angle
        Tilt θ, degrees.
    tilt_axis_angle
        In-plane angle of the tilt axis, degrees counter-clockwise from the image y axis; ``u`` is
        ``x cos φ + y sin φ``, ``v`` lies along the axis.

    Returns
    -------
    numpy.ndarray
        The transfer (broadcast shape of ``k_y`` and ``k_x``), in [0.40, 1] up to Nyquist along
        the image axes at 0°; never below ``sinc(1/2)³ ≈ 0.26`` inside the Nyquist square.
    """
    if not pixel_size > 0:
        raise TomosimError(f"pixel_size must be positive, got {pixel_size}")
    phi = np.deg2rad(tilt_axis_angle)
    theta = np.deg2rad(tilt_angle)
    k_u = np.asarray(k_x) * np.cos(phi) + np.asarray(k_y) * np.sin(phi)
    k_v = -np.asarray(k_x) * np.sin(phi) + np.asarray(k_y) * np.cos(phi)
    return (
        np.sinc(pixel_size * k_u * np.cos(theta))
        * np.sinc(pixel_size * k_u * np.sin(theta))
        * np.sinc(pixel_size * k_v)
    )
