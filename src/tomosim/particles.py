"""Particles: the list of placed objects as RELION 5 STAR and CSV tables.

The STAR file holds a ``data_optics`` block (one optics group: voltage, Cs, amplitude contrast,
``rlnTomoTiltSeriesPixelSize``) and a ``data_particles`` block with one row per placed particle or
filament subunit. Columns:

- ``rlnTomoName``: the tomogram name (``output.tomogram_name``); ``rlnTomoParticleName``:
  ``<tomogram>/<n>`` with ``n`` counting from 1; ``rlnOpticsGroup``: 1.
- ``rlnCoordinateX/Y/Z``: position in pixels of the output grid, 0-based from the centre of voxel
  ``[0, 0, 0]`` (array index ``[z, y, x]`` = ``(Z, Y, X)``). RELION 5 ignores them.
- ``rlnCenteredCoordinateX/Y/ZAngst``: position in Å from the tomogram centre as RELION 5 defines
  it, ``size / 2`` pixels along each axis (``ParticleSet::getParticleCoordDecenteredPixel``), on
  the grid of the unbinned tilt series: for even sizes this is the voxel ``shape // 2``, for odd
  sizes half a voxel below it.
- ``rlnAngleRot/Tilt/Psi``: RELION ZYZ Euler angles whose matrix (RELION's
  ``Euler_angles2matrix`` = ``Rotation.from_euler("ZYZ", angles).inv()``) is the particle's
  rotation from reference to tomogram (CONVENTIONS.md), as RELION 5 (``ParticleSet::getMatrix4x4``)
  and copick's RELION importer read them.
- ``rlnClassNumber``: label id (0 = background/distractor); ``rlnHelicalTubeID``: 1-based filament
  number (0 for globular particles).
- ``tomosimClassName``, ``tomosimTemplate``, ``tomosimInstanceId``, ``tomosimFilamentId``,
  ``tomosimSegmentId``, ``tomosimSubunitIndex``: tomosim's own columns (RELION ignores unknown
  labels).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np
import pandas as pd
import starfile

from tomosim.io import atomic_path
from tomosim.orientations import euler_to_matrix, matrix_to_euler
from tomosim.phantom import Placements


def relion_angles(rotations: np.ndarray) -> np.ndarray:
    """RELION Euler angles ``(rot, tilt, psi)`` (degrees) of active reference-to-tomogram rotations.

    RELION's matrix of the angles, ``Euler_angles2matrix(rot, tilt, psi)``, maps particle
    (reference) coordinates into the tomogram (``ParticleSet::getMatrix4x4``; the projector samples
    the reference at ``A^T`` of image coordinates). It is the transpose of
    ``Rotation.from_euler("ZYZ", angles)``, so the angles are those of ``R^T``.

    Parameters
    ----------
    rotations
        ``(n, 3, 3)`` active rotations ``R``: reference offset ``r`` lies at ``p + R r``.

    Returns
    -------
    numpy.ndarray
        ``(n, 3)`` angles in degrees, tilt in [0, 180].
    """
    r = np.asarray(rotations, np.float64).reshape(-1, 3, 3)
    if r.shape[0] == 0:
        return np.zeros((0, 3))
    return np.asarray(matrix_to_euler(np.transpose(r, (0, 2, 1)))).reshape(-1, 3)


def relion_rotations(angles: np.ndarray) -> np.ndarray:
    """Active reference-to-tomogram rotations of RELION Euler angles (see :func:`relion_angles`).

    Returns
    -------
    numpy.ndarray
        ``(n, 3, 3)`` matrices, RELION's ``Euler_angles2matrix`` of each ``(rot, tilt, psi)`` row.
    """
    a = np.asarray(angles, np.float64).reshape(-1, 3)
    return np.transpose(np.asarray(euler_to_matrix(a)).reshape(-1, 3, 3), (0, 2, 1))


def relion_centre_a(shape: tuple[int, int, int], pixel_size: float) -> np.ndarray:
    """``(x, y, z)`` Å of the tomogram centre RELION 5 uses for centred coordinates: ``size / 2``.

    Parameters
    ----------
    shape
        ``(z, y, x)`` size of the tomogram on the unbinned tilt-series grid.
    pixel_size
        Tilt-series pixel size, Å.
    """
    return np.array(shape[::-1], np.float64) / 2 * pixel_size


def optics_table(
    *, voltage_kv: float, cs_mm: float, amplitude_contrast: float, pixel_size: float,
    name: str = "opticsGroup1",
) -> pd.DataFrame:
    """Build the RELION 5 ``data_optics`` block of one optics group (tilt-series pixel in Å)."""
    return pd.DataFrame(
        {
            "rlnOpticsGroup": [1],
            "rlnOpticsGroupName": [name],
            "rlnVoltage": [float(voltage_kv)],
            "rlnSphericalAberration": [float(cs_mm)],
            "rlnAmplitudeContrast": [float(amplitude_contrast)],
            "rlnTomoTiltSeriesPixelSize": [float(pixel_size)],
        }
    )


def particles_table(
    placements: Placements,
    *,
    shape: tuple[int, int, int],
    pixel_size: float,
    class_names: dict[int, str],
    tomogram_name: str,
) -> pd.DataFrame:
    """Build the particle table for ``placements`` in a ``(z, y, x)`` volume of ``shape``.

    ``pixel_size`` (Å) is that of the volume, which is the unbinned tilt-series grid.
    """
    n = len(placements)
    pos = np.asarray(placements.positions, np.float64).reshape(n, 3)
    centre_a = relion_centre_a(shape, pixel_size)
    euler = relion_angles(placements.rotations) if n else np.zeros((0, 3))
    names = np.asarray(placements.template_names + ("",), dtype=object)
    filament = np.asarray(placements.filament_id, np.int64)
    return pd.DataFrame(
        {
            "rlnTomoName": [tomogram_name] * n,
            "rlnTomoParticleName": [f"{tomogram_name}/{i + 1}" for i in range(n)],
            "rlnOpticsGroup": np.ones(n, np.int64),
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
            "tomosimClassName": [
                class_names.get(int(c), "background") for c in placements.class_id
            ],
            "tomosimTemplate": names[np.asarray(placements.template, np.int64)] if n else [],
            "tomosimInstanceId": np.asarray(placements.instance_id, np.int64),
            "tomosimFilamentId": filament,
            "tomosimSegmentId": np.asarray(placements.segment_id, np.int64),
            "tomosimSubunitIndex": np.asarray(placements.subunit_index, np.int64),
        }
    )


def write_star(
    path: str | os.PathLike[str], blocks: Mapping[str, pd.DataFrame | dict[str, object]]
) -> None:
    """Write STAR data blocks with ``starfile`` atomically: the one STAR writer of tomosim.

    A DataFrame becomes a loop, a dict a block of single values. Floats as ``%.6f``, and no
    timestamp (starfile stamps the time of writing in a comment, which is dropped so that reruns
    compare byte for byte).
    """
    with atomic_path(path) as tmp:
        starfile.write(dict(blocks), tmp, float_format="%.6f")
        lines = tmp.read_text().splitlines(keepends=True)
        tmp.write_text("".join(line for line in lines if not line.startswith("# Created by")))


def write_particles_star(path: str | os.PathLike[str], table: pd.DataFrame) -> None:
    """Write a particle table as the ``particles`` data block of a STAR file, atomically."""
    write_star(path, {"particles": table})


def write_particles(
    table: pd.DataFrame,
    star_path: str | os.PathLike[str],
    csv_path: str | os.PathLike[str],
    *,
    optics: pd.DataFrame | None = None,
) -> None:
    """Write the particle table as STAR (blocks ``optics``, ``particles``) and CSV, atomically."""
    blocks: dict[str, pd.DataFrame | dict[str, object]] = {"particles": table}
    if optics is not None:
        blocks = {"optics": optics, "particles": table}
    write_star(star_path, blocks)
    with atomic_path(csv_path) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6f")


def read_particles(star_path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a particle STAR file written by :func:`write_particles`."""
    data = starfile.read(star_path, always_dict=True)
    return data["particles"] if "particles" in data else next(iter(data.values()))
