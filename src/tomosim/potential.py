"""Potential: atomic models and maps become electrostatic potentials in volts on a voxel grid.

See CONVENTIONS.md ("Potentials") for the formula, units and the solvent convention.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Potential:
    """A potential map and where the model sits in it.

    Attributes
    ----------
    data
        ``(z, y, x)`` float32, voxel-averaged potential in volts (excess over ice when the solvent
        is ``ice``).
    pixel_size
        Å per voxel (cubic voxels).
    centre_a
        ``(x, y, z)`` model coordinates in Å of the box centre voxel ``shape // 2``: atom position
        ``r`` lies at array position ``(r - centre_a) / pixel_size + shape // 2`` (in x, y, z order).
    solvent
        ``"none"`` or ``"ice"``.
    name
        Provenance: the structure it came from.
    """

    data: np.ndarray
    pixel_size: float
    centre_a: tuple[float, float, float]
    solvent: str = "none"
    name: str = ""

    @property
    def integral(self) -> float:
        """Volume integral in V·Å³: ``sum(data) * pixel_size**3``."""
        return float(self.data.sum(dtype=np.float64) * self.pixel_size**3)
