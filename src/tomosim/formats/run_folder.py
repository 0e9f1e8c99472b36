"""A finished ``tomosim simulate`` output folder, read back for export to other formats.

A run folder is complete when ``config.resolved.yaml`` exists (it is written last). The reader
checks that every file an exporter needs is present and names the first missing one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import starfile
import yaml

from tomosim.config import SimulationConfig, config_from_dict
from tomosim.errors import TomosimError
from tomosim.formats.volumes import volume_in_folder
from tomosim.particles import relion_rotations


@dataclass(frozen=True)
class ClassEntry:
    """One row of ``classes.csv``: label id, name and RGB colour (0-255)."""

    label: int
    name: str
    colour: tuple[int, int, int]


@dataclass(frozen=True)
class RunFolder:
    """The parts of a run folder that exporters use (arrays stay on disk).

    Attributes
    ----------
    path
        The folder.
    config
        The resolved simulation config.
    classes
        Class table from ``classes.csv`` (background first).
    particles
        ``data_particles`` block of ``particles.star``.
    tilts
        ``tilts.csv`` (stack order), or None for a phantom-only run.
    """

    path: Path
    config: SimulationConfig
    classes: tuple[ClassEntry, ...]
    particles: pd.DataFrame
    tilts: pd.DataFrame | None

    @property
    def name(self) -> str:
        """The tomogram name (``output.tomogram_name``)."""
        return self.config.output.tomogram_name

    @property
    def pixel_size(self) -> float:
        """Pixel size of the sample grid and of the unbinned tilt series, Å."""
        return float(self.config.sample.pixel_size)

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(z, y, x)`` shape of the sample grid (ground truth and labels)."""
        z, y, x = self.config.sample.shape
        return int(z), int(y), int(x)

    def volume(self, stem: str) -> Path:
        """``<stem>.mrc`` or ``<stem>.zarr`` of the folder; raises TomosimError if neither."""
        return volume_in_folder(self.path, stem)

    def file(self, name: str) -> Path:
        """Path of ``name`` in the folder; raises TomosimError if it is missing."""
        path = self.path / name
        if not path.exists():
            raise TomosimError(f"run folder is missing {name}: {self.path}")
        return path


def _read_classes(path: Path) -> tuple[ClassEntry, ...]:
    try:
        table = pd.read_csv(path)
        entries = []
        for label, name, colour_text in zip(
            table["id"].tolist(), table["name"].tolist(), table["colour"].tolist(), strict=True
        ):
            colour = str(colour_text).lstrip("#")
            rgb = (int(colour[0:2], 16), int(colour[2:4], 16), int(colour[4:6], 16))
            entries.append(ClassEntry(int(label), str(name), rgb))
    except (OSError, ValueError, KeyError, pd.errors.ParserError) as exc:
        raise TomosimError(f"unreadable class table ({exc}): {path}") from None
    return tuple(entries)


def read_particle_star(path: str | os.PathLike[str]) -> tuple[pd.DataFrame | None, pd.DataFrame]:
    """``(optics, particles)`` blocks of a particle STAR file (optics None when absent)."""
    p = Path(path)
    try:
        blocks = starfile.read(p, always_dict=True)
    except Exception as exc:  # noqa: BLE001 - starfile raises many kinds on bad input
        raise TomosimError(f"unreadable STAR file ({exc}): {p}") from None
    particles = blocks.get("particles")
    if particles is None:
        if not blocks:  # an empty particle table is written as an empty block
            return None, pd.DataFrame()
        particles = next(iter(blocks.values()))
    return blocks.get("optics"), pd.DataFrame(particles)


def read_run_folder(path: str | os.PathLike[str], *, microscope: bool = True) -> RunFolder:
    """Read a complete run folder written by ``tomosim simulate``.

    Parameters
    ----------
    path
        The folder.
    microscope
        Require the microscope outputs (tilt series, ``tilts.csv``, tomogram).

    Raises
    ------
    TomosimError
        If the folder or one of its files is missing or unreadable.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise TomosimError(f"run folder not found: {folder}")
    needed = ["config.resolved.yaml", "classes.csv", "particles.star"]
    if microscope:
        needed += ["tilts.csv", "tiltseries.mrc"]
    for name in needed:
        if not (folder / name).is_file():
            raise TomosimError(f"run folder is missing {name}: {folder}")
    volume_in_folder(folder, "labels")
    if microscope:
        volume_in_folder(folder, "tomogram")
    config_path = folder / "config.resolved.yaml"
    try:
        tree = yaml.safe_load(config_path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise TomosimError(f"unreadable config ({exc}): {config_path}") from None
    config = config_from_dict(tree, source=str(config_path))
    _, particles = read_particle_star(folder / "particles.star")
    tilts = None
    if (folder / "tilts.csv").is_file():
        try:
            tilts = pd.read_csv(folder / "tilts.csv")
        except (OSError, ValueError) as exc:
            raise TomosimError(f"unreadable tilt table ({exc}): {folder / 'tilts.csv'}") from None
        missing = {"angle_deg", "true_angle_deg", "shift_x_a", "shift_y_a", "rotation_error_deg",
                   "dose_before_e_per_a2", "defocus_u_a", "defocus_v_a"} - set(tilts.columns)
        if missing:
            raise TomosimError(
                f"tilt table lacks columns {sorted(missing)}: {folder / 'tilts.csv'}"
            )
    return RunFolder(folder, config, _read_classes(folder / "classes.csv"), particles, tilts)


def particle_rotations(particles: pd.DataFrame) -> np.ndarray:
    """``(n, 3, 3)`` active reference-to-tomogram rotations of a tomosim particle table."""
    angles = particles[["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"]].to_numpy(np.float64)
    return relion_rotations(angles)


def particle_positions(particles: pd.DataFrame, pixel_size: float) -> np.ndarray:
    """``(n, 3)`` positions ``(x, y, z)`` in Å; voxel ``i`` is centred at ``i * pixel_size``."""
    columns = ["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"]
    return particles[columns].to_numpy(np.float64) * pixel_size
