"""napari reader plugin: a tomosim run folder as layers (npe2 manifest ``tomosim/napari.yaml``).

``get_reader(path)`` accepts a run folder of ``tomosim simulate`` (it holds
``config.resolved.yaml``) and returns a reader giving napari layer-data tuples
``(data, kwargs, layer_type)``, all in one world frame in Å (``scale`` = voxel size):

- ``tomogram`` (image), if present: an MRC as an array, an OME-Zarr as its levels (multiscale,
  read lazily by napari);
- ``labels`` (labels) with the class colours of ``classes.csv`` (``colormap`` {id: RGBA}) and the
  class names as ``features``;
- ``particles`` (points) at the particle positions ``(z, y, x)``, coloured by class, with the class
  name, instance id and filament number as ``features``;
- ``tilt series`` (image, hidden), if present, with the tilt angles as metadata; its first axis
  is the tilt index (scale 1), the others are in Å.

Nothing here imports napari, so the reader is tested without a display.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tomosim.errors import TomosimError
from tomosim.formats.omezarr import is_ome_zarr, read_multiscales, read_ome_zarr_scale
from tomosim.formats.run_folder import particle_positions, read_run_folder
from tomosim.formats.volumes import read_volume
from tomosim.io import read_mrc

LayerData = tuple[Any, dict[str, Any], str]


def _volume_layer_data(
    path: Path, *, require_voxel_size: bool = True
) -> tuple[Any, dict[str, Any]]:
    """``(data, kwargs)`` of a volume: an OME-Zarr as its lazy multiscale levels, else an array."""
    if is_ome_zarr(path):
        import zarr

        entry = read_multiscales(path)
        levels = [zarr.open_array(str(path / d["path"]), mode="r") for d in entry["datasets"]]
        scale = read_ome_zarr_scale(entry)
        if len(levels) == 1:
            return levels[0], {"scale": scale}
        return levels, {"scale": scale, "multiscale": True}
    volume = read_volume(path, require_voxel_size=require_voxel_size)
    return volume.data, {"scale": volume.voxel_size}


def _is_run_folder(path: Path) -> bool:
    return path.is_dir() and (path / "config.resolved.yaml").is_file()


def get_reader(path: str | os.PathLike[str] | list[str]) -> Callable[..., list[LayerData]] | None:
    """Return the reader for a tomosim run folder (napari reader hook), else None."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    return read_run_folder_layers if _is_run_folder(Path(path)) else None


def _rgba(colour: tuple[int, int, int], alpha: float = 1.0) -> list[float]:
    return [colour[0] / 255, colour[1] / 255, colour[2] / 255, alpha]


def read_run_folder_layers(path: str | os.PathLike[str] | list[str]) -> list[LayerData]:
    """Layer-data tuples of a run folder (see the module docstring).

    Raises
    ------
    TomosimError
        If the folder is not a complete run folder.
    """
    folder = Path(path[0] if isinstance(path, list) else path)
    run = read_run_folder(folder, microscope=False)
    px = run.pixel_size
    layers: list[LayerData] = []
    try:
        tomogram_path = run.volume("tomogram")
    except TomosimError:
        tomogram_path = None
    if tomogram_path is not None:
        data, kwargs = _volume_layer_data(tomogram_path)
        layers.append((data, {"name": "tomogram", **kwargs}, "image"))
    labels_data, labels_kwargs = _volume_layer_data(run.volume("labels"), require_voxel_size=False)
    names = {entry.label: entry.name for entry in run.classes}
    colours: dict[int | None, list[float]] = {None: [0.0, 0.0, 0.0, 0.0], 0: [0.0, 0.0, 0.0, 0.0]}
    for entry in run.classes:
        if entry.label:
            colours[entry.label] = _rgba(entry.colour)
    label_ids = sorted(names)
    layers.append((
        labels_data,
        {
            "name": "labels",
            **labels_kwargs,
            "scale": (px, px, px),
            "colormap": colours,
            "features": pd.DataFrame({"index": label_ids, "class": [names[i] for i in label_ids]}),
            "opacity": 0.5,
        },
        "labels",
    ))
    table = run.particles
    if not table.empty:
        points = particle_positions(table, px)[:, ::-1]  # (z, y, x) Å
        class_ids = table["rlnClassNumber"].to_numpy(np.int64)
        face = np.array([
            colours.get(int(c), [1.0, 1.0, 1.0, 1.0]) if c else [1.0, 1.0, 1.0, 1.0]
            for c in class_ids
        ])
        features = pd.DataFrame({
            "class": [names.get(int(c), "background") for c in class_ids],
            "instance": table.get("tomosimInstanceId", pd.Series(np.zeros(len(table), int))),
            "filament": table["rlnHelicalTubeID"].to_numpy(np.int64),
        })
        layers.append((
            points,
            {"name": "particles", "features": features, "face_color": face, "size": 4 * px,
             "ndim": 3},
            "points",
        ))
    series_path = folder / "tiltseries.mrc"
    if series_path.is_file():
        series = read_mrc(series_path)
        metadata: dict[str, Any] = {}
        if run.tilts is not None:
            metadata["tilt_angles_deg"] = run.tilts["angle_deg"].to_numpy().tolist()
        layers.append((
            series.data,
            {"name": "tilt series", "scale": (1.0, series.voxel_size[1], series.voxel_size[2]),
             "visible": False, "metadata": metadata},
            "image",
        ))
    return layers
