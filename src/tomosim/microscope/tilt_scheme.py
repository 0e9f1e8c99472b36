"""Tilt scheme: which angles, in which order, with how much dose, and with which errors.

A :class:`TiltScheme` lists the tilts in **ascending nominal angle** (the order of the tilt-series
stack and the ``.tlt`` file), whatever the order of acquisition; ``acquisition_index`` says when
each one was taken. Angles are in degrees with the geometry of CONVENTIONS.md (tilt axis = y).

Orders (:func:`build_tilt_scheme`):

- ``unidirectional``: from ``min_angle`` to ``max_angle``.
- ``bidirectional``: from the tilt nearest ``start_angle`` up to ``max_angle``, then from the next
  tilt below the start down to ``min_angle``.
- ``dose_symmetric`` (Hagen, Wan & Briggs 2017, *J. Struct. Biol.* 197, 191): the tilt nearest
  ``start_angle`` (0° by default) first, then one step on the positive side, then groups of
  ``group_size`` tilts alternating sides, starting with the negative side, each time moving to
  higher tilts; when one side is exhausted the other side is finished. With steps of 3° and groups
  of two this is 0, +3, −3, −6, +6, +9, −9, −12, … as in Hagen et al. (Fig. 1); with groups of one,
  0, +3, −3, +6, −6, ….
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from tomosim.errors import TomosimError

__all__ = ["TiltScheme", "acquisition_order", "build_tilt_scheme", "tilt_angles"]

TiltOrder = Literal["unidirectional", "bidirectional", "dose_symmetric"]


@dataclass(frozen=True)
class TiltScheme:
    """The tilts of a series, in ascending nominal angle, and what happened at each.

    Attributes
    ----------
    angles_deg
        ``(n,)`` nominal tilt angles, ascending, degrees (what the microscope reports).
    acquisition_index
        ``(n,)`` int, 0 for the first tilt acquired, 1 for the second, ...
    dose
        ``(n,)`` electron dose of each tilt, e/Å².
    dose_before, dose_after
        ``(n,)`` cumulative dose the sample had received before and after each tilt, e/Å².
    angle_errors
        ``(n,)`` true minus nominal tilt angle, degrees.
    shifts
        ``(n, 2)`` true image shifts ``(x, y)`` in Å: image content is displaced by ``+shift``.
    rotations
        ``(n,)`` true in-plane rotation error in degrees, added (counter-clockwise) to the
        tilt-axis angle of each image.
    defocus
        ``(n,)`` mean defocus of each tilt (``(defocus_u + defocus_v) / 2``) at the tilt axis, Å,
        positive = underfocus, per-tilt jitter included.
    """

    angles_deg: np.ndarray
    acquisition_index: np.ndarray
    dose: np.ndarray
    dose_before: np.ndarray
    dose_after: np.ndarray
    angle_errors: np.ndarray
    shifts: np.ndarray
    rotations: np.ndarray
    defocus: np.ndarray

    @property
    def n_tilts(self) -> int:
        """Number of tilts."""
        return int(self.angles_deg.shape[0])

    @property
    def true_angles_deg(self) -> np.ndarray:
        """``(n,)`` true tilt angles: nominal plus error, degrees."""
        return self.angles_deg + self.angle_errors

    @property
    def order(self) -> np.ndarray:
        """``(n,)`` indices into the ascending arrays in acquisition order."""
        return np.argsort(self.acquisition_index, kind="stable")


def tilt_angles(min_angle: float, max_angle: float, step: float) -> np.ndarray:
    """Ascending angles ``min_angle, min_angle + step, …`` up to ``max_angle``, degrees.

    ``max_angle`` is included when within 1e-6 of a step.
    """
    if not step > 0:
        raise TomosimError(f"tilt step must be positive, got {step}")
    if min_angle > max_angle:
        raise TomosimError(f"tilt min_angle {min_angle} is larger than max_angle {max_angle}")
    if min_angle <= -90 or max_angle >= 90:
        raise TomosimError(f"tilt angles must lie within (-90, 90), got {min_angle}..{max_angle}")
    count = int(np.floor((max_angle - min_angle) / step + 1e-6)) + 1
    return min_angle + step * np.arange(count, dtype=np.float64)


def acquisition_order(
    angles_deg: np.ndarray,
    *,
    order: TiltOrder,
    group_size: int = 2,
    start_angle: float = 0.0,
) -> np.ndarray:
    """Indices into ascending ``angles_deg`` in the order of acquisition (see module docstring).

    Returns
    -------
    numpy.ndarray
        ``(n,)`` int, ``angles_deg[result[i]]`` is the i-th tilt acquired.
    """
    angles = np.asarray(angles_deg, dtype=np.float64)
    n = angles.shape[0]
    if n == 0:
        raise TomosimError("tilt scheme has no angles")
    if np.any(np.diff(angles) <= 0):
        raise TomosimError("tilt angles must be strictly ascending")
    if order == "unidirectional":
        return np.arange(n)
    start = int(np.argmin(np.abs(angles - start_angle)))
    above = list(range(start + 1, n))  # ascending away from the start
    below = list(range(start - 1, -1, -1))  # descending away from the start
    if order == "bidirectional":
        return np.array([start, *above, *below], dtype=np.int64)
    if order != "dose_symmetric":
        raise TomosimError(
            f"unknown tilt order {order!r}; use unidirectional, bidirectional or dose_symmetric"
        )
    if group_size < 1:
        raise TomosimError(f"dose-symmetric group_size must be >= 1, got {group_size}")
    sequence = [start]
    sides = [above, below]
    side = 0
    take = 1  # one step on the positive side first, then whole groups
    while above or below:
        if not sides[side]:
            side = 1 - side
        current = sides[side]
        sequence.extend(current[:take])
        del current[:take]
        side = 1 - side
        take = group_size
    return np.array(sequence, dtype=np.int64)


def build_tilt_scheme(
    *,
    min_angle: float,
    max_angle: float,
    step: float,
    order: TiltOrder = "dose_symmetric",
    group_size: int = 2,
    start_angle: float = 0.0,
    total_dose: float,
    weighting: Literal["uniform", "cosine"] = "uniform",
    defocus: float = 0.0,
    defocus_jitter: float = 0.0,
    angle_error: float = 0.0,
    shift_error: float = 0.0,
    rotation_error: float = 0.0,
    rng: np.random.Generator | None = None,
) -> TiltScheme:
    """Build a tilt scheme: angles, acquisition order, dose per tilt and true errors.

    Parameters
    ----------
    min_angle, max_angle, step
        Nominal angle range and increment, degrees.
    order, group_size, start_angle
        Acquisition order (see the module docstring).
    total_dose
        Dose of the whole series, e/Å².
    weighting
        ``uniform``: every tilt gets ``total_dose / n``; ``cosine``: dose ∝ 1 / cos θ, normalised
        to ``total_dose`` (keeps the counts through the thicker tilted sample more even).
    defocus
        Mean defocus (Å, positive = underfocus) at the tilt axis.
    defocus_jitter
        Standard deviation of a Gaussian per-tilt defocus error, Å.
    angle_error
        Standard deviation of a Gaussian per-tilt tilt-angle error, degrees.
    shift_error
        Standard deviation of Gaussian per-tilt image shifts in x and y, Å.
    rotation_error
        Standard deviation of a Gaussian per-tilt in-plane rotation, degrees.
    rng
        Random generator; required when any error or jitter is nonzero. Draws happen in a fixed
        order (defocus, angle, shift, rotation; each in acquisition order), so a seed reproduces
        the scheme.

    Returns
    -------
    TiltScheme
    """
    angles = tilt_angles(min_angle, max_angle, step)
    n = angles.shape[0]
    if not total_dose > 0:
        raise TomosimError(f"total dose must be positive, got {total_dose}")
    sequence = acquisition_order(
        angles, order=order, group_size=group_size, start_angle=start_angle
    )
    acquisition_index = np.empty(n, dtype=np.int64)
    acquisition_index[sequence] = np.arange(n)

    if weighting == "uniform":
        weights = np.ones(n)
    elif weighting == "cosine":
        weights = 1 / np.cos(np.deg2rad(angles))
    else:
        raise TomosimError(f"unknown dose weighting {weighting!r}; use uniform or cosine")
    dose = total_dose * weights / weights.sum()
    cumulative = np.cumsum(dose[sequence])
    dose_after = np.empty(n)
    dose_after[sequence] = cumulative
    dose_before = dose_after - dose

    errors = {"defocus": defocus_jitter, "angle": angle_error, "shift": shift_error,
              "rotation": rotation_error}
    for name, value in errors.items():
        if value < 0:
            raise TomosimError(f"{name} error standard deviation must be >= 0, got {value}")
    if any(errors.values()) and rng is None:
        raise TomosimError("build_tilt_scheme needs an rng when errors or jitter are nonzero")

    def gaussian(scale: float, size: tuple[int, ...]) -> np.ndarray:
        if scale == 0 or rng is None:
            return np.zeros(size)
        draws = rng.normal(0.0, scale, size=size)  # drawn in acquisition order
        out = np.empty_like(draws)
        out[sequence] = draws
        return out

    defocus_per_tilt = defocus + gaussian(defocus_jitter, (n,))
    angle_errors = gaussian(angle_error, (n,))
    if np.any(np.abs(angles + angle_errors) >= 90):
        raise TomosimError("tilt angle errors push a tilt beyond ±90 degrees")
    shifts = gaussian(shift_error, (n, 2))
    rotations = gaussian(rotation_error, (n,))
    return TiltScheme(
        angles_deg=angles,
        acquisition_index=acquisition_index,
        dose=dose,
        dose_before=dose_before,
        dose_after=dose_after,
        angle_errors=angle_errors,
        shifts=shifts,
        rotations=rotations,
        defocus=defocus_per_tilt,
    )
