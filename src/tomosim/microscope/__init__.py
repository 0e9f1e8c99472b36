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
