"""tomosim: simulated cryo-electron tomograms with perfect labels.

The public API is listed here once; see CONVENTIONS.md for axes, units and angle conventions.
"""

from __future__ import annotations

__version__ = "0.1.0"

from tomosim.config import SimulationConfig, load_config
from tomosim.errors import TomosimError
from tomosim.orientations import euler_to_matrix, matrix_to_euler, random_rotations
from tomosim.potential import Potential, atoms_to_potential, load_potential, map_to_potential
from tomosim.sources import resolve_source
from tomosim.structures import Atoms, DensityMap, read_map, read_structure, resample_map

__all__ = [
    "Atoms",
    "DensityMap",
    "Potential",
    "SimulationConfig",
    "TomosimError",
    "__version__",
    "atoms_to_potential",
    "euler_to_matrix",
    "load_config",
    "load_potential",
    "map_to_potential",
    "matrix_to_euler",
    "random_rotations",
    "read_map",
    "read_structure",
    "resample_map",
    "resolve_source",
]
