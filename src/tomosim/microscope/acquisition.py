"""Acquisition imperfections: what goes wrong between the stage and the aligned tilt series.

A real tilt series is recorded with stage drift and beam-induced motion, motion-corrected,
aligned (fiducials or patch tracking) and CTF-estimated. What reaches the reconstruction is not
perfect; this module draws what is left, per tilt, from a seeded generator:

- **Residual alignment shift** (``residual_shift``, Å, s.d. per axis): correlated along the
  acquisition order as an AR(1) process ``e_i = ρ e_{i−1} + √(1 − ρ²) n_i`` with ``n_i`` Gaussian
  of s.d. ``residual_shift`` and ``ρ = shift_correlation`` (stationary s.d. ``residual_shift``,
  correlation ``ρ`` between consecutive exposures): drift that the alignment followed only
  approximately. Tilts taken one after the other are displaced alike.
- **Residual in-plane rotation** (``residual_rotation``, degrees), the same AR(1) process.
- **Tilt-axis error** (``tilt_axis_error``, degrees, s.d.): one constant offset of the in-plane
  tilt-axis angle for the whole series (added to every image's rotation).
- **Tilt-angle offset** (``tilt_offset``, degrees, s.d.): one constant offset of all tilt angles
  (a stage or alignment offset), added to the true angles.
- **Beam-induced motion blur** (``motion_blur``, Å): the motion left after motion correction, a
  uniform linear motion during the exposure of length drawn from an exponential distribution of
  this mean, in a uniformly random direction. Its transfer is ``sinc(L k·d)``
  (:func:`motion_blur_transfer`).
- **Defocus mismatch** (``defocus_mismatch``, Å, s.d.): per tilt, the defocus the user's CTF
  estimation reports (used for CTF correction) minus the true defocus the image was formed with.

Profiles (:data:`ACQUISITION_PROFILES`): ``ideal`` (all zero) and ``realistic``. The realistic
values are representative of fiducial-less or fiducial alignment of lamella data at 2–4 Å
unbinned pixels (residual shifts of ~0.5–2 unbinned pixels, tilt-axis errors of a few tenths of
a degree, motion-corrected residual blur of a few Å, CTF estimation errors of a few hundred Å at
high tilt); they are chosen to be of that order, not measured.

Sign conventions are those of CONVENTIONS.md ("Per-tilt errors") and of ``tilts.csv``
(``shift_x_a``, ``shift_y_a``: the image content is displaced by ``+shift`` after the rotation
``rotation_error_deg`` counter-clockwise about the image centre; undo by shifting by ``−shift``
and then rotating by ``−rotation_error_deg``; ``true_angle_deg − angle_deg`` is the tilt-angle
error; ``defocus_u_a`` is the assumed value, ``true_defocus_u_a`` the true one).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tomosim.errors import TomosimError

__all__ = [
    "ACQUISITION_PROFILES",
    "AcquisitionErrors",
    "AcquisitionSettings",
    "correlated_series",
    "draw_acquisition_errors",
    "motion_blur_transfer",
]


@dataclass(frozen=True)
class AcquisitionSettings:
    """Sizes of the acquisition imperfections (see the module docstring).

    Attributes
    ----------
    residual_shift
        Residual alignment shift s.d. per axis, Å.
    shift_correlation
        AR(1) correlation of consecutive exposures' residual shifts and rotations, in [0, 1).
    residual_rotation
        Residual in-plane rotation s.d., degrees.
    tilt_axis_error
        s.d. of the constant in-plane tilt-axis error, degrees.
    tilt_offset
        s.d. of the constant tilt-angle offset, degrees.
    motion_blur
        Mean length of the residual linear motion within an exposure, Å.
    defocus_mismatch
        s.d. of the assumed minus the true defocus per tilt, Å.
    """

    residual_shift: float = 0.0
    shift_correlation: float = 0.0
    residual_rotation: float = 0.0
    tilt_axis_error: float = 0.0
    tilt_offset: float = 0.0
    motion_blur: float = 0.0
    defocus_mismatch: float = 0.0

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not np.isfinite(value) or value < 0:
                raise TomosimError(f"acquisition {name} must be finite and >= 0, got {value}")
        if self.shift_correlation >= 1:
            raise TomosimError(
                f"acquisition shift_correlation must be below 1, got {self.shift_correlation}"
            )


ACQUISITION_PROFILES: dict[str, AcquisitionSettings] = {
    "ideal": AcquisitionSettings(),
    "realistic": AcquisitionSettings(
        residual_shift=3.0,
        shift_correlation=0.7,
        residual_rotation=0.2,
        tilt_axis_error=0.3,
        tilt_offset=0.5,
        motion_blur=3.0,
        defocus_mismatch=300.0,
    ),
}
"""Named profiles; ``realistic`` is the default of ``microscope.acquisition.profile``."""


@dataclass(frozen=True)
class AcquisitionErrors:
    """Drawn imperfections of one series, in ascending nominal angle order (as ``TiltScheme``).

    Attributes
    ----------
    shifts
        ``(n, 2)`` residual image shifts ``(x, y)``, Å (content displaced by ``+shift``).
    rotations
        ``(n,)`` residual in-plane rotation plus the constant tilt-axis error, degrees.
    angle_errors
        ``(n,)`` tilt-angle error (the constant offset), degrees.
    motion_blur
        ``(n,)`` length of the linear motion within each exposure, Å.
    motion_angle
        ``(n,)`` direction of that motion, degrees counter-clockwise from the image x axis.
    defocus_mismatch
        ``(n,)`` assumed minus true defocus, Å.
    """

    shifts: np.ndarray
    rotations: np.ndarray
    angle_errors: np.ndarray
    motion_blur: np.ndarray
    motion_angle: np.ndarray
    defocus_mismatch: np.ndarray


def correlated_series(
    n: int, *, scale: float, correlation: float, rng: np.random.Generator, size: int = 1
) -> np.ndarray:
    """Draw a stationary AR(1) Gaussian series of ``n`` steps (``size`` independent components).

    ``e_0 = s n_0``, ``e_i = ρ e_{i−1} + s √(1 − ρ²) n_i`` with standard normal ``n_i``: every
    ``e_i`` has s.d. ``s`` and consecutive values correlation ``ρ``.

    Returns
    -------
    numpy.ndarray
        ``(n, size)`` float64.
    """
    if scale == 0:
        return np.zeros((n, size))
    steps = rng.normal(0.0, scale, size=(n, size))
    out = np.empty((n, size))
    out[0] = steps[0]
    innovation = np.sqrt(1 - correlation**2)
    for i in range(1, n):
        out[i] = correlation * out[i - 1] + innovation * steps[i]
    return out


def draw_acquisition_errors(
    settings: AcquisitionSettings, acquisition_index: np.ndarray, rng: np.random.Generator
) -> AcquisitionErrors:
    """Draw the imperfections of one series (see the module docstring).

    Parameters
    ----------
    settings
        Sizes of the errors.
    acquisition_index
        ``(n,)`` acquisition position of each tilt in ascending-angle order (``TiltScheme``).
    rng
        Random generator. The draws happen in a fixed order (constants, shifts, rotations,
        motion, defocus) whatever the settings, so changing one size does not change the others.

    Returns
    -------
    AcquisitionErrors
        Arrays in ascending nominal angle order.
    """
    index = np.asarray(acquisition_index, dtype=np.int64)
    n = index.shape[0]
    s = settings
    constants = np.asarray(rng.normal(0.0, 1.0, size=2))
    shift_rng, rotation_rng, motion_rng, defocus_rng = rng.spawn(4)
    # AR(1) series run in acquisition order, then read back in ascending-angle order
    shifts = correlated_series(
        n, scale=s.residual_shift, correlation=s.shift_correlation, rng=shift_rng, size=2
    )[index]
    rotations = correlated_series(
        n, scale=s.residual_rotation, correlation=s.shift_correlation, rng=rotation_rng
    )[index, 0]
    rotations = rotations + s.tilt_axis_error * constants[0]
    angle_errors = np.full(n, s.tilt_offset * constants[1])
    lengths = np.asarray(motion_rng.exponential(1.0, size=n))[index] * s.motion_blur
    directions = np.asarray(motion_rng.uniform(0.0, 180.0, size=n))[index]
    mismatch = np.asarray(defocus_rng.normal(0.0, 1.0, size=n))[index] * s.defocus_mismatch
    return AcquisitionErrors(
        shifts=shifts,
        rotations=rotations,
        angle_errors=angle_errors,
        motion_blur=lengths,
        motion_angle=directions,
        defocus_mismatch=mismatch,
    )


def motion_blur_transfer(
    k_y: np.ndarray, k_x: np.ndarray, *, length: float, angle_deg: float
) -> np.ndarray:
    """Transfer of a uniform linear motion of ``length`` Å at ``angle_deg`` during an exposure.

    The image is the average of the still image shifted along the path, i.e. convolved with a
    segment of that length; its transfer is ``sinc(L (k_x cos α + k_y sin α))`` with
    ``sinc(t) = sin(πt)/(πt)``.

    Parameters
    ----------
    k_y, k_x
        Spatial frequencies, 1/Å (broadcasting arrays).
    length
        Path length ``L``, Å (0 = no blur).
    angle_deg
        Direction α, degrees counter-clockwise from the image x axis.

    Returns
    -------
    numpy.ndarray
        The transfer, broadcast shape of ``k_y`` and ``k_x``.
    """
    alpha = np.deg2rad(angle_deg)
    return np.sinc(length * (np.asarray(k_x) * np.cos(alpha) + np.asarray(k_y) * np.sin(alpha)))
