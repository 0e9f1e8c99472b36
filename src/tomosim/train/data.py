"""Training data: label channels, normalisation, resampling and class-balanced patches.

A simulation output folder holds ``tomogram.mrc`` (float32, voxel size set), ``labels.mrc``
(uint8 class ids, 0 = background, 255 = not labelled) and ``classes.csv`` (columns
``id,name,colour``). The network sees each tomogram resampled to one pixel size and normalised to
robust unit scale, and learns from square ``(slices, patch, patch)`` stacks of adjacent z-slices
whose centre slice carries the labels.

Array axes are ``(z, y, x)``; voxel ``i`` is centred at ``i * pixel_size`` from the MRC origin
(CONVENTIONS.md). No torch here: everything is numpy, randomness via a passed
``numpy.random.Generator``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from tomosim.errors import TomosimError
from tomosim.formats.volumes import read_volume, volume_in_folder
from tomosim.io import require_finite
from tomosim.labels import (
    IGNORE_LABEL,
    ClassTable,
    label_ids,
    make_class_table,
    read_class_table,
)

NORMALISATION: dict[str, Any] = {"method": "median_iqr", "clip": 10.0}
"""How tomograms are normalised (stored in every checkpoint; see :func:`robust_normalise`)."""


# --------------------------------------------------------------------------------------------
# Label ids -> network channels
# --------------------------------------------------------------------------------------------


def label_lookup(table: ClassTable) -> np.ndarray:
    """A 256-entry uint8 table mapping label id -> network channel (255 stays 255).

    Ids the table does not list map to 254 and are caught by :func:`labels_to_channels`.
    """
    lookup = np.full(256, 254, dtype=np.uint8)
    lookup[list(table.ids)] = np.arange(len(table.ids), dtype=np.uint8)
    lookup[IGNORE_LABEL] = IGNORE_LABEL
    return lookup


def labels_to_channels(labels: np.ndarray, table: ClassTable, *, source: str) -> np.ndarray:
    """Map uint8 label ids to network channels ``0 .. len(table.ids) - 1``; 255 stays 255.

    Raises
    ------
    TomosimError
        If ``labels`` holds an id the table does not list.
    """
    present = np.flatnonzero(np.bincount(labels.ravel(), minlength=256))
    unknown = [int(v) for v in present if v != IGNORE_LABEL and v not in table.ids]
    if unknown:
        raise TomosimError(
            f"label id(s) {unknown} in {source} are not classes of the model/table "
            f"(known ids {list(table.ids)})"
        )
    return label_lookup(table)[labels]


# --------------------------------------------------------------------------------------------
# Normalisation and resampling
# --------------------------------------------------------------------------------------------


def robust_normalise(
    volume: np.ndarray, *, clip: float = 10.0, max_samples: int = 2_000_000
) -> np.ndarray:
    """Centre a tomogram on its median and scale by its inter-quartile range.

    ``(v - median) / (IQR / 1.349)`` (1.349 IQR = one standard deviation of a normal
    distribution), clipped to ``±clip``, so that gold beads and edge artefacts do not dominate.
    The statistics come from an evenly strided subset of at most ``max_samples`` voxels.

    Parameters
    ----------
    volume
        ``(z, y, x)`` tomogram, any float or integer type.

    Returns
    -------
    numpy.ndarray
        float32 array of the same shape.
    """
    flat = np.asarray(volume).ravel()
    sample = flat[:: max(1, flat.size // max_samples)].astype(np.float64)
    q25, median, q75 = np.percentile(sample, [25, 50, 75])
    scale = (q75 - q25) / 1.349
    if not np.isfinite(scale) or scale <= 0:
        scale = float(sample.std()) or 1.0
    out = np.subtract(volume, np.float32(median), dtype=np.float32)
    np.divide(out, np.float32(scale), out=out)
    np.clip(out, -clip, clip, out=out)
    return out


def resampled_shape(
    shape: Sequence[int], voxel_size: Sequence[float] | np.ndarray, pixel_size: float
) -> tuple[int, ...]:
    """Grid size after resampling ``shape`` at ``voxel_size`` (z, y, x Å) to ``pixel_size``."""
    return tuple(
        max(1, int(round(n * v / pixel_size))) for n, v in zip(shape, voxel_size, strict=False)
    )


def needs_resampling(voxel_size: Sequence[float] | np.ndarray, pixel_size: float) -> bool:
    """True unless every axis of ``voxel_size`` equals ``pixel_size`` to 1e-4 relative."""
    return any(abs(v / pixel_size - 1.0) > 1e-4 for v in voxel_size)


def resample_volume(
    volume: np.ndarray,
    *,
    voxel_size: Sequence[float] | np.ndarray,
    pixel_size: float,
    order: int = 1,
    output_shape: Sequence[int] | None = None,
) -> np.ndarray:
    """Resample a ``(z, y, x)`` volume from ``voxel_size`` to isotropic ``pixel_size``.

    Geometry: voxel ``i`` of either grid is centred at ``i * spacing`` from the same origin
    (CONVENTIONS.md), so output voxel ``j`` samples the input at ``j * pixel_size / voxel_size``
    along each axis; physical positions are kept (a blob's centroid stays where it was, in Å).

    Parameters
    ----------
    volume
        Input array.
    voxel_size
        Input ``(z, y, x)`` voxel size, Å.
    pixel_size
        Output voxel size, Å (isotropic).
    order
        Interpolation order: 1 (linear) for images, 0 (nearest) for labels.
    output_shape
        Defaults to :func:`resampled_shape`.
    """
    shape = tuple(output_shape) if output_shape is not None else resampled_shape(
        volume.shape, voxel_size, pixel_size
    )
    step = np.array([pixel_size / v for v in voxel_size])
    return ndimage.affine_transform(
        volume, step, output_shape=shape, order=order, mode="nearest", prefilter=False
    )


# --------------------------------------------------------------------------------------------
# Training volumes and folders
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelledTomogram:
    """A tomogram with labels as read from disk (not yet resampled or normalised).

    Attributes
    ----------
    tomogram
        ``(z, y, x)`` float32 map.
    labels
        ``(z, y, x)`` uint8 label ids (0 = background, 255 = not labelled).
    voxel_size
        ``(z, y, x)`` voxel size, Å.
    classes
        Names of the label ids.
    name
        Where it came from (for messages).
    """

    tomogram: np.ndarray
    labels: np.ndarray
    voxel_size: tuple[float, float, float]
    classes: ClassTable
    name: str


@dataclass(frozen=True)
class TrainingVolume:
    """One tomogram as the network sees it.

    Attributes
    ----------
    image
        ``(z, y, x)`` float32, resampled to the model pixel size and robustly normalised.
    labels
        ``(z, y, x)`` uint8 network channels (index into the model's class list); 255 = not
        labelled.
    name
        Where it came from.
    """

    image: np.ndarray
    labels: np.ndarray
    name: str


def read_labelled_tomogram(
    tomogram_path: str | os.PathLike[str],
    labels_path: str | os.PathLike[str],
    classes: ClassTable | None = None,
    *,
    classes_path: str | os.PathLike[str] | None = None,
) -> LabelledTomogram:
    """Read a tomogram and its labels; shapes must match and the tomogram needs a voxel size.

    Either may be MRC, OME-Zarr or a copick run (:func:`tomosim.formats.volumes.read_volume`).
    """
    volume = read_volume(tomogram_path)
    labels = read_volume(labels_path, require_voxel_size=False)
    if labels.data.shape != volume.data.shape:
        raise TomosimError(
            f"labels shape {labels.data.shape} differs from tomogram shape {volume.data.shape}: "
            f"{labels_path}"
        )
    label_data = label_ids(labels.data, labels_path)
    if min(labels.voxel_size) > 0 and not np.allclose(
        labels.voxel_size, volume.voxel_size, rtol=0.01
    ):
        raise TomosimError(
            f"labels voxel size {labels.voxel_size[::-1]} Å differs from the tomogram's "
            f"{volume.voxel_size[::-1]} Å (x, y, z): {labels_path}"
        )
    require_finite(volume.data, tomogram_path)
    if classes is None:
        classes = read_class_table(classes_path) if classes_path is not None else make_class_table(
            [int(v) for v in np.unique(label_data) if v not in (0, IGNORE_LABEL)],
            [f"class_{int(v)}" for v in np.unique(label_data) if v not in (0, IGNORE_LABEL)],
        )
    return LabelledTomogram(
        tomogram=volume.data.astype(np.float32, copy=False),
        labels=label_data,
        voxel_size=volume.voxel_size,
        classes=classes,
        name=str(tomogram_path),
    )


def read_simulation_folder(folder: str | os.PathLike[str]) -> LabelledTomogram:
    """Read the tomogram, labels (``.mrc`` or ``.zarr``) and ``classes.csv`` of a run folder."""
    root = Path(folder)
    if not root.is_dir():
        raise TomosimError(f"training data folder not found: {root}")
    if not (root / "classes.csv").is_file():
        raise TomosimError(f"training data folder has no classes.csv: {root}")
    return read_labelled_tomogram(
        volume_in_folder(root, "tomogram"), volume_in_folder(root, "labels"),
        read_class_table(root / "classes.csv"),
    )


def prepare_training_volume(
    data: LabelledTomogram, *, classes: ClassTable, pixel_size: float
) -> TrainingVolume:
    """Resample to ``pixel_size`` (labels by nearest neighbour), normalise, map ids to channels.

    Labels are translated by class *name* from ``data.classes`` to ``classes`` (the model's
    table), so folders that number the same classes differently still agree.

    Raises
    ------
    TomosimError
        A class name (or label id) of ``data`` that ``classes`` does not know.
    """
    translate = np.arange(256, dtype=np.uint8)
    present = np.flatnonzero(np.bincount(data.labels.ravel(), minlength=256))
    for label_id in present:
        if label_id in (0, IGNORE_LABEL):
            continue
        if label_id not in data.classes.ids:
            raise TomosimError(
                f"label id {int(label_id)} is not listed in the class table: {data.name}"
            )
        name = data.classes.name_of(int(label_id))
        if name not in classes.names:
            raise TomosimError(
                f"class {name!r} of {data.name} is unknown to the model "
                f"(classes {list(classes.names)})"
            )
        translate[label_id] = classes.id_of(name)
    labels = translate[data.labels]
    image = data.tomogram
    if needs_resampling(data.voxel_size, pixel_size):
        image = resample_volume(image, voxel_size=data.voxel_size, pixel_size=pixel_size, order=1)
        labels = resample_volume(labels, voxel_size=data.voxel_size, pixel_size=pixel_size, order=0)
    return TrainingVolume(
        image=robust_normalise(image, clip=float(NORMALISATION["clip"])),
        labels=labels_to_channels(labels, classes, source=data.name),
        name=data.name,
    )


# --------------------------------------------------------------------------------------------
# Patches
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PatchSource:
    """Where patches of one volume may be drawn: a y-range and per-class candidate centres.

    Attributes
    ----------
    volume
        The training volume.
    y_range
        ``(start, stop)`` rows of the volume this source may use (the rest is held out).
    centres
        Network channel -> flat indices into ``volume.labels`` of voxels of that class inside
        ``y_range`` (a random subset of at most ``max_centres`` per class).
    """

    volume: TrainingVolume
    y_range: tuple[int, int]
    centres: dict[int, np.ndarray]


def make_patch_source(
    volume: TrainingVolume,
    *,
    y_range: tuple[int, int],
    rng: np.random.Generator,
    max_centres: int = 200_000,
    slab: int = 16,
) -> PatchSource:
    """Index the labelled voxels of each class in ``y_range`` (z-slab by z-slab, bounded memory).

    Classes with more than ``max_centres`` voxels keep a random subset of about that many.
    Unlabelled voxels (255) are never centres.
    """
    start, stop = y_range
    region = volume.labels[:, start:stop, :]
    counts = np.bincount(region.ravel(), minlength=256)
    counts[IGNORE_LABEL] = 0
    present = [int(c) for c in np.flatnonzero(counts)]
    keep = {c: min(1.0, max_centres / counts[c]) for c in present}
    parts: dict[int, list[np.ndarray]] = {c: [] for c in present}
    nz, ny, nx = volume.labels.shape
    for z0 in range(0, nz, slab):
        block = volume.labels[z0 : z0 + slab, start:stop, :]
        for c in present:
            local = np.flatnonzero(block == c)
            if keep[c] < 1.0:
                local = local[rng.random(local.size) < keep[c]]
            if local.size:
                bz, rest = np.divmod(local, (stop - start) * nx)
                by, bx = np.divmod(rest, nx)
                parts[c].append(((bz + z0) * ny + by + start) * nx + bx)
    centres = {c: np.concatenate(parts[c]) for c in present if parts[c]}
    return PatchSource(volume=volume, y_range=(start, stop), centres=centres)


def split_sources(
    volumes: Sequence[TrainingVolume],
    *,
    validation_fraction: float,
    rng: np.random.Generator,
) -> tuple[list[PatchSource], list[PatchSource]]:
    """Split every volume along y: the last ``validation_fraction`` of rows is held out.

    Patches are 2D in ``(y, x)`` with z-context only, so a split along y leaks nothing between
    training and validation. Returns ``(training, validation)`` sources (validation empty when
    the fraction is 0).
    """
    training, validation = [], []
    for volume in volumes:
        ny = volume.labels.shape[1]
        cut = ny - int(round(ny * validation_fraction))
        if validation_fraction > 0 and (cut < 1 or cut >= ny):
            raise TomosimError(
                f"validation_fraction {validation_fraction} leaves no rows for training or "
                f"validation in {volume.name} ({ny} rows)"
            )
        training.append(make_patch_source(volume, y_range=(0, cut), rng=rng))
        if cut < ny:
            validation.append(make_patch_source(volume, y_range=(cut, ny), rng=rng))
    return training, validation


def extract_patch(
    volume: TrainingVolume,
    *,
    centre: tuple[int, int, int],
    y_range: tuple[int, int],
    patch_size: int,
    slices: int,
    jitter: tuple[int, int] = (0, 0),
) -> tuple[np.ndarray, np.ndarray]:
    """Cut a ``(slices, patch, patch)`` image stack and its ``(patch, patch)`` centre-slice labels.

    The window is centred on ``centre`` (z, y, x) shifted by ``jitter`` (y, x) and kept inside
    ``y_range`` and the x extent; slices beyond the z ends repeat the end slice (as in
    :func:`tomosim.train.inference.segment_tomogram`). A region smaller than the patch is padded
    with 0 (the normalised median) and labels 255.
    """
    nz, _, nx = volume.image.shape
    cz, cy, cx = centre
    y_lo, y_hi = y_range
    half = slices // 2
    z_index = np.clip(np.arange(cz - half, cz + half + 1), 0, nz - 1)
    y0 = int(np.clip(cy + jitter[0] - patch_size // 2, y_lo, max(y_lo, y_hi - patch_size)))
    x0 = int(np.clip(cx + jitter[1] - patch_size // 2, 0, max(0, nx - patch_size)))
    y1, x1 = min(y0 + patch_size, y_hi), min(x0 + patch_size, nx)
    image = volume.image[z_index, y0:y1, x0:x1]
    labels = volume.labels[cz, y0:y1, x0:x1]
    pad_y, pad_x = patch_size - (y1 - y0), patch_size - (x1 - x0)
    if pad_y or pad_x:
        image = np.pad(image, ((0, 0), (0, pad_y), (0, pad_x)))
        labels = np.pad(labels, ((0, pad_y), (0, pad_x)), constant_values=IGNORE_LABEL)
    return np.ascontiguousarray(image, dtype=np.float32), np.ascontiguousarray(labels)


def sample_patches(
    sources: Sequence[PatchSource],
    *,
    count: int,
    patch_size: int,
    slices: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``count`` class-balanced patches.

    Each patch picks a source uniformly, then a class uniformly among the classes present in it
    (background included), then a random voxel of that class as its centre, shifted by up to a
    quarter patch so objects are not always in the middle.

    Returns
    -------
    images, labels
        ``(count, slices, patch, patch)`` float32 and ``(count, patch, patch)`` uint8 channels.
    """
    usable = [s for s in sources if s.centres]
    if not usable:
        raise TomosimError("no labelled voxels to draw training patches from")
    images = np.empty((count, slices, patch_size, patch_size), dtype=np.float32)
    labels = np.empty((count, patch_size, patch_size), dtype=np.uint8)
    for i in range(count):
        source = usable[int(rng.integers(len(usable)))]
        classes = sorted(source.centres)
        candidates = source.centres[classes[int(rng.integers(len(classes)))]]
        flat = int(candidates[int(rng.integers(candidates.size))])
        centre = np.unravel_index(flat, source.volume.labels.shape)
        jitter = rng.integers(-(patch_size // 4), patch_size // 4 + 1, size=2)
        images[i], labels[i] = extract_patch(
            source.volume,
            centre=(int(centre[0]), int(centre[1]), int(centre[2])),
            y_range=source.y_range,
            patch_size=patch_size,
            slices=slices,
            jitter=(int(jitter[0]), int(jitter[1])),
        )
    return images, labels
