"""Image formation: a potential volume becomes a noisy tilt series in electrons per pixel.

The chain (:func:`simulate_tilt_series`), per tilt, in ascending angle order:

1. **Tilt scheme** (:mod:`~tomosim.microscope.tilt_scheme`): nominal angles, acquisition order,
   dose per tilt and cumulative dose, true errors (tilt angle, shift, in-plane rotation) and
   per-tilt defocus jitter, drawn from ``rng``.
2. **Projection** (:mod:`~tomosim.microscope.projection`) of the volume (V, excess over ice) at
   the *true* tilt angle, rotated by the tilt-axis angle plus the rotation error and shifted by the
   shift error: ``V_proj`` in V·Å. With ``optics.depth_defocus`` the volume is projected in z slabs
   that each get the defocus of their height.
3. **Exit wave, weak-phase approximation**: phase ``φ = σ V_proj`` with the relativistic
   interaction constant ``σ`` (:func:`~tomosim.microscope.ctf.interaction_constant`). The ice slab
   adds the uniform phase ``σ V_ice t / cos θ``
   (:func:`~tomosim.microscope.projection.ice_projection`);
   a uniform phase (like the mean of ``φ``) shifts the whole wave and gives no contrast, so the
   mean is removed and only its value is kept (``TiltSeries.mean_phase``). The image intensity is
   ``I = m + 2 F⁻¹[CTF · E · D · T · MTF · F[φ − ⟨φ⟩]]`` with the CTF (CTFFIND sign, amplitude
   contrast, :mod:`~tomosim.microscope.ctf`) varying across the tilted image, envelopes ``E``, the
   exposure filter ``D`` for the tilt's dose range, the inelastic transfer ``T`` and the detector
   MTF; ``m`` is the mean intensity: the zero-loss fraction ``P₀`` with an energy filter, 1 without
   (:mod:`~tomosim.microscope.dose`). This linear model is the first-order expansion of the
   wave-optical image ``|F⁻¹[F[e^{iφ}] e^{iχ}]|²`` (tested against it); it holds while the phase
   *fluctuations* are well below 1 rad (a 25 nm protein is ≈ 0.3 rad at 300 kV). In underfocus
   protein images dark.
   **Acquisition imperfections** (:mod:`~tomosim.microscope.acquisition`,
   ``Acquisition.imperfections``): correlated residual shifts and rotations, a tilt-axis error and
   a tilt-angle offset join the scheme's errors (step 1); beam-induced motion blur multiplies the
   transfer by ``sinc(L k·d)``; the images are formed at the true defocus and the series reports
   the assumed one (defocus mismatch). **Fourier binning** (``DetectorSettings.binning`` = b,
   :mod:`~tomosim.microscope.binning`): the MTF is that of the detector pixel
   ``pixel_size / b``, and the transfer is divided by the voxel averaging of the potential at
   this tilt, so that the pixel is integrated once, as in data Fourier-cropped from a fine pixel.
4. **Detector** (:mod:`~tomosim.microscope.detector`): expected electrons
   ``dose · pixel_size² · I``, Poisson shot noise with the DQE, read noise; optional noise-free
   series and odd/even half-dose series.

Peak memory is the volume, the output stacks (float32) and a few images: tilts are processed one
at a time.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from tomosim.errors import TomosimError
from tomosim.microscope.acquisition import (
    AcquisitionErrors,
    AcquisitionSettings,
    draw_acquisition_errors,
    motion_blur_transfer,
)
from tomosim.microscope.binning import voxel_average_transfer
from tomosim.microscope.ctf import (
    Optics,
    apply_ctf,
    electron_wavelength,
    frequency_grid,
    interaction_constant,
    padded_shape,
)
from tomosim.microscope.detector import (
    DetectorModel,
    detect_electrons,
    detector_mtf,
    expected_counts,
)
from tomosim.microscope.dose import exposure_filter, inelastic_transfer, zero_loss_fraction
from tomosim.microscope.projection import ice_projection, project_volume
from tomosim.microscope.tilt_scheme import TiltScheme, build_tilt_scheme

__all__ = [
    "Acquisition",
    "DetectorSettings",
    "DoseSettings",
    "Focus",
    "TiltSeries",
    "TiltSettings",
    "depth_slabs",
    "simulate_tilt_series",
]


@dataclass(frozen=True)
class TiltSeries:
    """A simulated tilt series and everything needed to reconstruct or CTF-correct it.

    Attributes
    ----------
    images
        ``(n_tilts, ny, nx)`` float32 detected electrons per pixel, ascending nominal angle.
    angles_deg
        ``(n_tilts,)`` nominal tilt angles (ascending, what a ``.tlt`` file holds), degrees.
        The true angles are ``scheme.true_angles_deg``.
    pixel_size
        Å per pixel.
    scheme
        The :class:`~tomosim.microscope.tilt_scheme.TiltScheme`: order, doses, true errors.
    defocus_u, defocus_v
        ``(n_tilts,)`` defocus at the tilt axis (image centre plus shift, eucentric height), Å,
        positive = underfocus (CTFFIND convention), as a CTF estimation reports it: the values
        CTF correction uses. They differ from ``true_defocus_u/v`` by the defocus mismatch.
    astigmatism_angle
        ``(n_tilts,)`` degrees from the detector image x axis to the u axis, counter-clockwise.
    tilt_axis_angle
        Nominal in-plane tilt-axis angle, degrees counter-clockwise from the image y axis (the
        per-tilt rotation errors are ``scheme.rotations``).
    optics
        The optics (voltage, aberrations, amplitude contrast, phase shift, envelopes).
    mean_phase
        ``(n_tilts,)`` mean exit-wave phase (ice slab plus sample), radians: informative only.
    noise_free
        ``(n_tilts, ny, nx)`` float32 expected electrons per pixel, or None.
    true_defocus_u, true_defocus_v
        ``(n_tilts,)`` defocus the images were formed with, Å; None = ``defocus_u/v``.
    acquisition
        The drawn acquisition imperfections (:mod:`tomosim.microscope.acquisition`), or None;
        their shifts, rotations and angle errors are already in ``scheme``.
    odd, even
        ``(n_tilts, ny, nx)`` float32 half-dose images (``odd + even == images`` up to float32
        rounding), or None.
    """

    images: np.ndarray
    angles_deg: np.ndarray
    pixel_size: float
    scheme: TiltScheme
    defocus_u: np.ndarray
    defocus_v: np.ndarray
    astigmatism_angle: np.ndarray
    tilt_axis_angle: float
    optics: Optics
    mean_phase: np.ndarray
    noise_free: np.ndarray | None = None
    odd: np.ndarray | None = None
    even: np.ndarray | None = None
    true_defocus_u: np.ndarray | None = None
    true_defocus_v: np.ndarray | None = None
    acquisition: AcquisitionErrors | None = None

    @property
    def n_tilts(self) -> int:
        """Number of tilt images."""
        return int(self.images.shape[0])


@dataclass(frozen=True)
class TiltSettings:
    """The tilt scheme: range, step, order and the per-tilt error spreads.

    Attributes
    ----------
    min_angle, max_angle, step
        Nominal tilt range and increment, degrees.
    order
        ``"unidirectional"``, ``"bidirectional"`` or ``"dose_symmetric"``.
    group_size
        Dose-symmetric group size (Hagen scheme).
    start_angle
        First tilt of a bidirectional scheme, degrees.
    tilt_axis_angle
        In-plane tilt-axis angle, degrees counter-clockwise from the image y axis.
    angle_error, shift_error, rotation_error
        Standard deviations of the per-tilt tilt-angle error (degrees), image shift (Å) and
        in-plane rotation (degrees).
    """

    min_angle: float
    max_angle: float
    step: float
    order: Literal["unidirectional", "bidirectional", "dose_symmetric"]
    group_size: int
    start_angle: float
    tilt_axis_angle: float
    angle_error: float
    shift_error: float
    rotation_error: float


@dataclass(frozen=True)
class Focus:
    """Defocus of the series (CTFFIND convention: positive = underfocus).

    Attributes
    ----------
    defocus_um, astigmatism_um, astigmatism_angle
        Mean defocus and ``defocus_u - defocus_v`` in µm; astigmatism angle in degrees from the
        image x axis.
    defocus_jitter_um
        Standard deviation of the per-tilt defocus, µm.
    defocus_gradient
        Defocus varies across tilted images.
    depth_defocus
        Defocus varies through the sample thickness (projection in z slabs).
    padding
        Fractional zero padding of the images against CTF wrap-around.
    """

    defocus_um: float
    astigmatism_um: float
    astigmatism_angle: float
    defocus_jitter_um: float
    defocus_gradient: bool
    depth_defocus: bool
    padding: float


@dataclass(frozen=True)
class DoseSettings:
    """Electron dose and inelastic scattering.

    Attributes
    ----------
    total_dose_e_per_a2
        Dose of the whole series, e⁻/Å².
    weighting
        ``"uniform"`` or ``"cosine"`` dose per tilt.
    exposure_filter
        Attenuate with the radiation-damage exposure filter.
    energy_filter
        Zero-loss energy filter in the beam path.
    inelastic_mean_free_path
        Å, for the zero-loss fraction.
    """

    total_dose_e_per_a2: float
    weighting: Literal["uniform", "cosine"]
    exposure_filter: bool
    energy_filter: bool
    inelastic_mean_free_path: float


@dataclass(frozen=True)
class DetectorSettings:
    """The detector and which extra series to keep.

    Attributes
    ----------
    detector
        DQE, MTF and pixel aperture (:func:`~tomosim.microscope.detector.detector_model`).
    read_noise
        Gaussian read noise, electrons.
    noise
        Poisson shot noise on.
    write_noise_free, write_half_sets
        Keep the expected (noise-free) series; keep odd/even half-dose series.
    binning
        Fourier binning from the physical pixel ``pixel_size / binning`` to the simulation pixel
        (:mod:`tomosim.microscope.binning`); 1 = the simulation pixel is the detector pixel.
    """

    detector: DetectorModel
    read_noise: float
    noise: bool
    write_noise_free: bool
    write_half_sets: bool
    binning: int = 1


@dataclass(frozen=True)
class Acquisition:
    """How a tilt series is acquired: tilt scheme, focus, dose, detector and imperfections.

    ``imperfections`` (:mod:`tomosim.microscope.acquisition`) defaults to none here; the
    config's ``microscope.acquisition.profile`` defaults to ``realistic``.
    """

    tilt: TiltSettings
    focus: Focus
    dose: DoseSettings
    detector: DetectorSettings
    imperfections: AcquisitionSettings = field(default_factory=AcquisitionSettings)


def depth_slabs(
    n_z: int, *, pixel_size: float, tilt_angle: float, defocus_step: float
) -> list[tuple[int, int, float]]:
    """Split ``n_z`` voxels into z slabs whose defocus spread along the beam is ≤ ``defocus_step``.

    Returns ``(z_start, z_stop, height)`` with the slab-centre height in Å from the box centre
    ``n_z // 2`` (positive towards the source). The defocus range through the whole volume at
    tilt θ is ``n_z · pixel_size / cos θ``.
    """
    span = n_z * pixel_size / np.cos(np.deg2rad(tilt_angle))
    count = max(1, min(n_z, int(np.ceil(span / defocus_step))))
    edges = np.linspace(0, n_z, count + 1).round().astype(int)
    return [
        (int(a), int(b), float(((a + b - 1) / 2 - n_z // 2) * pixel_size))
        for a, b in zip(edges[:-1], edges[1:], strict=True)
        if b > a
    ]


def simulate_tilt_series(
    volume: np.ndarray,
    *,
    pixel_size: float,
    ice_thickness: float | None,
    acquisition: Acquisition,
    optics: Optics,
    ice_potential_v: float,
    rng: np.random.Generator,
) -> TiltSeries:
    """Simulate a tilt series of a potential volume (see the module docstring for the chain).

    Parameters
    ----------
    volume
        ``(z, y, x)`` potential in volts, excess over vitreous ice (0 in pure ice).
    pixel_size
        Å per voxel; the images have the volume's ``(y, x)`` shape and pixel size.
    ice_thickness
        Thickness of the ice slab in Å (sets the zero-loss fraction and the mean phase); None =
        the z extent of the volume.
    acquisition
        Tilt scheme, focus, dose and detector (:func:`tomosim.recipe.acquisition` makes it from
        a :class:`~tomosim.config.MicroscopeConfig`).
    optics
        Voltage, aberrations, amplitude contrast, phase shift and envelopes.
    ice_potential_v
        Mean potential of vitreous ice, V (only the mean phase depends on it).
    rng
        Random generator: the same seed gives byte-identical output.

    Returns
    -------
    TiltSeries

    Raises
    ------
    TomosimError
        Volume not 3D or not finite, non-positive pixel size or thickness.
    """
    volume = np.ascontiguousarray(volume, dtype=np.float32)
    thickness = _checked_thickness(volume, pixel_size, ice_thickness, ice_potential_v)
    n_z, n_y, n_x = volume.shape
    tilt, focus, dose, camera = (
        acquisition.tilt, acquisition.focus, acquisition.dose, acquisition.detector
    )
    scheme_rng, noise_rng = rng.spawn(2)
    imperfection_rng = rng.spawn(1)[0]  # spawned after: the streams above are unchanged
    scheme = _tilt_scheme(acquisition, scheme_rng)
    n_tilts = scheme.n_tilts
    errors = draw_acquisition_errors(
        acquisition.imperfections, scheme.acquisition_index, imperfection_rng
    )
    scheme = replace(
        scheme,
        shifts=scheme.shifts + errors.shifts,
        rotations=scheme.rotations + errors.rotations,
        angle_errors=scheme.angle_errors + errors.angle_errors,
    )
    if np.any(np.abs(scheme.true_angles_deg) >= 90):
        raise TomosimError("tilt angle errors and offset push a tilt beyond ±90 degrees")
    astigmatism = focus.astigmatism_um * 1e4
    defocus_u = scheme.defocus + astigmatism / 2
    defocus_v = scheme.defocus - astigmatism / 2
    binning = int(camera.binning)
    if binning < 1:
        raise TomosimError(f"detector binning must be a positive integer, got {binning}")
    sigma = interaction_constant(optics.voltage_kv)
    true_angles = scheme.true_angles_deg
    axis_angles = tilt.tilt_axis_angle + scheme.rotations
    zero_loss = zero_loss_fraction(
        thickness, true_angles, mean_free_path=dose.inelastic_mean_free_path
    )
    defocus_step = pixel_size**2 / electron_wavelength(optics.voltage_kv)

    images = np.empty((n_tilts, n_y, n_x), dtype=np.float32)
    noise_free = np.empty_like(images) if camera.write_noise_free else None
    halves = camera.write_half_sets
    odd = np.empty_like(images) if halves else None
    even = np.empty_like(images) if halves else None
    mean_phase = np.empty(n_tilts)
    ice_phase = sigma * ice_projection(thickness, true_angles, ice_potential_v=ice_potential_v)
    k_y, k_x = frequency_grid(padded_shape((n_y, n_x), focus.padding), pixel_size)
    frequency = np.sqrt(k_y**2 + k_x**2)
    # the detector pixel is pixel_size / binning and images are Fourier-binned to pixel_size, so
    # the MTF is the fine pixel's only (tomosim.microscope.binning)
    mtf = detector_mtf(
        k_y, k_x, pixel_size=pixel_size / binning, mtf_falloff=camera.detector.mtf_falloff,
        pixel_aperture=camera.detector.pixel_aperture,
    )

    for index in range(n_tilts):
        angle = float(true_angles[index])
        shift = scheme.shifts[index]
        p0 = float(zero_loss[index])

        transfer = mtf * inelastic_transfer(
            frequency, zero_loss=p0, energy_filter=dose.energy_filter
        )
        if dose.exposure_filter:
            transfer *= exposure_filter(
                frequency, dose_start=float(scheme.dose_before[index]),
                dose_end=float(scheme.dose_after[index]), voltage_kv=optics.voltage_kv,
            )
        if binning > 1:  # undo the voxel averaging of the coarse potential: no double integration
            transfer = transfer / voxel_average_transfer(
                k_y, k_x, pixel_size=pixel_size, tilt_angle=angle,
                tilt_axis_angle=float(axis_angles[index]),
            )
        if errors.motion_blur[index] > 0:
            transfer = transfer * motion_blur_transfer(
                k_y, k_x, length=float(errors.motion_blur[index]),
                angle_deg=float(errors.motion_angle[index]),
            )
        contrast, total_phase = _phase_contrast(
            volume, angle, pixel_size=pixel_size, optics=optics, focus=focus,
            defocus=(float(defocus_u[index]), float(defocus_v[index])),
            tilt_axis_angle=float(axis_angles[index]), shift=shift, defocus_step=defocus_step,
            transfer=transfer.astype(np.float32),
        )
        mean_phase[index] = total_phase + ice_phase[index]
        mean_intensity = p0 if dose.energy_filter else 1.0
        intensity = np.float32(mean_intensity) + np.float32(2.0) * contrast
        expected = expected_counts(
            intensity, dose=float(scheme.dose[index]), pixel_size=pixel_size
        )
        detected = detect_electrons(
            expected,
            dqe=camera.detector.dqe,
            rng=noise_rng,
            read_noise=camera.read_noise,
            noise=camera.noise,
            half_sets=halves,
        )
        images[index] = detected.image
        if noise_free is not None:
            noise_free[index] = expected
        if odd is not None and even is not None:
            odd[index] = detected.odd
            even[index] = detected.even

    return TiltSeries(
        images=images,
        angles_deg=scheme.angles_deg.copy(),
        pixel_size=float(pixel_size),
        scheme=scheme,
        defocus_u=defocus_u + errors.defocus_mismatch,
        defocus_v=defocus_v + errors.defocus_mismatch,
        astigmatism_angle=np.full(n_tilts, float(focus.astigmatism_angle)),
        tilt_axis_angle=float(tilt.tilt_axis_angle),
        optics=optics,
        mean_phase=mean_phase,
        noise_free=noise_free,
        odd=odd,
        even=even,
        true_defocus_u=defocus_u,
        true_defocus_v=defocus_v,
        acquisition=errors,
    )


def _checked_thickness(
    volume: np.ndarray, pixel_size: float, ice_thickness: float | None, ice_potential_v: float
) -> float:
    """The ice thickness in Å (None: the volume's z extent), after checking every input."""
    if volume.ndim != 3:
        raise TomosimError(f"simulate_tilt_series expects a (z, y, x) volume, got {volume.shape}")
    if not np.all(np.isfinite(volume)):
        raise TomosimError("volume contains NaN or infinite values")
    if not pixel_size > 0:
        raise TomosimError(f"pixel_size must be positive, got {pixel_size}")
    thickness = volume.shape[0] * pixel_size if ice_thickness is None else float(ice_thickness)
    if not thickness > 0:
        raise TomosimError(f"ice_thickness must be positive, got {ice_thickness}")
    if ice_potential_v < 0:
        raise TomosimError(f"ice_potential_v must be >= 0, got {ice_potential_v}")
    return float(thickness)


def _tilt_scheme(acquisition: Acquisition, rng: np.random.Generator) -> TiltScheme:
    """The tilt scheme of an acquisition: angles, order, doses, errors, defocus per tilt."""
    tilt, focus, dose = acquisition.tilt, acquisition.focus, acquisition.dose
    return build_tilt_scheme(
        min_angle=tilt.min_angle,
        max_angle=tilt.max_angle,
        step=tilt.step,
        order=tilt.order,
        group_size=tilt.group_size,
        start_angle=tilt.start_angle,
        total_dose=dose.total_dose_e_per_a2,
        weighting=dose.weighting,
        defocus=focus.defocus_um * 1e4,
        defocus_jitter=focus.defocus_jitter_um * 1e4,
        angle_error=tilt.angle_error,
        shift_error=tilt.shift_error,
        rotation_error=tilt.rotation_error,
        rng=rng,
    )


def _phase_contrast(
    volume: np.ndarray,
    angle: float,
    *,
    pixel_size: float,
    optics: Optics,
    focus: Focus,
    defocus: tuple[float, float],
    tilt_axis_angle: float,
    shift: np.ndarray,
    defocus_step: float,
    transfer: np.ndarray,
) -> tuple[np.ndarray, float]:
    """CTF-filtered phase contrast of one tilt (z slabs with depth defocus) and its mean phase.

    Returns the ``(y, x)`` float32 contrast ``F⁻¹[CTF · transfer · F[φ − ⟨φ⟩]]`` summed over
    the slabs, and the summed mean phase (radians) of the slabs.
    """
    n_z, n_y, n_x = volume.shape
    sigma = interaction_constant(optics.voltage_kv)
    if focus.depth_defocus:
        slabs = depth_slabs(
            n_z, pixel_size=pixel_size, tilt_angle=angle, defocus_step=defocus_step
        )
    else:
        slabs = [(0, n_z, 0.0)]
    contrast = np.zeros((n_y, n_x), dtype=np.float32)
    total_phase = 0.0
    for z_start, z_stop, height in slabs:
        projection = project_volume(
            volume, [angle], pixel_size=pixel_size, tilt_axis_angle=tilt_axis_angle,
            shifts=shift[None, :], z_range=(z_start, z_stop),
        )[0]
        phase = projection * np.float32(sigma)
        slab_mean = float(phase.mean(dtype=np.float64))
        total_phase += slab_mean
        phase -= np.float32(slab_mean)
        contrast += apply_ctf(
            phase,
            pixel_size=pixel_size,
            optics=optics,
            defocus_u=defocus[0],
            defocus_v=defocus[1],
            astigmatism_angle=focus.astigmatism_angle,
            tilt_angle=angle,
            tilt_axis_angle=tilt_axis_angle,
            tilt_axis_offset=(float(shift[0]), float(shift[1])),
            height=height,
            defocus_gradient=focus.defocus_gradient,
            defocus_step=defocus_step,
            padding=focus.padding,
            extra_filter=transfer,
            workers=-1,
        )
    return contrast, total_phase
