"""File input and output: MRC volumes, atomic writes, tables.

All writers go through :func:`atomic_path`: the data are written to a temporary name in the same
folder and renamed over the final name only when complete, so an interrupted or failed run never
leaves a half-written file that looks finished.

Array axes are ``(z, y, x)`` (see CONVENTIONS.md); MRC ``voxel_size`` is the pixel size in Å.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import os
import shutil
import socket
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mrcfile
import numpy as np

from tomosim.array_statistics import Summary, summary_statistics
from tomosim.errors import TomosimError


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()

# IMOD marks MRC files with this stamp; bit 0 of imodFlags set means mode-0 bytes are signed.
IMOD_STAMP = 1146047817


# imodStamp and imodFlags are header bytes 152-159, i.e. bytes 40-47 of MRC2014 "extra2" (112-195)
_IMOD_OFFSET = 152 - 112


def _int32_dtype(header: np.recarray) -> np.dtype:
    """int32 in the byte order of the header (mrcfile keeps the file's order)."""
    return np.dtype(np.int32).newbyteorder(header.mode.dtype.byteorder)


def _imod_stamp_and_flags(header: np.recarray) -> tuple[int, int]:
    raw = np.asarray(header.extra2).tobytes()
    words = np.frombuffer(raw[_IMOD_OFFSET : _IMOD_OFFSET + 8], dtype=_int32_dtype(header))
    return int(words[0]), int(words[1])


def _set_imod_stamp_and_flags(header: np.recarray, stamp: int, flags: int) -> None:
    raw = bytearray(np.asarray(header.extra2).tobytes())
    stamp_and_flags = np.array([stamp, flags], dtype=_int32_dtype(header))
    raw[_IMOD_OFFSET : _IMOD_OFFSET + 8] = stamp_and_flags.tobytes()
    header.extra2 = np.frombuffer(bytes(raw), dtype=np.asarray(header.extra2).dtype)


PARTIAL_MARK = ".partial"


def _owner_tag() -> str:
    """``<pid>-<host>``: the process writing a temporary file, and a short hash of its host."""
    host = zlib.crc32(socket.gethostname().encode()) & 0xFFFFFFFF
    return f"{os.getpid()}-{host:08x}"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` if the block succeeds.

    The temporary file is ``.<stem>.<pid>-<random>.partial<suffixes>``: it keeps the final suffix
    (``.mrc``, ``.png`` ...) so that writers which choose a format by suffix still do the right
    thing, and names its process so that :func:`remove_stale_partials` can remove the leftovers
    of a killed run. On any exception the temporary file is removed and ``path`` is left
    untouched; an ``OSError`` without a file name (a full disk) gets ``path`` as its file name.
    """
    final = Path(path)
    if final.is_dir():
        raise TomosimError(f"output path is a folder, not a file: {final}")
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(final.parent)
    try:
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{final.stem}.{_owner_tag()}-",
            suffix=PARTIAL_MARK + "".join(final.suffixes),
            dir=final.parent,
        )
    except OSError as exc:  # e.g. a name too long: name the file asked for, not the temporary
        raise OSError(exc.errno, exc.strerror, str(final)) from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if tmp.exists():
            os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual mode
        os.replace(tmp, final)
    except OSError as exc:
        if exc.filename is None:  # e.g. ENOSPC from a write: name the file being written
            raise OSError(exc.errno, exc.strerror or str(exc), str(final)) from exc
        raise
    finally:
        if tmp.exists():
            tmp.unlink()


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_partials(folder: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporary files (and staging folders) of killed runs in ``folder``.

    Temporary names made by :func:`atomic_path` and :func:`staged_folder` carry the process id
    and a hash of the host writing them (``.<stem>.<pid>-<host>-<random>.partial...``); those made
    on this host by processes that no longer exist are removed. Files of live processes, of other
    hosts (a shared file system) and hidden files not made by tomosim are kept.

    Returns
    -------
    list of Path
        What was removed.
    """
    removed: list[Path] = []
    host = _owner_tag().split("-")[1]
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        name = entry.name
        if not name.startswith(".") or PARTIAL_MARK not in name:
            continue
        head = name[: name.index(PARTIAL_MARK)].rsplit(".", 1)[-1].split("-")
        if len(head) < 3 or not head[0].isdigit() or head[1] != host:
            continue
        if _process_alive(int(head[0])):
            continue
        path = Path(entry.path)
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(path)
            else:
                path.unlink()
        except OSError:
            continue
        removed.append(path)
    return removed


@contextlib.contextmanager
def staged_folder(path: str | os.PathLike[str], *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a staging folder beside ``path``; it becomes ``path`` if the block succeeds.

    The staging folder is ``.<name>.<pid>-<random>.partial``. An existing non-empty ``path`` is
    refused unless ``overwrite``; with ``overwrite`` the old folder is replaced only once the new
    one is complete (moved aside, the new one renamed in, the old one deleted), so a run killed at
    any moment leaves either the old folder or the new one, never a mix. On any exception the
    staging folder is removed.

    Raises
    ------
    TomosimError
        If ``path`` is a file, or a non-empty folder and ``overwrite`` is False.
    """
    final = Path(path)
    if final.exists() and not final.is_dir():
        raise TomosimError(f"output path exists and is not a folder: {final}")
    if final.is_dir() and any(final.iterdir()) and not overwrite:
        raise TomosimError(
            f"output folder exists and is not empty (use --overwrite to replace it): {final}"
        )
    parent = final.parent
    parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(parent)
    try:
        staging = Path(tempfile.mkdtemp(
            prefix=f".{final.name}.{_owner_tag()}-", suffix=PARTIAL_MARK, dir=parent
        ))
    except OSError as exc:  # e.g. a name too long: name the folder asked for
        raise OSError(exc.errno, exc.strerror, str(final)) from None
    try:
        yield staging
        os.chmod(staging, 0o777 & ~_UMASK)  # mkdtemp makes 0700 folders; give the usual mode
        if final.exists():
            old = Path(tempfile.mkdtemp(
                prefix=f".{final.name}.{_owner_tag()}-old-", suffix=PARTIAL_MARK, dir=parent
            ))
            os.replace(final, old / final.name)
            os.replace(staging, final)
            shutil.rmtree(old)
        else:
            os.replace(staging, final)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def reserve_space(path: str | os.PathLike[str]) -> None:
    """Allocate the disk blocks of a file that will be written through a memory map.

    Writing to a memory-mapped page for which the disk has no room kills the process with
    SIGBUS; reserving the blocks first turns a full disk into an ``OSError`` (ENOSPC) that names
    the file. A no-op where the file system cannot reserve space.
    """
    size = os.path.getsize(path)
    if size == 0 or not hasattr(os, "posix_fallocate"):
        return
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            return
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    finally:
        os.close(fd)


def cache_dir(kind: str) -> Path:
    """Return the on-disk cache folder for ``kind`` ("structures", "potentials" ...), created.

    ``$TOMOSIM_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/tomosim``, else ``~/.cache/tomosim``.

    Raises
    ------
    TomosimError
        If the folder cannot be created or written (naming the variable that chose it).
    """
    variable = "TOMOSIM_CACHE_DIR"
    root = os.environ.get(variable)
    if not root:
        variable = "XDG_CACHE_HOME" if os.environ.get("XDG_CACHE_HOME") else "HOME"
        xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        root = str(Path(xdg) / "tomosim")
    path = Path(root) / kind
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise TomosimError(
            f"cannot use the cache folder {path} (set by {variable}): "
            f"{exc.strerror or exc}"
        ) from None
    return path


def require_finite(data: np.ndarray, path: str | os.PathLike[str]) -> None:
    """Refuse a volume with NaN or infinite values, naming how many and the file."""
    if data.dtype.kind == "f":
        bad = int(data.size - np.count_nonzero(np.isfinite(data)))
        if bad:
            raise TomosimError(f"{bad} voxels are NaN or infinite: {path}")


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def read_tlt(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IMOD ``.tlt`` file: one tilt angle (degrees) per line, in image order.

    Blank lines are skipped; anything after the first number on a line is ignored (as IMOD does).

    Returns
    -------
    numpy.ndarray
        ``(n,)`` float64 angles in degrees.

    Raises
    ------
    TomosimError
        If the file is missing or unreadable, a line does not start with a number, a value is not
        finite, or the file holds no angles.
    """
    p = Path(path)
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        reason = "not found" if isinstance(exc, FileNotFoundError) else f"unreadable ({exc})"
        raise TomosimError(f"tilt angle file {reason}: {p}") from None
    angles = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        try:
            value = float(fields[0])
        except ValueError:
            raise TomosimError(
                f"tilt angle file line {number} is not a number ({line.strip()!r}): {p}"
            ) from None
        if not np.isfinite(value):
            raise TomosimError(f"tilt angle file line {number} is not finite ({value}): {p}")
        angles.append(value)
    if not angles:
        raise TomosimError(f"tilt angle file holds no angles: {p}")
    return np.asarray(angles, dtype=np.float64)


def write_tlt(path: str | os.PathLike[str], angles: np.ndarray) -> None:
    """Write tilt angles (degrees) as an IMOD ``.tlt`` file, one per line, atomically.

    Values are written with 4 decimals (IMOD writes 2), so angles on a 0.0001° grid round-trip.
    """
    values = np.asarray(angles, dtype=np.float64).reshape(-1)
    if not np.isfinite(values).all():
        raise TomosimError(f"tilt angles must be finite to write {path}")
    write_text(path, "".join(f"{value:9.4f}\n" for value in values))


@dataclass(frozen=True)
class MrcVolume:
    """A volume or image stack read from an MRC file.

    Attributes
    ----------
    data
        Array in ``(z, y, x)`` order (a stack: ``(section, y, x)``), as stored.
    voxel_size
        ``(z, y, x)`` voxel size in Å; 0 where the header holds none.
    origin
        ``(x, y, z)`` header origin in Å.
    """

    data: np.ndarray
    voxel_size: tuple[float, float, float]
    origin: tuple[float, float, float]


def read_mrc(path: str | os.PathLike[str], *, require_voxel_size: bool = True) -> MrcVolume:
    """Read an MRC/MAP file (optionally gzipped) with its voxel size and origin.

    Parameters
    ----------
    path
        File name; ``.gz`` files are decompressed on the fly.
    require_voxel_size
        Raise :class:`TomosimError` if the header voxel size is zero or negative.

    Raises
    ------
    TomosimError
        If the file is missing, not a readable MRC file, or has no voxel size.
    """
    p = Path(path)
    if not p.is_file():
        raise TomosimError(f"file not found: {p}")
    try:
        if p.suffix == ".gz":
            with gzip.open(p, "rb") as fh:
                raw = fh.read()
            with tempfile.NamedTemporaryFile(suffix=".mrc") as tmp:
                tmp.write(raw)
                tmp.flush()
                return read_mrc(tmp.name, require_voxel_size=require_voxel_size)
        with mrcfile.open(p, mode="r", permissive=True) as mrc:
            if mrc.data is None:
                raise TomosimError(f"not a readable MRC file (no data): {p}")
            data = np.asarray(mrc.data).copy()
            header = mrc.header
            stamp, flags = _imod_stamp_and_flags(header)
            if data.dtype == np.int8 and stamp == IMOD_STAMP and not flags & 1:
                data = data.view(np.uint8)  # IMOD-style unsigned bytes (labels)
            vs = mrc.voxel_size
            voxel = (float(vs.z), float(vs.y), float(vs.x))
            org = mrc.header.origin
            origin = (float(org.x), float(org.y), float(org.z))
    except TomosimError:
        raise
    except (OSError, ValueError, EOFError) as exc:
        raise TomosimError(f"not a readable MRC file ({exc}): {p}") from None
    if require_voxel_size and min(voxel) <= 0:
        raise TomosimError(f"MRC file has no voxel size (header voxel size {voxel[::-1]}): {p}")
    return MrcVolume(data=data, voxel_size=voxel, origin=origin)


def write_mrc(
    path: str | os.PathLike[str],
    data: np.ndarray,
    *,
    voxel_size: float | tuple[float, float, float],
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0),
    is_stack: bool = False,
) -> None:
    """Write ``data`` to an MRC file atomically, with voxel size and origin set.

    Parameters
    ----------
    data
        ``(z, y, x)`` volume, ``(section, y, x)`` image stack or ``(y, x)`` image. float64 is
        stored as float32; uint8/int8/int16/uint16/float16/float32 are stored as they are. MRC has
        no 32-bit integer mode, so 32/64-bit integer ids (instances) are stored as uint16 when they
        fit and as float32 (exact up to 2**24) otherwise.
    voxel_size
        Å; a scalar or ``(z, y, x)``.
    origin
        ``(x, y, z)`` in Å.
    is_stack
        Mark a 3D array as an image stack (MRC space group 0), as IMOD expects for tilt series.
    """
    arr = np.asarray(data)
    if arr.dtype in (np.uint32, np.int32, np.int64, np.uint64):
        # MRC has no 32-bit integer mode: ids fit uint16 (mode 6) or are exact in float32 < 2**24
        top = int(arr.max()) if arr.size else 0
        if int(arr.min(initial=0)) >= 0 and top < 2**16:
            arr = arr.astype(np.uint16)
        elif top < 2**24:
            arr = arr.astype(np.float32)
        else:
            raise TomosimError(
                f"integer values beyond 2**24 cannot be stored exactly in MRC: {path}"
            )
    elif arr.dtype == np.float64:
        arr = arr.astype(np.float32)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    unsigned_bytes = arr.dtype == np.uint8
    if unsigned_bytes:
        # MRC mode 0 holds bytes; written with IMOD's "unsigned" flag, IMOD and tomosim read
        # 0-255, tools that assume signed bytes read values below 128 unchanged.
        arr = arr.view(np.int8)
    # of the bytes as MRC2014 mode 0 defines them (signed), so that mrcfile.validate agrees;
    # for label ids below 128 that is the same as unsigned
    summary = summary_statistics(arr)
    try:
        mode = int(mrcfile.utils.mode_from_dtype(arr.dtype))
    except ValueError:
        raise TomosimError(f"MRC cannot store {arr.dtype} data: {path}") from None
    if isinstance(voxel_size, (int, float, np.number)):
        vs: tuple[float, ...] = (float(voxel_size),) * 3
    else:
        vs = tuple(float(v) for v in voxel_size)
    with atomic_path(path) as tmp:
        # the header through mrcfile (a memory map of the right shape and mode, not filled), the
        # data with one sequential write, the statistics from summary_statistics: ~4x faster than
        # mrcfile's set_data, which computes the statistics with several numpy passes
        with mrcfile.new_mmap(tmp, arr.shape, mrc_mode=mode, overwrite=True) as mrc:
            if is_stack:
                mrc.set_image_stack()
            mrc.voxel_size = (float(vs[2]), float(vs[1]), float(vs[0]))  # mrcfile takes x, y, z
            mrc.header.origin = origin
            # mrcfile stamps a creation time into label 0; a fixed label keeps outputs
            # byte-identical for the same seed
            mrc.header.label[0] = b"tomosim"
            mrc.header.nlabl = 1
            if unsigned_bytes:
                _set_imod_stamp_and_flags(mrc.header, IMOD_STAMP, 0)
            set_header_statistics(mrc.header, summary)
            offset = mrc.header.nbytes + int(mrc.header.nsymbt)
        with open(tmp, "r+b") as handle:
            handle.seek(offset)
            handle.write(np.ascontiguousarray(arr).data.cast("B"))


def set_header_statistics(header: np.recarray, summary: Summary) -> None:
    """Store ``dmin``, ``dmax``, ``dmean`` and ``rms`` (standard deviation) as float32.

    Warns, as mrcfile does, when the data hold NaN or infinite values.
    """
    import warnings

    if np.isnan(summary.mean) and not np.isnan(summary.minimum):
        warnings.warn("Data array contains NaN values", RuntimeWarning, stacklevel=3)
    if np.isinf(summary.minimum) or np.isinf(summary.maximum):
        warnings.warn("Data array contains infinite values", RuntimeWarning, stacklevel=3)
    header.dmin = np.float32(summary.minimum)
    header.dmax = np.float32(summary.maximum)
    header.dmean = np.float32(summary.mean)
    header.rms = np.float32(summary.std)
