"""Microscope: image formation of a tilt series from a potential volume.

Steps, one module each: :mod:`~tomosim.microscope.tilt_scheme` (angles, order, dose, errors),
:mod:`~tomosim.microscope.projection` (line integrals of the potential along the tilted beam),
:mod:`~tomosim.microscope.ctf` (contrast transfer function, envelopes, defocus gradient),
:mod:`~tomosim.microscope.dose` (exposure filter, inelastic scattering),
:mod:`~tomosim.microscope.detector` (MTF, DQE, shot and read noise) and
:mod:`~tomosim.microscope.image_formation` (the whole chain: :func:`simulate_tilt_series`).
Geometry and sign conventions are those of CONVENTIONS.md ("Microscope geometry").
"""

from __future__ import annotations

from tomosim.microscope.ctf import (
    Optics,
    apply_ctf,
    ctf_2d,
    defocus_in_tilted_image,
    electron_wavelength,
    interaction_constant,
)
from tomosim.microscope.detector import DETECTOR_PRESETS, detect_electrons, detector_model
from tomosim.microscope.dose import exposure_filter, zero_loss_fraction
from tomosim.microscope.image_formation import (
    Acquisition,
    DetectorSettings,
    DoseSettings,
    Focus,
    TiltSeries,
    TiltSettings,
    simulate_tilt_series,
)
from tomosim.microscope.projection import ice_projection, project_volume
from tomosim.microscope.tilt_scheme import TiltScheme, build_tilt_scheme

__all__ = [
    "DETECTOR_PRESETS",
    "Acquisition",
    "DetectorSettings",
    "DoseSettings",
    "Focus",
    "Optics",
    "TiltScheme",
    "TiltSeries",
    "TiltSettings",
    "apply_ctf",
    "build_tilt_scheme",
    "ctf_2d",
    "defocus_in_tilted_image",
    "detect_electrons",
    "detector_model",
    "electron_wavelength",
    "exposure_filter",
    "ice_projection",
    "interaction_constant",
    "project_volume",
    "simulate_tilt_series",
    "zero_loss_fraction",
]
