r"""Export tomosim run folders as a copick project, with copick's own API.

``export_copick(runs, project_dir)`` writes (or adds to) a filesystem copick project:

- ``copick_config.json``: one pickable object per labelled class of the runs: ``name`` = class
  name, ``label`` = class id (the value in the segmentation), ``color`` = the class colour of
  ``classes.csv`` (alpha 255), ``radius`` (Å) measured from ``instances``: the radius of the
  sphere of the mean instance volume, or for filament classes the radius of the cylinder of the
  filaments' volume and length; ``is_particle`` = whether the class has particle rows;
  ``pdb_id``/``emdb_id``/``identifier`` from a ``pdb:``/``emdb:``/``afdb:`` structure source.
- ``ExperimentRuns/<run>/``: per run, the tomogram as a 3-level multiscale OME-Zarr (type
  ``wbp``) at its voxel spacing, the multilabel segmentation ``tomosim`` (``labels``; 0 =
  background) at the sample voxel spacing, and one picks file per particle object (user
  ``tomosim``, session ``0``).

Picks: ``location`` is the particle position in Å with voxel ``i`` centred at ``i · voxel`` (as
tomosim and copick's coordinate conversions use it); ``transformation_`` is the 4×4 matrix whose
rotation block is the active rotation taking the reference into the tomogram (CONVENTIONS.md;
copick's RELION importer, ``copick.util.relion.relion_rows_to_poses``, gives the same matrix
from ``particles.star``), translation 0. Filament subunits carry their filament number as
``instance_id``.

Names follow copick's rules: an object name must be unchanged by ``copick.util.escape.
sanitize_name`` (no spaces, underscores or ``<>:"/\|?*``); run names may use underscores but no
whitespace or path characters. A run already in the project is refused unless ``overwrite``.
Nothing is half-written: each run is built in a staging project beside the target and moved into
place when complete, and the config is replaced atomically last.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tomosim.errors import TomosimError
from tomosim.formats.run_folder import (
    RunFolder,
    particle_positions,
    particle_rotations,
)
from tomosim.formats.volumes import read_volume
from tomosim.io import write_text

USER_ID = "tomosim"
SESSION_ID = "0"
TOMOGRAM_TYPE = "wbp"
SEGMENTATION_NAME = "tomosim"
RUNS_FOLDER = "ExperimentRuns"
CONFIG_NAME = "copick_config.json"
_RUN_NAME_FORBIDDEN = re.compile(r'[<>:"/\\|?*\x00-\x1F\x7F\s]')


@dataclass(frozen=True)
class CopickExport:
    """What :func:`export_copick` wrote: the config file and the run names."""

    config: Path
    runs: tuple[str, ...]


def _require_copick() -> None:
    try:
        import copick  # noqa: F401
    except ImportError:
        raise TomosimError("copick export needs copick: pip install 'tomosim[copick]'") from None


def check_object_name(name: str) -> str:
    """Return ``name`` if copick accepts it as an object name, else raise TomosimError."""
    from copick.util.escape import sanitize_name

    try:
        clean = sanitize_name(name, suppress_warnings=True)
    except ValueError:
        clean = ""
    if clean != name:
        raise TomosimError(
            f"class name {name!r} is not a valid copick object name (copick forbids spaces, "
            'underscores and <>:"/\\|?*); rename the class'
        )
    return name


def check_run_name(name: str) -> str:
    """Return ``name`` if it is a valid copick run name, else raise TomosimError."""
    if not name or name.startswith(".") or _RUN_NAME_FORBIDDEN.search(name):
        raise TomosimError(
            f"run name {name!r} is not valid for copick (no whitespace, no leading dot, "
            'no <>:"/\\|?*)'
        )
    return name


def run_names(runs: list[RunFolder], names: list[str] | None = None) -> list[str]:
    """Choose the run names and check them.

    ``names`` if given, else each run's tomogram name, or folder names if those repeat; every name
    is checked with :func:`check_run_name` and must be unique.
    """
    if names is None:
        names = [run.name for run in runs]
        if len(set(names)) < len(names):
            names = [run.path.resolve().name for run in runs]
    if len(names) != len(runs):
        raise TomosimError(f"{len(names)} run names given for {len(runs)} run folders")
    if len(set(names)) < len(names):
        raise TomosimError(f"copick run names must be distinct, got {names}")
    return [check_run_name(name) for name in names]


def _structure_ids(source: str) -> dict[str, str]:
    prefix, _, accession = source.partition(":")
    prefix = prefix.lower()
    if prefix == "pdb" and accession:
        return {"pdb_id": accession.upper(), "identifier": f"PDB-{accession.upper()}"}
    if prefix == "emdb" and accession:
        number = re.sub(r"\D", "", accession)
        return {"emdb_id": f"EMD-{number}"}
    if prefix == "afdb" and accession:
        return {"identifier": f"UniProtKB:{accession}"}
    return {}


def _class_sources(run: RunFolder) -> dict[str, str]:
    out: dict[str, str] = {}
    for species in run.config.proteins.species:
        label = species.label or species.name
        if label != "background":
            out.setdefault(label, species.source)
    return out


def _class_radii(run: RunFolder, instances: np.ndarray) -> dict[int, float]:
    """Radius (Å) per class id measured from the instance volume (module docstring)."""
    px = run.pixel_size
    table = run.particles
    counts = np.bincount(instances.ravel().astype(np.int64))
    radii: dict[int, float] = {}
    if table.empty:
        return radii
    for label in sorted(set(table["rlnClassNumber"].astype(int)) - {0}):
        rows = table[table["rlnClassNumber"] == label]
        ids = sorted(set(rows["tomosimInstanceId"].astype(int)) - {0})
        ids = [i for i in ids if i < counts.size and counts[i] > 0]
        if not ids:
            continue
        volume = float(counts[ids].sum()) * px**3
        tubes = rows["rlnHelicalTubeID"].astype(int) > 0
        if tubes.all():
            length = 0.0
            for _, filament in rows.groupby("rlnHelicalTubeID"):
                pos = particle_positions(filament, px)
                length += float(np.linalg.norm(np.diff(pos, axis=0), axis=1).sum())
            if length > 0:
                radii[label] = float(np.sqrt(volume / (np.pi * length)))
                continue
        radii[label] = float((3 * volume / len(ids) / (4 * np.pi)) ** (1 / 3))
    return radii


def pickable_objects(runs: list[RunFolder]) -> list[dict[str, Any]]:
    """Build the copick ``pickable_objects`` of the labelled classes of ``runs`` (module doc).

    Raises
    ------
    TomosimError
        A class name copick forbids, or runs that give one name two ids or one id two names.
    """
    objects: dict[str, dict[str, Any]] = {}
    by_label: dict[int, str] = {}
    for run in runs:
        instances = read_volume(run.volume("instances"), require_voxel_size=False).data
        radii = _class_radii(run, instances)
        sources = _class_sources(run)
        particle_labels = set()
        if not run.particles.empty:
            particle_labels = set(run.particles["rlnClassNumber"].astype(int))
        for entry in run.classes:
            if entry.label == 0:
                continue
            name = check_object_name(entry.name)
            if by_label.setdefault(entry.label, name) != name:
                raise TomosimError(
                    f"class id {entry.label} is {by_label[entry.label]!r} in one run and "
                    f"{name!r} in another: {run.path}"
                )
            if name in objects:
                if objects[name]["label"] != entry.label:
                    raise TomosimError(
                        f"class {name!r} has id {objects[name]['label']} in one run and "
                        f"{entry.label} in another: {run.path}"
                    )
                if objects[name].get("radius") is None and entry.label in radii:
                    objects[name]["radius"] = round(radii[entry.label], 3)
                objects[name]["is_particle"] |= entry.label in particle_labels
                continue
            obj: dict[str, Any] = {
                "name": name,
                "is_particle": entry.label in particle_labels,
                "label": entry.label,
                "color": [*entry.colour, 255],
                "radius": round(radii[entry.label], 3) if entry.label in radii else None,
            }
            obj.update(_structure_ids(sources.get(entry.name, "")))
            objects[name] = obj
    return sorted(objects.values(), key=lambda o: o["label"])


def _merge_objects(
    existing: list[dict[str, Any]], new: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    merged = {o["name"]: dict(o) for o in existing}
    labels = {o["label"]: o["name"] for o in existing}
    for obj in new:
        old = merged.get(obj["name"])
        if old is not None:
            if old.get("label") != obj["label"]:
                raise TomosimError(
                    f"copick project has object {obj['name']!r} with label {old.get('label')}, "
                    f"the runs use {obj['label']}"
                )
            continue
        if obj["label"] in labels:
            raise TomosimError(
                f"copick project uses label {obj['label']} for {labels[obj['label']]!r}, the runs "
                f"use it for {obj['name']!r}"
            )
        merged[obj["name"]] = obj
        labels[obj["label"]] = obj["name"]
    return sorted(merged.values(), key=lambda o: o["label"])


def _config_text(project: Path, objects: list[dict[str, Any]], base: dict[str, Any]) -> str:
    import copick

    config = {
        "config_type": "filesystem",
        "name": base.get("name", "tomosim"),
        "description": base.get("description", "Simulated tomograms exported by tomosim"),
        "version": base.get("version", copick.__version__),
        "pickable_objects": objects,
        "overlay_root": "local://" + str(project.resolve()),  # runs in <root>/ExperimentRuns
        "overlay_fs_args": {"auto_mkdir": True},
    }
    for key in ("static_root", "static_fs_args", "user_id", "session_id"):
        if key in base:
            config[key] = base[key]
    return json.dumps(config, indent=4) + "\n"


def _write_run(root: Any, run: RunFolder, name: str, objects: list[dict[str, Any]]) -> None:
    """Write one run into the (staging) copick project ``root`` with copick's API."""
    from copick.util.formats import points_and_rotations_to_transforms

    copick_run = root.new_run(name)
    tomogram = read_volume(run.volume("tomogram"))
    tomo_voxel = float(tomogram.voxel_size[0])
    spacing = copick_run.new_voxel_spacing(voxel_size=tomo_voxel)
    spacing.new_tomogram(tomo_type=TOMOGRAM_TYPE).from_numpy(
        np.asarray(tomogram.data, np.float32), levels=3
    )
    labels = read_volume(run.volume("labels"), require_voxel_size=False).data
    label_voxel = run.pixel_size
    if label_voxel not in [vs.voxel_size for vs in copick_run.voxel_spacings]:
        copick_run.new_voxel_spacing(voxel_size=label_voxel)
    segmentation = copick_run.new_segmentation(
        voxel_size=label_voxel, name=SEGMENTATION_NAME, session_id=SESSION_ID,
        is_multilabel=True, user_id=USER_ID,
    )
    segmentation.from_numpy(np.asarray(labels, np.uint8))
    table = run.particles
    for obj in objects:
        if not obj["is_particle"] or table.empty:
            continue
        rows = table[table["rlnClassNumber"].astype(int) == obj["label"]]
        if rows.empty:
            continue
        positions = particle_positions(rows, run.pixel_size)
        transforms = points_and_rotations_to_transforms(
            np.zeros_like(positions), particle_rotations(rows)
        )
        picks = copick_run.new_picks(object_name=obj["name"], session_id=SESSION_ID,
                                     user_id=USER_ID)
        tubes = rows["rlnHelicalTubeID"].to_numpy(np.int64)
        picks.from_numpy(positions, transforms, instance_ids=tubes if tubes.any() else None)


def export_copick(
    runs: list[RunFolder],
    project_dir: str | os.PathLike[str],
    *,
    names: list[str] | None = None,
    overwrite: bool = False,
) -> CopickExport:
    """Write ``runs`` into the copick project at ``project_dir`` (see the module docstring).

    Parameters
    ----------
    runs
        Complete run folders (with tomograms).
    project_dir
        Project folder: ``copick_config.json`` and ``ExperimentRuns/`` (created if needed; an
        existing project is added to).
    names
        Run names (default: tomogram names, or folder names if those repeat).
    overwrite
        Replace runs the project already holds.

    Raises
    ------
    TomosimError
        Forbidden names, a run the project already holds (without ``overwrite``), objects that
        disagree with the project's, copick missing.
    """
    _require_copick()
    import copick
    from numcodecs import blosc as numcodecs_blosc

    if not runs:
        raise TomosimError("no run folders given")
    project = Path(project_dir)
    if project.exists() and not project.is_dir():
        raise TomosimError(f"copick project path exists and is not a folder: {project}")
    run_list = run_names(runs, names)
    objects = pickable_objects(runs)
    config_path = project / CONFIG_NAME
    base: dict[str, Any] = {}
    if config_path.is_file():
        try:
            base = json.loads(config_path.read_text())
        except (OSError, ValueError) as exc:
            raise TomosimError(f"unreadable copick config ({exc}): {config_path}") from None
        objects = _merge_objects(base.get("pickable_objects", []), objects)
        existing_root = Path(str(base.get("overlay_root", "")).removeprefix("local://"))
        if existing_root.resolve() != project.resolve():
            raise TomosimError(
                f"copick project's overlay_root is not the project folder {project}: {config_path}"
            )
    runs_dir = project / RUNS_FOLDER
    for name in run_list:
        if (runs_dir / name).exists() and not overwrite:
            raise TomosimError(
                f"copick project already holds run {name!r} (use --overwrite): {project}"
            )
    project.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tomosim-staging-", dir=project))
    try:
        staging_config = staging / CONFIG_NAME
        staging_config.write_text(_config_text(staging, objects, base))
        root = copick.from_file(str(staging_config))
        # one Blosc code path whatever thread dask writes a chunk from: byte-identical exports
        # (see tomosim.formats.omezarr.write_ome_zarr)
        threads_setting = numcodecs_blosc.use_threads
        numcodecs_blosc.use_threads = False
        try:
            for run, name in zip(runs, run_list, strict=True):
                try:
                    _write_run(root, run, name, objects)
                except ValueError as exc:  # copick's own checks (names, labels, values)
                    raise TomosimError(
                        f"copick refused run {name!r} ({exc}): {run.path}"
                    ) from None
        finally:
            numcodecs_blosc.use_threads = threads_setting
        runs_dir.mkdir(parents=True, exist_ok=True)
        for name in run_list:
            target = runs_dir / name
            if target.exists():
                shutil.rmtree(target)
            os.replace(staging / RUNS_FOLDER / name, target)
        write_text(config_path, _config_text(project, objects, base))
    except OSError as exc:
        raise TomosimError(f"cannot write copick project ({exc}): {project}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return CopickExport(config_path, tuple(run_list))
