"""Training and fine-tuning the 2.5D U-Net.

The loss is cross-entropy plus ``dice_weight`` times a soft Dice loss (Milletari et al. 2016,
3DV), both over labelled voxels only: label 255 means "not labelled" and gets no loss and no
gradient. Patches are class-balanced (:func:`tomosim.train.data.sample_patches`) and augmented
without moving the missing wedge (:mod:`tomosim.train.augmentation`).

Reproducibility: every random draw of iteration ``i`` comes from a generator seeded with
``(seed, i)`` and the learning rate is a function of ``i`` alone, so training is deterministic
on the CPU for a given seed and thread count, and a run resumed from its last checkpoint ends
with the same weights as an uninterrupted one.

Outputs in the model folder: ``model.pt`` (weights and metadata), ``last.pt`` (plus optimiser
state and history, for ``--resume``), ``config.resolved.yaml``, ``classes.csv``, and at the end
``metrics.json`` and ``training_curve.png``. All are rewritten atomically after every epoch.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from tomosim.dataset import checked_seed, draw_phantom
from tomosim.errors import TomosimError
from tomosim.io import write_text
from tomosim.labels import IGNORE_LABEL, ClassTable, write_class_table
from tomosim.train.augmentation import augment_batch
from tomosim.train.checkpoint import (
    MODEL_FILE,
    RESUME_FILE,
    ModelCheckpoint,
    load_checkpoint,
    network_from_checkpoint,
    save_checkpoint,
)
from tomosim.train.config import TrainConfig, dump_train_config
from tomosim.train.data import (
    NORMALISATION,
    PatchSource,
    TrainingVolume,
    sample_patches,
    split_sources,
)
from tomosim.train.device import autocast, resolve_device
from tomosim.train.metrics import dice
from tomosim.train.model import build_network
from tomosim.train.on_the_fly import PhantomPool, on_the_fly_phantom_count, stream_class_table
from tomosim.train.report import write_training_report
from tomosim.train.spectrum_matching import (
    match_training_volumes,
    target_spectrum,
    training_spectrum,
)

EpochCallback = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class TrainingResult:
    """What a training run produced.

    Attributes
    ----------
    checkpoint
        The final model (with optimiser state).
    output_dir
        Folder holding model.pt, last.pt, metrics.json, training_curve.png.
    """

    checkpoint: ModelCheckpoint
    output_dir: Path

    @property
    def history(self) -> list[dict[str, Any]]:
        """One record per epoch: loss, validation loss and Dice, learning rate."""
        return self.checkpoint.history


# --------------------------------------------------------------------------------------------
# Loss and scores
# --------------------------------------------------------------------------------------------


def segmentation_loss(
    logits: torch.Tensor, target: torch.Tensor, *, dice_weight: float = 1.0
) -> torch.Tensor:
    """Cross-entropy + ``dice_weight`` x soft Dice loss over labelled voxels.

    Parameters
    ----------
    logits
        ``(batch, classes, y, x)`` raw scores.
    target
        ``(batch, y, x)`` integer class channels; 255 = not labelled (no loss, no gradient).
    dice_weight
        Weight of the soft Dice term, ``1 - mean_c 2 Σ p t / (Σ p + Σ t)`` over the classes
        present in the labelled part of the batch.

    Returns
    -------
    torch.Tensor
        Scalar loss; 0 (with a zero gradient) when nothing in the batch is labelled.
    """
    target = target.long()
    valid = target != IGNORE_LABEL
    if not bool(valid.any()):
        return logits.sum() * 0.0
    loss = F.cross_entropy(logits, target, ignore_index=IGNORE_LABEL)
    if dice_weight > 0:
        classes = logits.shape[1]
        mask = valid.unsqueeze(1).to(logits.dtype)
        probabilities = torch.softmax(logits, dim=1) * mask
        one_hot = F.one_hot(torch.where(valid, target, 0), classes).permute(0, 3, 1, 2)
        one_hot = one_hot.to(logits.dtype) * mask
        intersection = (probabilities * one_hot).sum(dim=(0, 2, 3))
        denominator = probabilities.sum(dim=(0, 2, 3)) + one_hot.sum(dim=(0, 2, 3))
        present = one_hot.sum(dim=(0, 2, 3)) > 0
        dice = (2.0 * intersection[present] + 1e-6) / (denominator[present] + 1e-6)
        loss = loss + dice_weight * (1.0 - dice.mean())
    return loss


def hard_dice(prediction: np.ndarray, truth: np.ndarray, *, classes: int) -> list[float | None]:
    """Dice per class channel over labelled voxels (truth != 255); None where both are empty."""
    valid = truth != IGNORE_LABEL
    return [dice((prediction == c) & valid, truth == c) for c in range(classes)]


def learning_rate_at(iteration: int, *, total: int, base: float, schedule: str) -> float:
    """Learning rate of step ``iteration`` (0-based) of ``total``: constant, or cosine to 0.01x."""
    if schedule == "constant" or total <= 1:
        return base
    fraction = min(1.0, iteration / (total - 1))
    return base * (0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * fraction)))


# --------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------


def _batch(
    training: Sequence[PatchSource],
    phantoms: Sequence[PatchSource],
    *,
    config: TrainConfig,
    phantom_fraction: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    slices = config.network.slices
    from_phantoms = int(round(config.batch_size * phantom_fraction)) if phantoms else 0
    parts = []
    if config.batch_size - from_phantoms:
        parts.append(
            sample_patches(
                training, count=config.batch_size - from_phantoms,
                patch_size=config.patch_size, slices=slices, rng=rng,
            )
        )
    if from_phantoms:
        parts.append(
            sample_patches(
                phantoms, count=from_phantoms, patch_size=config.patch_size, slices=slices, rng=rng
            )
        )
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return augment_batch(images, labels, config=config.augmentation, rng=rng)


def _validate(
    network: torch.nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    config: TrainConfig,
    classes: ClassTable,
    device: torch.device,
) -> dict[str, Any]:
    network.eval()
    predictions, losses = [], []
    with torch.no_grad():
        for start in range(0, images.shape[0], config.batch_size):
            inputs = torch.from_numpy(images[start : start + config.batch_size]).to(device)
            with autocast(device):
                logits = network(inputs).float()
            target = torch.from_numpy(labels[start : start + config.batch_size]).to(device)
            losses.append(float(segmentation_loss(logits, target, dice_weight=config.dice_weight)))
            predictions.append(logits.argmax(dim=1).cpu().numpy().astype(np.uint8))
    network.train()
    per_class = hard_dice(np.concatenate(predictions), labels, classes=len(classes.ids))
    foreground = [d for d in per_class[1:] if d is not None]
    return {
        "validation_loss": float(np.mean(losses)),
        "validation_dice": float(np.mean(foreground)) if foreground else None,
        "validation_dice_per_class": dict(zip(classes.names, per_class, strict=False)),
    }


def _train_step(
    network: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    rate: float,
    dice_weight: float,
    device: torch.device,
) -> float:
    """One optimiser step on a batch at learning rate ``rate``; returns the loss.

    On CUDA the forward pass runs under mixed precision (:func:`tomosim.train.device.autocast`)
    and ``scaler`` scales the loss where float16 needs it; on the CPU both are no-ops.
    """
    for group in optimizer.param_groups:
        group["lr"] = rate
    with autocast(device):
        logits = network(torch.from_numpy(images).to(device))
    loss = segmentation_loss(
        logits.float(), torch.from_numpy(labels).to(device), dice_weight=dice_weight
    )
    optimizer.zero_grad(set_to_none=True)
    if scaler.is_enabled():
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        optimizer.step()
    return float(loss.item())


def _epoch_checkpoint(
    network: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    config: TrainConfig,
    classes: ClassTable,
    pixel_size: float,
    epoch: int,
    history: Sequence[dict[str, Any]],
    spectrum: dict[str, Any] | None,
) -> ModelCheckpoint:
    """Return the checkpoint at the end of ``epoch`` (1-based).

    It holds the weights (on the CPU), the optimiser state, the history and the training data's
    radial amplitude spectrum.
    """
    return ModelCheckpoint(
        network=config.network,
        weights={k: v.detach().cpu().clone() for k, v in network.state_dict().items()},
        classes=classes,
        pixel_size=pixel_size,
        normalisation=dict(NORMALISATION),
        config=config.model_dump(mode="json"),
        epoch=epoch,
        iteration=epoch * config.iterations_per_epoch,
        optimizer=optimizer.state_dict(),
        history=list(history),
        spectrum=spectrum,
    )


def _fit(
    network: torch.nn.Module,
    *,
    classes: ClassTable,
    pixel_size: float,
    config: TrainConfig,
    output_dir: Path,
    training: Sequence[PatchSource] | Callable[[int], Sequence[PatchSource]],
    validation: Sequence[PatchSource],
    phantoms: Sequence[PatchSource],
    learning_rate: float,
    epochs: int,
    phantom_fraction: float,
    resume_from: ModelCheckpoint | None,
    progress: bool,
    on_epoch_end: EpochCallback | None,
    title: str,
    record_extra: Callable[[], dict[str, Any]] | None = None,
    spectrum: dict[str, Any] | None = None,
    device: str = "cpu",
) -> TrainingResult:
    """The training loop shared by every entry point.

    ``training`` is a fixed list of patch sources or a function of the iteration number that
    returns the sources of that iteration (:class:`tomosim.train.on_the_fly.PhantomPool`).
    ``record_extra()`` adds fields to each epoch's record; ``spectrum`` (the training data's
    radial amplitude spectrum) is stored in every checkpoint.
    """
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    target = resolve_device(device)
    network = network.to(target)
    optimizer = torch.optim.AdamW(
        network.parameters(), lr=learning_rate, weight_decay=config.weight_decay
    )
    # float16 autocast needs loss scaling; bfloat16 and the CPU do not
    scaler = torch.amp.GradScaler(
        "cuda", enabled=target.type == "cuda" and not torch.cuda.is_bf16_supported()
    )
    history: list[dict[str, Any]] = []
    start_epoch = 0
    if resume_from is not None:
        if resume_from.optimizer is None:
            raise TomosimError("the checkpoint to resume from has no optimiser state (use last.pt)")
        optimizer.load_state_dict(resume_from.optimizer)
        history = list(resume_from.history)
        start_epoch = resume_from.epoch
    per_epoch = config.iterations_per_epoch
    total = epochs * per_epoch
    validation_set = None
    if any(source.centres for source in validation):
        validation_set = sample_patches(
            validation, count=config.validation_patches, patch_size=config.patch_size,
            slices=config.network.slices, rng=np.random.default_rng([config.seed, 1]),
        )
    output_dir.mkdir(parents=True, exist_ok=True)
    write_text(output_dir / "config.resolved.yaml", dump_train_config(config))
    write_class_table(output_dir / "classes.csv", classes)

    checkpoint = resume_from
    columns = (
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"), TimeRemainingColumn(),
    )
    with torch.random.fork_rng(devices=[]), Progress(
        *columns, console=Console(stderr=True), disable=not progress, transient=False
    ) as bar:
        task = bar.add_task(title, total=total, completed=start_epoch * per_epoch, status="")
        network.train()
        for epoch in range(start_epoch, epochs):
            losses = []
            rate = learning_rate
            for step in range(per_epoch):
                iteration = epoch * per_epoch + step
                rng = np.random.default_rng([config.seed, 0, iteration])
                torch.manual_seed((config.seed * 1_000_003 + iteration) % 2**63)  # dropout
                sources = training(iteration) if callable(training) else training
                images, labels = _batch(
                    sources, phantoms, config=config, phantom_fraction=phantom_fraction, rng=rng
                )
                rate = learning_rate_at(
                    iteration, total=total, base=learning_rate, schedule=config.schedule
                )
                losses.append(
                    _train_step(
                        network, optimizer, scaler, images, labels, rate=rate,
                        dice_weight=config.dice_weight, device=target,
                    )
                )
                bar.update(task, advance=1, status=f"loss {np.mean(losses):.4f}")
            record: dict[str, Any] = {
                "epoch": epoch + 1,
                "iteration": (epoch + 1) * per_epoch,
                "loss": float(np.mean(losses)),
                "learning_rate": rate,
            }
            if record_extra is not None:
                record.update(record_extra())
            if validation_set is not None:
                record.update(_validate(
                    network, *validation_set, config=config, classes=classes, device=target
                ))
            history.append(record)
            dice = record.get("validation_dice")
            status = f"loss {record['loss']:.4f}"
            if dice is not None:
                status += f"  val Dice {dice:.3f}"
            bar.update(task, status=status)
            checkpoint = _epoch_checkpoint(
                network, optimizer, config=config, classes=classes, pixel_size=pixel_size,
                epoch=epoch + 1, history=history, spectrum=spectrum,
            )
            save_checkpoint(output_dir / RESUME_FILE, checkpoint)
            save_checkpoint(output_dir / MODEL_FILE, checkpoint, with_optimizer=False)
            if on_epoch_end is not None:
                on_epoch_end(record)
    assert checkpoint is not None
    write_training_report(output_dir, checkpoint)
    return TrainingResult(checkpoint=checkpoint, output_dir=output_dir)


# --------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------


def train_network(
    volumes: Sequence[TrainingVolume],
    *,
    classes: ClassTable,
    pixel_size: float,
    config: TrainConfig,
    output_dir: str | os.PathLike[str],
    resume: bool = False,
    progress: bool = False,
    on_epoch_end: EpochCallback | None = None,
    device: str = "cpu",
) -> TrainingResult:
    """Train a 2.5D U-Net on labelled tomograms.

    Parameters
    ----------
    volumes
        Training tomograms as the network sees them (see
        :func:`tomosim.train.data.prepare_training_volume`): at ``pixel_size``, normalised,
        labels as channels of ``classes``.
    classes
        The model's class table (channel ``k`` is ``classes.ids[k]``).
    pixel_size
        Å per voxel of ``volumes``; stored in the model so that inference resamples to it.
    config
        Training settings.
    output_dir
        Model folder (created).
    resume
        Continue from ``output_dir/last.pt`` up to ``config.epochs``.
    progress
        Show a rich progress bar with loss and validation Dice on stderr.

    Notes
    -----
    With ``config.spectrum_match``, each volume is first filtered to a random mixture of the
    targets' amplitude spectra (:mod:`tomosim.train.spectrum_matching`). The mean spectrum of
    the (matched) volumes is stored in the model for ``segment --match-spectrum``.
    on_epoch_end
        Called with each epoch's record after its checkpoint is written.

    Raises
    ------
    TomosimError
        Nothing to resume, or a resume whose classes, pixel size or network differ.
    """
    root = Path(output_dir)
    network, resume_from = _start_network(
        root, classes=classes, pixel_size=pixel_size, config=config, resume=resume
    )
    if config.spectrum_match:
        targets = [target_spectrum(t, pixel_size=pixel_size) for t in config.spectrum_match]
        volumes = match_training_volumes(
            volumes, targets, pixel_size=pixel_size, rng=np.random.default_rng([config.seed, 4])
        )
    measured = training_spectrum([v.image for v in volumes], pixel_size=pixel_size)
    spectrum = measured.as_dict() if measured is not None else None
    training, validation = split_sources(
        volumes, validation_fraction=config.validation_fraction,
        rng=np.random.default_rng([config.seed, 2]),
    )
    return _fit(
        network, classes=classes, pixel_size=pixel_size, config=config, output_dir=root,
        training=training, validation=validation, phantoms=(),
        learning_rate=config.learning_rate, epochs=config.epochs, phantom_fraction=0.0,
        resume_from=resume_from, progress=progress, on_epoch_end=on_epoch_end, title="train",
        spectrum=spectrum, device=device,
    )


def _start_network(
    root: Path, *, classes: ClassTable, pixel_size: float, config: TrainConfig, resume: bool
) -> tuple[torch.nn.Module, ModelCheckpoint | None]:
    """A fresh network (seeded by ``config.seed``) or the one in ``root/last.pt`` to resume."""
    resume_from = None
    if resume:
        if not (root / RESUME_FILE).is_file():
            raise TomosimError(f"nothing to resume: {root / RESUME_FILE} does not exist")
        resume_from = load_checkpoint(root / RESUME_FILE)
        if resume_from.classes.names != classes.names or resume_from.classes.ids != classes.ids:
            raise TomosimError(
                f"cannot resume: the data's classes {list(classes.names)} differ from the "
                f"checkpoint's {list(resume_from.classes.names)}"
            )
        if resume_from.network != config.network:
            raise TomosimError("cannot resume: the network settings differ from the checkpoint's")
        if abs(resume_from.pixel_size - pixel_size) > 1e-6 * pixel_size:
            raise TomosimError(
                f"cannot resume: pixel size {pixel_size} Å differs from the checkpoint's "
                f"{resume_from.pixel_size} Å"
            )
        network = network_from_checkpoint(resume_from)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            network = build_network(config.network, classes=len(classes.ids))
    return network, resume_from


PHANTOM_CONFIG_FILE = "phantom_config.yaml"
"""File in a model folder trained on the fly: the simulation config tree and stream seed."""


def train_on_the_fly(
    phantom_config: dict[str, Any],
    *,
    phantom_seed: int,
    config: TrainConfig,
    output_dir: str | os.PathLike[str],
    resume: bool = False,
    progress: bool = False,
    on_epoch_end: EpochCallback | None = None,
    simulate: Callable[..., object] | None = None,
    scratch_dir: str | os.PathLike[str] | None = None,
    device: str = "cpu",
) -> TrainingResult:
    """Train a 2.5D U-Net on phantoms simulated while it trains; no dataset is stored.

    Phantoms come from :class:`tomosim.train.on_the_fly.PhantomPool` (settings in
    ``config.on_the_fly``): ``validation_phantoms`` phantoms are simulated first and used only
    for validation; training patches come from a pool of ``pool_size`` phantoms that takes in a
    fresh one every ``refresh_every`` iterations, simulated by ``workers`` background processes.
    Phantom ``k`` is phantom ``k`` of ``tomosim dataset`` with the same config and seed. The
    result depends on the seeds only (not on worker count or timing). With
    ``config.spectrum_match`` every phantom (validation ones included) is filtered to a random
    mixture of the targets' spectra, drawn from the phantom's own generator.

    Parameters
    ----------
    phantom_config
        Simulation config tree (values may be distributions, :mod:`tomosim.randomize`).
    phantom_seed
        Seed of the phantom stream.
    config
        Training settings; ``config.pixel_size`` None = phantom 0's pixel size. Phantoms at
        another pixel size are resampled.
    output_dir
        Model folder; also gets ``phantom_config.yaml`` (the tree and seed).
    resume
        Continue from ``output_dir/last.pt`` on the same phantom stream (the tree and seed must
        equal those in ``phantom_config.yaml``).
    progress, on_epoch_end, device
        As for :func:`train_network`.
    simulate, scratch_dir
        Replace :func:`tomosim.pipeline.simulate` (must be importable by spawned processes);
        folder for the temporary phantom folders.

    Raises
    ------
    TomosimError
        A config that does not validate, a phantom that fails, a resume on another stream.
    """
    import yaml

    phantom_seed = checked_seed(phantom_seed, "phantom config seed")
    root = Path(output_dir)
    tree = {k: v for k, v in phantom_config.items() if k != "seed"}
    stored_text = yaml.safe_dump({"seed": phantom_seed, "config": tree}, sort_keys=False)
    if resume and (root / PHANTOM_CONFIG_FILE).is_file():
        if yaml.safe_load((root / PHANTOM_CONFIG_FILE).read_text()) != yaml.safe_load(stored_text):
            raise TomosimError(
                "cannot resume: the phantom config or seed differs from "
                f"{root / PHANTOM_CONFIG_FILE}"
            )
    settings = config.on_the_fly
    total = config.epochs * config.iterations_per_epoch
    classes = stream_class_table(tree, phantom_seed, on_the_fly_phantom_count(settings, total))
    if len(classes.ids) < 2:
        raise TomosimError("the on-the-fly phantom config labels no classes to train on")
    pixel_size = config.pixel_size
    if pixel_size is None:
        first, _ = draw_phantom(tree, phantom_seed, 0, source="on-the-fly config")
        pixel_size = float(first.sample.pixel_size)
    targets = [target_spectrum(t, pixel_size=pixel_size) for t in config.spectrum_match]
    network, resume_from = _start_network(
        root, classes=classes, pixel_size=pixel_size, config=config, resume=resume
    )
    start = 0 if resume_from is None else resume_from.iteration
    root.mkdir(parents=True, exist_ok=True)
    write_text(root / PHANTOM_CONFIG_FILE, stored_text)
    if progress:
        from rich.console import Console

        Console(stderr=True).print(
            f"simulating {settings.validation_phantoms} validation and {settings.pool_size} "
            f"training phantoms to start; {settings.workers} background worker(s) simulate the "
            f"next ones (one every {settings.refresh_every} iterations)"
        )
    with PhantomPool(
        tree, phantom_seed, classes=classes, pixel_size=pixel_size, settings=settings,
        start_iteration=start, spectrum_targets=targets, simulate=simulate,
        scratch_dir=scratch_dir,
    ) as pool:
        if not any(source.centres for source in pool.validation) and settings.validation_phantoms:
            raise TomosimError("the validation phantoms hold no labelled voxels")
        # the stream's spectrum, measured on its validation phantoms
        measured = training_spectrum(
            [source.volume.image for source in pool.validation], pixel_size=pixel_size
        )
        spectrum = measured.as_dict() if measured is not None else None
        return _fit(
            network, classes=classes, pixel_size=pixel_size, config=config, output_dir=root,
            training=pool.sources, validation=pool.validation, phantoms=(),
            learning_rate=config.learning_rate, epochs=config.epochs, phantom_fraction=0.0,
            resume_from=resume_from, progress=progress, on_epoch_end=on_epoch_end,
            title="train on the fly",
            record_extra=lambda: {
                "phantoms_seen": pool.phantoms_seen,
                "first_pool_wait_s": round(pool.first_fill_s, 3),
                "waited_for_phantoms_s": round(pool.waited_s, 3),
            },
            spectrum=spectrum, device=device,
        )


def finetune_network(
    model: ModelCheckpoint,
    volumes: Sequence[TrainingVolume],
    *,
    config: TrainConfig,
    output_dir: str | os.PathLike[str],
    phantoms: Sequence[TrainingVolume] = (),
    progress: bool = False,
    on_epoch_end: EpochCallback | None = None,
    device: str = "cpu",
) -> TrainingResult:
    """Continue training ``model`` on partly labelled tomograms (255 = not labelled).

    Uses ``config.finetune.learning_rate`` (lower than for training from scratch) and
    ``config.finetune.epochs``; with ``phantoms``, a share ``config.finetune.phantom_fraction``
    of every batch comes from simulated tomograms so the network keeps what it learnt there.
    The validation split holds out the last ``validation_fraction`` of each real tomogram's rows.

    Parameters
    ----------
    model
        The model to start from; its network, classes and pixel size are kept.
    volumes
        Real tomograms prepared at ``model.pixel_size`` with labels as channels of
        ``model.classes`` (255 where not labelled).
    config
        Settings; ``config.network`` must equal ``model.network``.
    output_dir
        Folder for the new model.
    phantoms
        Simulated tomograms prepared the same way.
    progress, on_epoch_end, device
        As for :func:`train_network`.
    """
    if config.network != model.network:
        raise TomosimError("finetune cannot change the network settings of the model")
    with torch.random.fork_rng(devices=[]):
        network = network_from_checkpoint(model).train()
    training, validation = split_sources(
        volumes, validation_fraction=config.validation_fraction,
        rng=np.random.default_rng([config.seed, 2]),
    )
    phantom_sources, _ = split_sources(
        phantoms, validation_fraction=0.0, rng=np.random.default_rng([config.seed, 3])
    )
    return _fit(
        network, classes=model.classes, pixel_size=model.pixel_size, config=config,
        output_dir=Path(output_dir), training=training, validation=validation,
        phantoms=phantom_sources, learning_rate=config.finetune.learning_rate,
        epochs=config.finetune.epochs, phantom_fraction=config.finetune.phantom_fraction,
        resume_from=None, progress=progress, on_epoch_end=on_epoch_end, title="finetune",
        spectrum=model.spectrum, device=device,
    )
