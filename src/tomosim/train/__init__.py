"""Segmentation networks trained on simulated tomograms (extra ``tomosim[train]``: torch, monai).

A 2.5D U-Net reads ``slices`` adjacent z-slices as channels and scores the centre slice
(:mod:`~tomosim.train.model`). :mod:`~tomosim.train.data` reads simulation folders, normalises and
samples class-balanced patches; :mod:`~tomosim.train.augmentation` augments them without moving
the missing wedge; :mod:`~tomosim.train.training` trains and fine-tunes;
:mod:`~tomosim.train.checkpoint` saves and loads models without unpickling code;
:mod:`~tomosim.train.inference` segments whole tomograms; :mod:`~tomosim.train.metrics` scores
segmentations; :mod:`~tomosim.train.picking` turns labels into particle lists;
:mod:`~tomosim.train.localisation` makes picking targets from particle lists and finds peaks;
:mod:`~tomosim.train.picking_network` picks with a network trained on them;
:mod:`~tomosim.train.picking_metrics` scores picks (precision, recall, F-beta).

The names below load their module on first use: :mod:`~tomosim.train.data`,
:mod:`~tomosim.train.metrics`, :mod:`~tomosim.train.picking`, :mod:`~tomosim.train.localisation`
and :mod:`~tomosim.train.picking_metrics` need no torch; the rest do.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "ModelCheckpoint": "checkpoint", "load_checkpoint": "checkpoint",
    "save_checkpoint": "checkpoint",
    "ClassTable": "data", "TrainingVolume": "data", "prepare_training_volume": "data",
    "read_class_table": "data", "read_labelled_tomogram": "data", "read_simulation_folder": "data",
    "resample_volume": "data", "robust_normalise": "data",
    "segment_tomogram": "inference",
    "cl_dice": "metrics", "segmentation_scores": "metrics",
    "build_network": "model",
    "pick_particles": "picking",
    "find_peaks": "localisation", "gaussian_heatmaps": "localisation",
    "read_picking_folder": "localisation", "sphere_labels": "localisation",
    "evaluate_pick_files": "picking_metrics", "score_picks": "picking_metrics",
    "pick_tomogram": "picking_network",
    "finetune_network": "training", "segmentation_loss": "training", "train_network": "training",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    """Import on first use, so that scoring and picking (numpy only) do not load torch."""
    if name not in _HOMES:
        raise AttributeError(f"module 'tomosim.train' has no attribute {name!r}")
    return getattr(importlib.import_module(f"tomosim.train.{_HOMES[name]}"), name)
