"""Training on the fly: fresh phantoms simulated in background DataLoader workers.

:class:`PhantomStream` is a torch ``IterableDataset`` that draws phantom configs from a config
with distributions (:mod:`tomosim.randomize`), simulates each into a temporary folder with
:func:`tomosim.pipeline.simulate`, reads it back and yields training samples, then deletes the
folder. Put it in a ``torch.utils.data.DataLoader`` with ``num_workers=K`` and K phantoms are
simulated in parallel while the network trains.

Seeds
-----
Phantom ``k`` of the stream is phantom ``k`` of ``tomosim dataset`` with the same config and seed
(:func:`tomosim.dataset.draw_phantom`): the stream is the same set of phantoms however many
workers share it. Worker ``w`` of ``W`` (``torch.utils.data.get_worker_info()``) simulates phantoms
``w, w + W, w + 2W, ...``; patches of phantom ``k`` are cut with a generator seeded from
``SeedSequence(seed, spawn_key=(k, 0))``. With ``phantoms_per_epoch=P`` epoch ``e`` (see
:meth:`PhantomStream.set_epoch`) covers phantoms ``e*P ... e*P + P - 1`` and then ends; without it
the stream never ends (count training steps instead). The order in which workers' samples arrive is
the DataLoader's (round robin over workers), so a run is reproducible for a fixed ``num_workers``.

Samples
-------
By default each phantom yields ``(tomogram, labels)``: a ``(z, y, x)`` float32 tensor, normalised
to zero mean and unit standard deviation per phantom (``normalise=False`` keeps the values of
``tomogram.mrc``), and a ``(z, y, x)`` int64 tensor of class ids (0 = background, ids as in the
phantom's ``classes.csv``). With ``patch_shape=(pz, py, px)`` it yields ``patches_per_phantom``
random crops of that shape instead (uniformly placed). Any other sampling plugs in through
``transform(folder, rng) -> iterable of samples``, called while the phantom folder exists (read
what you need from ``folder``: ``tomogram.mrc``, ``labels.mrc``, ``classes.csv``, ...).
"""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from tomosim.config import apply_overrides, read_config_tree
from tomosim.dataset import draw_phantom, limit_threads, phantom_folder, threads_per_worker
from tomosim.errors import TomosimError
from tomosim.io import read_mrc

Transform = Callable[[Path, np.random.Generator], Iterable[Any]]


class PhantomStream(IterableDataset):
    """An endless (or per-epoch) stream of freshly simulated phantoms.

    Parameters
    ----------
    config_tree
        Raw config tree, possibly with distributions (:mod:`tomosim.randomize`). ``seed`` in it is
        ignored (the stream's ``seed`` is used). Previews are switched off unless the tree sets
        ``output.previews``.
    seed
        Stream seed; phantom ``k`` equals phantom ``k`` of ``tomosim dataset --seed SEED``.
    patch_shape
        ``(pz, py, px)`` voxels: yield random crops of this shape; None = whole volumes.
    patches_per_phantom
        Crops per phantom (with ``patch_shape``).
    normalise
        Standardise each phantom's tomogram to mean 0, standard deviation 1.
    transform
        ``transform(folder, rng) -> iterable of samples`` replacing the default sampling.
    phantoms_per_epoch
        None = endless stream; else each epoch yields from this many phantoms.
    scratch_dir
        Where the temporary phantom folders go (default: the system temporary folder).
    simulate
        ``simulate(config, folder, progress=False)``; default :func:`tomosim.pipeline.simulate`.

    Raises
    ------
    TomosimError
        Bad arguments, or a config that does not validate (phantom 0 is drawn up front).
    """

    def __init__(
        self,
        config_tree: dict[str, Any],
        seed: int,
        *,
        patch_shape: tuple[int, int, int] | None = None,
        patches_per_phantom: int = 1,
        normalise: bool = True,
        transform: Transform | None = None,
        phantoms_per_epoch: int | None = None,
        scratch_dir: str | os.PathLike[str] | None = None,
        simulate: Callable[..., object] | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(config_tree, dict):
            raise TomosimError("PhantomStream needs a config tree (a mapping of sections)")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**63:
            raise TomosimError(f"stream seed must be an integer in [0, 2**63), got {seed!r}")
        if patch_shape is not None:
            if len(patch_shape) != 3 or any(int(p) < 1 for p in patch_shape):
                raise TomosimError(f"patch_shape must be three positive sizes (z, y, x), got {patch_shape}")
            patch_shape = tuple(int(p) for p in patch_shape)  # type: ignore[assignment]
        if patches_per_phantom < 1:
            raise TomosimError(f"patches_per_phantom must be >= 1, got {patches_per_phantom}")
        if phantoms_per_epoch is not None and phantoms_per_epoch < 1:
            raise TomosimError(f"phantoms_per_epoch must be >= 1, got {phantoms_per_epoch}")
        tree = copy.deepcopy(config_tree)
        tree.pop("seed", None)
        output = tree.get("output")
        if output is None or (isinstance(output, dict) and "previews" not in output):
            tree["output"] = {**(output or {}), "previews": False}
        config, _ = draw_phantom(tree, int(seed), 0, source="on-the-fly config")
        if patch_shape is not None and any(p > s for p, s in zip(patch_shape, config.sample.shape)):
            raise TomosimError(
                f"patch_shape {patch_shape} is larger than the phantom shape {config.sample.shape}"
            )
        self.tree = tree
        self.seed = int(seed)
        self.patch_shape = patch_shape
        self.patches_per_phantom = int(patches_per_phantom)
        self.normalise = normalise
        self.transform = transform
        self.phantoms_per_epoch = phantoms_per_epoch
        self.scratch_dir = None if scratch_dir is None else str(scratch_dir)
        self.simulate = simulate
        self.epoch = 0

    @classmethod
    def from_config(
        cls, path: str | os.PathLike[str], *, seed: int | None = None,
        overrides: list[str] | None = None, **kwargs: Any,
    ) -> PhantomStream:
        """A stream from a YAML file; ``seed`` None = the file's ``seed`` (0 if absent)."""
        tree = apply_overrides(read_config_tree(path), list(overrides or []))
        chosen = tree.get("seed", 0) if seed is None else seed
        return cls(tree, chosen, **kwargs)

    def set_epoch(self, epoch: int) -> None:
        """Select epoch ``epoch`` (with ``phantoms_per_epoch``): call before iterating an epoch.

        DataLoader workers copy the dataset when an epoch starts, so this needs
        ``persistent_workers=False`` (the default).
        """
        self.epoch = int(epoch)

    def phantom_indices(self, worker: int, workers: int) -> Iterator[int]:
        """Global phantom numbers that worker ``worker`` of ``workers`` simulates, in order."""
        if self.phantoms_per_epoch is None:
            k = worker
            while True:
                yield k
                k += workers
        first = self.epoch * self.phantoms_per_epoch
        yield from range(first + worker, first + self.phantoms_per_epoch, workers)

    def __iter__(self) -> Iterator[Any]:
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        if info is not None and workers > 1:
            limit_threads(threads_per_worker(workers))
        for k in self.phantom_indices(worker, workers):
            yield from self.phantom_samples(k)

    def phantom_samples(self, k: int) -> list[Any]:
        """Simulate phantom ``k`` into a temporary folder and return its samples."""
        config, _ = draw_phantom(self.tree, self.seed, k, source="on-the-fly config")
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(k, 0)))
        simulate = self.simulate
        if simulate is None:
            from tomosim.pipeline import simulate
        scratch = Path(tempfile.mkdtemp(prefix="tomosim-stream-", dir=self.scratch_dir))
        try:
            folder = scratch / phantom_folder(k)
            simulate(config, folder, progress=False)
            if self.transform is not None:
                return list(self.transform(folder, rng))
            tomogram = read_mrc(folder / "tomogram.mrc").data.astype(np.float32, copy=False)
            labels = read_mrc(folder / "labels.mrc", require_voxel_size=False).data
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        if self.normalise:
            spread = float(tomogram.std())
            tomogram = (tomogram - tomogram.mean()) / (spread if spread > 0 else 1.0)
        if labels.shape != tomogram.shape:
            raise TomosimError(f"labels shape {labels.shape} differs from tomogram {tomogram.shape}")
        if self.patch_shape is None:
            return [_as_tensors(tomogram, labels)]
        samples = []
        for _ in range(self.patches_per_phantom):
            corner = [int(rng.integers(0, s - p + 1)) for s, p in zip(tomogram.shape, self.patch_shape)]
            window = tuple(slice(c, c + p) for c, p in zip(corner, self.patch_shape))
            samples.append(_as_tensors(tomogram[window], labels[window]))
        return samples


def _as_tensors(tomogram: np.ndarray, labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    return (
        torch.from_numpy(np.ascontiguousarray(tomogram, dtype=np.float32)),
        torch.from_numpy(np.ascontiguousarray(labels).astype(np.int64)),
    )


def phantom_loader(
    stream: PhantomStream, *, batch_size: int = 1, num_workers: int = 2, prefetch_factor: int = 2
) -> DataLoader:
    """A DataLoader over ``stream`` with ``num_workers`` simulating processes (0 = in this process).

    Workers are not persistent so :meth:`PhantomStream.set_epoch` reaches them.
    """
    if num_workers < 0 or batch_size < 1:
        raise TomosimError(f"need batch_size >= 1 and num_workers >= 0, got {batch_size}, {num_workers}")
    extra: dict[str, Any] = {"prefetch_factor": prefetch_factor} if num_workers > 0 else {}
    return DataLoader(stream, batch_size=batch_size, num_workers=num_workers, **extra)
