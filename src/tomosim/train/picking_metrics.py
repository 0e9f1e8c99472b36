"""Scores of particle picks against the true particle list: precision, recall and F-beta.

A predicted particle is a true positive when it lies within ``distance_fraction x radius`` of a
true particle of the same class in the same tomogram (distance <= the limit: a pick exactly at the
limit counts, as in the challenge metric below). Distances are in Å.

Matching (``matching``):

- ``"hungarian"`` (default): one-to-one, per class and tomogram. Among all assignments of picks to
  true particles within the limit, the one with the most pairs (then the smallest summed distance)
  is taken with :func:`scipy.optimize.linear_sum_assignment`. TP = pairs, FP = picks - TP,
  FN = true particles - TP. A second pick near an already matched particle is a false positive.
- ``"czii"``: the counting of the CZII cryo-ET object identification challenge (Kaggle, 2024-25;
  its metric queries a KD-tree for every pick's true particles within the limit): TP = number of
  distinct true particles with at least one pick within the limit, FP = picks - TP,
  FN = true particles - TP. It equals ``"hungarian"`` unless one pick is within the limit of two
  true particles (then TP can exceed the number of picks and FP be negative, as in the challenge).

Counts are summed over tomograms per class, then for each class
precision = TP / (TP + FP), recall = TP / (TP + FN) and
``F_beta = (1 + beta^2) TP / ((1 + beta^2) TP + beta^2 FN + FP)``
(the same as ``(1 + beta^2) P R / (beta^2 P + R)`` where that is defined, and 0 when TP = 0 and
anything was missed or predicted). A score whose denominator is zero is None (JSON null).
The weighted F-beta is ``sum_c w_c F_c / sum_c w_c`` over the classes that have true particles
(classes only predicted are reported but not averaged, as in the challenge).

The challenge's values (from its published metric): ``beta = 4``, ``distance_fraction = 0.5``,
radii :data:`CZII_RADII` and weights :data:`CZII_WEIGHTS`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from scipy.spatial import cKDTree

from tomosim.errors import TomosimError

CZII_RADII: dict[str, float] = {
    "apo-ferritin": 60.0,
    "beta-amylase": 65.0,
    "beta-galactosidase": 90.0,
    "ribosome": 150.0,
    "thyroglobulin": 130.0,
    "virus-like-particle": 135.0,
}
"""Particle radii (Å) of the CZII challenge classes, as used by its metric."""

CZII_WEIGHTS: dict[str, float] = {
    "apo-ferritin": 1.0,
    "beta-amylase": 0.0,
    "beta-galactosidase": 2.0,
    "ribosome": 1.0,
    "thyroglobulin": 2.0,
    "virus-like-particle": 1.0,
}
"""Class weights of the CZII challenge's F-beta (beta-amylase was not scored)."""

Matching = Literal["hungarian", "czii"]

CENTRED_COLUMNS = (
    "rlnCenteredCoordinateXAngst", "rlnCenteredCoordinateYAngst", "rlnCenteredCoordinateZAngst",
)
PIXEL_COLUMNS = ("rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ")


# --------------------------------------------------------------------------------------------
# Matching two point sets
# --------------------------------------------------------------------------------------------


def match_points(
    truth: np.ndarray, predicted: np.ndarray, *, max_distance: float
) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one matching of points within ``max_distance`` (most pairs, then least distance).

    Parameters
    ----------
    truth, predicted
        ``(n, 3)`` and ``(m, 3)`` positions, Å (any consistent unit).
    max_distance
        Pairs farther apart than this are never matched; a pair exactly this far apart is.

    Returns
    -------
    truth_index, predicted_index
        Integer arrays of equal length: ``truth[truth_index[k]]`` is matched with
        ``predicted[predicted_index[k]]``; sorted by ``truth_index``.
    """
    truth = np.asarray(truth, np.float64).reshape(-1, 3)
    predicted = np.asarray(predicted, np.float64).reshape(-1, 3)
    empty = np.zeros(0, np.int64)
    if not len(truth) or not len(predicted):
        return empty, empty
    pairs = cKDTree(truth).sparse_distance_matrix(
        cKDTree(predicted), max_distance, output_type="ndarray"
    )
    if not len(pairs):
        return empty, empty
    rows, row_index = np.unique(pairs["i"], return_inverse=True)
    cols, col_index = np.unique(pairs["j"], return_inverse=True)
    # An impossible pair costs more than any set of possible ones, so the optimum first has the
    # most possible pairs, then the least summed distance.
    impossible = (float(max_distance) + 1.0) * (min(len(rows), len(cols)) + 1)
    cost = np.full((len(rows), len(cols)), impossible)
    cost[row_index, col_index] = pairs["v"]
    chosen_rows, chosen_cols = linear_sum_assignment(cost)
    keep = cost[chosen_rows, chosen_cols] < impossible
    truth_index = rows[chosen_rows[keep]].astype(np.int64)
    predicted_index = cols[chosen_cols[keep]].astype(np.int64)
    order = np.argsort(truth_index, kind="stable")
    return truth_index[order], predicted_index[order]


def count_matches(
    truth: np.ndarray, predicted: np.ndarray, *, max_distance: float, matching: Matching
) -> tuple[int, int, int]:
    """``(TP, FP, FN)`` of one class in one tomogram (see the module docstring for ``matching``)."""
    truth = np.asarray(truth, np.float64).reshape(-1, 3)
    predicted = np.asarray(predicted, np.float64).reshape(-1, 3)
    n, m = len(truth), len(predicted)
    if matching == "hungarian":
        tp = len(match_points(truth, predicted, max_distance=max_distance)[0])
    elif matching == "czii":
        if n == 0 or m == 0:
            tp = 0
        else:
            near = cKDTree(predicted).query_ball_tree(cKDTree(truth), r=max_distance)
            tp = len({i for hits in near for i in hits})
    else:
        raise TomosimError(f"matching must be 'hungarian' or 'czii', got {matching!r}")
    return tp, m - tp, n - tp


# --------------------------------------------------------------------------------------------
# Scores
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassPickScores:
    """Picking scores of one class, summed over tomograms; None where undefined.

    Attributes
    ----------
    name
        Class name.
    radius
        Particle radius, Å; the matching limit is ``distance_fraction * radius``.
    weight
        Weight in the weighted F-beta.
    true_particles, predicted_particles
        Counts.
    true_positives, false_positives, false_negatives
        TP, FP, FN.
    precision, recall, fbeta
        Scores (F-beta with the evaluation's beta).
    """

    name: str
    radius: float
    weight: float
    true_particles: int
    predicted_particles: int
    true_positives: int
    false_positives: int
    false_negatives: int
    precision: float | None
    recall: float | None
    fbeta: float | None

    def as_dict(self) -> dict[str, object]:
        """Plain dictionary (for JSON)."""
        return asdict(self)


@dataclass(frozen=True)
class PickEvaluation:
    """Scores of a particle list against the truth.

    Attributes
    ----------
    classes
        One entry per class found in the truth or the prediction, sorted by name.
    weighted_fbeta
        ``sum w_c F_c / sum w_c`` over classes with true particles; None if their weights sum to 0.
    beta, distance_fraction, matching
        Settings used.
    tomograms
        Tomogram names scored.
    """

    classes: tuple[ClassPickScores, ...]
    weighted_fbeta: float | None
    beta: float
    distance_fraction: float
    matching: str
    tomograms: tuple[str, ...]

    def as_dict(self) -> dict[str, object]:
        """Plain dictionary (for JSON)."""
        return {
            "weighted_fbeta": self.weighted_fbeta,
            "beta": self.beta,
            "distance_fraction": self.distance_fraction,
            "matching": self.matching,
            "tomograms": list(self.tomograms),
            "classes": [c.as_dict() for c in self.classes],
        }


def fbeta_from_counts(tp: int, fp: int, fn: int, *, beta: float) -> float | None:
    """``(1 + b^2) TP / ((1 + b^2) TP + b^2 FN + FP)``; None when nothing is true or predicted."""
    b2 = float(beta) ** 2
    denominator = (1.0 + b2) * tp + b2 * fn + fp
    return (1.0 + b2) * tp / denominator if denominator > 0 else None


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator > 0 else None


def score_picks(
    truth: pd.DataFrame,
    predicted: pd.DataFrame,
    *,
    radii: Mapping[str, float],
    distance_fraction: float = 0.5,
    beta: float = 4.0,
    weights: Mapping[str, float] | None = None,
    matching: Matching = "hungarian",
) -> PickEvaluation:
    """Per-class precision, recall and F-beta of ``predicted`` particles against ``truth``.

    Parameters
    ----------
    truth, predicted
        Tables with columns ``tomogram`` (name), ``class_name``, and ``x``, ``y``, ``z`` (Å, one
        frame for both), as made by :func:`read_pick_table`.
    radii
        Class name -> particle radius, Å (every class in either table needs one, > 0).
    distance_fraction
        A pick matches a true particle within ``distance_fraction * radius`` (inclusive).
    beta
        F-beta's beta (4 in the CZII challenge: recall weighs 16 times precision).
    weights
        Class name -> weight of the weighted F-beta (default 1 for every class; classes not
        listed get 1).
    matching
        ``"hungarian"`` (one-to-one) or ``"czii"`` (the challenge's counting).

    Returns
    -------
    PickEvaluation

    Raises
    ------
    TomosimError
        A prediction for a tomogram the truth does not list, a class without a radius, a radius,
        fraction or beta that is not positive, a negative weight.
    """
    if not distance_fraction > 0 or not np.isfinite(distance_fraction):
        raise TomosimError(f"the distance fraction must be > 0, got {distance_fraction}")
    if not beta > 0 or not np.isfinite(beta):
        raise TomosimError(f"beta must be > 0, got {beta}")
    if matching not in ("hungarian", "czii"):
        raise TomosimError(f"matching must be 'hungarian' or 'czii', got {matching!r}")
    truth_tomograms = sorted(set(truth["tomogram"]))
    unknown = sorted(set(predicted["tomogram"]) - set(truth_tomograms))
    if unknown:
        raise TomosimError(
            f"the prediction names tomogram(s) {unknown} that the truth does not list "
            f"(truth tomograms {truth_tomograms})"
        )
    names = sorted(set(truth["class_name"]) | set(predicted["class_name"]))
    for name in names:
        if name not in radii:
            raise TomosimError(f"no radius for class {name!r}; give one (--radius {name}=Å)")
        if not radii[name] > 0 or not np.isfinite(radii[name]):
            raise TomosimError(f"the radius of class {name!r} must be > 0 Å, got {radii[name]}")
    weights = dict(weights or {})
    for name, weight in weights.items():
        if not weight >= 0:
            raise TomosimError(f"the weight of class {name!r} must be >= 0, got {weight}")
    results = []
    for name in names:
        limit = distance_fraction * float(radii[name])
        tp = fp = fn = 0
        for tomogram in truth_tomograms:
            true_rows = truth[(truth["tomogram"] == tomogram) & (truth["class_name"] == name)]
            pred_rows = predicted[
                (predicted["tomogram"] == tomogram) & (predicted["class_name"] == name)
            ]
            counts = count_matches(
                true_rows[["x", "y", "z"]].to_numpy(np.float64),
                pred_rows[["x", "y", "z"]].to_numpy(np.float64),
                max_distance=limit, matching=matching,
            )
            tp, fp, fn = tp + counts[0], fp + counts[1], fn + counts[2]
        results.append(ClassPickScores(
            name=name, radius=float(radii[name]), weight=float(weights.get(name, 1.0)),
            true_particles=tp + fn, predicted_particles=tp + fp,
            true_positives=tp, false_positives=fp, false_negatives=fn,
            precision=_ratio(tp, tp + fp), recall=_ratio(tp, tp + fn),
            fbeta=fbeta_from_counts(tp, fp, fn, beta=beta),
        ))
    scored = [c for c in results if c.true_particles > 0]
    total = sum(c.weight for c in scored)
    weighted = (
        sum(c.weight * (c.fbeta or 0.0) for c in scored) / total if total > 0 else None
    )
    return PickEvaluation(
        classes=tuple(results), weighted_fbeta=weighted, beta=float(beta),
        distance_fraction=float(distance_fraction), matching=matching,
        tomograms=tuple(str(t) for t in truth_tomograms),
    )


# --------------------------------------------------------------------------------------------
# Reading particle STAR files
# --------------------------------------------------------------------------------------------


def read_pick_table(
    path: str | os.PathLike[str],
    *,
    coordinates: Literal["centred", "pixels"],
    pixel_size: float | None = None,
    keep_background: bool = False,
) -> pd.DataFrame:
    """Read a particle STAR file into ``tomogram, class_name, x, y, z`` (Å) columns.

    Class names come from ``tomosimClassName`` if present, else ``rlnClassNumber`` (as text),
    else every row is class ``particle``. Tomograms come from ``rlnTomoName`` (``TS_01`` if
    absent, as tomosim writes by default). Unless ``keep_background``, rows of class 0
    (``background``: distractors) and filament subunits (``rlnHelicalTubeID`` > 0) are dropped:
    they are not particles to pick.

    Parameters
    ----------
    path
        STAR file; its ``particles`` block (or its only block).
    coordinates
        ``"centred"``: ``rlnCenteredCoordinateX/Y/ZAngst`` (Å from the tomogram centre, RELION 5);
        ``"pixels"``: ``rlnCoordinateX/Y/Z`` times ``pixel_size``.
    pixel_size
        Å per pixel, needed for ``"pixels"``.

    Raises
    ------
    TomosimError
        A missing or unreadable file, no particle table, missing coordinate columns,
        non-numeric coordinates.
    """
    import starfile

    p = Path(path)
    if not p.is_file():
        raise TomosimError(f"particle file not found: {p}")
    try:
        blocks = starfile.read(p, always_dict=True)
    except Exception as exc:  # noqa: BLE001 - any parser failure means "not a STAR table"
        raise TomosimError(f"not a readable STAR file ({type(exc).__name__}): {p}") from None
    tables = {k: v for k, v in blocks.items() if isinstance(v, pd.DataFrame)}
    if not tables:
        raise TomosimError(f"no particle table (loop_) in STAR file: {p}")
    table = tables["particles"] if "particles" in tables else next(iter(tables.values()))
    columns = CENTRED_COLUMNS if coordinates == "centred" else PIXEL_COLUMNS
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise TomosimError(f"STAR file has no coordinates ({', '.join(missing)} missing): {p}")
    try:
        xyz = table[list(columns)].to_numpy(np.float64)
    except (TypeError, ValueError):
        raise TomosimError(f"STAR file has non-numeric coordinates: {p}") from None
    if not np.all(np.isfinite(xyz)):
        raise TomosimError(f"STAR file has non-finite coordinates: {p}")
    if coordinates == "pixels":
        if pixel_size is None or not pixel_size > 0:
            raise TomosimError(f"pixel coordinates need a pixel size > 0 Å: {p}")
        xyz = xyz * float(pixel_size)
    if "tomosimClassName" in table.columns:
        names = table["tomosimClassName"].astype(str).to_numpy()
    elif "rlnClassNumber" in table.columns:
        names = table["rlnClassNumber"].astype(int).astype(str).to_numpy()
    else:
        names = np.full(len(table), "particle", dtype=object)
    tomograms = (
        table["rlnTomoName"].astype(str).to_numpy()
        if "rlnTomoName" in table.columns else np.full(len(table), "TS_01", dtype=object)
    )
    keep = np.ones(len(table), bool)
    if not keep_background:
        if "rlnClassNumber" in table.columns:
            keep &= table["rlnClassNumber"].astype(int).to_numpy() != 0
        if "rlnHelicalTubeID" in table.columns:
            keep &= table["rlnHelicalTubeID"].astype(int).to_numpy() <= 0
    return pd.DataFrame({
        "tomogram": tomograms[keep], "class_name": names[keep],
        "x": xyz[keep, 0], "y": xyz[keep, 1], "z": xyz[keep, 2],
    })


def star_coordinate_kind(path: str | os.PathLike[str]) -> set[str]:
    """Which coordinate sets a STAR file has: a subset of ``{"centred", "pixels"}``."""
    import starfile

    try:
        blocks = starfile.read(path, always_dict=True)
    except Exception:  # noqa: BLE001 - reported by read_pick_table
        return set()
    kinds = set()
    for table in blocks.values():
        if isinstance(table, pd.DataFrame):
            if all(c in table.columns for c in CENTRED_COLUMNS):
                kinds.add("centred")
            if all(c in table.columns for c in PIXEL_COLUMNS):
                kinds.add("pixels")
    return kinds


def evaluate_pick_files(
    truth_path: str | os.PathLike[str],
    predicted_path: str | os.PathLike[str],
    *,
    radii: Mapping[str, float] | None = None,
    distance_fraction: float = 0.5,
    beta: float = 4.0,
    weights: Mapping[str, float] | None = None,
    matching: Matching = "hungarian",
    pixel_size: float | None = None,
) -> PickEvaluation:
    """Score two particle STAR files (see :func:`score_picks`).

    Positions are the RELION 5 centred Å coordinates when both files have them, else the pixel
    coordinates times ``pixel_size``. Radii default to :data:`CZII_RADII` for the challenge's
    class names; ``radii`` adds or overrides (Å).

    Raises
    ------
    TomosimError
        Files without coordinates in a common frame, and everything :func:`score_picks` refuses.
    """
    for p in (truth_path, predicted_path):
        if not Path(p).is_file():
            raise TomosimError(f"particle file not found: {p}")
    both = star_coordinate_kind(truth_path) & star_coordinate_kind(predicted_path)
    kind: Literal["centred", "pixels"]
    if "centred" in both:
        kind = "centred"
    elif "pixels" in both:
        kind = "pixels"
        if pixel_size is None:
            raise TomosimError(
                f"{truth_path} and {predicted_path} share only pixel coordinates "
                "(rlnCoordinateX/Y/Z): give the pixel size"
            )
    else:
        for p in (truth_path, predicted_path):
            if not star_coordinate_kind(p):
                read_pick_table(p, coordinates="centred")  # raises the precise error
        raise TomosimError(
            f"{truth_path} and {predicted_path} have no coordinate columns in common "
            "(rlnCenteredCoordinate*Angst or rlnCoordinate*)"
        )
    truth = read_pick_table(truth_path, coordinates=kind, pixel_size=pixel_size)
    predicted = read_pick_table(predicted_path, coordinates=kind, pixel_size=pixel_size)
    table = dict(CZII_RADII)
    table.update(radii or {})
    return score_picks(
        truth, predicted, radii=table, distance_fraction=distance_fraction, beta=beta,
        weights=weights, matching=matching,
    )


def parse_name_values(items: Sequence[str], *, option: str) -> dict[str, float]:
    """Parse ``NAME=VALUE`` strings (command-line options) into a dictionary of floats."""
    out: dict[str, float] = {}
    for item in items:
        name, sep, value = item.rpartition("=")
        try:
            number = float(value)
        except ValueError:
            number = float("nan")
        if not sep or not name.strip() or not np.isfinite(number):
            raise TomosimError(f"{option} must be NAME=NUMBER, got {item!r}")
        out[name.strip()] = number
    return out
