"""Segmentation networks trained on simulated tomograms (extra ``tomosim[train]``: torch, monai).

A 2.5D U-Net reads ``slices`` adjacent z-slices as channels and scores the centre slice
(:mod:`~tomosim.train.model`). :mod:`~tomosim.train.data` reads simulation folders, normalises and
samples class-balanced patches; :mod:`~tomosim.train.augmentation` augments them without moving
the missing wedge; :mod:`~tomosim.train.training` trains and fine-tunes;
:mod:`~tomosim.train.checkpoint` saves and loads models without unpickling code;
:mod:`~tomosim.train.inference` segments whole tomograms; :mod:`~tomosim.train.metrics` scores
segmentations; :mod:`~tomosim.train.picking` turns labels into particle lists.

Importing this package imports torch; the command line imports it only inside the commands.
"""

from __future__ import annotations

from tomosim.train.checkpoint import ModelCheckpoint, load_checkpoint, save_checkpoint
from tomosim.train.data import (
    ClassTable,
    TrainingVolume,
    prepare_training_volume,
    read_class_table,
    read_labelled_tomogram,
    read_simulation_folder,
    resample_volume,
    robust_normalise,
)
from tomosim.train.inference import segment_tomogram
from tomosim.train.metrics import cl_dice, segmentation_scores
from tomosim.train.model import build_network
from tomosim.train.picking import pick_particles, write_particles_star
from tomosim.train.training import finetune_network, segmentation_loss, train_network

__all__ = [
    "ClassTable",
    "ModelCheckpoint",
    "TrainingVolume",
    "build_network",
    "cl_dice",
    "finetune_network",
    "load_checkpoint",
    "pick_particles",
    "prepare_training_volume",
    "read_class_table",
    "read_labelled_tomogram",
    "read_simulation_folder",
    "resample_volume",
    "robust_normalise",
    "save_checkpoint",
    "segment_tomogram",
    "segmentation_loss",
    "segmentation_scores",
    "train_network",
    "write_particles_star",
]
