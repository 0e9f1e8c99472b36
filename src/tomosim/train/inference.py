"""Segmenting a tomogram with a trained 2.5D U-Net, z-chunk by z-chunk.

The tomogram is resampled to the model's pixel size when its voxel size differs, normalised as in
training, and every z-slice of that grid is scored from its ``slices`` neighbours (the end slices
repeat beyond the z ends, as in training). Class probabilities are mapped back onto the input grid
by linear interpolation and the most probable class of each voxel is its label. Work proceeds in
chunks of ``chunk_slices`` input slices, so memory holds the tomogram, one normalised copy on the
model grid and one chunk of probabilities, whatever the number of classes.

Geometry (CONVENTIONS.md): voxel ``i`` is centred at ``i * voxel_size`` from the MRC origin on
both grids, so positions in Å are kept and the labels match the input voxel for voxel.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import ndimage

from tomosim.array_statistics import summary_statistics
from tomosim.errors import TomosimError
from tomosim.io import atomic_path, reserve_space, set_header_statistics
from tomosim.train.checkpoint import ModelCheckpoint, network_from_checkpoint
from tomosim.train.data import needs_resampling, resample_volume, robust_normalise
from tomosim.train.device import autocast, resolve_device
from tomosim.train.model import predict_logits
from tomosim.train.spectrum_matching import match_to_model


def _most_probable(probabilities: torch.Tensor) -> torch.Tensor:
    """Index of the first largest value along dim 1 (as ``argmax``), uint8.

    One comparison per class: ``torch.argmax`` over the class dim of an ``(n, c, y, x)`` tensor is
    a strided reduction, ~20x slower on the CPU.
    """
    best = torch.zeros_like(probabilities[:, 0], dtype=torch.uint8)
    largest = probabilities[:, 0].clone()
    for c in range(1, probabilities.shape[1]):
        larger = probabilities[:, c] > largest
        best[larger] = c
        torch.maximum(largest, probabilities[:, c], out=largest)
    return best


def _slice_probabilities(
    network: torch.nn.Module,
    image: np.ndarray,
    start: int,
    stop: int,
    *,
    slices: int,
    depth: int,
    batch_size: int,
    classes: int,
    device: torch.device,
    keep_probabilities: bool = True,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Most probable class and softmax probabilities for z-slices ``start .. stop-1``.

    Returns ``(best, probabilities)``: ``best`` is ``(stop - start, y, x)`` uint8 channel
    indices (the first of equal maxima, as :func:`numpy.argmax`), ``probabilities`` is
    ``(classes, stop - start, y, x)`` float32, or None unless ``keep_probabilities``.
    """
    nz, ny, nx = image.shape
    half = slices // 2
    best = np.empty((stop - start, ny, nx), dtype=np.uint8)
    out = None
    if keep_probabilities:
        out = np.empty((classes, stop - start, ny, nx), dtype=np.float32)
    for first in range(start, stop, batch_size):
        last = min(stop, first + batch_size)
        stack = np.stack([
            image[np.clip(np.arange(z - half, z + half + 1), 0, nz - 1)] for z in range(first, last)
        ])
        with torch.inference_mode(), autocast(device):
            logits = predict_logits(network, torch.from_numpy(stack).to(device), depth=depth)
            probabilities = torch.softmax(logits.float(), dim=1)
            best[first - start : last - start] = _most_probable(probabilities).cpu().numpy()
            if out is not None:
                out[:, first - start : last - start] = probabilities.cpu().numpy().transpose(
                    1, 0, 2, 3
                )
    return best, out


def segment_tomogram(
    model: ModelCheckpoint,
    tomogram: np.ndarray,
    *,
    voxel_size: Sequence[float],
    batch_size: int = 4,
    chunk_slices: int = 32,
    probabilities: Sequence[np.ndarray] | None = None,
    network: torch.nn.Module | None = None,
    progress: bool = False,
    match_spectrum: bool = False,
    device: str = "cpu",
) -> np.ndarray:
    """Label every voxel of ``tomogram`` with the class the model finds most probable.

    Parameters
    ----------
    model
        A trained model (network, classes, pixel size, normalisation).
    tomogram
        ``(z, y, x)`` map with the same contrast as the training tomograms.
    voxel_size
        ``(z, y, x)`` voxel size of ``tomogram``, Å.
    batch_size
        z-slices per network call.
    chunk_slices
        Input z-slices processed at a time (bounds the probability memory).
    probabilities
        Optional output arrays, one per model class (channel order of ``model.classes``), each of
        ``tomogram``'s shape (float16 or float32, e.g. MRC memory maps); filled with the class
        probabilities on the input grid.
    network
        The network built from ``model`` (built here when None).
    progress
        Show a progress bar on stderr.
    match_spectrum
        Filter the tomogram (on the model grid, normalised) to the radial amplitude spectrum of
        the model's training data (:func:`tomosim.train.spectrum_matching.match_to_model`).
    device
        ``auto``, ``cpu``, ``cuda`` or ``mps``; mixed precision on CUDA.

    Returns
    -------
    numpy.ndarray
        ``(z, y, x)`` uint8 label ids (``model.classes.ids``), the shape of ``tomogram``.

    Raises
    ------
    TomosimError
        An unsupported normalisation, a non-3D tomogram, wrongly shaped probability arrays, a
        model without a training spectrum when ``match_spectrum``, or an unavailable device.
    """
    target = resolve_device(device)
    if match_spectrum and model.spectrum is None:
        raise TomosimError(
            "the model stores no training spectrum (trained by an older tomosim): retrain it or "
            "segment without --match-spectrum"
        )
    if tomogram.ndim != 3:
        raise TomosimError(f"a tomogram must be a 3D (z, y, x) volume, got shape {tomogram.shape}")
    if model.normalisation.get("method") != "median_iqr":
        raise TomosimError(f"unsupported normalisation {model.normalisation!r} in the model")
    classes = len(model.classes.ids)
    if probabilities is not None and (
        len(probabilities) != classes or any(p.shape != tomogram.shape for p in probabilities)
    ):
        raise TomosimError(f"need {classes} probability arrays of shape {tomogram.shape}")
    if network is None:
        network = network_from_checkpoint(model)
    network = network.to(target).eval()
    ids = np.asarray(model.classes.ids, dtype=np.uint8)
    voxel = np.asarray(voxel_size, dtype=np.float64)
    resample = needs_resampling(voxel, model.pixel_size)
    grid = tomogram
    if resample:
        grid = resample_volume(
            np.asarray(tomogram, dtype=np.float32), voxel_size=voxel, pixel_size=model.pixel_size
        )
    image = robust_normalise(grid, clip=float(model.normalisation.get("clip", 10.0)))
    del grid
    if match_spectrum:
        assert model.spectrum is not None
        image = match_to_model(image, model.spectrum, pixel_size=model.pixel_size)
    scale = voxel / model.pixel_size  # model-grid voxels per input voxel, (z, y, x)
    nz = tomogram.shape[0]
    labels = np.empty(tomogram.shape, dtype=np.uint8)

    from rich.console import Console
    from rich.progress import Progress

    options: dict[str, Any] = {
        "slices": model.slices, "depth": model.network.depth, "batch_size": batch_size,
        "classes": classes, "device": target,
    }
    with Progress(console=Console(stderr=True), disable=not progress) as bar:
        task = bar.add_task("segment", total=nz)
        for start in range(0, nz, chunk_slices):
            stop = min(nz, start + chunk_slices)
            if not resample:
                best, chunk = _slice_probabilities(
                    network, image, start, stop, keep_probabilities=probabilities is not None,
                    **options,
                )
            else:
                low = min(int(np.floor(start * scale[0])), image.shape[0] - 1)
                high = max(low + 1, min(image.shape[0], int(np.floor((stop - 1) * scale[0])) + 2))
                _, model_chunk = _slice_probabilities(network, image, low, high, **options)
                assert model_chunk is not None
                chunk = np.stack([
                    ndimage.affine_transform(
                        model_chunk[c], scale, offset=(start * scale[0] - low, 0.0, 0.0),
                        output_shape=(stop - start, *tomogram.shape[1:]), order=1,
                        mode="nearest", prefilter=False,
                    )
                    for c in range(classes)
                ])
                best = np.argmax(chunk, axis=0)
            labels[start:stop] = ids[best]
            if probabilities is not None:
                assert chunk is not None
                for c in range(classes):
                    probabilities[c][start:stop] = chunk[c]
            bar.update(task, advance=stop - start)
    return labels


@contextlib.contextmanager
def probability_map_files(
    directory: str | os.PathLike[str],
    names: Sequence[str],
    *,
    shape: tuple[int, int, int],
    dtype: str,
    voxel_size: Sequence[float],
    origin: Sequence[float],
) -> Iterator[list[np.ndarray]]:
    """Open one MRC memory map per class, ``DIRECTORY/<name>.mrc``, for :func:`segment_tomogram`.

    Each file is written under a temporary name and renamed when the block succeeds (nothing is
    left behind on failure). ``dtype`` is ``"float16"`` or ``"float32"``; ``voxel_size`` is
    ``(z, y, x)`` Å and ``origin`` ``(x, y, z)`` Å, as in :func:`tomosim.io.write_mrc`.
    """
    import mrcfile


    if dtype not in ("float16", "float32"):
        raise TomosimError(f"probability dtype must be float16 or float32, got {dtype!r}")
    mode = 12 if dtype == "float16" else 2
    with contextlib.ExitStack() as stack:
        arrays = []
        handles = []
        for name in names:
            tmp = stack.enter_context(atomic_path(Path(directory) / f"{name}.mrc"))
            mrc = mrcfile.new_mmap(tmp, shape=shape, mrc_mode=mode, overwrite=True)
            handles.append(mrc)
            reserve_space(tmp)  # a full disk: OSError now, not SIGBUS when the map is written
            arrays.append(mrc.data)
        try:
            yield arrays
            for mrc in handles:
                mrc.voxel_size = (float(voxel_size[2]), float(voxel_size[1]), float(voxel_size[0]))
                mrc.header.origin = tuple(origin)
                set_header_statistics(mrc.header, summary_statistics(mrc.data))
        finally:
            for mrc in handles:
                mrc.close()
