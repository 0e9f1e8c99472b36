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
import ctypes
import dataclasses
import functools
import os
import shutil
import signal
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from tomosim import pipeline
from tomosim.config import apply_overrides, read_config_tree
from tomosim.dataset import checked_seed, draw_phantom, phantom_folder
from tomosim.errors import TomosimError
from tomosim.formats.volumes import read_volume, volume_in_folder
from tomosim.labels import ClassTable, class_table, make_class_table, merge_class_tables
from tomosim.spectrum import RadialSpectrum
from tomosim.train.config import OnTheFlyConfig
from tomosim.train.data import (
    PatchSource,
    make_patch_source,
    prepare_training_volume,
    read_simulation_folder,
)
from tomosim.train.spectrum_matching import match_training_volumes
from tomosim.workers import limit_threads, threads_per_worker

Transform = Callable[[Path, np.random.Generator], Iterable[Any]]


SCRATCH_PREFIX = "tomosim-stream-"
"""Scratch folders of simulated phantoms are named ``tomosim-stream-<pid>-<random>``."""


def remove_stale_scratch(folder: str | os.PathLike[str] | None = None) -> int:
    """Remove phantom scratch folders left by processes that no longer exist (killed runs).

    A run killed with SIGKILL cannot remove its scratch folders; the next run does, for every
    folder in ``folder`` (default: the system's temporary folder) whose owner process is gone.
    Folders of live processes, and names without a process id, are left alone.

    Returns
    -------
    int
        The number of folders removed.
    """
    root = Path(folder) if folder is not None else Path(tempfile.gettempdir())
    removed = 0
    for path in root.glob(f"{SCRATCH_PREFIX}*-*"):
        pid_text = path.name[len(SCRATCH_PREFIX):].split("-", 1)[0]
        if not pid_text.isdigit() or not path.is_dir():
            continue
        try:
            os.kill(int(pid_text), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
        except (PermissionError, OverflowError):  # another user's live process / not a pid
            continue
    return removed


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
    first
        Endless stream only: start at phantom ``first`` (to continue a stream where it stopped).
    threads
        numba threads in each DataLoader worker; None = ``cores // num_workers`` with more than
        one worker, numba's default with one.

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
        first: int = 0,
        threads: int | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(config_tree, dict):
            raise TomosimError("PhantomStream needs a config tree (a mapping of sections)")
        seed = checked_seed(seed, "stream seed")
        if patch_shape is not None:
            if len(patch_shape) != 3 or any(int(p) < 1 for p in patch_shape):
                raise TomosimError(
                    f"patch_shape must be three positive sizes (z, y, x), got {patch_shape}"
                )
            patch_shape = tuple(int(p) for p in patch_shape)  # type: ignore[assignment]
        if patches_per_phantom < 1:
            raise TomosimError(f"patches_per_phantom must be >= 1, got {patches_per_phantom}")
        if phantoms_per_epoch is not None and phantoms_per_epoch < 1:
            raise TomosimError(f"phantoms_per_epoch must be >= 1, got {phantoms_per_epoch}")
        if first < 0 or (first and phantoms_per_epoch is not None):
            raise TomosimError(f"first must be >= 0 and needs an endless stream, got {first}")
        if threads is not None and threads < 1:
            raise TomosimError(f"threads must be >= 1, got {threads}")
        tree = copy.deepcopy(config_tree)
        tree.pop("seed", None)
        output = tree.get("output")
        if output is None or (isinstance(output, dict) and "previews" not in output):
            tree["output"] = {**(output or {}), "previews": False}
        config, _ = draw_phantom(tree, int(seed), 0, source="on-the-fly config")
        if patch_shape is not None and any(
            p > s for p, s in zip(patch_shape, config.sample.shape, strict=False)
        ):
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
        self.first = int(first)
        self.threads = threads
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
            k = self.first + worker
            while True:
                yield k
                k += workers
        first = self.epoch * self.phantoms_per_epoch
        yield from range(first + worker, first + self.phantoms_per_epoch, workers)

    def __iter__(self) -> Iterator[Any]:
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        if info is not None and self.threads is not None:
            limit_threads(self.threads)
        elif info is not None and workers > 1:
            limit_threads(threads_per_worker(workers))
        for k in self.phantom_indices(worker, workers):
            yield from self.phantom_samples(k)

    def phantom_samples(self, k: int) -> list[Any]:
        """Simulate phantom ``k`` into a temporary folder and return its samples."""
        config, _ = draw_phantom(self.tree, self.seed, k, source="on-the-fly config")
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(k, 0)))
        simulate = self.simulate
        if simulate is None:
            simulate = pipeline.simulate
        scratch = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-",
                                        dir=self.scratch_dir))
        try:
            folder = scratch / phantom_folder(k)
            simulate(config, folder, progress=False)
            if self.transform is not None:
                return list(self.transform(folder, rng))
            tomogram = read_volume(volume_in_folder(folder, "tomogram")).data
            tomogram = tomogram.astype(np.float32, copy=False)
            labels = read_volume(
                volume_in_folder(folder, "labels"), require_voxel_size=False
            ).data
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        if self.normalise:
            spread = float(tomogram.std())
            tomogram = (tomogram - tomogram.mean()) / (spread if spread > 0 else 1.0)
        if labels.shape != tomogram.shape:
            raise TomosimError(
                f"labels shape {labels.shape} differs from tomogram {tomogram.shape}"
            )
        if self.patch_shape is None:
            return [_as_tensors(tomogram, labels)]
        samples = []
        for _ in range(self.patches_per_phantom):
            corner = [
                int(rng.integers(0, s - p + 1))
                for s, p in zip(tomogram.shape, self.patch_shape, strict=False)
            ]
            window = tuple(slice(c, c + p) for c, p in zip(corner, self.patch_shape, strict=False))
            samples.append(_as_tensors(tomogram[window], labels[window]))
        return samples


def _as_tensors(tomogram: np.ndarray, labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    return (
        torch.from_numpy(np.ascontiguousarray(tomogram, dtype=np.float32)),
        torch.from_numpy(np.ascontiguousarray(labels).astype(np.int64)),
    )


def phantom_loader(
    stream: PhantomStream, *, batch_size: int | None = 1, num_workers: int = 2,
    prefetch_factor: int = 2,
) -> DataLoader:
    """A DataLoader over ``stream`` with ``num_workers`` simulating processes (0 = in this process).

    ``batch_size=None`` yields the stream's samples one by one, as they are (no collation).
    Workers are not persistent so :meth:`PhantomStream.set_epoch` reaches them. They are spawned,
    not forked: a process that has run numba's parallel kernels (GNU OpenMP) or torch cannot fork
    safely. A custom ``simulate`` or ``transform`` must therefore be importable (module level).
    """
    if num_workers < 0 or (batch_size is not None and batch_size < 1):
        raise TomosimError(
            f"need batch_size >= 1 and num_workers >= 0, got {batch_size}, {num_workers}"
        )
    extra: dict[str, Any] = (
        {"prefetch_factor": prefetch_factor, "multiprocessing_context": "spawn"}
        if num_workers > 0 else {}
    )
    if batch_size is None:
        extra["collate_fn"] = _as_is
    if num_workers > 0:
        extra["worker_init_fn"] = functools.partial(die_with_parent, os.getpid())
    return DataLoader(stream, batch_size=batch_size, num_workers=num_workers, **extra)


PR_SET_PDEATHSIG = 1
"""prctl(2) option: the signal a process receives when its parent dies (Linux)."""


def die_with_parent(parent_pid: int, worker_id: int = 0) -> None:
    """Make this worker process end when ``parent_pid`` ends, even by SIGKILL (Linux).

    Asks the kernel for SIGKILL on the parent's death (``prctl(PR_SET_PDEATHSIG)``), then exits
    at once if the parent is already gone. Elsewhere it does nothing: torch's own watchdog (a
    check between items) remains.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:  # the parent died before the request took effect
        os._exit(1)


def _as_is(item: Any) -> Any:
    return item


# --------------------------------------------------------------------------------------------
# Training on the fly: a sliding pool of phantoms (tomosim train --on-the-fly)
# --------------------------------------------------------------------------------------------


def on_the_fly_phantom_count(settings: OnTheFlyConfig, iterations: int) -> int:
    """Phantoms a run of ``iterations`` simulates: validation ones plus the sliding pool's."""
    later = max(0, iterations - 1) // settings.refresh_every
    return settings.validation_phantoms + settings.pool_size + later


def stream_class_table(tree: dict[str, Any], seed: int, count: int) -> ClassTable:
    """The class table covering phantoms ``0 .. count-1`` of a stream (configs drawn only).

    Ids are the phantoms' own (:meth:`tomosim.config.SimulationConfig.class_ids`) when they agree
    across phantoms (always, with a top-level ``classes`` list); when sampled species lists number
    the classes differently, names keep their order of first appearance and get ids 1, 2, ...
    """
    tables: list[ClassTable] = []
    order: list[str] = []
    for k in range(count):
        config, _ = draw_phantom(tree, seed, k, source="on-the-fly config")
        table = class_table(config.class_ids())
        tables.append(table)
        order.extend(n for n in table.names if n not in order)
    try:
        return merge_class_tables(tables)
    except TomosimError:
        named = [n for n in order if n != "background"]
        return make_class_table(range(1, len(named) + 1), named)


@dataclasses.dataclass(frozen=True)
class PreparedPhantom:
    """Transform for :class:`PhantomStream`: a phantom folder -> one :class:`PatchSource`.

    The tomogram is resampled to ``pixel_size``, normalised and its labels mapped to the channels
    of ``classes`` (:func:`tomosim.train.data.prepare_training_volume`); every row may give
    patches (validation uses separate phantoms).
    """

    classes: ClassTable
    pixel_size: float
    spectrum_targets: tuple[RadialSpectrum, ...] = ()

    def __call__(self, folder: Path, rng: np.random.Generator) -> list[PatchSource]:
        """The patch sources of one simulated phantom folder.

        With ``spectrum_targets``, the volume is first filtered to a random mixture of their
        amplitude spectra drawn from ``rng`` (:func:`tomosim.train.spectrum_matching.
        match_training_volumes`), as ``train`` does with ``spectrum_match``.
        """
        volume = prepare_training_volume(
            read_simulation_folder(folder), classes=self.classes, pixel_size=self.pixel_size
        )
        if self.spectrum_targets:
            (volume,) = match_training_volumes(
                [volume], self.spectrum_targets, pixel_size=self.pixel_size, rng=rng
            )
        volume = dataclasses.replace(volume, name=f"on-the-fly {folder.name}")
        return [make_patch_source(volume, y_range=(0, volume.labels.shape[1]), rng=rng)]


class PhantomPool:
    """Patch sources for training on the fly: a pool of phantoms that slides along a stream.

    Phantoms ``0 .. V-1`` of the stream (``V = settings.validation_phantoms``) are kept for
    validation. Training iteration ``i`` draws patches from
    phantoms ``V + g .. V + g + P - 1`` with ``g = i // settings.refresh_every`` and
    ``P = settings.pool_size``: every ``refresh_every`` iterations the oldest phantom leaves and the
    next one joins. ``settings.workers`` spawned DataLoader processes simulate the upcoming
    phantoms while the network trains (up to two each ahead of need); when training gets ahead of
    them it waits (:attr:`waited_s`). The validation phantoms and the first pool are simulated in
    this process while the workers start (:attr:`first_fill_s`). Which phantoms a given iteration
    sees depends on the seed alone, not on timing or worker count, so a run is reproducible and
    ``start_iteration`` continues a resumed run on the same phantoms.

    Use as a context manager (the worker processes stop on exit).

    Parameters
    ----------
    tree
        Simulation config tree, possibly with distributions.
    seed
        Stream seed (phantom ``k`` = phantom ``k`` of ``tomosim dataset --seed SEED``).
    classes, pixel_size
        The model's class table and pixel size (phantoms are prepared to them).
    settings
        Pool size, refresh interval, workers, threads, validation phantoms.
    start_iteration
        First training iteration (a resumed run's).
    spectrum_targets
        Amplitude spectra to match every phantom to (a random mixture per phantom, drawn from
        the phantom's own generator: reproducible); none by default.
    simulate, scratch_dir
        As for :class:`PhantomStream` (``simulate`` must be importable by spawned processes).
    """

    def __init__(
        self,
        tree: dict[str, Any],
        seed: int,
        *,
        classes: ClassTable,
        pixel_size: float,
        settings: OnTheFlyConfig,
        start_iteration: int = 0,
        spectrum_targets: Sequence[RadialSpectrum] = (),
        simulate: Callable[..., object] | None = None,
        scratch_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.settings = settings
        self.validation_count = settings.validation_phantoms
        remove_stale_scratch(scratch_dir)  # left by runs that were killed
        transform = PreparedPhantom(classes=classes, pixel_size=float(pixel_size),
                                    spectrum_targets=tuple(spectrum_targets))
        oldest = self.validation_count + start_iteration // settings.refresh_every
        self._next = oldest + settings.pool_size  # the workers start after the first pool
        stream = PhantomStream(
            tree, seed, transform=transform, simulate=simulate, scratch_dir=scratch_dir,
            first=self._next, threads=settings.threads,
        )
        loader = phantom_loader(stream, batch_size=None, num_workers=settings.workers)
        self._iterator: Iterator[Any] | None = iter(loader)  # the workers start simulating now
        self._pool: deque[tuple[int, PatchSource]] = deque()
        self.waited_s = 0.0
        self.validation: list[PatchSource] = []
        start = time.perf_counter()
        try:  # validation phantoms and the first pool here, with every core, while workers start
            for k in range(self.validation_count):
                self.validation.extend(self._guarded(k, partial(stream.phantom_samples, k)))
            for k in range(oldest, self._next):
                samples = self._guarded(k, partial(stream.phantom_samples, k))
                self._pool.extend((k, sample) for sample in samples)
        except BaseException:
            self.close()
            raise
        self.first_fill_s = time.perf_counter() - start

    @property
    def phantoms_seen(self) -> int:
        """Training phantoms that have entered the pool so far."""
        return self._next - self.validation_count

    def sources(self, iteration: int) -> list[PatchSource]:
        """The patch sources of training iteration ``iteration`` (waits for phantoms if needed)."""
        if self._iterator is None:
            raise TomosimError("the phantom pool is closed")
        oldest = self.validation_count + iteration // self.settings.refresh_every
        if self._pool and oldest < self._pool[0][0]:
            raise TomosimError(f"iteration {iteration} is before the pool's current phantoms")
        start = time.perf_counter()
        while self._next < oldest + self.settings.pool_size:
            k = self._next
            source = self._guarded(k, lambda: next(self._iterator))  # type: ignore[arg-type]
            self._pool.append((k, source))
            self._next += 1
        self.waited_s += time.perf_counter() - start
        while self._pool[0][0] < oldest:
            self._pool.popleft()
        return [source for _, source in self._pool]

    @staticmethod
    def _guarded(k: int, produce: Callable[[], Any]) -> Any:
        """``produce()``, its failure turned into one line naming phantom ``k``."""
        try:
            item = produce()
        except Exception as exc:
            text = str(exc)
            if "Original Traceback" not in text:  # raised in this process
                reason = text if isinstance(exc, TomosimError) else f"{type(exc).__name__}: {text}"
            else:  # a worker's error arrives re-raised with its traceback in the message
                head, _, tail = text.rpartition(f"{type(exc).__name__}: ")
                reason = tail.strip() if head else text.strip().splitlines()[-1]
                if not isinstance(exc, TomosimError):
                    reason = f"{type(exc).__name__}: {reason}"
            raise TomosimError(f"on-the-fly phantom {phantom_folder(k)} failed: {reason}") from None
        return item

    def close(self) -> None:
        """Stop the worker processes."""
        iterator, self._iterator = self._iterator, None
        shutdown = getattr(iterator, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()

    def __enter__(self) -> PhantomPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
