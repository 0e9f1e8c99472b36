"""Detector: expected counts, MTF, DQE, shot noise and read noise of an electron-counting camera.

Model (per pixel, per tilt):

1. Expected electrons ``λ = dose · pixel_size² · I`` with the dose of the tilt (e/Å²) and the
   image intensity ``I`` (1 = unscattered beam; transmitted fraction and contrast included).
2. MTF: the expected image is filtered with ``MTF(f) = sinc(f_x) sinc(f_y) · exp(−m (2|f|)²)``
   (``f`` in cycles/pixel, ``sinc(f) = sin(πf)/(πf)`` is the square pixel aperture, ``m`` the
   ``mtf_falloff``, so the extra factor is ``exp(−m)`` at Nyquist along an axis). The simulation
   pixel plays the detector pixel: for coarse (binned) pixels the sinc is the binning aperture.
3. DQE, noise-equivalent model: counts ``= Poisson(DQE · λ) / DQE``. The mean stays ``λ`` and the
   variance becomes ``λ / DQE`` (white), so with step 2 the detective quantum efficiency is
   ``DQE(f) = DQE₀ · MTF(f)²``.
4. Optional Gaussian read noise (standard deviation in electrons per pixel).

Presets (:data:`DETECTOR_PRESETS`): ``ideal`` (DQE 1, MTF 1), ``k3`` and ``falcon4``. The k3 and
falcon4 values are **representative**, chosen to be of the order of published 300 kV counting-mode
DQE curves of these cameras; they are not measurements.

Half sets: the counts ``n = Poisson(DQE · λ)`` are split by binomial thinning into two halves
``n_odd ~ Binomial(n, ½)``, ``n_even = n − n_odd``, which are independent Poisson draws of half
the dose each (the thinning property) and add up to the full image (up to float32 rounding), as
summing the odd and even movie frames would. Read noise is drawn per half (variance ``σ²/2`` each).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tomosim.errors import TomosimError

__all__ = [
    "DETECTOR_PRESETS",
    "DetectedImage",
    "DetectorModel",
    "detect_electrons",
    "detector_model",
    "detector_mtf",
    "expected_counts",
]


@dataclass(frozen=True)
class DetectorModel:
    """Parameters of a detector.

    Attributes
    ----------
    name
        Preset name.
    dqe
        DQE at zero frequency, in (0, 1].
    mtf_falloff
        ``m`` in ``exp(−m (2|f|)²)``, ≥ 0.
    pixel_aperture
        Include the ``sinc`` of the square pixel in the MTF.
    """

    name: str
    dqe: float
    mtf_falloff: float
    pixel_aperture: bool


DETECTOR_PRESETS: dict[str, DetectorModel] = {
    "ideal": DetectorModel("ideal", dqe=1.0, mtf_falloff=0.0, pixel_aperture=False),
    "k3": DetectorModel("k3", dqe=0.8, mtf_falloff=0.2, pixel_aperture=True),
    "falcon4": DetectorModel("falcon4", dqe=0.85, mtf_falloff=0.15, pixel_aperture=True),
}


def detector_model(
    preset: str, *, dqe: float | None = None, mtf_falloff: float | None = None
) -> DetectorModel:
    """A preset with optional overrides of its DQE and MTF falloff."""
    if preset not in DETECTOR_PRESETS:
        raise TomosimError(
            f"unknown detector preset {preset!r}; use one of {list(DETECTOR_PRESETS)}"
        )
    base = DETECTOR_PRESETS[preset]
    dqe = base.dqe if dqe is None else float(dqe)
    falloff = base.mtf_falloff if mtf_falloff is None else float(mtf_falloff)
    if not 0 < dqe <= 1 or falloff < 0:
        raise TomosimError(
            f"bad detector parameters: dqe {dqe} (0 < dqe <= 1), mtf_falloff {falloff}"
        )
    return DetectorModel(
        base.name, dqe=dqe, mtf_falloff=falloff, pixel_aperture=base.pixel_aperture
    )


def detector_mtf(
    k_y: np.ndarray,
    k_x: np.ndarray,
    *,
    pixel_size: float,
    mtf_falloff: float,
    pixel_aperture: bool = True,
) -> np.ndarray:
    """MTF at spatial frequencies ``(k_y, k_x)`` in 1/Å (broadcasting arrays).

    ``sinc(f_x) sinc(f_y) · exp(−m (2|f|)²)`` with ``f = k · pixel_size`` in cycles/pixel.
    """
    f_y = np.asarray(k_y) * pixel_size
    f_x = np.asarray(k_x) * pixel_size
    mtf = np.exp(-mtf_falloff * 4 * (f_y**2 + f_x**2))
    if pixel_aperture:
        mtf = mtf * np.sinc(f_y) * np.sinc(f_x)
    return mtf


def expected_counts(intensity: np.ndarray, *, dose: float, pixel_size: float) -> np.ndarray:
    """Expected electrons per pixel ``dose · pixel_size² · intensity`` (negative values -> 0).

    Parameters
    ----------
    intensity
        Image intensity relative to the incident beam (1 = no specimen, no losses).
    dose
        Dose of this image, e/Å².
    pixel_size
        Å per pixel.
    """
    if dose < 0 or not pixel_size > 0:
        raise TomosimError(f"bad dose {dose} e/Å² or pixel size {pixel_size} Å")
    counts = np.asarray(intensity, dtype=np.float32) * np.float32(dose * pixel_size**2)
    return np.maximum(counts, 0, out=counts)


@dataclass(frozen=True)
class DetectedImage:
    """A detected image and its optional odd/even halves (electrons per pixel, float32)."""

    image: np.ndarray
    odd: np.ndarray | None = None
    even: np.ndarray | None = None


def detect_electrons(
    expected: np.ndarray,
    *,
    dqe: float,
    rng: np.random.Generator,
    read_noise: float = 0.0,
    noise: bool = True,
    half_sets: bool = False,
) -> DetectedImage:
    """Shot noise (with DQE) and read noise on an expected-count image.

    Parameters
    ----------
    expected
        ``(ny, nx)`` expected electrons per pixel (MTF already applied), ≥ 0.
    dqe
        DQE at zero frequency: counts ``Poisson(DQE λ) / DQE`` have mean ``λ`` and variance
        ``λ / DQE``.
    rng
        Random generator. Each block of :data:`ROWS_PER_BLOCK` rows draws from its own generator
        spawned from ``rng`` (blocks run on parallel threads; the result does not depend on
        how many). The full image is the same whether or not ``half_sets`` is asked (the
        binomial split uses generators spawned separately); ``odd + even`` equals it up to
        float32 rounding.
    read_noise
        Gaussian read noise standard deviation, electrons per pixel.
    noise
        False returns the expected image unchanged (and halves of half of it).
    half_sets
        Also return odd/even half-dose images that add up to ``image``.

    Returns
    -------
    DetectedImage
        float32 images.
    """
    expected = np.asarray(expected)
    if not 0 < dqe <= 1 or read_noise < 0:
        raise TomosimError(f"bad detector parameters: dqe {dqe}, read noise {read_noise}")
    if np.any(expected < 0) or not np.all(np.isfinite(expected)):
        raise TomosimError("expected counts must be finite and non-negative")
    if not noise:
        image = expected.astype(np.float32)
        half = (image * np.float32(0.5)) if half_sets else None
        return DetectedImage(image, half, None if half is None else half.copy())
    split_rng = rng.spawn(1)[0]
    flat = np.atleast_1d(expected)
    flat = flat.reshape(flat.shape[0], -1)  # rows of the image (any shape works)
    ny = flat.shape[0]
    rows = [(start, min(ny, start + ROWS_PER_BLOCK)) for start in range(0, ny, ROWS_PER_BLOCK)]
    generators = rng.spawn(len(rows))
    split_generators = split_rng.spawn(len(rows)) if half_sets else [None] * len(rows)
    image = np.empty(flat.shape, np.float32)
    odd = np.empty(flat.shape, np.float32) if half_sets else None
    even = np.empty(flat.shape, np.float32) if half_sets else None

    def fill(block: int) -> None:
        # one generator per block of rows: the same numbers however many threads draw them
        start, stop = rows[block]
        generator = generators[block]
        counts = generator.poisson(flat[start:stop].astype(np.float64) * dqe)
        readout = (
            generator.normal(0.0, read_noise / np.sqrt(2), size=(2, *counts.shape))
            if read_noise else None
        )
        full = counts / dqe
        if readout is not None:
            full = full + readout[0] + readout[1]
        image[start:stop] = full
        if odd is not None and even is not None:
            halves_rng = split_generators[block]
            assert halves_rng is not None  # half sets: one generator per block
            odd_counts = halves_rng.binomial(counts, 0.5)
            odd_part = odd_counts / dqe
            even_part = (counts - odd_counts) / dqe
            if readout is not None:
                odd_part = odd_part + readout[0]
                even_part = even_part + readout[1]
            odd[start:stop] = odd_part
            even[start:stop] = even_part

    _run_blocks(fill, len(rows))
    shape = expected.shape
    if odd is None or even is None:
        return DetectedImage(image.reshape(shape))
    return DetectedImage(image.reshape(shape), odd.reshape(shape), even.reshape(shape))


ROWS_PER_BLOCK = 128
"""Image rows per noise block; each block draws from its own generator spawned from the image's."""


def _run_blocks(fill: Callable[[int], None], count: int) -> None:
    """``fill(0) ... fill(count - 1)`` on up to numba's thread count of threads.

    numpy's generators release the GIL while they draw, so blocks with separate generators draw
    in parallel; a Dask worker limited to one numba thread draws them one after another.
    """
    import numba

    threads = min(count, numba.get_num_threads())
    if threads <= 1:
        for block in range(count):
            fill(block)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(fill, range(count)))  # list(): re-raises a block's exception here
