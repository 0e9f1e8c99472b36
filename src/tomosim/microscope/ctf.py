"""Contrast transfer function: wavelength, phase aberration, envelopes, tilted-image defocus.

Conventions (CONVENTIONS.md, "Microscope geometry"), CTFFIND4 (Rohou & Grigorieff 2015,
*J. Struct. Biol.* 192, 216):

- Defocus is **positive for underfocus**, in Å. ``defocus_u``/``defocus_v`` are the defocus along
  the astigmatism axes; ``astigmatism_angle`` (degrees) goes from the image x axis to the u axis,
  counter-clockwise (from +x towards +y, y being the array row axis).
- Phase aberration ``χ(k) = π λ Δf(α) k² − π/2 · Cs λ³ k⁴ + phase_shift`` with
  ``Δf(α) = ½ [Δf_u + Δf_v + (Δf_u − Δf_v) cos 2(α − α_ast)]``, ``α`` the azimuth of ``k``.
- ``CTF = −(√(1 − A²) sin χ + A cos χ)`` with amplitude contrast ``A``. In underfocus the CTF is
  negative at low frequency, so a positive potential (protein) images **dark**: the weak-phase
  image is ``1 + 2 F⁻¹[CTF · F[φ]]`` for a phase ``φ`` (radians).
- Frequencies ``k`` in 1/Å; arrays in FFT layout (zero frequency at index 0), the ``rfft`` half
  plane (last axis ``x//2 + 1``) when ``rfft=True``.

Tilted images (:func:`defocus_in_tilted_image`, :func:`apply_ctf`): z points **towards the
source** (the beam travels along −z). A tilt by ``+θ`` rotates the sample about y so that a point
``(x, z)`` moves to ``x' = x cos θ + z sin θ`` (the image column) and
``z' = −x sin θ + z cos θ``: the +x side of the sample moves **down**, away from the source. In
underfocus the objective is focused on a plane *above* the specimen, so a point lower by ``z'`` is
further from focus: ``Δf = Δf₀ − z'``. At image coordinate ``u`` (Å from the tilt axis,
perpendicular to it) a point at sample height ``z`` has ``Δf = Δf₀ + u tan θ − z / cos θ``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.fft
from scipy import constants

from tomosim.errors import TomosimError

__all__ = [
    "apply_ctf",
    "ctf_2d",
    "defocus_in_tilted_image",
    "electron_wavelength",
    "frequency_grid",
    "interaction_constant",
    "padded_shape",
    "phase_aberration",
]


@dataclass(frozen=True)
class Optics:
    """The microscope's optics, shared by the CTF, the tilt series and phase flipping.

    The defaults (300 kV, Cs 2.7 mm, amplitude contrast 0.07) are those of a typical cryo-ET
    microscope (Titan Krios); they are the only place these defaults are written
    (:class:`tomosim.config.OpticsConfig` takes them from here).

    Attributes
    ----------
    voltage_kv
        Acceleration voltage, kV.
    cs_mm
        Spherical aberration, mm.
    amplitude_contrast
        Amplitude contrast fraction in [0, 1).
    phase_shift
        Phase plate shift, degrees.
    b_factor
        CTF envelope B-factor, Å².
    source_spread_mrad
        Illumination semi-angle (spatial coherence envelope), mrad.
    energy_spread_ev
        Energy spread (temporal coherence envelope), eV.
    chromatic_aberration_mm
        Chromatic aberration, mm (used with ``energy_spread_ev``).
    """

    voltage_kv: float = 300.0
    cs_mm: float = 2.7
    amplitude_contrast: float = 0.07
    phase_shift: float = 0.0
    b_factor: float = 0.0
    source_spread_mrad: float = 0.0
    energy_spread_ev: float = 0.0
    chromatic_aberration_mm: float = 2.7


def electron_wavelength(voltage_kv: float) -> float:
    """Relativistic electron wavelength in Å.

    ``λ = h / √(2 m₀ e U (1 + e U / (2 m₀ c²)))`` with CODATA constants; 300 kV gives 0.019687 Å,
    200 kV 0.025079 Å.
    """
    if not voltage_kv > 0:
        raise TomosimError(f"voltage_kv must be positive, got {voltage_kv}")
    volts = voltage_kv * 1e3
    energy = constants.e * volts
    momentum_sq = 2 * constants.m_e * energy * (1 + energy / (2 * constants.m_e * constants.c**2))
    return float(constants.h / np.sqrt(momentum_sq) * 1e10)


def interaction_constant(voltage_kv: float) -> float:
    """Relativistic interaction constant σ in rad/(V·Å): the phase per projected potential.

    ``σ = 2π m e λ / h²`` with the relativistic mass ``m = γ m₀``, ``γ = 1 + e U / (m₀ c²)``
    (Kirkland 2010, *Advanced Computing in Electron Microscopy*, Eq. 5.6): 0.000653 rad/(V·Å) at
    300 kV, 0.000729 at 200 kV. The phase of the exit wave is ``φ = σ ∫V dz`` with the potential
    line integral in V·Å.
    """
    wavelength_m = electron_wavelength(voltage_kv) * 1e-10
    gamma = 1 + constants.e * voltage_kv * 1e3 / (constants.m_e * constants.c**2)
    sigma_per_v_m = 2 * np.pi * gamma * constants.m_e * constants.e * wavelength_m / constants.h**2
    return float(sigma_per_v_m * 1e-10)


def frequency_grid(
    shape: tuple[int, int], pixel_size: float, *, rfft: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Spatial frequencies ``(k_y, k_x)`` in 1/Å of an image in FFT layout.

    Returns ``k_y`` of shape ``(ny, 1)`` and ``k_x`` of shape ``(1, nx)`` (``(1, nx//2 + 1)`` when
    ``rfft``), which broadcast to the Fourier array of ``numpy.fft.fft2``/``rfft2``.
    """
    ny, nx = (int(n) for n in shape)
    if ny < 1 or nx < 1 or not pixel_size > 0:
        raise TomosimError(f"bad image shape {shape} or pixel size {pixel_size}")
    k_y = np.fft.fftfreq(ny, d=pixel_size)[:, None]
    k_x = (np.fft.rfftfreq(nx, d=pixel_size) if rfft else np.fft.fftfreq(nx, d=pixel_size))[None, :]
    return k_y, k_x


def phase_aberration(
    k: np.ndarray | float,
    *,
    defocus: np.ndarray | float,
    voltage_kv: float,
    cs_mm: float,
    phase_shift: float = 0.0,
) -> np.ndarray:
    """Phase aberration ``χ(k) = π λ Δf k² − π/2 Cs λ³ k⁴ + phase_shift`` in radians.

    Parameters
    ----------
    k
        Spatial frequency magnitude, 1/Å (any shape).
    defocus
        Δf in Å, positive = underfocus (broadcast against ``k``).
    voltage_kv, cs_mm
        Accelerating voltage (kV) and spherical aberration (mm).
    phase_shift
        Additional phase (phase plate), degrees.
    """
    wavelength = electron_wavelength(voltage_kv)
    cs = cs_mm * 1e7
    k2 = np.square(np.asarray(k, dtype=np.float64))
    return (
        np.pi * wavelength * np.asarray(defocus, dtype=np.float64) * k2
        - 0.5 * np.pi * cs * wavelength**3 * k2 * k2
        + np.deg2rad(phase_shift)
    )


def _coherence_envelope(
    k2: np.ndarray,
    *,
    wavelength: float,
    b_factor: float,
    energy_spread_ev: float,
    chromatic_aberration_mm: float,
    voltage_kv: float,
) -> np.ndarray | float:
    """B-factor and temporal-coherence envelopes (independent of defocus), see :func:`ctf_2d`."""
    if not b_factor and not (energy_spread_ev and chromatic_aberration_mm):
        return 1.0
    log_envelope = -0.25 * b_factor * k2
    if energy_spread_ev and chromatic_aberration_mm:
        # focus spread (FWHM) δ = Cc ΔE / E; E_t = exp[−(π λ δ k²)² / (16 ln 2)]
        focus_spread = chromatic_aberration_mm * 1e7 * energy_spread_ev / (voltage_kv * 1e3)
        temporal = (np.pi * wavelength * focus_spread * k2) ** 2 / (16 * np.log(2))
        log_envelope = log_envelope - temporal
    return np.exp(log_envelope)


class _CtfGrid:
    """Frequency-grid terms of the CTF, computed once per image and reused for each defocus.

    ``χ = π λ Δf k² + [π λ (Δf_u − Δf_v)/2 · cos 2(α − α_ast) k² − π/2 Cs λ³ k⁴ + phase_shift]``;
    the bracket plus the amplitude-contrast phase ``ψ_A = atan2(A, √(1 − A²))`` is stored, so that
    ``CTF(Δf) = −sin(π λ k² Δf + bracket + ψ_A)``, since
    ``√(1 − A²) sin χ + A cos χ = sin(χ + ψ_A)``.
    """

    def __init__(
        self,
        shape: tuple[int, int],
        pixel_size: float,
        *,
        astigmatism: float,
        astigmatism_angle: float,
        voltage_kv: float,
        cs_mm: float,
        amplitude_contrast: float,
        phase_shift: float,
        rfft: bool,
        source_spread_mrad: float,
    ) -> None:
        if not 0 <= amplitude_contrast < 1:
            raise TomosimError(f"amplitude_contrast must be in [0, 1), got {amplitude_contrast}")
        self.wavelength = electron_wavelength(voltage_kv)
        self.cs = cs_mm * 1e7
        k_y, k_x = frequency_grid(shape, pixel_size, rfft=rfft)
        self.k2 = k_y**2 + k_x**2
        cos2 = np.cos(2 * (np.arctan2(k_y, k_x) - np.deg2rad(astigmatism_angle)))
        self.astigmatism_term = 0.5 * astigmatism * cos2  # Δf(α) − mean defocus
        self.defocus_factor = (np.pi * self.wavelength * self.k2).astype(np.float32)
        self.constant = (
            np.pi * self.wavelength * self.astigmatism_term * self.k2
            - 0.5 * np.pi * self.cs * self.wavelength**3 * self.k2**2
            + np.deg2rad(phase_shift)
            + np.arctan2(amplitude_contrast, np.sqrt(1 - amplitude_contrast**2))
        ).astype(np.float32)
        self.source_spread = source_spread_mrad * 1e-3

    def ctf(self, defocus: float) -> np.ndarray:
        """float32 CTF at mean defocus ``defocus`` (Å), with the spatial-coherence envelope."""
        ctf = np.sin(self.defocus_factor * np.float32(defocus) + self.constant)
        np.negative(ctf, out=ctf)
        if self.source_spread:
            # Frank (2006): E_s = exp[−(π α / λ)² (Cs λ³ k³ − Δf λ k)²]
            k = np.sqrt(self.k2)
            gradient = self.cs * self.wavelength**3 * self.k2 * k - (
                defocus + self.astigmatism_term
            ) * self.wavelength * k
            ctf *= np.exp(-((np.pi * self.source_spread / self.wavelength) ** 2) * gradient**2)
        return ctf


@functools.lru_cache(maxsize=4)
def _cached_ctf_grid(
    shape: tuple[int, int],
    pixel_size: float,
    astigmatism: float,
    astigmatism_angle: float,
    voltage_kv: float,
    cs_mm: float,
    amplitude_contrast: float,
    phase_shift: float,
    rfft: bool,
    source_spread_mrad: float,
) -> _CtfGrid:
    """:class:`_CtfGrid` cached by its parameters: a tilt series reuses one grid for all tilts."""
    grid = _CtfGrid(
        shape,
        pixel_size,
        astigmatism=astigmatism,
        astigmatism_angle=astigmatism_angle,
        voltage_kv=voltage_kv,
        cs_mm=cs_mm,
        amplitude_contrast=amplitude_contrast,
        phase_shift=phase_shift,
        rfft=rfft,
        source_spread_mrad=source_spread_mrad,
    )
    for array in (grid.k2, grid.astigmatism_term, grid.defocus_factor, grid.constant):
        array.setflags(write=False)
    return grid


def ctf_2d(
    shape: tuple[int, int],
    pixel_size: float,
    *,
    defocus_u: float,
    defocus_v: float,
    astigmatism_angle: float,
    voltage_kv: float,
    cs_mm: float,
    amplitude_contrast: float,
    phase_shift: float = 0.0,
    b_factor: float = 0.0,
    rfft: bool = True,
    source_spread_mrad: float = 0.0,
    energy_spread_ev: float = 0.0,
    chromatic_aberration_mm: float = 0.0,
) -> np.ndarray:
    """The 2D CTF of an image, with optional envelopes, in FFT layout.

    ``CTF = −(√(1 − A²) sin χ + A cos χ) · E`` (CTFFIND4 convention; see the module docstring for
    ``χ`` and the astigmatism convention). Envelopes ``E`` (all 1 by default), after Frank (2006),
    *Three-Dimensional Electron Microscopy of Macromolecular Assemblies*, ch. 2:

    - B-factor: ``exp(−B k² / 4)``;
    - spatial coherence, illumination semi-angle ``α`` (``source_spread_mrad``):
      ``exp[−(π α / λ)² (Cs λ³ k³ − Δf λ k)²]``;
    - temporal coherence, focus spread (FWHM) ``δ = Cc ΔE / E`` from the energy spread ``ΔE``
      (FWHM, eV) at beam energy ``E``: ``exp[−(π λ δ k²)² / (16 ln 2)]`` (the relativistic
      correction of ``δ`` is neglected).

    Parameters
    ----------
    shape
        Real-space image shape ``(ny, nx)``.
    pixel_size
        Å per pixel.
    defocus_u, defocus_v
        Defocus along the astigmatism axes, Å, positive = underfocus.
    astigmatism_angle
        Degrees from the image x axis to the u axis, counter-clockwise.
    voltage_kv, cs_mm, amplitude_contrast
        Beam energy (kV), spherical aberration (mm), amplitude contrast fraction ``A`` in [0, 1).
    phase_shift
        Phase plate shift, degrees.
    b_factor
        Envelope B-factor, Å².
    rfft
        Return the ``rfft2`` half plane ``(ny, nx//2 + 1)``; else the full ``(ny, nx)`` plane.
    source_spread_mrad, energy_spread_ev, chromatic_aberration_mm
        Coherence envelopes; 0 switches an envelope off.

    Returns
    -------
    numpy.ndarray
        float32 CTF in FFT layout (zero frequency at ``[0, 0]``).
    """
    grid = _CtfGrid(
        shape,
        pixel_size,
        astigmatism=defocus_u - defocus_v,
        astigmatism_angle=astigmatism_angle,
        voltage_kv=voltage_kv,
        cs_mm=cs_mm,
        amplitude_contrast=amplitude_contrast,
        phase_shift=phase_shift,
        rfft=rfft,
        source_spread_mrad=source_spread_mrad,
    )
    ctf = grid.ctf(0.5 * (defocus_u + defocus_v))
    envelope = _coherence_envelope(
        grid.k2,
        wavelength=grid.wavelength,
        b_factor=b_factor,
        energy_spread_ev=energy_spread_ev,
        chromatic_aberration_mm=chromatic_aberration_mm,
        voltage_kv=voltage_kv,
    )
    return (ctf * envelope).astype(np.float32, copy=False)


def defocus_in_tilted_image(
    position: np.ndarray | float,
    *,
    defocus: float,
    tilt_angle: float,
    height: np.ndarray | float = 0.0,
) -> np.ndarray:
    """Defocus of a sample point in a tilted image (Å, positive = underfocus).

    ``Δf = Δf₀ + u tan θ − z / cos θ``: ``u`` (``position``) is the image coordinate in Å
    perpendicular to the tilt axis, measured from it (the image x axis when the tilt-axis angle is
    0); ``z`` (``height``) is the point's height in the untilted sample in Å from the eucentric
    plane (the box centre), positive towards the source. ``defocus`` ``Δf₀`` is the defocus at the
    tilt axis, eucentric height. Derivation in the module docstring: at tilt ``+θ`` the +x side
    of the sample is lower (further from the source) and so more underfocused.
    """
    if not abs(tilt_angle) < 90:
        raise TomosimError(f"tilt angle must be within (-90, 90) degrees, got {tilt_angle}")
    theta = np.deg2rad(tilt_angle)
    return defocus + np.asarray(position) * np.tan(theta) - np.asarray(height) / np.cos(theta)


def padded_shape(shape: tuple[int, ...], padding: float) -> tuple[int, int]:
    """Image shape after zero padding by the fraction ``padding`` per axis (next fast FFT size)."""
    if padding < 0:
        raise TomosimError(f"padding must be >= 0, got {padding}")
    return tuple(  # type: ignore[return-value]
        int(scipy.fft.next_fast_len(int(np.ceil(n * (1 + padding))), real=True)) for n in shape[-2:]
    )


def apply_ctf(
    image: np.ndarray,
    *,
    pixel_size: float,
    optics: Optics,
    defocus_u: float,
    defocus_v: float,
    astigmatism_angle: float,
    tilt_angle: float = 0.0,
    tilt_axis_angle: float = 0.0,
    tilt_axis_offset: tuple[float, float] = (0.0, 0.0),
    height: float = 0.0,
    defocus_gradient: bool = True,
    defocus_step: float | None = None,
    padding: float = 0.25,
    extra_filter: Callable[[np.ndarray, np.ndarray], np.ndarray] | np.ndarray | None = None,
    workers: int | None = None,
) -> np.ndarray:
    """Filter an image with the CTF, with the defocus varying across a tilted image.

    Computes ``F⁻¹[CTF · extra_filter · F[image]]``. With ``defocus_gradient`` and a nonzero
    ``tilt_angle``, the defocus at image coordinate ``u`` perpendicular to the tilt axis follows
    :func:`defocus_in_tilted_image`. It is applied in strips: the image is filtered with the CTF
    of a few defocus values ``Δf_j`` (nodes ``defocus_step`` apart along ``u``) and the results are
    blended with linear (hat) weights in ``u``, which interpolates the filtered image linearly in
    defocus between nodes and leaves no seams. The default ``defocus_step`` keeps the defocus
    phase term ``π λ Δ k²`` below π/4 at Nyquist between nodes. The image is zero-padded by the
    fraction ``padding`` (next fast FFT length) against wrap-around; subtract the image mean
    first so that the padding matches the content.

    Parameters
    ----------
    image
        ``(ny, nx)`` real image (e.g. a phase in radians).
    pixel_size
        Å per pixel.
    optics
        Voltage, aberrations, amplitude contrast, phase shift and envelopes (:class:`Optics`).
    defocus_u, defocus_v, astigmatism_angle
        As in :func:`ctf_2d`; the defoci are those at the tilt axis and eucentric height.
    tilt_angle
        Tilt θ of the image, degrees.
    tilt_axis_angle
        Angle of the tilt axis in the image, degrees counter-clockwise from the y axis; ``u`` is
        ``x cos φ + y sin φ`` relative to the tilt axis.
    tilt_axis_offset
        ``(x, y)`` in Å of the tilt axis from the image centre ``shape // 2`` (an image shift).
    height
        Sample height ``z`` (Å, towards the source) of the content, for depth-dependent defocus.
    defocus_gradient
        Vary the defocus across the image; if False the defocus is that at ``u = 0``.
    defocus_step
        Defocus spacing of the strip nodes, Å; None = the default above.
    padding
        Fractional zero padding of each axis.
    extra_filter
        Optional filter multiplied with the CTF (dose filter, detector MTF, ...): an array on the
        rfft grid of the padded image (shape from :func:`padded_shape`, frequencies from
        :func:`frequency_grid`), or a function ``f(k_y, k_x) -> array`` of those frequencies (1/Å).
    workers
        Threads for ``scipy.fft``.

    Returns
    -------
    numpy.ndarray
        ``(ny, nx)`` float32 filtered image.
    """
    image = np.asarray(image)
    if image.ndim != 2:
        raise TomosimError(f"apply_ctf expects a 2D image, got shape {image.shape}")
    ny, nx = image.shape
    shape = padded_shape(image.shape, padding)
    spectrum = scipy.fft.rfft2(image.astype(np.float32), s=shape, workers=workers)
    grid = _cached_ctf_grid(
        shape,
        float(pixel_size),
        float(defocus_u - defocus_v),
        float(astigmatism_angle),
        float(optics.voltage_kv),
        float(optics.cs_mm),
        float(optics.amplitude_contrast),
        float(optics.phase_shift),
        True,
        float(optics.source_spread_mrad),
    )
    multiplier = _coherence_envelope(
        grid.k2,
        wavelength=grid.wavelength,
        b_factor=optics.b_factor,
        energy_spread_ev=optics.energy_spread_ev,
        chromatic_aberration_mm=optics.chromatic_aberration_mm,
        voltage_kv=optics.voltage_kv,
    )
    if extra_filter is not None:
        extra = (
            extra_filter(*frequency_grid(shape, pixel_size))
            if callable(extra_filter)
            else extra_filter
        )
        if np.shape(extra) != grid.k2.shape:
            raise TomosimError(
                f"extra_filter has shape {np.shape(extra)}, expected {grid.k2.shape}"
                " (the padded rfft grid)"
            )
        multiplier = multiplier * extra
    if not np.isscalar(multiplier):
        spectrum *= np.asarray(multiplier, dtype=np.float32)

    def filtered(defocus: float) -> np.ndarray:
        out = scipy.fft.irfft2(spectrum * grid.ctf(defocus), s=shape, workers=workers)
        return out[:ny, :nx]

    mean_defocus = 0.5 * (defocus_u + defocus_v)
    phi = np.deg2rad(tilt_axis_angle)
    x = (np.arange(nx) - nx // 2) * pixel_size - tilt_axis_offset[0]
    y = (np.arange(ny) - ny // 2) * pixel_size - tilt_axis_offset[1]
    u = x[None, :] * np.cos(phi) + y[:, None] * np.sin(phi)
    defocus_map = defocus_in_tilted_image(
        u if defocus_gradient else 0.0, defocus=mean_defocus, tilt_angle=tilt_angle, height=height
    )
    low, high = float(np.min(defocus_map)), float(np.max(defocus_map))
    if defocus_step is None:
        # π λ Δ (1/2p)² = π/4
        defocus_step = pixel_size**2 / electron_wavelength(optics.voltage_kv)
    if high - low <= 1e-6 * max(1.0, abs(mean_defocus)):
        return filtered(low).astype(np.float32)
    n_nodes = int(np.ceil((high - low) / defocus_step)) + 1
    nodes = np.linspace(low, high, n_nodes)
    spacing = nodes[1] - nodes[0]
    result = np.zeros((ny, nx), dtype=np.float32)
    for node in nodes:
        weight = np.clip(1 - np.abs(defocus_map - node) / spacing, 0, None).astype(np.float32)
        if np.any(weight > 0):
            result += weight * filtered(float(node))
    return result
