"""Radial amplitude spectra of volumes, and filtering a volume to another volume's spectrum.

The radial amplitude spectrum of a ``(z, y, x)`` volume at pixel size ``p`` (Å) is the mean of
``|F(k)|`` over spherical shells of spatial frequency ``|k|`` (cycles/Å), divided by
``sqrt(N)`` (``N`` voxels) so that white noise of standard deviation ``σ`` has amplitude
``σ sqrt(π) / 2`` in every band whatever the box size (the mean of a Rayleigh distribution).
The mean is removed first, so ``|k| = 0`` carries nothing. Bands are ``BANDS`` equal shells
from 0 to the Nyquist frequency ``1 / (2 p)`` (voxels in the corners of the cube, beyond
Nyquist, are not counted and are left unchanged by filtering), so two volumes at the same pixel
size have spectra on the same bands, whatever their shapes.

Spectrum matching (Fourier amplitude matching in the sense of domain adaptation for cryo-ET
segmentation) multiplies the Fourier transform of a volume by a real, radially symmetric gain so
that its radial amplitude spectrum becomes a target's; phases are kept, so structures stay where
they are and only their contrast per spatial frequency changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.fft

from tomosim.errors import TomosimError

BANDS = 32
"""Number of radial frequency bands from 0 to Nyquist."""

MAX_GAIN = 100.0
"""Largest amplification of a band when matching (bands a volume hardly has stay weak)."""


@dataclass(frozen=True)
class RadialSpectrum:
    """A radial amplitude spectrum.

    Attributes
    ----------
    pixel_size
        Å per voxel of the volume it was measured on.
    amplitude
        ``(bands,)`` mean ``|F| / sqrt(N)`` per band, band ``i`` covering
        ``[i, i + 1) * nyquist / bands`` cycles/Å.
    """

    pixel_size: float
    amplitude: np.ndarray

    @property
    def bands(self) -> int:
        """Number of bands."""
        return int(self.amplitude.size)

    @property
    def frequency(self) -> np.ndarray:
        """``(bands,)`` band centres, cycles/Å."""
        step = 0.5 / self.pixel_size / self.bands
        return (np.arange(self.bands) + 0.5) * step

    def as_dict(self) -> dict[str, object]:
        """Plain tree (for checkpoints, JSON and YAML)."""
        amplitude = [float(a) for a in self.amplitude]
        return {"pixel_size": float(self.pixel_size), "amplitude": amplitude}

    @classmethod
    def from_dict(cls, tree: dict[str, object]) -> RadialSpectrum:
        """Inverse of :meth:`as_dict`."""
        amplitude = np.asarray(tree["amplitude"], dtype=np.float64)
        return cls(pixel_size=float(tree["pixel_size"]), amplitude=amplitude)  # type: ignore[arg-type]


def _band_index(shape: Sequence[int], bands: int) -> np.ndarray:
    """Band of every voxel of an ``rfftn`` of ``shape``; ``bands`` beyond Nyquist."""
    axes = [np.fft.fftfreq(n) for n in shape[:-1]] + [np.fft.rfftfreq(shape[-1])]
    radius = np.zeros([a.size for a in axes], dtype=np.float32)
    for dim, a in enumerate(axes):
        view = [1] * len(axes)
        view[dim] = a.size
        radius = radius + (a.astype(np.float32) ** 2).reshape(view)
    index = np.floor(np.sqrt(radius) / 0.5 * bands).astype(np.int32)
    return np.minimum(index, bands)


def _rfft_weights(shape: Sequence[int]) -> np.ndarray:
    """Multiplicity of each ``rfftn`` coefficient in the full spectrum (1 or 2 along x)."""
    nx = shape[-1]
    weights = np.full(nx // 2 + 1, 2.0, dtype=np.float64)
    weights[0] = 1.0
    if nx % 2 == 0:
        weights[-1] = 1.0
    return weights


def _check_volume(volume: np.ndarray, pixel_size: float) -> None:
    if volume.ndim != 3:
        raise TomosimError(f"a spectrum needs a 3D (z, y, x) volume, got shape {volume.shape}")
    if min(volume.shape) < 8:
        raise TomosimError(f"volume {volume.shape} is too small for a spectrum (8 voxels per axis)")
    if not pixel_size > 0:
        raise TomosimError(f"pixel size must be positive, got {pixel_size}")


def _spectrum_of_transform(
    transform: np.ndarray, index: np.ndarray, shape: Sequence[int], bands: int
) -> np.ndarray:
    weights = np.broadcast_to(_rfft_weights(shape), transform.shape).ravel()
    flat = index.ravel()
    sums = np.bincount(flat, weights=np.abs(transform).ravel() * weights, minlength=bands + 1)
    counts = np.bincount(flat, weights=weights, minlength=bands + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = sums[:bands] / counts[:bands]
    return np.nan_to_num(mean) / np.sqrt(float(np.prod(shape)))


def radial_amplitude_spectrum(
    volume: np.ndarray, *, pixel_size: float, bands: int = BANDS
) -> RadialSpectrum:
    """Radial amplitude spectrum of a volume (mean removed).

    Parameters
    ----------
    volume
        ``(z, y, x)`` array, any real type, at least 8 voxels per axis.
    pixel_size
        Å per voxel (isotropic).
    bands
        Number of equal bands from 0 to Nyquist, ``1 / (2 pixel_size)`` cycles/Å.

    Returns
    -------
    RadialSpectrum
        ``amplitude[i]`` = mean ``|F|`` over band ``i``, divided by ``sqrt(volume.size)``.

    Raises
    ------
    TomosimError
        Not 3D, fewer than 8 voxels along an axis, or a non-positive pixel size.
    """
    _check_volume(volume, pixel_size)
    data = np.asarray(volume, dtype=np.float32)
    transform = scipy.fft.rfftn(data - np.float32(data.mean()), workers=-1)
    index = _band_index(data.shape, bands)
    amplitude = _spectrum_of_transform(transform, index, data.shape, bands)
    return RadialSpectrum(pixel_size=float(pixel_size), amplitude=amplitude)


def mean_spectrum(
    spectra: Sequence[RadialSpectrum], weights: Sequence[float] | np.ndarray | None = None
) -> RadialSpectrum:
    """Weighted mean of spectra measured at the same pixel size and on the same bands.

    Raises
    ------
    TomosimError
        No spectra, or spectra at different pixel sizes or with different band counts.
    """
    if not spectra:
        raise TomosimError("no spectra to average")
    first = spectra[0]
    for s in spectra[1:]:
        if s.bands != first.bands or abs(s.pixel_size / first.pixel_size - 1) > 1e-4:
            raise TomosimError(
                f"spectra at {s.pixel_size:g} and {first.pixel_size:g} Å (or with other bands) "
                "cannot be averaged"
            )
    w = np.ones(len(spectra)) if weights is None else np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    amplitude = np.sum([wi * s.amplitude for wi, s in zip(w, spectra, strict=True)], axis=0)
    return RadialSpectrum(pixel_size=first.pixel_size, amplitude=amplitude)


def match_spectrum(
    volume: np.ndarray, *, pixel_size: float, target: RadialSpectrum
) -> np.ndarray:
    """Filter ``volume`` so that its radial amplitude spectrum equals ``target``'s.

    The gain of band ``i`` is ``target[i] / own[i]`` (at most :data:`MAX_GAIN`; 0 where the
    target is 0), interpolated linearly in frequency between band centres; a second, per-band
    constant factor then makes every band's mean amplitude equal the target's exactly (up to the
    gain limit). The mean of the volume is kept; frequencies beyond Nyquist are left alone.

    Parameters
    ----------
    volume
        ``(z, y, x)`` array at ``pixel_size``.
    pixel_size
        Å per voxel of ``volume``.
    target
        Spectrum to match, measured at the same pixel size.

    Returns
    -------
    numpy.ndarray
        float32 array of ``volume``'s shape.

    Raises
    ------
    TomosimError
        A target measured at another pixel size, or a volume :func:`radial_amplitude_spectrum`
        refuses.
    """
    _check_volume(volume, pixel_size)
    if abs(target.pixel_size / pixel_size - 1) > 1e-3:
        raise TomosimError(
            f"the target spectrum was measured at {target.pixel_size:g} Å/voxel, the volume is at "
            f"{pixel_size:g} Å/voxel"
        )
    data = np.asarray(volume, dtype=np.float32)
    mean = np.float32(data.mean())
    bands = target.bands
    transform = scipy.fft.rfftn(data - mean, workers=-1)
    index = _band_index(data.shape, bands)
    own = _spectrum_of_transform(transform, index, data.shape, bands)
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = np.where(own > 0, target.amplitude / own, 0.0)
    gain = np.clip(np.nan_to_num(gain), 0.0, MAX_GAIN)
    # smooth gain: linear in |k| between band centres (in band units), flat beyond the ends
    axes = [np.fft.fftfreq(n) for n in data.shape[:-1]] + [np.fft.rfftfreq(data.shape[-1])]
    radius = np.zeros([a.size for a in axes], dtype=np.float32)
    for dim, a in enumerate(axes):
        view = [1] * len(axes)
        view[dim] = a.size
        radius = radius + (a.astype(np.float32) ** 2).reshape(view)
    position = np.sqrt(radius) / 0.5 * bands - 0.5
    smooth = np.interp(position.ravel(), np.arange(bands), gain).reshape(position.shape)
    smooth[index == bands] = 1.0
    transform *= smooth.astype(np.float32)
    # exact per-band correction of what interpolation left over
    after = _spectrum_of_transform(transform, index, data.shape, bands)
    with np.errstate(divide="ignore", invalid="ignore"):
        correction = np.where(after > 0, target.amplitude / after, 0.0)
    correction = np.clip(np.nan_to_num(correction), 0.0, MAX_GAIN)
    transform *= np.append(correction, 1.0).astype(np.float32)[index]
    out = scipy.fft.irfftn(transform, s=data.shape, workers=-1)
    return (out + mean).astype(np.float32)


def spectrum_difference(a: RadialSpectrum, b: RadialSpectrum) -> np.ndarray:
    """``(bands,)`` relative difference ``a / b - 1`` per band (nan where ``b`` is 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return a.amplitude / b.amplitude - 1.0
