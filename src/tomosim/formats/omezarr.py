"""OME-Zarr (NGFF 0.4) volumes: multiscale, chunked and compressed.

Read and written with ``zarr`` (v2) and ``ome-zarr``, in the layout copick uses.

Layout: a zarr group whose ``.zattrs`` hold ``multiscales`` (version 0.4) with axes ``z, y, x``
(type ``space``, unit ``angstrom``) and one dataset per level, ``"0"`` (full resolution),
``"1"`` (2× binned), ...; each dataset's ``coordinateTransformations`` is one ``scale`` (the voxel
size of that level in Å, ``z, y, x``) and, when the origin is not 0, one ``translation``.
Images are binned by 2×2×2 block means, label volumes by taking every second voxel (labels stay
labels). Chunks are compressed with Blosc/zstd. Array axes are ``(z, y, x)``.

Reading checks the ``multiscales`` metadata as the ``ome-zarr`` reader library does (its format
class validates the axes and the coordinate transformations of every level) and refuses a group
without it, or without a ``scale``, with a one-line :class:`~tomosim.errors.TomosimError`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from tomosim.errors import TomosimError
from tomosim.io import MrcVolume

AXES = [
    {"name": "z", "type": "space", "unit": "angstrom"},
    {"name": "y", "type": "space", "unit": "angstrom"},
    {"name": "x", "type": "space", "unit": "angstrom"},
]
DEFAULT_CHUNKS = (64, 64, 64)


def _require_zarr() -> None:
    try:
        import ome_zarr  # noqa: F401
        import zarr  # noqa: F401
    except ImportError:
        raise TomosimError(
            "OME-Zarr needs the zarr and ome-zarr packages: pip install 'tomosim[zarr]'"
        ) from None


def pyramid(data: np.ndarray, levels: int, *, labels: bool = False) -> list[np.ndarray]:
    """``levels`` arrays, each half the size of the one before (``(z, y, x)``).

    Images: means of 2×2×2 blocks (a trailing odd plane is dropped); labels: every second voxel
    (``data[::2, ::2, ::2]``), so ids are never mixed.
    """
    if levels < 1:
        raise TomosimError(f"an OME-Zarr pyramid needs at least 1 level, got {levels}")
    out = [np.asarray(data)]
    for _ in range(1, levels):
        prev = out[-1]
        if min(prev.shape) < 2:
            break
        if labels:
            out.append(np.ascontiguousarray(prev[::2, ::2, ::2]))
        else:
            z, y, x = (n // 2 * 2 for n in prev.shape)
            # the 8 voxels of each block added element-wise in a fixed order: a reduction
            # (numpy's mean) may round differently with the memory alignment of the array,
            # which would break byte-identical outputs for the same seed
            total = np.zeros((z // 2, y // 2, x // 2), np.float64)
            for dz in (0, 1):
                for dy in (0, 1):
                    for dx in (0, 1):
                        total += prev[dz:z:2, dy:y:2, dx:x:2]
            out.append((total / 8).astype(prev.dtype))
    return out


def _voxel_triple(voxel_size: float | tuple[float, float, float]) -> tuple[float, float, float]:
    if np.isscalar(voxel_size):
        v = float(voxel_size)  # type: ignore[arg-type]
        return v, v, v
    z, y, x = (float(value) for value in voxel_size)  # type: ignore[union-attr]
    return z, y, x


def coordinate_transformations(
    voxel_size: float | tuple[float, float, float],
    levels: int,
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> list[list[dict[str, Any]]]:
    """Build the NGFF ``coordinateTransformations`` of each level.

    A scale ``voxel · 2^level`` (z, y, x, Å), plus a translation (z, y, x, Å) when ``origin``
    (x, y, z, Å) is not 0.
    """
    vz, vy, vx = _voxel_triple(voxel_size)
    out = []
    for level in range(levels):
        f = 2.0**level
        transform: list[dict[str, Any]] = [{"type": "scale", "scale": [vz * f, vy * f, vx * f]}]
        if any(origin):
            # a level-k voxel 0 covers level-0 voxels 0..2^k-1: its centre moves by (2^k - 1)/2
            shift = [(f - 1) / 2 * v for v in (vz, vy, vx)]
            translation = [origin[2] + shift[0], origin[1] + shift[1], origin[0] + shift[2]]
            transform.append({"type": "translation", "translation": translation})
        out.append(transform)
    return out


def write_ome_zarr(
    path: str | os.PathLike[str],
    data: np.ndarray,
    *,
    voxel_size: float | tuple[float, float, float],
    levels: int = 1,
    labels: bool = False,
    chunks: tuple[int, int, int] = DEFAULT_CHUNKS,
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0),
    name: str | None = None,
) -> None:
    """Write a ``(z, y, x)`` volume as a multiscale OME-Zarr group, atomically.

    The group is written to a temporary folder beside ``path`` and renamed over ``path`` (an
    existing group of that name is replaced) only when complete.

    Parameters
    ----------
    path
        Folder of the group (conventionally ending ``.zarr``).
    data
        ``(z, y, x)`` array; stored with its dtype (float64 as float32, bool as uint8).
    voxel_size
        Å of level 0, scalar or ``(z, y, x)``.
    levels
        Number of resolution levels (each 2× binned).
    labels
        Bin by taking every second voxel instead of block means.
    chunks
        Chunk shape ``(z, y, x)`` (clipped to the array).
    origin
        ``(x, y, z)`` Å of voxel ``[0, 0, 0]`` (as in MRC headers).
    name
        ``multiscales`` name (default: the folder name without suffix).
    """
    _require_zarr()
    import zarr
    from numcodecs import Blosc
    from numcodecs import blosc as numcodecs_blosc
    from ome_zarr.format import FormatV04
    from ome_zarr.io import parse_url
    from ome_zarr.writer import write_multiscale

    arr = np.asarray(data)
    if arr.ndim != 3:
        raise TomosimError(f"OME-Zarr volumes must be (z, y, x), got shape {arr.shape}: {path}")
    if arr.dtype == np.float64:
        arr = arr.astype(np.float32)
    elif arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    levels_data = pyramid(arr, levels, labels=labels)
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent))
    try:
        # ome-zarr's own store: nested chunk keys ("/"), as NGFF 0.4 readers expect
        location = parse_url(str(tmp), mode="w", fmt=FormatV04())
        if location is None:
            raise TomosimError(f"cannot create OME-Zarr store: {tmp}")
        group = zarr.group(store=location.store, overwrite=True)
        chunk_shape = tuple(int(min(c, n)) for c, n in zip(chunks, arr.shape, strict=True))
        compressor = Blosc(cname="zstd", clevel=5, shuffle=Blosc.BITSHUFFLE)
        # Blosc compresses differently (same data, other bytes) with its global thread pool, which
        # it uses only when called from the main thread, than with a per-call context; the chunks
        # are written from whichever thread dask picks, so force the per-call path everywhere:
        # the same seed then gives byte-identical chunks
        threads_setting = numcodecs_blosc.use_threads
        numcodecs_blosc.use_threads = False
        try:
            write_multiscale(
                levels_data,
                group=group,
                fmt=FormatV04(),
                axes=AXES,
                coordinate_transformations=coordinate_transformations(
                    voxel_size, len(levels_data), origin
                ),
                storage_options={"chunks": chunk_shape, "compressor": compressor},
                name=name or final.name.removesuffix(".zarr"),
            )
        finally:
            numcodecs_blosc.use_threads = threads_setting
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except OSError as exc:
        raise TomosimError(f"cannot write OME-Zarr ({exc}): {final}") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def is_ome_zarr(path: str | os.PathLike[str]) -> bool:
    """Tell whether ``path`` is a folder that is a zarr group (``.zgroup``) or ends in ``.zarr``."""
    p = Path(path)
    return p.is_dir() and ((p / ".zgroup").is_file() or p.suffix == ".zarr")


def read_multiscales(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate the first ``multiscales`` entry of an OME-Zarr group.

    Raises
    ------
    TomosimError
        Not a zarr group, no ``multiscales``, or metadata the ``ome-zarr`` format rejects
        (axes, a level without a ``scale``, counts that do not match).
    """
    _require_zarr()
    import zarr
    from ome_zarr.axes import Axes
    from ome_zarr.format import format_from_version

    p = Path(path)
    try:
        group = zarr.open_group(str(p), mode="r")
    except (zarr.errors.GroupNotFoundError, zarr.errors.PathNotFoundError, OSError):
        raise TomosimError(f"not a zarr group: {p}") from None
    multiscales = group.attrs.get("multiscales")
    if not multiscales or not isinstance(multiscales, list):
        raise TomosimError(f"OME-Zarr has no multiscales metadata: {p}")
    entry = multiscales[0]
    datasets = entry.get("datasets") or []
    if not datasets:
        raise TomosimError(f"OME-Zarr multiscales lists no datasets: {p}")
    try:
        fmt = format_from_version(str(entry.get("version", "0.4")))
        axes = Axes(entry.get("axes"), fmt)
        axes.validate()
        ndim = len(entry.get("axes") or []) or 3
        transforms = [d.get("coordinateTransformations") for d in datasets]
        if any(t is None for t in transforms):
            raise ValueError("a dataset has no coordinateTransformations (no scale)")
        fmt.validate_coordinate_transformations(ndim, len(datasets), transforms)
    except (ValueError, AssertionError, KeyError, TypeError) as exc:
        raise TomosimError(f"invalid OME-Zarr multiscales metadata ({exc}): {p}") from None
    return dict(entry)


def read_ome_zarr_scale(entry: dict[str, Any], level: int = 0) -> tuple[float, ...]:
    """Return the ``scale`` (Å per voxel, data axis order) of one level of a multiscales entry."""
    transforms = entry["datasets"][level]["coordinateTransformations"]
    return tuple(float(v) for v in next(t["scale"] for t in transforms if t["type"] == "scale"))


def read_ome_zarr(path: str | os.PathLike[str], *, level: int = 0) -> MrcVolume:
    """Read one level of a 3D OME-Zarr volume with its voxel size and origin.

    Returns
    -------
    MrcVolume
        ``data`` ``(z, y, x)``, ``voxel_size`` ``(z, y, x)`` Å from the level's ``scale``,
        ``origin`` ``(x, y, z)`` Å from its ``translation`` (0 if none).

    Raises
    ------
    TomosimError
        Invalid metadata (see :func:`read_multiscales`), a missing level, or not 3D.
    """
    import zarr

    p = Path(path)
    entry = read_multiscales(p)
    datasets = entry["datasets"]
    if not 0 <= level < len(datasets):
        raise TomosimError(f"OME-Zarr has {len(datasets)} levels, level {level} requested: {p}")
    dataset = datasets[level]
    scale = next(t["scale"] for t in dataset["coordinateTransformations"] if t["type"] == "scale")
    translation = next(
        (t["translation"] for t in dataset["coordinateTransformations"]
         if t["type"] == "translation"),
        [0.0] * len(scale),
    )
    try:
        data = np.asarray(zarr.open_array(str(p / dataset["path"]), mode="r")[...])
    except (ValueError, KeyError, OSError, zarr.errors.ArrayNotFoundError) as exc:
        raise TomosimError(f"unreadable OME-Zarr level {dataset['path']} ({exc}): {p}") from None
    if data.ndim != 3 or len(scale) != 3:
        raise TomosimError(f"OME-Zarr volume must be 3D (z, y, x), got shape {data.shape}: {p}")
    if min(scale) <= 0:
        raise TomosimError(f"OME-Zarr scale must be positive, got {scale}: {p}")
    voxel = (float(scale[0]), float(scale[1]), float(scale[2]))
    origin = (float(translation[2]), float(translation[1]), float(translation[0]))
    return MrcVolume(data=data, voxel_size=voxel, origin=origin)
