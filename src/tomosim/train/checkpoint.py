"""Model checkpoints: weights and everything needed to use them, with no pickled code.

A checkpoint is a plain dictionary of tensors, dicts, lists, strings and numbers written with
:func:`torch.save` and read back with ``torch.load(..., weights_only=True)``, which refuses any
pickled object other than those (a file whose unpickling would run code is rejected before it
runs). It stores the network weights, the network description, the class ids and names, the pixel
size the network works at, the intensity normalisation, the training config, the epoch and
iteration, and, for resuming, the optimiser state and the training history.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from tomosim.errors import TomosimError
from tomosim.io import atomic_path
from tomosim.labels import ClassTable, make_class_table
from tomosim.train.config import NetworkConfig
from tomosim.train.model import build_network

CHECKPOINT_FORMAT = "tomosim-model"
CHECKPOINT_VERSION = 1
MODEL_FILE = "model.pt"
RESUME_FILE = "last.pt"


@dataclass(frozen=True)
class ModelCheckpoint:
    """A trained network and its metadata.

    Attributes
    ----------
    network
        Architecture (see :func:`tomosim.train.model.build_network`).
    weights
        The network's ``state_dict`` (CPU tensors).
    classes
        Class ids and names, in network channel order (channel ``k`` scores ``classes.ids[k]``).
    pixel_size
        Å per voxel of the grid the network works on.
    normalisation
        How tomograms are normalised before entering the network.
    config
        The training config as a plain tree (``TrainConfig.model_dump(mode="json")``).
    epoch, iteration
        Completed epochs and optimiser steps.
    optimizer
        Optimiser ``state_dict`` for resuming; None in a weights-only model file.
    history
        One record per completed epoch (loss, validation Dice, ...).
    spectrum
        Radial amplitude spectrum of the normalised training tomograms
        (:meth:`tomosim.spectrum.RadialSpectrum.as_dict`), for ``segment --match-spectrum``;
        None for models trained before it was stored.
    """

    network: NetworkConfig
    weights: dict[str, torch.Tensor]
    classes: ClassTable
    pixel_size: float
    normalisation: dict[str, Any]
    config: dict[str, Any]
    epoch: int = 0
    iteration: int = 0
    optimizer: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    spectrum: dict[str, Any] | None = None

    @property
    def slices(self) -> int:
        """Adjacent z-slices the network reads."""
        return self.network.slices


def _to_tree(checkpoint: ModelCheckpoint, *, with_optimizer: bool) -> dict[str, Any]:
    return {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "network": checkpoint.network.model_dump(mode="json"),
        "weights": {k: v.detach().cpu().clone() for k, v in checkpoint.weights.items()},
        "class_ids": list(checkpoint.classes.ids),
        "class_names": list(checkpoint.classes.names),
        "class_colours": list(checkpoint.classes.colours),
        "pixel_size": float(checkpoint.pixel_size),
        "normalisation": dict(checkpoint.normalisation),
        "config": checkpoint.config,
        "epoch": int(checkpoint.epoch),
        "iteration": int(checkpoint.iteration),
        "optimizer": checkpoint.optimizer if with_optimizer else None,
        "history": list(checkpoint.history) if with_optimizer else [],
        "training_spectrum": checkpoint.spectrum,
    }


def save_checkpoint(
    path: str | os.PathLike[str], checkpoint: ModelCheckpoint, *, with_optimizer: bool = True
) -> None:
    """Write ``checkpoint`` atomically; ``with_optimizer=False`` drops optimiser and history.

    The same checkpoint gives the same bytes (the archive is named ``archive`` whatever the path).
    """
    tree = _to_tree(checkpoint, with_optimizer=with_optimizer)
    buffer = io.BytesIO()  # a buffer, not the temporary path: torch names the archive after it
    torch.save(tree, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())


DEFAULT_MODEL = "default"
"""Model name of the pretrained model shipped in the package (``tomosim segment default``)."""


def default_model_path() -> Path:
    """Path of the pretrained default model in the installed package (may be absent)."""
    return Path(str(resources.files("tomosim").joinpath("data/models/default.pt")))


def resolve_model_path(path: str | os.PathLike[str]) -> Path:
    """Find a model: a file, the ``model.pt`` in a folder, or ``default`` (the shipped one).

    ``default`` means the package's pretrained model unless a file or folder of that name
    exists in the current directory.
    """
    p = Path(path)
    if str(path) == DEFAULT_MODEL and not p.exists():
        p = default_model_path()
        if not p.is_file():
            raise TomosimError(f"the pretrained default model is not installed: {p}")
        return p
    if p.is_dir():
        p = p / MODEL_FILE
    if not p.is_file():
        raise TomosimError(f"model file not found: {p}")
    return p


def load_checkpoint(path: str | os.PathLike[str]) -> ModelCheckpoint:
    """Read a checkpoint written by :func:`save_checkpoint`, never executing pickled code.

    Parameters
    ----------
    path
        A ``.pt`` file or a training output folder (its ``model.pt``).

    Raises
    ------
    TomosimError
        Missing file, a file torch cannot read with ``weights_only=True`` (for example a pickle
        that would run code), or a file that lacks the tomosim checkpoint fields.
    """
    p = resolve_model_path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure means "not a safe tomosim model"
        kind = type(exc).__name__
        raise TomosimError(
            f"not a tomosim model (refused or unreadable, {kind}; only weights-only files "
            f"load): {p}"
        ) from None
    if not isinstance(tree, dict) or tree.get("format") != CHECKPOINT_FORMAT:
        raise TomosimError(f"not a tomosim model checkpoint (no '{CHECKPOINT_FORMAT}' marker): {p}")
    if tree.get("format_version") != CHECKPOINT_VERSION:
        raise TomosimError(
            f"unsupported tomosim checkpoint version {tree.get('format_version')!r}: {p}"
        )
    try:
        weights = tree["weights"]
        if not isinstance(weights, dict) or not all(
            isinstance(v, torch.Tensor) for v in weights.values()
        ):
            raise TypeError("weights")
        return ModelCheckpoint(
            network=NetworkConfig.model_validate(tree["network"]),
            weights=weights,
            classes=make_class_table(
                tree["class_ids"], tree["class_names"], tree.get("class_colours")
            ),
            pixel_size=float(tree["pixel_size"]),
            normalisation=dict(tree["normalisation"]),
            config=dict(tree["config"]),
            epoch=int(tree["epoch"]),
            iteration=int(tree["iteration"]),
            optimizer=tree.get("optimizer"),
            history=list(tree.get("history") or []),
            spectrum=tree.get("training_spectrum"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise TomosimError(
            f"damaged tomosim checkpoint (bad or missing field {exc}): {p}"
        ) from None


def network_from_checkpoint(checkpoint: ModelCheckpoint) -> torch.nn.Module:
    """Build the network and load its weights (evaluation mode).

    Raises
    ------
    TomosimError
        If the weights do not fit the stored architecture.
    """
    network = build_network(checkpoint.network, classes=len(checkpoint.classes.ids))
    try:
        network.load_state_dict(checkpoint.weights, strict=True)
    except RuntimeError:
        raise TomosimError("checkpoint weights do not match its network description") from None
    return network.eval()
