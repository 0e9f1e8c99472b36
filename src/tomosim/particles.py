"""Particles: the list of placed objects as RELION 5 style STAR and CSV tables.

One row per placed particle or filament subunit. Columns:

- ``rlnTomoName``: the tomogram name (``output.tomogram_name``).
- ``rlnCoordinateX/Y/Z``: position in pixels of the output grid, 0-based from the centre of voxel
  ``[0, 0, 0]`` (array index ``[z, y, x]`` = ``(Z, Y, X)``).
- ``rlnCenteredCoordinateX/Y/ZAngst``: position in Å relative to the tomogram centre voxel
  ``shape // 2`` (RELION 5 convention).
- ``rlnAngleRot/Tilt/Psi``: RELION ZYZ Euler angles of the active rotation (CONVENTIONS.md).
- ``rlnClassNumber``: label id (0 = background/distractor); ``rlnHelicalTubeID``: 1-based filament
  number (0 for globular particles).
- ``tomosimClassName``, ``tomosimTemplate``, ``tomosimInstanceId``, ``tomosimFilamentId``,
  ``tomosimSegmentId``, ``tomosimSubunitIndex``: tomosim's own columns (RELION ignores unknown
  labels).
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import starfile

from tomosim.io import atomic_path
from tomosim.orientations import matrix_to_euler
from tomosim.phantom import Placements


def particles_table(
    placements: Placements,
    *,
    shape: tuple[int, int, int],
    pixel_size: float,
    class_names: dict[int, str],
    tomogram_name: str,
) -> pd.DataFrame:
    """Build the particle table for ``placements`` in a ``(z, y, x)`` volume of ``shape``."""
    n = len(placements)
    pos = np.asarray(placements.positions, np.float64).reshape(n, 3)
    centre_a = np.array(shape[::-1], np.float64) // 2 * pixel_size  # (x, y, z) Å of shape // 2
    euler = matrix_to_euler(placements.rotations) if n else np.zeros((0, 3))
    names = np.asarray(placements.template_names + ("",), dtype=object)
    filament = np.asarray(placements.filament_id, np.int64)
    return pd.DataFrame(
        {
            "rlnTomoName": [tomogram_name] * n,
            "rlnCoordinateX": pos[:, 0] / pixel_size,
            "rlnCoordinateY": pos[:, 1] / pixel_size,
            "rlnCoordinateZ": pos[:, 2] / pixel_size,
            "rlnCenteredCoordinateXAngst": pos[:, 0] - centre_a[0],
            "rlnCenteredCoordinateYAngst": pos[:, 1] - centre_a[1],
            "rlnCenteredCoordinateZAngst": pos[:, 2] - centre_a[2],
            "rlnAngleRot": euler[:, 0],
            "rlnAngleTilt": euler[:, 1],
            "rlnAnglePsi": euler[:, 2],
            "rlnClassNumber": np.asarray(placements.class_id, np.int64),
            "rlnHelicalTubeID": np.where(filament >= 0, filament + 1, 0),
            "tomosimClassName": [class_names.get(int(c), "background") for c in placements.class_id],
            "tomosimTemplate": names[np.asarray(placements.template, np.int64)] if n else [],
            "tomosimInstanceId": np.asarray(placements.instance_id, np.int64),
            "tomosimFilamentId": filament,
            "tomosimSegmentId": np.asarray(placements.segment_id, np.int64),
            "tomosimSubunitIndex": np.asarray(placements.subunit_index, np.int64),
        }
    )


def write_particles_star(path: str | os.PathLike[str], table: pd.DataFrame) -> None:
    """Write a particle table as the ``particles`` data block of a STAR file, atomically.

    The one STAR writer of tomosim: floats as ``%.6f``, and no timestamp (starfile stamps the
    time of writing in a comment, which is dropped so that reruns compare byte for byte).
    """
    with atomic_path(path) as tmp:
        starfile.write({"particles": table}, tmp, float_format="%.6f")
        lines = tmp.read_text().splitlines(keepends=True)
        tmp.write_text("".join(line for line in lines if not line.startswith("# Created by")))


def write_particles(
    table: pd.DataFrame, star_path: str | os.PathLike[str], csv_path: str | os.PathLike[str]
) -> None:
    """Write the particle table as a STAR file (data block ``particles``) and as CSV, atomically."""
    write_particles_star(star_path, table)
    with atomic_path(csv_path) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6f")


def read_particles(star_path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a particle STAR file written by :func:`write_particles`."""
    data = starfile.read(star_path, always_dict=True)
    return data["particles"] if "particles" in data else next(iter(data.values()))
