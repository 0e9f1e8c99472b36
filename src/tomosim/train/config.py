"""Training configuration: ``tomosim train`` / ``finetune``, a root of its own (not a simulation).

Like :mod:`tomosim.config`: one YAML file validated by pydantic, every section forbids unknown
keys and constrains every number; :func:`load_train_config` applies ``--set`` overrides and the
seed, :func:`dump_train_config` writes the resolved config saved next to every trained model.
"""

from __future__ import annotations

import os
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from tomosim.config import (
    CONFIG_VERSION,
    Section,
    apply_overrides,
    format_validation_error,
    read_config_tree,
)
from tomosim.errors import TomosimError


class NetworkConfig(Section):
    """The 2.5D U-Net (see :func:`tomosim.train.model.build_network`).

    ``slices`` adjacent z-slices enter as channels; the network scores the centre slice. Level
    ``i`` of the U-Net has ``base_channels * 2**i`` feature channels, ``depth`` levels below the
    top.
    """

    slices: int = Field(5, ge=1, le=31, description="adjacent z-slices fed as channels (odd)")
    depth: int = Field(3, ge=1, le=6, description="number of 2x downsamplings")
    base_channels: int = Field(16, ge=2, le=256, description="feature channels at full resolution")
    residual_units: int = Field(2, ge=0, le=4, description="convolutions per residual unit")
    norm: Literal["batch", "instance"] = Field(
        "batch", description="batch: the same statistics for patches and whole slices"
    )
    dropout: float = Field(0.0, ge=0, lt=1)

    @model_validator(mode="after")
    def _odd_slices(self) -> NetworkConfig:
        if self.slices % 2 == 0:
            raise ValueError(f"network.slices must be odd (a centre slice), got {self.slices}")
        return self


class AugmentationConfig(Section):
    """Augmentations that keep the missing wedge where it is (beam along z, tilt axis along y).

    Flips of x and y, 180° rotation about z and reversal of the slice order map the wedge onto
    itself; 90° rotations would move it and are not offered. Intensity changes are in units of the
    normalised tomogram (robust standard deviations); each is applied with ``probability``.
    """

    flip_x: bool = True
    flip_y: bool = True
    rotate_180: bool = True
    reverse_slices: bool = True
    intensity_scale: float = Field(0.2, ge=0, le=1, description="gain drawn from 1 ± this; 0 = off")
    intensity_shift: float = Field(0.2, ge=0, le=5, description="offset drawn from ± this; 0 = off")
    contrast: float = Field(0.2, ge=0, le=1, description="stretch about the patch mean, 1 ± this")
    noise_std: float = Field(0.2, ge=0, le=5, description="Gaussian noise s.d. up to this; 0 = off")
    blur_sigma_px: float = Field(1.0, ge=0, le=5, description="in-plane blur s.d. up to this, px")
    probability: float = Field(0.5, ge=0, le=1, description="chance of each intensity transform")


class FinetuneConfig(Section):
    """``tomosim finetune``: a short, gentle continuation on partly labelled real data."""

    learning_rate: float = Field(1e-4, gt=0, le=1)
    epochs: int = Field(10, ge=1, le=100_000)
    phantom_fraction: float = Field(
        0.5, ge=0, le=1, description="share of each batch drawn from --phantoms folders"
    )


class OnTheFlyConfig(Section):
    """``tomosim train --on-the-fly``: phantoms simulated in the background during training.

    Patches are drawn from a pool of ``pool_size`` phantoms; every ``refresh_every`` iterations
    the oldest is replaced by the next phantom of the stream, so a run of ``I`` iterations sees
    ``pool_size + (I - 1) // refresh_every`` training phantoms. ``validation_phantoms`` more,
    simulated first, are set aside for validation.
    """

    pool_size: int = Field(
        4, ge=1, le=10_000, description="phantoms patches are drawn from at a time"
    )
    refresh_every: int = Field(
        20, ge=1, le=10_000_000, description="iterations between replacing the oldest phantom"
    )
    workers: int = Field(1, ge=1, le=256, description="background processes simulating phantoms")
    threads: int = Field(1, ge=1, le=1024, description="numba threads of each background process")
    validation_phantoms: int = Field(1, ge=0, le=10_000, description="phantoms kept for validation")


class SpectrumTarget(Section):
    """A tomogram whose radial amplitude spectrum training phantoms are matched to.

    ``pixel_size`` (Å) is what the user states for it; the file's header must agree (1 %).
    """

    path: str = Field(min_length=1)
    pixel_size: float | None = Field(None, gt=0, le=100, description="stated Å per voxel")


ParticleRadius = Annotated[float, Field(gt=0, le=5000)]


class PickingConfig(Section):
    """Picking networks (``task: picking``): sphere targets and peak finding.

    The network is trained to segment a ball of ``target_fraction x radius`` around every particle
    centre of ``particles.star`` (:func:`tomosim.train.localisation.sphere_labels`); picking takes
    peaks of the smoothed class probability at least ``nms_fraction x radius`` apart and scoring
    at least ``threshold``.
    """

    radii: dict[str, ParticleRadius] = Field(
        default_factory=dict,
        description="particle radius per class name, Å; classes not listed: estimated from the "
        "first training phantom's labels (radius of a ball of the mean labelled volume per "
        "particle)",
    )
    target_fraction: float = Field(0.5, gt=0, le=1.5, description="target ball radius / radius")
    nms_fraction: float = Field(1.0, ge=0, le=4, description="peak suppression distance / radius")
    threshold: float = Field(0.3, gt=0, lt=1, description="smallest smoothed class probability")


class TrainConfig(Section):
    """Training a segmentation network on simulated tomograms: one YAML file."""

    version: Literal[1] = CONFIG_VERSION
    seed: int = Field(0, ge=0, le=2**63 - 1)
    pixel_size: float | None = Field(
        None, gt=0, le=100, description="Å per voxel seen by the network; None = first tomogram's"
    )
    network: NetworkConfig = NetworkConfig()
    patch_size: int = Field(128, ge=16, le=4096, description="square patch side, px")
    batch_size: int = Field(8, ge=1, le=4096)
    epochs: int = Field(20, ge=1, le=100_000)
    iterations_per_epoch: int = Field(100, ge=1, le=10_000_000)
    learning_rate: float = Field(1e-3, gt=0, le=1)
    schedule: Literal["constant", "cosine"] = "cosine"
    weight_decay: float = Field(1e-5, ge=0, le=1)
    dice_weight: float = Field(
        1.0, ge=0, le=100, description="soft Dice term added to cross-entropy"
    )
    validation_fraction: float = Field(
        0.1, ge=0, le=0.5, description="share of each tomogram's y extent held out"
    )
    validation_patches: int = Field(16, ge=1, le=100_000)
    augmentation: AugmentationConfig = AugmentationConfig()
    finetune: FinetuneConfig = FinetuneConfig()
    on_the_fly: OnTheFlyConfig = OnTheFlyConfig()
    task: Literal["segmentation", "picking"] = Field(
        "segmentation", description="segmentation: labels.mrc; picking: balls at particles.star"
    )
    picking: PickingConfig = PickingConfig()
    spectrum_match: list[SpectrumTarget] = Field(
        [],
        description="tomograms (paths, or {path, pixel_size}) whose amplitude spectra, randomly "
        "mixed, the training phantoms are filtered to",
    )

    @field_validator("spectrum_match", mode="before")
    @classmethod
    def _paths_as_targets(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"path": v} if isinstance(v, str) else v for v in value]
        return value

    @model_validator(mode="after")
    def _patch_fits_network(self) -> TrainConfig:
        step = 2**self.network.depth
        if self.patch_size % step:
            raise ValueError(
                f"patch_size {self.patch_size} must be a multiple of 2**network.depth = {step}"
            )
        return self


def _deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_train_config(
    path: str | os.PathLike[str] | None,
    *,
    overrides: list[str] | None = None,
    seed: int | None = None,
    base: dict[str, Any] | None = None,
) -> TrainConfig:
    """Read a training YAML config, apply overrides and seed, validate.

    Parameters
    ----------
    path
        YAML file; None starts from ``base`` (or all defaults).
    overrides
        ``"section.key=value"`` strings, values parsed as YAML (``network.depth=4``).
    seed
        Overrides the config's ``seed``.
    base
        A stored config tree (from a checkpoint) that the file and overrides are merged over.

    Raises
    ------
    TomosimError
        Missing or unparsable file, unknown keys, values out of range.
    """
    tree: dict[str, Any] = _deep_merge({}, base or {})  # nested copy: overrides must not touch base
    source = "<checkpoint>" if base else "<defaults>"
    if path is not None:
        source = str(path)
        tree = _deep_merge(tree, read_config_tree(path))
    tree = apply_overrides(tree, overrides or [])
    if seed is not None:
        tree["seed"] = seed
    try:
        return TrainConfig.model_validate(tree)
    except ValidationError as exc:
        raise TomosimError(format_validation_error(exc, source)) from None


def dump_train_config(config: TrainConfig) -> str:
    """The fully resolved training config as YAML text (every default filled in)."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
