"""Pipeline: one simulation from config to files.

``simulate(config, output_dir)`` runs every step — potentials of the structures, phantom assembly,
the microscope, weighted backprojection — and writes the complete output folder:

==========================  ==================================================================
``ground_truth.mrc``        noise-free potential of the sample (V, excess over ice), float32
``labels.mrc``              semantic labels, uint8, 0 = background
``instances.mrc``           object ids (uint16 when they fit, else float32; 0 = none)
``classes.csv``             id, name, colour (ids from the config order, never shifted)
``particles.star/.csv``     one row per particle / filament subunit (see tomosim.particles)
``tiltseries.mrc``          tilt images (electrons per pixel), IMOD-readable stack
``tiltseries.tlt``          tilt angles, one per line, in stack order
``tiltseries.mdoc``         SerialEM-style per-tilt metadata
``tilts.csv``               angle, acquisition order, dose, cumulative dose, defocus U/V, astig.
``tomogram.mrc``            weighted backprojection on the grid of ground_truth.mrc
``config.resolved.yaml``    the fully resolved config (written last: its presence marks a
                            complete folder)
``preview.png``             slices with label overlay, tilt images, power spectrum
==========================  ==================================================================

Every file is written under a temporary name and renamed when complete. Random choices flow from
``config.seed`` through independent streams per stage, so the same seed gives byte-identical files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tomosim.config import SimulationConfig, dump_config
from tomosim.io import write_mrc, write_text


@dataclass(frozen=True)
class StageSeeds:
    """Independent random streams for each stage, derived from one seed."""

    assembly: np.random.Generator
    microscope: np.random.Generator

    @classmethod
    def from_seed(cls, seed: int) -> StageSeeds:
        assembly, microscope = np.random.SeedSequence(seed).spawn(2)
        return cls(np.random.default_rng(assembly), np.random.default_rng(microscope))


def output_paths(output_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Names of every file ``simulate`` writes into ``output_dir``."""
    d = Path(output_dir)
    names = [
        "ground_truth.mrc", "labels.mrc", "instances.mrc", "classes.csv", "particles.star",
        "particles.csv", "tiltseries.mrc", "tiltseries.tlt", "tiltseries.mdoc", "tilts.csv",
        "tomogram.mrc", "config.resolved.yaml", "preview.png",
    ]
    return {n: d / n for n in names}
