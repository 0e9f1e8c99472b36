"""Dose: radiation damage (exposure filter) and inelastic scattering.

Exposure filter (Grant & Grigorieff 2015, *eLife* 4:e06980): the signal at spatial frequency ``k``
(1/Å) fades with the accumulated exposure ``N`` (e/Å²) as ``exp(−N / (2 Nₑ(k)))`` with the
critical exposure ``Nₑ(k) = a k^b + c``, ``a = 0.245``, ``b = −1.665``, ``c = 2.81`` (fitted at
300 kV). At 200 kV the critical exposures are 0.8 times smaller (same paper); between 200 and
300 kV tomosim interpolates the factor linearly and clamps it outside (an approximation).

A tilt exposed from ``N₀`` to ``N₁`` is the sum of its frames, so its signal is attenuated by the
**average** of the filter over that exposure range:
``2Nₑ/(N₁ − N₀) · [exp(−N₀/2Nₑ) − exp(−N₁/2Nₑ)]`` (:func:`exposure_filter`).

Inelastic scattering: the fraction of electrons passing a slab of thickness ``t`` at tilt θ
without inelastic scattering is ``P₀ = exp(−t / (λ_in cos θ))`` (the zero-loss fraction; the
default ``λ_in`` = 3500 Å is of the order measured for vitreous ice at 300 kV, e.g. by Rice et al.
2018, *J. Struct. Biol.* 204, 38). With an energy filter the inelastic electrons are removed: the
image keeps ``P₀`` of the counts. Without it they reach the detector as a smooth background
(:func:`inelastic_transfer`): tomosim models them as carrying the elastic image blurred by a
Gaussian of ``inelastic_blur`` Å (default 200 Å, a representative value for the chromatic blur of
plasmon losses, not a fitted one), so the counts stay and low-resolution contrast is diluted.
"""

from __future__ import annotations

import numpy as np

from tomosim.errors import TomosimError

__all__ = [
    "CRITICAL_EXPOSURE_A",
    "CRITICAL_EXPOSURE_B",
    "CRITICAL_EXPOSURE_C",
    "critical_exposure",
    "exposure_filter",
    "inelastic_transfer",
    "zero_loss_fraction",
]

CRITICAL_EXPOSURE_A = 0.245
CRITICAL_EXPOSURE_B = -1.665
CRITICAL_EXPOSURE_C = 2.81


def _voltage_factor(voltage_kv: float) -> float:
    """Critical-exposure scale: 1 at 300 kV, 0.8 at 200 kV (Grant & Grigorieff 2015)."""
    return float(np.clip(0.8 + 0.2 * (voltage_kv - 200.0) / 100.0, 0.8, 1.0))


def critical_exposure(k: np.ndarray | float, *, voltage_kv: float = 300.0) -> np.ndarray:
    """Critical exposure ``Nₑ(k) = (a k^b + c) · f(U)`` in e/Å², ``k`` in 1/Å.

    ``Nₑ`` is infinite at ``k = 0`` (no attenuation of the mean). ``f(U)`` is the voltage factor
    (1 at 300 kV, 0.8 at 200 kV).
    """
    k = np.abs(np.asarray(k, dtype=np.float64))
    with np.errstate(divide="ignore"):
        power = np.where(k > 0, CRITICAL_EXPOSURE_A * np.power(np.where(k > 0, k, 1.0),
                                                               CRITICAL_EXPOSURE_B), np.inf)
    return (power + CRITICAL_EXPOSURE_C) * _voltage_factor(voltage_kv)


def exposure_filter(
    k: np.ndarray | float,
    *,
    dose_start: float,
    dose_end: float | None = None,
    voltage_kv: float = 300.0,
) -> np.ndarray:
    """Signal attenuation by radiation damage at spatial frequency ``k`` (1/Å).

    Parameters
    ----------
    k
        Spatial frequency magnitude, 1/Å (any shape).
    dose_start
        Accumulated exposure ``N₀`` at the start of the image, e/Å².
    dose_end
        Exposure ``N₁`` at its end. None: the attenuation at the single exposure ``N₀``,
        ``exp(−N₀ / (2 Nₑ))``; else its average over ``[N₀, N₁]`` (see the module docstring).
    voltage_kv
        Beam energy, kV.

    Returns
    -------
    numpy.ndarray
        Attenuation in (0, 1], 1 at ``k = 0``.
    """
    if dose_start < 0 or (dose_end is not None and dose_end < dose_start):
        raise TomosimError(f"bad exposure range {dose_start}..{dose_end} e/Å²")
    two_ne = 2 * critical_exposure(k, voltage_kv=voltage_kv)
    start = np.exp(-dose_start / two_ne)
    if dose_end is None or dose_end - dose_start <= 1e-12 * max(1.0, dose_end):
        return start
    end = np.exp(-dose_end / two_ne)
    with np.errstate(invalid="ignore"):
        average = two_ne / (dose_end - dose_start) * (start - end)
    return np.where(np.isinf(two_ne), 1.0, average)


def zero_loss_fraction(
    thickness: float, angle_deg: np.ndarray | float, *, mean_free_path: float
) -> np.ndarray:
    """Fraction of electrons crossing a slab without inelastic scattering.

    ``P₀ = exp(−t / (λ_in cos θ))`` for slab thickness ``t`` (Å), tilt θ (degrees) and inelastic
    mean free path ``λ_in`` (Å).
    """
    angle = np.asarray(angle_deg, dtype=np.float64)
    if thickness < 0 or not mean_free_path > 0 or np.any(np.abs(angle) >= 90):
        raise TomosimError(
            f"bad inelastic parameters: thickness {thickness} Å, mean free path {mean_free_path} Å,"
            f" angle {angle}"
        )
    return np.exp(-thickness / (mean_free_path * np.cos(np.deg2rad(angle))))


def inelastic_transfer(
    k: np.ndarray | float,
    *,
    zero_loss: float,
    energy_filter: bool,
    inelastic_blur: float = 200.0,
) -> np.ndarray:
    """How inelastic scattering scales the contrast at spatial frequency ``k`` (1/Å).

    With an energy filter, only the zero-loss electrons form the image: the contrast (and the
    mean) is scaled by ``P₀``. Without one, the inelastic fraction ``1 − P₀`` adds the image
    blurred by a Gaussian of standard deviation ``inelastic_blur`` (Å):
    ``P₀ + (1 − P₀) exp(−2π² σ² k²)``; the mean stays 1. Returns the factor for the contrast;
    the factor for the mean is the value at ``k = 0``.
    """
    k = np.asarray(k, dtype=np.float64)
    if energy_filter:
        return np.full(k.shape, zero_loss)
    blur = np.exp(-2 * np.pi**2 * inelastic_blur**2 * k**2)
    return zero_loss + (1 - zero_loss) * blur
