"""Scores of a segmentation against the truth: Dice, IoU, precision, recall, clDice.

For class ``c`` with predicted voxels ``P`` and true voxels ``T`` (voxels whose truth is 255,
"not labelled", are left out of both):

- Dice = 2|P ∩ T| / (|P| + |T|), IoU = |P ∩ T| / |P ∪ T|,
- precision = |P ∩ T| / |P|, recall = |P ∩ T| / |T|,
- clDice (Shit et al. 2021, CVPR, "clDice - a novel topology-preserving loss function for
  tubular structure segmentation"): with skeletons S_P, S_T (scikit-image ``skeletonize``),
  Tprec = |S_P ∩ T| / |S_P|, Tsens = |S_T ∩ P| / |S_T|, clDice = 2 Tprec Tsens / (Tprec + Tsens).

A score whose denominator is zero (for example precision when nothing was predicted) is undefined
and reported as None (JSON null), never as 0 or 1.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from tomosim.errors import TomosimError
from tomosim.labels import IGNORE_LABEL

FILAMENT_WORDS = ("actin", "filament", "microtubule", "tubul", "fiber", "fibre")
"""A class whose name contains one of these is treated as a filament (clDice reported)."""


@dataclass(frozen=True)
class ClassScores:
    """Scores of one class; None where undefined.

    Attributes
    ----------
    id, name
        The class.
    true_voxels, predicted_voxels, overlap_voxels
        |T|, |P|, |P ∩ T| over labelled voxels.
    dice, iou, precision, recall
        Overlap scores.
    cl_dice
        Skeleton-aware Dice (filament classes only; None otherwise).
    """

    id: int
    name: str
    true_voxels: int
    predicted_voxels: int
    overlap_voxels: int
    dice: float | None
    iou: float | None
    precision: float | None
    recall: float | None
    cl_dice: float | None = None

    def as_dict(self) -> dict[str, object]:
        """The scores as a plain dict."""
        return asdict(self)


def _ratio(numerator: float, denominator: float) -> float | None:
    return float(numerator) / float(denominator) if denominator else None


def dice(predicted: np.ndarray, true: np.ndarray) -> float | None:
    """Dice ``2 |P ∩ T| / (|P| + |T|)`` of two boolean masks; None where both are empty."""
    overlap = int(np.count_nonzero(predicted & true))
    return _ratio(2 * overlap, int(np.count_nonzero(predicted)) + int(np.count_nonzero(true)))


def is_filament_name(name: str) -> bool:
    """True if ``name`` looks like a filament class (see :data:`FILAMENT_WORDS`)."""
    lowered = name.lower()
    return any(word in lowered for word in FILAMENT_WORDS)


def cl_dice(prediction: np.ndarray, truth: np.ndarray) -> float | None:
    """Centreline Dice of two boolean masks (2D or 3D), Shit et al. (2021, CVPR).

    Returns None when a skeleton is empty (the score is undefined), 0 when the skeletons miss
    each other entirely.
    """
    from skimage.morphology import skeletonize

    prediction = np.asarray(prediction, dtype=bool)
    truth = np.asarray(truth, dtype=bool)
    skeleton_prediction = skeletonize(prediction)
    skeleton_truth = skeletonize(truth)
    topology_precision = _ratio((skeleton_prediction & truth).sum(), skeleton_prediction.sum())
    topology_sensitivity = _ratio((skeleton_truth & prediction).sum(), skeleton_truth.sum())
    if topology_precision is None or topology_sensitivity is None:
        return None
    total = topology_precision + topology_sensitivity
    return 2.0 * topology_precision * topology_sensitivity / total if total else 0.0


def segmentation_scores(
    prediction: np.ndarray,
    truth: np.ndarray,
    *,
    classes: Mapping[int, str],
    filaments: Sequence[str] = (),
) -> list[ClassScores]:
    """Scores of every foreground class in ``classes`` (id -> name).

    Parameters
    ----------
    prediction, truth
        Label volumes (or images) of equal shape; truth 255 = not labelled (ignored).
    classes
        Classes to score; id 0 (background) is skipped.
    filaments
        Names of classes that also get clDice.

    Raises
    ------
    TomosimError
        If the shapes differ.
    """
    if prediction.shape != truth.shape:
        raise TomosimError(
            f"prediction shape {prediction.shape} differs from truth shape {truth.shape}"
        )
    valid = truth != IGNORE_LABEL
    scores = []
    for label_id, name in sorted(classes.items()):
        if label_id in (0, IGNORE_LABEL):
            continue
        predicted = (prediction == label_id) & valid
        true = truth == label_id
        overlap = int((predicted & true).sum())
        n_predicted, n_true = int(predicted.sum()), int(true.sum())
        scores.append(
            ClassScores(
                id=int(label_id),
                name=name,
                true_voxels=n_true,
                predicted_voxels=n_predicted,
                overlap_voxels=overlap,
                dice=dice(predicted, true),
                iou=_ratio(overlap, n_predicted + n_true - overlap),
                precision=_ratio(overlap, n_predicted),
                recall=_ratio(overlap, n_true),
                cl_dice=cl_dice(predicted, true) if name in filaments else None,
            )
        )
    return scores


def summarise_scores(scores: Sequence[ClassScores]) -> dict[str, float | None]:
    """Means over classes of each score, skipping undefined values (None if none defined)."""
    summary: dict[str, float | None] = {}
    for key in ("dice", "iou", "precision", "recall", "cl_dice"):
        values = [getattr(s, key) for s in scores if getattr(s, key) is not None]
        summary[f"mean_{key}"] = float(np.mean(values)) if values else None
    return summary


def summarise_evaluations(
    reports: Sequence[dict[str, Any]], names: Sequence[str] | None = None
) -> dict[str, dict[str, float | int | None]]:
    """Per class, over ``tomosim evaluate`` reports of several tomograms.

    Each score's mean, s.d. and count (``dice``, ``dice_sd``, ``dice_n``, ... for ``dice``,
    ``iou``, ``precision``, ``recall``, ``cl_dice``) are taken over the tomograms that contain the
    class; a tomogram without it scores no Dice for it (any stray voxel would give 0): it counts
    under ``absent_in`` and its predicted voxels under ``absent_predicted_voxels``.
    ``pooled_dice`` is the Dice of all voxels together; ``true_voxels`` their count.

    Parameters
    ----------
    reports
        The JSON reports of ``tomosim evaluate`` (a ``classes`` list of per-class scores).
    names
        Classes to summarise, in this order; default those of the first report.
    """
    if names is None:
        names = [c["name"] for c in reports[0]["classes"]] if reports else []
    table: dict[str, dict[str, float | int | None]] = {}
    for name in names:
        every = [c for r in reports for c in r["classes"] if c["name"] == name]
        rows = [c for c in every if c["true_voxels"] > 0]
        entry: dict[str, float | int | None] = {}
        for key in ("dice", "iou", "precision", "recall", "cl_dice"):
            values = [c[key] for c in rows if c[key] is not None]
            entry[key] = float(np.mean(values)) if values else None
            entry[f"{key}_sd"] = float(np.std(values)) if len(values) > 1 else None
            entry[f"{key}_n"] = len(values)
        overlap = sum(c["overlap_voxels"] for c in rows)
        total = sum(c["true_voxels"] + c["predicted_voxels"] for c in rows)
        entry["pooled_dice"] = 2.0 * overlap / total if total else None
        entry["true_voxels"] = sum(c["true_voxels"] for c in rows)
        entry["absent_in"] = len(every) - len(rows)
        entry["absent_predicted_voxels"] = sum(
            c["predicted_voxels"] for c in every if c["true_voxels"] == 0)
        table[name] = entry
    return table
