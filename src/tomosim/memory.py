"""Memory estimates checked before a command allocates its arrays.

A command estimates the bytes it will hold at its peak from the sizes it is about to create and
refuses, with the figure and what the machine has, before anything is allocated or written.
The estimates count the large arrays (volumes, tilt series, their Fourier transforms), with a
stated number of bytes per voxel; they are meant to catch impossible requests (a 4096³ sample, a
tomogram 10⁶ voxels thick), not to predict the peak to the megabyte.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import os
import sys

from tomosim.errors import TomosimError

GIB = 1024**3

SIMULATE_BYTES_PER_VOXEL = 40
"""Sample volume: potential, labels, instances, placement occupancy, tomogram (float32/uint8/
uint32 copies) and the workspace of rendering and backprojection, bytes per sample voxel."""

TILT_BYTES_PER_PIXEL = 16
"""Per tilt-image pixel: the stored image plus its padded complex FFT while the CTF is applied."""

RECONSTRUCT_BYTES_PER_VOXEL = 8
"""Per tomogram voxel: the float32 volume plus the float32 copy written out."""

SEGMENT_BYTES_PER_VOXEL = 16
"""Per tomogram voxel: the float32 input, its resampled copy, the uint8 labels and the chunk
buffers of the network (probabilities are memory-mapped to disk, not counted)."""


def available_memory_bytes() -> int:
    """Return the memory this process can still use, in bytes.

    ``MemAvailable`` from ``/proc/meminfo`` (Linux), capped by a cgroup limit if one is set; else
    the physical memory reported by ``os.sysconf``.
    """
    available = None
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    if available is None:
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            available = 2**62  # unknown: do not refuse
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(limit_file) as handle:
                text = handle.read().strip()
        except OSError:
            continue
        if text.isdigit():
            available = min(available, int(text))
    return available


def check_memory(needed_bytes: float, *, what: str, max_memory_gb: float | None = None) -> None:
    """Refuse to start when ``needed_bytes`` exceed the memory available (or the given limit).

    Parameters
    ----------
    needed_bytes
        The estimate of the command's peak, bytes.
    what
        What needs it, for the message (e.g. ``"simulate of a (4096, 4096, 4096) sample"``).
    max_memory_gb
        The limit in GiB, chosen deliberately by the user (``--max-memory-gb``); None uses the
        memory available now.

    Raises
    ------
    TomosimError
        With the estimate and the limit, when the estimate is larger.
    """
    if max_memory_gb is not None:
        if not (max_memory_gb > 0 and math.isfinite(max_memory_gb)):
            raise TomosimError(f"--max-memory-gb must be a positive number, got {max_memory_gb}")
        limit = max_memory_gb * GIB
        source = "the limit set by --max-memory-gb"
    else:
        limit = available_memory_bytes()
        source = "the memory available"
    if needed_bytes > limit:
        raise TomosimError(
            f"{what} needs about {needed_bytes / GIB:.3g} GiB, more than {source} "
            f"({limit / GIB:.3g} GiB); make it smaller, or raise the limit with --max-memory-gb"
        )


def simulate_bytes(
    shape: tuple[int, int, int], *, n_tilts: int, padding: float, reconstruction_binning: int = 1
) -> float:
    """Estimate the peak bytes of simulating a ``(z, y, x)`` sample with ``n_tilts`` images.

    Parameters
    ----------
    shape
        Sample volume ``(z, y, x)``, voxels.
    n_tilts
        Number of tilt images.
    padding
        Fractional padding of the images against wrap-around (``microscope.optics.padding``).
    reconstruction_binning
        Binning of the tomogram (the tomogram is smaller by its cube).
    """
    z, y, x = shape
    voxels = float(z) * y * x
    image = float(y) * x * (1 + padding) ** 2
    return voxels * SIMULATE_BYTES_PER_VOXEL + n_tilts * image * TILT_BYTES_PER_PIXEL


def reconstruct_bytes(
    stack_shape: tuple[int, int, int], *, thickness_px: int, binning: int = 1
) -> float:
    """Estimate the peak bytes of reconstructing a ``(tilts, y, x)`` stack to a tomogram.

    The tomogram is ``(thickness_px / binning, y / binning, x / binning)`` voxels; the stack is held
    as float32 (and a binned copy).
    """
    n, y, x = stack_shape
    volume = (thickness_px / binning) * (y / binning) * (x / binning)
    return volume * RECONSTRUCT_BYTES_PER_VOXEL + 2 * 4.0 * n * y * x


def segment_bytes(shape: tuple[int, int, int], *, scale: float) -> float:
    """Estimate the peak bytes of segmenting a ``(z, y, x)`` tomogram.

    ``scale`` is the tomogram's voxel size over the model's pixel size: the volume is resampled
    by it (a factor ``scale³`` more voxels) before the network runs.
    """
    voxels = float(shape[0]) * shape[1] * shape[2]
    return voxels * SEGMENT_BYTES_PER_VOXEL + voxels * scale**3 * SEGMENT_BYTES_PER_VOXEL


_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


def retain_freed_memory() -> bool:
    """Let glibc's ``malloc`` keep freed memory for reuse instead of returning it to the system.

    A network run over a tomogram allocates and frees activations of hundreds of MB per batch.
    By default glibc serves each from a fresh ``mmap`` and unmaps it on ``free``, so every batch
    faults its pages in again (2.5 million minor page faults, 17 s of system time for
    ``segment default`` of a 512 x 512 x 200 tomogram on 2 cores; 0.2 million and 9 s with this).
    PyTorch's CPU performance guide recommends a caching allocator (jemalloc, tcmalloc) for the
    same reason; this is the glibc equivalent: no ``mmap`` for large blocks (``M_MMAP_MAX`` 0)
    and no trimming of the heap (``M_TRIM_THRESHOLD`` 2 GiB). The peak memory is unchanged
    (freed blocks are reused), results are unchanged. Only the calling process is affected, from
    now on; does nothing outside Linux/glibc.

    Returns
    -------
    bool
        True if both settings were accepted.
    """
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others: no mallopt
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
