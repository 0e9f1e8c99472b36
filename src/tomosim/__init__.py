"""tomosim: simulated cryo-electron tomograms with perfect labels.

The public API is listed here once; see CONVENTIONS.md for axes, units and angle conventions.
Names are imported on first use, so ``import tomosim`` (and ``tomosim --help``) stays fast.

Pipeline steps, one module each: :mod:`~tomosim.structures` and :mod:`~tomosim.sources` (atomic
models and maps), :mod:`~tomosim.potential` (volts on a grid), :mod:`~tomosim.assemble`,
:mod:`~tomosim.filaments` and :mod:`~tomosim.membranes` (the phantom), :mod:`~tomosim.labels`,
:mod:`~tomosim.microscope` (tilt scheme, projection, CTF, dose, detector),
:mod:`~tomosim.reconstruct` (weighted backprojection), :mod:`~tomosim.pipeline` (all of it, to
files), :mod:`~tomosim.dataset` (many phantoms, Dask), :mod:`~tomosim.train` (U-Net, extra),
:mod:`~tomosim.formats` (RELION 5, IMOD/AreTomo, OME-Zarr, copick, napari).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "SimulationConfig": "tomosim.config",
    "load_config": "tomosim.config",
    "TomosimError": "tomosim.errors",
    "euler_to_matrix": "tomosim.orientations",
    "matrix_to_euler": "tomosim.orientations",
    "random_rotations": "tomosim.orientations",
    "Atoms": "tomosim.atoms",
    "DensityMap": "tomosim.structures",
    "read_map": "tomosim.structures",
    "read_structure": "tomosim.structures",
    "resample_map": "tomosim.structures",
    "resolve_source": "tomosim.sources",
    "Potential": "tomosim.potential",
    "atoms_to_potential": "tomosim.potential",
    "load_potential": "tomosim.cache",
    "map_to_potential": "tomosim.potential",
    "Phantom": "tomosim.phantom",
    "Placements": "tomosim.phantom",
    "assemble_phantom": "tomosim.assemble",
    "TiltSeries": "tomosim.microscope",
    "simulate_tilt_series": "tomosim.microscope",
    "weighted_backprojection": "tomosim.reconstruct",
    "simulate": "tomosim.pipeline",
    "demo_config": "tomosim.pipeline",
    "generate_dataset": "tomosim.dataset",
    "read_mrc": "tomosim.io",
    "write_mrc": "tomosim.io",
    "read_volume": "tomosim.formats.volumes",
    "read_ome_zarr": "tomosim.formats.omezarr",
    "write_ome_zarr": "tomosim.formats.omezarr",
    "read_run_folder": "tomosim.formats.run_folder",
    "write_relion_project": "tomosim.formats.relion",
    "write_alignment_files": "tomosim.formats.alignment",
    "export_copick": "tomosim.formats.copick",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tomosim' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
