"""RELION 5 tomography project files from tomosim run folders.

``write_relion_project(runs, output_dir)`` writes, for one or more run folders:

==============================  ===============================================================
``tomograms.star``              block ``global``: one row per tilt series (optics, hand, sizes,
                                tilt-series STAR file, reconstructed tomogram)
``tilt_series/<name>.star``     block ``<name>``: one row per tilt image in stack order, with
                                the true per-tilt defocus, pre-exposure and alignment
``particles.star``              blocks ``optics`` and ``particles`` (all runs)
``optimisation_set.star``       block ``optimisation_set``: the particles and tomograms files
==============================  ===============================================================

Conventions (RELION 5, ``src/jaz/tomography``): coordinates are on the unbinned tilt-series grid;
``rlnCenteredCoordinate{X,Y,Z}Angst`` are Å from the tomogram centre ``rlnTomoSize / 2``; the
projection of tilt ``i`` is ``S(shift) S(image centre) Rz(rlnTomoZRot) Ry(rlnTomoYTilt)
Rx(rlnTomoXTilt) S(−int(size / 2))`` (``Tomogram::setProjectionMatrix``). tomosim's forward model
(CONVENTIONS.md) is that with ``rlnTomoYTilt`` = true tilt angle, ``rlnTomoZRot`` = tilt-axis
angle + rotation error, ``rlnTomoXTilt`` = 0 and ``rlnTomoX/YShiftAngst`` = the true image shift.
RELION adds ``rlnTomoHand · z'`` to the defocus of a point at depth ``z'`` (towards the source)
(``Tomogram::getCtf``); tomosim's defocus decreases with height (``Δf = Δf₀ − z'``), so
``rlnTomoHand`` is −1. Paths in the files are relative to ``output_dir`` (run RELION there).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tomosim.errors import TomosimError
from tomosim.formats.run_folder import RunFolder, read_particle_star
from tomosim.particles import optics_table, write_star

#: Defocus handedness of tomosim's geometry in RELION's convention (module docstring).
RELION_HAND = -1

#: Columns RELION 5 needs in each file (checked by the tests).
TOMOGRAMS_COLUMNS = (
    "rlnTomoName", "rlnVoltage", "rlnSphericalAberration", "rlnAmplitudeContrast",
    "rlnMicrographOriginalPixelSize", "rlnTomoHand", "rlnOpticsGroupName",
    "rlnTomoTiltSeriesPixelSize", "rlnTomoTiltSeriesStarFile", "rlnTomoTomogramBinning",
    "rlnTomoSizeX", "rlnTomoSizeY", "rlnTomoSizeZ", "rlnTomoReconstructedTomogram",
)
TILT_SERIES_COLUMNS = (
    "rlnMicrographName", "rlnTomoNominalStageTiltAngle", "rlnTomoNominalTiltAxisAngle",
    "rlnMicrographPreExposure", "rlnDefocusU", "rlnDefocusV", "rlnDefocusAngle",
    "rlnCtfAstigmatism", "rlnTomoXTilt", "rlnTomoYTilt", "rlnTomoZRot", "rlnTomoXShiftAngst",
    "rlnTomoYShiftAngst",
)
PARTICLE_COLUMNS = (
    "rlnTomoName", "rlnTomoParticleName", "rlnOpticsGroup", "rlnCenteredCoordinateXAngst",
    "rlnCenteredCoordinateYAngst", "rlnCenteredCoordinateZAngst", "rlnAngleRot", "rlnAngleTilt",
    "rlnAnglePsi",
)
OPTICS_COLUMNS = (
    "rlnOpticsGroup", "rlnOpticsGroupName", "rlnVoltage", "rlnSphericalAberration",
    "rlnAmplitudeContrast", "rlnTomoTiltSeriesPixelSize",
)


@dataclass(frozen=True)
class RelionProject:
    """Paths of the files :func:`write_relion_project` wrote."""

    tomograms: Path
    particles: Path
    optimisation_set: Path
    tilt_series: tuple[Path, ...]


def tilt_series_table(
    tilts: pd.DataFrame, *, tilt_axis_angle: float, stack: str
) -> pd.DataFrame:
    """Build the RELION 5 per-tilt-series table, one row per image in stack order.

    Parameters
    ----------
    tilts
        The run's tilt table (``tilts.csv``).
    tilt_axis_angle
        Nominal in-plane tilt-axis angle, degrees.
    stack
        Path of the tilt-series stack as RELION should read it; rows name ``<i>@<stack>``.
    """
    n = len(tilts)
    # the true defocus the image was formed with (``true_defocus_*``, when the simulation models
    # a CTF-estimation error, differs from the estimate ``defocus_*`` used for CTF correction)
    true = "true_defocus_u_a" in tilts.columns
    u = tilts["true_defocus_u_a" if true else "defocus_u_a"].to_numpy(np.float64)
    v = tilts["true_defocus_v_a" if true else "defocus_v_a"].to_numpy(np.float64)
    return pd.DataFrame(
        {
            "rlnMicrographName": [f"{i + 1}@{stack}" for i in range(n)],
            "rlnTomoNominalStageTiltAngle": tilts["angle_deg"].to_numpy(np.float64),
            "rlnTomoNominalTiltAxisAngle": np.full(n, float(tilt_axis_angle)),
            "rlnMicrographPreExposure": tilts["dose_before_e_per_a2"].to_numpy(np.float64),
            "rlnDefocusU": u,
            "rlnDefocusV": v,
            "rlnDefocusAngle": tilts["astigmatism_angle_deg"].to_numpy(np.float64),
            "rlnCtfAstigmatism": np.abs(u - v),
            "rlnTomoXTilt": np.zeros(n),
            "rlnTomoYTilt": tilts["true_angle_deg"].to_numpy(np.float64),
            "rlnTomoZRot": tilt_axis_angle + tilts["rotation_error_deg"].to_numpy(np.float64),
            "rlnTomoXShiftAngst": tilts["shift_x_a"].to_numpy(np.float64),
            "rlnTomoYShiftAngst": tilts["shift_y_a"].to_numpy(np.float64),
        }
    )


def unique_tomogram_names(runs: list[RunFolder]) -> list[str]:
    """One name per run: its tomogram name, or its folder name where tomogram names repeat.

    Raises
    ------
    TomosimError
        If the names are still not unique (two folders of the same name).
    """
    names = [run.name for run in runs]
    if len(set(names)) < len(names):
        names = [run.path.resolve().name for run in runs]
    if len(set(names)) < len(names):
        raise TomosimError(
            f"runs need distinct tomogram names or folder names, got {sorted(names)}"
        )
    return names


def _relative(target: Path, start: Path) -> str:
    return Path(os.path.relpath(target.resolve(), start.resolve())).as_posix()


def write_relion_project(
    runs: list[RunFolder], output_dir: str | os.PathLike[str]
) -> RelionProject:
    """Write the RELION 5 files for ``runs`` into ``output_dir`` (see the module docstring).

    Every file is written atomically; all inputs are read and checked before the first write.

    Raises
    ------
    TomosimError
        If a run has no tilt series, or names collide.
    """
    if not runs:
        raise TomosimError("no run folders given")
    out = Path(output_dir)
    names = unique_tomogram_names(runs)
    tomogram_rows: list[dict[str, object]] = []
    series: dict[str, pd.DataFrame] = {}
    particle_tables = []
    optics_rows: list[pd.DataFrame] = []
    optics_groups: dict[tuple[float, float, float, float], int] = {}
    for run, name in zip(runs, names, strict=True):
        if run.tilts is None:
            raise TomosimError(f"run folder has no tilt series: {run.path}")
        optics = run.config.microscope.optics
        key = (optics.voltage_kv, optics.cs_mm, optics.amplitude_contrast, run.pixel_size)
        if key not in optics_groups:
            optics_groups[key] = len(optics_groups) + 1
            table = optics_table(voltage_kv=key[0], cs_mm=key[1], amplitude_contrast=key[2],
                                 pixel_size=key[3], name=f"opticsGroup{len(optics_groups)}")
            table["rlnOpticsGroup"] = optics_groups[key]
            optics_rows.append(table)
        group = optics_groups[key]
        tilt_axis = run.config.microscope.tilt.tilt_axis_angle
        stack = _relative(run.file("tiltseries.mrc"), out) + ":mrcs"
        series[name] = tilt_series_table(run.tilts, tilt_axis_angle=tilt_axis, stack=stack)
        z, y, x = run.shape
        tomogram_rows.append({
            "rlnTomoName": name,
            "rlnVoltage": optics.voltage_kv,
            "rlnSphericalAberration": optics.cs_mm,
            "rlnAmplitudeContrast": optics.amplitude_contrast,
            "rlnMicrographOriginalPixelSize": run.pixel_size,
            "rlnTomoHand": RELION_HAND,
            "rlnOpticsGroupName": f"opticsGroup{group}",
            "rlnTomoTiltSeriesPixelSize": run.pixel_size,
            "rlnTomoTiltSeriesStarFile": f"tilt_series/{name}.star",
            "rlnTomoTomogramBinning": float(run.config.reconstruction.binning),
            "rlnTomoSizeX": x,
            "rlnTomoSizeY": y,
            "rlnTomoSizeZ": z,
            "rlnTomoReconstructedTomogram": _relative(run.volume("tomogram"), out),
        })
        _, particles = read_particle_star(run.file("particles.star"))
        particles = particles.copy()
        n = len(particles)
        particles["rlnTomoName"] = [name] * n
        particles["rlnTomoParticleName"] = [f"{name}/{i + 1}" for i in range(n)]
        particles["rlnOpticsGroup"] = np.full(n, group, np.int64)
        particle_tables.append(particles)

    tilt_paths = []
    for name, table in series.items():
        path = out / "tilt_series" / f"{name}.star"
        write_star(path, {name: table})
        tilt_paths.append(path)
    tomograms = out / "tomograms.star"
    write_star(tomograms, {"global": pd.DataFrame(tomogram_rows)})
    particles_path = out / "particles.star"
    all_particles = pd.concat(particle_tables, ignore_index=True)
    write_star(particles_path, {"optics": pd.concat(optics_rows, ignore_index=True),
                                "particles": all_particles})
    optimisation = out / "optimisation_set.star"
    write_star(optimisation, {"optimisation_set": {
        "rlnTomoParticlesFile": "particles.star", "rlnTomoTomogramsFile": "tomograms.star",
    }})
    return RelionProject(tomograms, particles_path, optimisation, tuple(tilt_paths))
