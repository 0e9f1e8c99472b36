"""Training sets at scale: many randomised phantoms, in parallel, resumable.

:func:`generate_dataset` draws ``n`` phantom configs from one config that may hold distributions
(:mod:`tomosim.randomize`), simulates each into its own folder with
:func:`tomosim.pipeline.simulate`, and keeps an index of what was drawn and what is done::

    DIR/
      dataset_config.yaml     the config as given (with its distributions), dataset seed and n
      index.json, index.csv   one row per phantom: folder, seed, status, warnings (index.json:
                              the messages; index.csv: their number), drawn values (dotted keys)
      phantom_00000/          a complete simulation folder (config.resolved.yaml written last)
      phantom_00001/
      ...

Seeds
-----
Phantom ``i`` draws from ``numpy.random.Generator(PCG64(SeedSequence(seed).spawn(n)[i]))``,
computed directly as ``SeedSequence(seed, spawn_key=(i,))`` (the same sequence): its simulation
seed first, then every distribution in document order. Phantom ``i`` is therefore the same
whatever the number of workers, the order in which phantoms finish, or ``n`` itself; the dataset
seed defaults to the config's ``seed`` (0 if absent).

Resuming and atomicity
----------------------
A phantom is simulated into a hidden staging folder (``.phantom_00000.partial-<id>``) that is
renamed to ``phantom_00000`` only when complete, and a phantom folder counts as complete when it
holds ``config.resolved.yaml``. Re-running the same command skips complete phantoms, removes
staging folders and incomplete phantom folders (a run killed mid-phantom) and redoes those. An
output folder holding the index of a *different* dataset (another config, seed or n) is refused
unless ``overwrite=True``. The index files are rewritten atomically as phantoms finish.

Parallelism
-----------
``workers=1`` (and no scheduler) simulates in this process, one phantom after another.
``workers=K > 1`` starts a local Dask cluster of ``K`` worker processes, each running one
phantom at a time (``LocalCluster(n_workers=K, threads_per_worker=1, processes=True)``); each
worker limits numba and BLAS/OpenMP threads to ``max(1, cores // K)`` so workers do not
oversubscribe the cores, and starts without Dask's ``MALLOC_TRIM_THRESHOLD_`` (which makes
phantoms ~40 % slower, see :func:`tomosim.workers.local_cluster`). Separate phantoms scale
better than the threads inside one phantom: on 2 cores, 2 workers simulate 1.4-1.8x the
phantoms per hour of ``workers=1`` (docs/benchmarks.md).
``scheduler="tcp://host:port"`` (or the path of a Dask scheduler JSON file) sends the phantoms to
an existing cluster instead; a scheduler that does not answer within ``connect_timeout`` seconds
raises :class:`TomosimError`. Every worker must see the output folder (a shared file system) and
have tomosim installed.

Running on SLURM with dask-jobqueue (``pip install dask-jobqueue``)::

    # scheduler.py -- run on the login node, keep it running
    from dask_jobqueue import SLURMCluster
    cluster = SLURMCluster(
        queue="cpu", cores=8, processes=8, memory="32GB", walltime="04:00:00",
        job_script_prologue=["export OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1"],
    )  # and keep MALLOC_TRIM_THRESHOLD_ out of the workers: see docs/dataset.md
    cluster.scale(jobs=10)          # 10 SLURM jobs x 8 single-threaded workers
    print(cluster.scheduler_address)  # e.g. tcp://10.0.0.5:8786
    input("press enter to stop")

    # then, from any shell that reaches the scheduler:
    tomosim dataset train.yaml -n 10000 -o /shared/train --scheduler tcp://10.0.0.5:8786

The same from Python: ``generate_dataset("train.yaml", 10000, "/shared/train",
scheduler=cluster.scheduler_address)``. See docs/dataset.md.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import hashlib
import io
import json
import os
import shutil
import time
import uuid
import warnings
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from tomosim import pipeline
from tomosim.config import SimulationConfig, apply_overrides, config_from_dict, read_config_tree
from tomosim.errors import TomosimError
from tomosim.io import write_text
from tomosim.randomize import draw_config_with_values, flatten_values
from tomosim.workers import (
    connect_scheduler,
    exclusive_folder,
    limit_threads,
    local_cluster,
    one_line,
    threads_per_worker,
)

INDEX_FORMAT = "tomosim-dataset"
INDEX_VERSION = 1
COMPLETE_MARKER = "config.resolved.yaml"
STATUSES = ("pending", "done", "failed")

SimulateFunction = Callable[..., object]


@dataclass(frozen=True)
class PhantomEntry:
    """One phantom of a dataset.

    Attributes
    ----------
    index
        Phantom number ``i`` (0-based); its folder is ``phantom_{i:05d}``.
    folder
        Folder name relative to the dataset folder.
    seed
        The simulation seed of this phantom (``config.seed`` of its resolved config).
    status
        ``"pending"``, ``"done"`` or ``"failed"``.
    parameters
        The drawn values by dotted key path (``sample.pixel_size``), see
        :func:`tomosim.randomize.draw_config_with_values`; the seed is not repeated here.
    error
        The error message of a failed phantom, else None.
    warnings
        Warnings its simulation raised (objects that found no place, ...), one line each.
    """

    index: int
    folder: str
    seed: int
    status: str
    parameters: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class DatasetIndex:
    """What a dataset folder holds: its identity and one entry per phantom.

    Attributes
    ----------
    output_dir
        The dataset folder.
    config_hash
        SHA-256 of the config tree (with distributions, after overrides), the seed and ``n``.
    seed
        Dataset seed.
    n
        Number of phantoms.
    phantoms
        One :class:`PhantomEntry` per phantom, in phantom order.
    """

    output_dir: Path
    config_hash: str
    seed: int
    n: int
    phantoms: tuple[PhantomEntry, ...]

    @property
    def done(self) -> int:
        """Number of complete phantoms."""
        return sum(entry.status == "done" for entry in self.phantoms)

    def folders(self, status: str = "done") -> list[Path]:
        """Paths of the phantom folders with ``status`` (default: the complete ones)."""
        return [self.output_dir / e.folder for e in self.phantoms if e.status == status]


def checked_seed(seed: object, what: str) -> int:
    """``seed`` as an int in [0, 2**63), or a one-line :class:`TomosimError` naming ``what``."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**63:
        raise TomosimError(f"{what} must be an integer in [0, 2**63), got {seed!r}")
    return int(seed)


def phantom_folder(index: int) -> str:
    """Folder name of phantom ``index``: ``phantom_00000``, ``phantom_00001``, ..."""
    return f"phantom_{index:05d}"


def phantom_seed_sequence(dataset_seed: int, index: int) -> np.random.SeedSequence:
    """The seed sequence of phantom ``index``: ``SeedSequence(dataset_seed).spawn(n)[index]``."""
    return np.random.SeedSequence(dataset_seed, spawn_key=(index,))


def draw_phantom(
    tree: dict[str, Any], dataset_seed: int, index: int, *, source: str = "<dict>"
) -> tuple[SimulationConfig, dict[str, Any]]:
    """Draw and validate the config of phantom ``index`` of a dataset.

    Parameters
    ----------
    tree
        Raw config tree, possibly with distributions (:mod:`tomosim.randomize`).
    dataset_seed, index
        Phantom ``index`` draws from ``phantom_seed_sequence(dataset_seed, index)``.
    source
        Name of the config for error messages.

    Returns
    -------
    (config, values)
        The validated config (its ``seed`` is the drawn simulation seed; ``output.tomogram_name``
        is the phantom folder name unless the tree sets one) and the drawn values by dotted path.

    Raises
    ------
    TomosimError
        A malformed distribution or a drawn config that does not validate.
    """
    rng = np.random.default_rng(phantom_seed_sequence(dataset_seed, index))
    drawn, values = draw_config_with_values(tree, rng)
    output = drawn.get("output")
    if output is None or (isinstance(output, dict) and "tomogram_name" not in output):
        drawn["output"] = {**(output or {}), "tomogram_name": phantom_folder(index)}
    config = config_from_dict(drawn, source=f"{source} ({phantom_folder(index)})")
    return config, values


def generate_dataset(
    config: str | os.PathLike[str] | dict[str, Any],
    n: int,
    output_dir: str | os.PathLike[str],
    *,
    seed: int | None = None,
    workers: int = 1,
    scheduler: str | None = None,
    progress: bool = True,
    overrides: list[str] | None = None,
    overwrite: bool = False,
    connect_timeout: float = 5.0,
    simulate: SimulateFunction | None = None,
    max_memory_gb: float | None = None,
) -> DatasetIndex:
    """Simulate ``n`` randomised phantoms into ``output_dir``, in parallel and resumably.

    Parameters
    ----------
    config
        YAML file or raw config tree; any value may be a distribution (:mod:`tomosim.randomize`).
    n
        Number of phantoms (>= 1).
    output_dir
        Dataset folder (created). Re-running with the same config, seed and ``n`` resumes it.
    seed
        Dataset seed; None = the config's ``seed`` (0 if absent). See the module docstring.
    workers
        1 = simulate in this process; K > 1 = a local Dask cluster of K worker processes.
    scheduler
        Address of a running Dask scheduler (``tcp://host:port``) or the path of its scheduler
        JSON file; overrides ``workers``.
    progress
        Show a progress bar (rich, on stderr) with rate (phantoms per hour) and ETA.
    overrides
        ``section.key=value`` strings applied to the tree before drawing (values may be
        distributions, e.g. ``sample.pixel_size={uniform: [8, 12]}``).
    overwrite
        Replace a different dataset found in ``output_dir`` (its phantom folders and index).
    connect_timeout
        Seconds to wait for ``scheduler`` before giving up.
    simulate
        The function that writes one phantom folder, ``simulate(config, folder, progress=False)``;
        default :func:`tomosim.pipeline.simulate`. It must be importable on the workers.
    max_memory_gb
        Memory limit for the local workers together, GiB; None = the memory available. The
        largest drawn phantom's estimate (:func:`tomosim.pipeline.simulation_bytes`) times the
        number of local workers must fit, else nothing is written. Not checked with a
        ``scheduler`` (the memory is the remote workers').

    Returns
    -------
    DatasetIndex
        The final index (every phantom ``done`` when this returns).

    Raises
    ------
    TomosimError
        Bad config or arguments, a foreign dataset in ``output_dir``, another run writing to it,
        an unreachable scheduler. When a phantom fails, the remaining ones are cancelled, the
        index records the failure, and its exception is re-raised (re-run to resume).
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise TomosimError(f"number of phantoms must be an integer >= 1, got {n!r}")
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise TomosimError(f"workers must be an integer >= 1, got {workers!r}")
    n = int(n)
    if isinstance(config, dict):
        tree, source = copy.deepcopy(config), "<dict>"
    else:
        tree, source = read_config_tree(config), str(config)
    tree = apply_overrides(tree, list(overrides or []))
    if seed is None:
        seed = tree.get("seed", 0)
    seed = checked_seed(seed, "dataset seed")
    tree.pop("seed", None)
    config_hash = _tree_hash(tree, seed, n)

    # draw and validate every phantom before touching the output folder: bad input fails fast
    drawn = [draw_phantom(tree, seed, i, source=source) for i in range(n)]
    if scheduler is None:
        _check_dataset_memory([cfg for cfg, _ in drawn], min(int(workers), n), max_memory_gb)

    root = Path(output_dir)
    if root.exists() and not root.is_dir():
        raise TomosimError(f"output {root} exists and is not a folder")
    root.mkdir(parents=True, exist_ok=True)
    with exclusive_folder(root):
        earlier = _recorded_warnings(_check_or_clear(root, config_hash, overwrite=overwrite))
        write_text(
            root / "dataset_config.yaml",
            yaml.safe_dump({"seed": seed, "n": n, "config": tree}, sort_keys=False),
        )
        entries: list[PhantomEntry] = []
        for i, (cfg, values) in enumerate(drawn):
            folder = phantom_folder(i)
            done = _clean_phantom(root, folder)
            parameters = {k: v for k, v in values.items() if k != "seed"}
            entries.append(PhantomEntry(
                i, folder, cfg.seed, "done" if done else "pending", parameters,
                warnings=earlier.get(i, ()) if done else (),
            ))
        index = _IndexWriter(root, config_hash, seed, n, entries)
        index.write()
        pending = [e.index for e in entries if e.status != "done"]
        run = _run_local if scheduler is None and workers == 1 else _run_dask
        with _progress_bar(progress, n, n - len(pending)) as advance:
            failure: BaseException | None = None
            results = run(
                [(i, drawn[i][0]) for i in pending], root, simulate,
                workers=int(workers), scheduler=scheduler, connect_timeout=connect_timeout,
            )
            try:
                for i, error, caught in results:
                    if error is None:
                        index.update(i, status="done", error=None, warnings=caught)
                        advance()
                    else:
                        index.update(i, status="failed", error=one_line(error))
                        failure = failure or error
                        break
            finally:
                results.close()  # cancels what is still running and stops a local cluster
                index.write(force=True)
        if failure is not None:
            raise failure
        return index.snapshot()


def _check_dataset_memory(
    configs: list[SimulationConfig], workers: int, max_memory_gb: float | None
) -> None:
    """Refuse when ``workers`` phantoms as large as the largest drawn one do not fit."""
    from tomosim.memory import check_memory

    sizes = [pipeline.simulation_bytes(cfg) for cfg in configs]
    largest = int(np.argmax(sizes))
    shape = tuple(configs[largest].sample.shape)
    check_memory(
        sizes[largest] * workers,
        what=f"simulating {workers} phantom(s) at a time of up to {shape} voxels (phantom "
        f"{largest})",
        max_memory_gb=max_memory_gb,
    )


def read_index(output_dir: str | os.PathLike[str]) -> DatasetIndex:
    """Read the index of a dataset folder written by :func:`generate_dataset`.

    Raises
    ------
    TomosimError
        No index, or an unreadable one.
    """
    root = Path(output_dir)
    header = _read_header(root)
    if header is None:
        raise TomosimError(f"no tomosim dataset index in {root} (index.json missing)")
    phantoms = tuple(
        PhantomEntry(
            index=int(row["phantom"]), folder=str(row["folder"]), seed=int(row["seed"]),
            status=str(row["status"]), parameters=dict(row.get("parameters", {})),
            error=row.get("error"), warnings=tuple(row.get("warnings", ())),
        )
        for row in header.get("phantoms", [])
    )
    return DatasetIndex(
        root, str(header["config_hash"]), int(header["seed"]), int(header["n"]), phantoms
    )


# --------------------------------------------------------------------------------------------
# Running phantoms
# --------------------------------------------------------------------------------------------


def simulate_phantom(
    config: SimulationConfig,
    output_dir: str | os.PathLike[str],
    folder: str,
    *,
    simulate: SimulateFunction | None = None,
    threads: int | None = None,
) -> tuple[str, ...]:
    """Simulate one phantom into ``output_dir/folder`` via a staging folder renamed when complete.

    This is the task each Dask worker runs. ``threads`` limits numba (and, through the
    environment of worker processes, BLAS/OpenMP) threads in this process.

    Returns
    -------
    tuple of str
        The warnings the simulation raised (e.g. "placed 180 of 200 requested"), one line each;
        they are recorded in the index instead of being printed.
    """
    if threads is not None:
        limit_threads(threads)
    if simulate is None:
        simulate = pipeline.simulate
    root = Path(output_dir)
    final = root / folder
    staging = root / f".{folder}.partial-{uuid.uuid4().hex[:12]}"
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            simulate(config, staging, progress=False)
        if not (staging / COMPLETE_MARKER).is_file():
            raise RuntimeError(f"simulate did not write {COMPLETE_MARKER} into {staging}")
        if not (final / COMPLETE_MARKER).is_file():  # else a duplicate attempt finished it
            if final.exists():
                shutil.rmtree(final)
            os.replace(staging, final)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    messages = (" ".join(str(w.message).split()) for w in caught)
    return tuple(dict.fromkeys(m for m in messages if m))


Outcome = tuple[int, "BaseException | None", tuple[str, ...]]
"""(phantom index, its exception or None, its warnings)"""


def _run_local(
    tasks: list[tuple[int, SimulationConfig]], root: Path, simulate: SimulateFunction | None,
    **_: Any,
) -> Generator[Outcome, None, None]:
    for i, config in tasks:
        try:
            caught = simulate_phantom(config, root, phantom_folder(i), simulate=simulate)
        except Exception as exc:  # noqa: BLE001 -- recorded in the index, then re-raised
            yield i, exc, ()
            return
        yield i, None, caught


def _run_dask(
    tasks: list[tuple[int, SimulationConfig]], root: Path, simulate: SimulateFunction | None,
    *, workers: int, scheduler: str | None, connect_timeout: float,
) -> Generator[Outcome, None, None]:
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise TomosimError(
            "parallel datasets need Dask: pip install 'dask[distributed]' (or use --workers 1)"
        ) from None
    if not tasks:
        return
    with contextlib.ExitStack() as stack:
        threads: int | None
        if scheduler is not None:
            client = stack.enter_context(connect_scheduler(Client, scheduler, connect_timeout))
            threads = None
        else:
            threads = threads_per_worker(workers)
            cluster = stack.enter_context(local_cluster(workers))
            client = stack.enter_context(Client(cluster))
        futures = {}
        for i, config in tasks:
            future = client.submit(
                simulate_phantom, config, str(root), phantom_folder(i), simulate=simulate,
                threads=threads, key=f"tomosim-{phantom_folder(i)}-{uuid.uuid4().hex[:8]}",
                pure=False,
            )
            futures[future] = i
        completed = as_completed(futures)
        try:
            for future in completed:
                i = futures[future]
                try:
                    caught = future.result()
                except Exception as exc:  # noqa: BLE001 -- recorded in the index, then re-raised
                    yield i, exc, ()
                    return
                yield i, None, tuple(caught)
        finally:
            for future in futures:
                if not future.done():
                    future.cancel()


# --------------------------------------------------------------------------------------------
# The dataset folder: identity, lock, cleaning, index
# --------------------------------------------------------------------------------------------


def _tree_hash(tree: dict[str, Any], seed: int, n: int) -> str:
    text = json.dumps({"config": tree, "seed": seed, "n": n}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _read_header(root: Path) -> dict[str, Any] | None:
    path = root / "index.json"
    if not path.is_file():
        return None
    try:
        header = json.loads(path.read_text())
    except (OSError, ValueError):
        raise TomosimError(f"dataset index {path} is not readable JSON (use --overwrite)") from None
    if not isinstance(header, dict) or header.get("format") != INDEX_FORMAT:
        raise TomosimError(f"{path} is not a tomosim dataset index (use --overwrite)")
    return header


def _recorded_warnings(header: dict[str, Any] | None) -> dict[int, tuple[str, ...]]:
    """Warnings an index ``header`` records per phantom (kept for finished phantoms on resume)."""
    if header is None:
        return {}
    return {
        int(row["phantom"]): tuple(str(w) for w in row.get("warnings", ()))
        for row in header.get("phantoms", []) if row.get("warnings")
    }


def _check_or_clear(
    root: Path, config_hash: str, *, overwrite: bool
) -> dict[str, Any] | None:
    """Refuse (or, with ``overwrite``, clear) a folder holding another dataset.

    Returns the index header of this dataset found in ``root`` (None when there is none).
    """
    try:
        header = _read_header(root)
        if header is None and any(root.glob("phantom_*")):
            raise TomosimError(
                f"output folder {root} holds phantom folders but no dataset index (use --overwrite)"
            )
        if header is not None and header.get("config_hash") != config_hash:
            raise TomosimError(
                f"output folder {root} holds another dataset (seed {header.get('seed')}, "
                f"n {header.get('n')}; config, seed or n differ): use --overwrite or another folder"
            )
        foreign = False
    except TomosimError:
        if not overwrite:
            raise
        foreign = True
    if foreign:
        for path in [*root.glob("phantom_*"), *root.glob(".phantom_*.partial-*")]:
            if path.is_dir():
                shutil.rmtree(path)
        for name in ("index.json", "index.csv", "dataset_config.yaml"):
            (root / name).unlink(missing_ok=True)
        return None
    return header


def _clean_phantom(root: Path, folder: str) -> bool:
    """Remove staging leftovers and an incomplete folder of ``folder``; True if it is complete."""
    for staging in root.glob(f".{folder}.partial-*"):
        shutil.rmtree(staging, ignore_errors=True)
    path = root / folder
    if (path / COMPLETE_MARKER).is_file():
        return True
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()
    return False


class _IndexWriter:
    """Keeps the entries and rewrites index.json / index.csv atomically as phantoms finish."""

    def __init__(
        self, root: Path, config_hash: str, seed: int, n: int, entries: list[PhantomEntry]
    ) -> None:
        self.root, self.config_hash, self.seed, self.n = root, config_hash, seed, n
        self.entries = entries
        self.last_write = 0.0
        self.write_seconds = 0.0  # measured only for big indexes; small ones are always written

    def update(self, index: int, **changes: Any) -> None:
        self.entries[index] = replace(self.entries[index], **changes)
        self.write()

    def snapshot(self) -> DatasetIndex:
        return DatasetIndex(self.root, self.config_hash, self.seed, self.n, tuple(self.entries))

    def write(self, *, force: bool = False) -> None:
        """Rewrite both index files; for big indexes, skip writes that would take > 10% of time."""
        start = time.monotonic()
        if not force and start - self.last_write < 10 * self.write_seconds:
            return
        rows = []
        for e in self.entries:
            row: dict[str, Any] = {
                "phantom": e.index, "folder": e.folder, "seed": e.seed, "status": e.status,
                "parameters": e.parameters,
            }
            if e.error is not None:
                row["error"] = e.error
            if e.warnings:
                row["warnings"] = list(e.warnings)
            rows.append(row)
        header = {
            "format": INDEX_FORMAT, "version": INDEX_VERSION, "config_hash": self.config_hash,
            "seed": self.seed, "n": self.n, "phantoms": rows,
        }
        write_text(self.root / "index.json", json.dumps(header, indent=1) + "\n")
        write_text(self.root / "index.csv", self.csv_text())
        self.last_write = time.monotonic()
        if self.n >= 1000:
            self.write_seconds = self.last_write - start

    def csv_text(self) -> str:
        columns: dict[str, None] = {}
        for e in self.entries:
            columns.update(dict.fromkeys(e.parameters))
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["phantom", "folder", "seed", "status", "warnings", *columns])
        for e in self.entries:
            flat = flatten_values(e.parameters)
            writer.writerow(
                [
                    e.index, e.folder, e.seed, e.status, len(e.warnings),
                    *(flat.get(k, "") for k in columns),
                ]
            )
        return buffer.getvalue()


@contextlib.contextmanager
def _progress_bar(show: bool, total: int, done: int) -> Iterator[Callable[[], None]]:
    """A rich progress bar on stderr (phantoms done / total, phantoms per hour, ETA)."""
    if not show:
        yield lambda: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class PerHour(ProgressColumn):
        def render(self, task: Any) -> Text:
            speed = task.finished_speed or task.speed
            return Text(
                "?/h" if speed is None else f"{speed * 3600:,.0f}/h", style="progress.data.speed"
            )

    bar = Progress(
        TextColumn("phantoms"), BarColumn(), MofNCompleteColumn(), PerHour(),
        TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
        console=Console(stderr=True),
    )
    with bar:
        task = bar.add_task("phantoms", total=total, completed=done)
        yield lambda: bar.advance(task)
