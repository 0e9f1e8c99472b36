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

import numba
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


def _frequencies(shape: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frequencies (cycles/voxel) along z, y and x of an ``rfftn`` of a ``(z, y, x)`` shape."""
    return (
        np.fft.fftfreq(shape[0]).astype(np.float64),
        np.fft.fftfreq(shape[1]).astype(np.float64),
        np.fft.rfftfreq(shape[2]).astype(np.float64),
    )


@numba.njit(cache=True)
def _band_index_kernel(
    fz: np.ndarray, fy: np.ndarray, fx: np.ndarray, bands: int
) -> np.ndarray:  # pragma: no cover - compiled
    index = np.empty((fz.size, fy.size, fx.size), dtype=np.int32)
    for z in range(fz.size):
        for y in range(fy.size):
            for x in range(fx.size):
                r = np.sqrt(fz[z] * fz[z] + fy[y] * fy[y] + fx[x] * fx[x])
                index[z, y, x] = min(int(np.floor(r / 0.5 * bands)), bands)
    return index


def _band_index(shape: Sequence[int], bands: int) -> np.ndarray:
    """Band of every voxel of an ``rfftn`` of ``shape``; ``bands`` beyond Nyquist."""
    fz, fy, fx = _frequencies(shape)
    return _band_index_kernel(fz, fy, fx, bands)


def _rfft_weights(shape: Sequence[int]) -> np.ndarray:
    """Multiplicity of each ``rfftn`` coefficient in the full spectrum (1 or 2 along x)."""
    nx = shape[-1]
    weights = np.full(nx // 2 + 1, 2.0, dtype=np.float64)
    weights[0] = 1.0
    if nx % 2 == 0:
        weights[-1] = 1.0
    return weights


@numba.njit(cache=True)
def _band_sums(
    transform: np.ndarray, index: np.ndarray, x_weights: np.ndarray, bands: int
) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """Weighted sums of ``|transform|`` and of the weights per band (one pass, in order)."""
    sums = np.zeros(bands + 1)
    counts = np.zeros(bands + 1)
    nz, ny, nx = transform.shape
    for z in range(nz):
        for y in range(ny):
            for x in range(nx):
                b = index[z, y, x]
                w = x_weights[x]
                sums[b] += w * abs(transform[z, y, x])
                counts[b] += w
    return sums, counts


@numba.njit(cache=True)
def _apply_smooth_gain(
    transform: np.ndarray,
    index: np.ndarray,
    fz: np.ndarray,
    fy: np.ndarray,
    fx: np.ndarray,
    gain: np.ndarray,
    bands: int,
) -> None:  # pragma: no cover - compiled
    """Multiply by ``gain`` interpolated linearly in ``|k|`` between band centres, in place.

    Flat beyond the first and last band centres (as ``numpy.interp``); 1 beyond Nyquist.
    """
    for z in range(fz.size):
        for y in range(fy.size):
            for x in range(fx.size):
                if index[z, y, x] == bands:
                    continue
                r = np.sqrt(fz[z] * fz[z] + fy[y] * fy[y] + fx[x] * fx[x])
                position = r / 0.5 * bands - 0.5
                if position <= 0.0:
                    g = gain[0]
                elif position >= bands - 1:
                    g = gain[bands - 1]
                else:
                    i = int(position)
                    t = position - i
                    g = gain[i] * (1.0 - t) + gain[i + 1] * t
                transform[z, y, x] *= np.float32(g)


@numba.njit(cache=True)
def _apply_band_gain(
    transform: np.ndarray, index: np.ndarray, gain: np.ndarray
) -> None:  # pragma: no cover - compiled
    """Multiply every coefficient by the gain of its band (``gain[bands]`` beyond Nyquist)."""
    nz, ny, nx = transform.shape
    for z in range(nz):
        for y in range(ny):
            for x in range(nx):
                transform[z, y, x] *= gain[index[z, y, x]]


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
    sums, counts = _band_sums(transform, index, _rfft_weights(shape), bands)
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
    transform = scipy.fft.rfftn(data - mean, workers=-1, overwrite_x=True)
    index = _band_index(data.shape, bands)
    own = _spectrum_of_transform(transform, index, data.shape, bands)
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = np.where(own > 0, target.amplitude / own, 0.0)
    gain = np.clip(np.nan_to_num(gain), 0.0, MAX_GAIN)
    # smooth gain: linear in |k| between band centres (in band units), flat beyond the ends
    fz, fy, fx = _frequencies(data.shape)
    _apply_smooth_gain(transform, index, fz, fy, fx, gain.astype(np.float64), bands)
    # exact per-band correction of what interpolation left over
    after = _spectrum_of_transform(transform, index, data.shape, bands)
    with np.errstate(divide="ignore", invalid="ignore"):
        correction = np.where(after > 0, target.amplitude / after, 0.0)
    correction = np.clip(np.nan_to_num(correction), 0.0, MAX_GAIN)
    _apply_band_gain(transform, index, np.append(correction, 1.0).astype(np.float32))
    out = scipy.fft.irfftn(transform, s=data.shape, workers=-1, overwrite_x=True)
    out += mean
    return out.astype(np.float32, copy=False)


def spectrum_difference(a: RadialSpectrum, b: RadialSpectrum) -> np.ndarray:
    """``(bands,)`` relative difference ``a / b - 1`` per band (nan where ``b`` is 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return a.amplitude / b.amplitude - 1.0
