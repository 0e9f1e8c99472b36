"""Picking particles with a trained picking network (``tomosim train --task picking``).

The network segments balls of ``target_fraction x radius`` around particle centres
(:mod:`tomosim.train.localisation`). To pick, the tomogram is segmented with
:func:`tomosim.train.inference.segment_tomogram` (class probabilities on the input grid), each
class's probability is averaged over a cube about the size of its target ball (a box filter of
odd side ``2 round(b / 2) + 1`` voxels for a ball radius ``b`` voxels, so the score peaks at
the ball's centre), and peaks of that score at least ``nms_fraction x radius`` apart and
scoring at least ``threshold`` become particles (:func:`tomosim.train.localisation.find_peaks`).

Positions are written as :func:`tomosim.train.picking.pick_particles` writes them: voxel indices of
the input tomogram (voxel ``i`` centred at ``i``) and Å from the centre voxel ``shape // 2``
(RELION 5 ``rlnCenteredCoordinate*Angst``), with the score in ``rlnAutopickFigureOfMerit``.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import torch
from scipy import ndimage

from tomosim.errors import TomosimError
from tomosim.train.checkpoint import ModelCheckpoint
from tomosim.train.config import PickingConfig
from tomosim.train.inference import segment_tomogram
from tomosim.train.localisation import find_peaks
from tomosim.train.picking import CLASS_NAME_COLUMN

SCORE_COLUMN = "rlnAutopickFigureOfMerit"
PICK_COLUMNS = [
    "rlnTomoName", "rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ",
    "rlnCenteredCoordinateXAngst", "rlnCenteredCoordinateYAngst", "rlnCenteredCoordinateZAngst",
    "rlnClassNumber", CLASS_NAME_COLUMN, SCORE_COLUMN,
]


def picking_settings(model: ModelCheckpoint) -> PickingConfig:
    """Return the picking settings of a picking model; refuse segmentation models."""
    task = model.config.get("task", "segmentation")
    if task != "picking":
        raise TomosimError(
            f"the model was trained for {task}, not picking (train it with --task picking)"
        )
    return PickingConfig.model_validate(model.config.get("picking", {}))


def pick_tomogram(
    model: ModelCheckpoint,
    tomogram: np.ndarray,
    *,
    voxel_size: Sequence[float],
    classes: Sequence[str] | None = None,
    threshold: float | None = None,
    tomogram_name: str = "TS_01",
    batch_size: int = 4,
    chunk_slices: int = 32,
    network: torch.nn.Module | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Particles of ``tomogram`` found by a picking network, one row per particle.

    Parameters
    ----------
    model
        A picking model (``task: picking``; radii and peak settings in its config).
    tomogram
        ``(z, y, x)`` map with the contrast of the training tomograms.
    voxel_size
        ``(z, y, x)`` voxel size, Å (resampled to the model's pixel size and back if different).
    classes
        Class names to pick (default: all of the model's).
    threshold
        Smallest peak score (default: the model's ``picking.threshold``).
    tomogram_name
        ``rlnTomoName`` of the rows.
    batch_size, chunk_slices, network, progress
        As for :func:`tomosim.train.inference.segment_tomogram`.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`PICK_COLUMNS`, by class id then decreasing score.

    Raises
    ------
    TomosimError
        A segmentation model, a class the model does not know, a threshold outside (0, 1).
    """
    settings = picking_settings(model)
    names = list(model.classes.names[1:])
    wanted = list(classes) if classes else names
    unknown = [n for n in wanted if n not in names]
    if unknown:
        raise TomosimError(f"class {unknown[0]!r} is not a class of the model (classes {names})")
    limit = settings.threshold if threshold is None else float(threshold)
    if not 0 < limit < 1:
        raise TomosimError(f"the score threshold must be in (0, 1), got {limit}")
    if tomogram.ndim != 3:
        raise TomosimError(f"a tomogram must be a 3D (z, y, x) volume, got shape {tomogram.shape}")
    missing = [n for n in wanted if n not in settings.radii]
    if missing:
        raise TomosimError(f"the model stores no radius for class(es) {missing}")
    probabilities = {n: np.zeros(tomogram.shape, np.float16) for n in wanted}
    sinks = [probabilities.get(n, _Discard(tomogram.shape)) for n in model.classes.names]
    segment_tomogram(
        model, tomogram, voxel_size=voxel_size, batch_size=batch_size, chunk_slices=chunk_slices,
        probabilities=sinks,  # type: ignore[arg-type]
        network=network, progress=progress,
    )
    voxel = np.asarray(voxel_size, np.float64)
    centre = np.array(tomogram.shape) // 2

    def peaks_of(name: str) -> tuple[np.ndarray, np.ndarray]:
        radius = float(settings.radii[name])
        ball_px = settings.target_fraction * radius / voxel  # (z, y, x)
        size = tuple(int(2 * round(b / 2) + 1) for b in ball_px)
        score = ndimage.uniform_filter(
            probabilities.pop(name).astype(np.float32), size=size, mode="constant"
        )
        distance_px = settings.nms_fraction * radius / float(voxel.max())
        return find_peaks(score, min_distance_px=distance_px, threshold=limit)

    order = sorted(wanted, key=lambda n: model.classes.id_of(n))
    # classes are independent: scipy's filters release the GIL, so threads share the work
    with ThreadPoolExecutor(max_workers=max(1, min(len(order), torch.get_num_threads()))) as pool:
        found = list(pool.map(peaks_of, order))
    rows = []
    for name, (positions, scores) in zip(order, found, strict=True):
        for (x, y, z), value in zip(positions, scores, strict=True):
            rows.append({
                "rlnTomoName": tomogram_name,
                "rlnCoordinateX": x, "rlnCoordinateY": y, "rlnCoordinateZ": z,
                "rlnCenteredCoordinateXAngst": (x - centre[2]) * voxel[2],
                "rlnCenteredCoordinateYAngst": (y - centre[1]) * voxel[1],
                "rlnCenteredCoordinateZAngst": (z - centre[0]) * voxel[0],
                "rlnClassNumber": int(model.classes.id_of(name)),
                CLASS_NAME_COLUMN: name,
                SCORE_COLUMN: float(value),
            })
    return pd.DataFrame(rows, columns=PICK_COLUMNS)


class _Discard:
    """Stands in for a probability array whose values are not needed."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape

    def __setitem__(self, key: object, value: object) -> None:
        pass
