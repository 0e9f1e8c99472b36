"""Workers: the parallel plumbing of datasets and streams (Dask clusters, threads, locks).

:mod:`tomosim.dataset` and :mod:`tomosim.train.on_the_fly` run phantoms in worker processes;
this module holds what is not dataset logic: how many cores there are, how many numba/BLAS
threads each worker gets, the local Dask cluster, connecting to a remote scheduler, and the
exclusive lock on an output folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tomosim.errors import TomosimError


def one_line(error: BaseException) -> str:
    """An exception as one line: its message, prefixed by its type unless a TomosimError."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if isinstance(error, TomosimError) else f"{type(error).__name__}: {text}"


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity: taskset, cgroups, SLURM), at least 1."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def threads_per_worker(workers: int) -> int:
    """numba/BLAS threads of each of ``workers`` local processes: ``max(1, cores // workers)``."""
    return max(1, usable_cores() // workers)


UNSET_MALLOC_TRIM = "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_"
"""Dask config key whose value None keeps MALLOC_TRIM_THRESHOLD_ out of worker environments."""


def local_cluster(workers: int, *, threads: int | None = None) -> Any:
    """The local Dask cluster of :func:`generate_dataset`: ``workers`` worker processes.

    Each worker runs one task at a time; its process starts with ``NUMBA_NUM_THREADS``,
    ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS`` and ``OPENBLAS_NUM_THREADS`` set to ``threads``
    (default :func:`threads_per_worker`), and without Dask's ``MALLOC_TRIM_THRESHOLD_``. Use it
    as a context manager (it is a ``distributed.LocalCluster``).
    """
    import dask.config
    from distributed import LocalCluster

    limit = str(threads_per_worker(workers) if threads is None else max(1, int(threads)))
    # Dask's nannies set MALLOC_TRIM_THRESHOLD_=65536 in their workers' environment. Setting it at
    # all switches off glibc's dynamic mmap threshold, so every large array becomes a fresh mmap
    # whose pages are faulted in and zeroed: measured 39 % slower phantoms (benchmarks/
    # bench_dataset.py). A None value removes the variable (distributed.nanny._get_env_variables).
    with dask.config.set({UNSET_MALLOC_TRIM: None}):
        return LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
            silence_logs=40,
            env={name: limit for name in (
                "NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
            )},
        )


@contextlib.contextmanager
def connect_scheduler(client_class: Any, scheduler: str, timeout: float) -> Iterator[Any]:
    """A Dask client of ``scheduler`` (address or scheduler file), or a one-line TomosimError."""
    target = str(scheduler).strip()
    if not target:
        raise TomosimError("scheduler address is empty (expected tcp://host:port)")
    is_file = target.endswith(".json") or Path(target).is_file()
    if is_file and not Path(target).is_file():
        raise TomosimError(f"scheduler file not found: {target}")
    try:
        if is_file:
            client = client_class(scheduler_file=target, timeout=timeout)
        else:
            client = client_class(target, timeout=timeout)
    except (OSError, TimeoutError, ValueError) as exc:
        reason = one_line(exc)
        raise TomosimError(
            f"no Dask scheduler answers at {target} within {timeout:g} s ({reason})"
        ) from None
    try:
        yield client
    finally:
        client.close()


def limit_threads(threads: int) -> None:
    """Limit numba's thread pool in this process to ``threads``.

    BLAS/OpenMP pools read ``OMP_NUM_THREADS`` etc. when they start, so the variables are set
    here for libraries not loaded yet; local Dask workers get them from their environment.
    """
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(name, str(threads))
    try:
        import numba

        pool = int(numba.config.NUMBA_NUM_THREADS)  # type: ignore[attr-defined]
        numba.set_num_threads(max(1, min(threads, pool)))
    except (ImportError, ValueError):  # pragma: no cover - numba missing or pool fixed
        pass


@contextlib.contextmanager
def exclusive_folder(root: Path) -> Iterator[None]:
    """Hold an exclusive lock on the dataset folder (released by the OS if the process dies)."""
    lock_path = root / ".tomosim-dataset.lock"
    with open(lock_path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise TomosimError(f"another tomosim dataset run is writing to {root}") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
