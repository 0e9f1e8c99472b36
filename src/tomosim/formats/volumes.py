"""One entry point to read a volume whatever its format: MRC, OME-Zarr, or a copick run.

:func:`read_volume` picks the reader by path type: a folder that is an OME-Zarr group (``.zarr``
or holding ``.zgroup``) is read with :func:`tomosim.formats.omezarr.read_ome_zarr`; a copick run
folder (holding ``VoxelSpacing*`` folders) gives its tomogram at the finest voxel spacing; any
other path is read as MRC (``.mrc``, ``.map``, ``.rec``, ``.st``, ... and ``.gz``).
"""

from __future__ import annotations

import os
from pathlib import Path

from tomosim.errors import TomosimError
from tomosim.formats.omezarr import is_ome_zarr, read_multiscales, read_ome_zarr
from tomosim.io import MrcVolume, read_mrc


def _voxel_spacing_value(folder: Path) -> float:
    try:
        return float(folder.name.removeprefix("VoxelSpacing"))
    except ValueError:
        return float("inf")


def copick_run_tomogram(run: str | os.PathLike[str]) -> Path:
    """Find the tomogram OME-Zarr of a copick run folder: finest voxel spacing, first by name.

    Raises
    ------
    TomosimError
        If the run has no voxel spacing with a tomogram.
    """
    folder = Path(run)
    spacings = sorted(folder.glob("VoxelSpacing*"), key=_voxel_spacing_value)
    for spacing in spacings:
        tomograms = sorted(p for p in spacing.glob("*.zarr") if p.is_dir())
        if tomograms:
            return tomograms[0]
    raise TomosimError(f"copick run has no tomogram: {folder}")


def is_copick_run(path: str | os.PathLike[str]) -> bool:
    """Tell whether ``path`` is a folder holding copick ``VoxelSpacing*`` folders."""
    p = Path(path)
    return p.is_dir() and any(p.glob("VoxelSpacing*"))


def read_volume(path: str | os.PathLike[str], *, require_voxel_size: bool = True) -> MrcVolume:
    """Read a ``(z, y, x)`` volume from MRC, OME-Zarr or a copick run folder (module docstring).

    Parameters
    ----------
    path
        File or folder.
    require_voxel_size
        For MRC: raise if the header has no voxel size (OME-Zarr always has a scale).

    Raises
    ------
    TomosimError
        Missing path, unreadable file, OME-Zarr without multiscales metadata or scale.
    """
    p = Path(path)
    if not p.exists():
        raise TomosimError(f"file not found: {p}")
    if p.is_dir():
        if is_copick_run(p):
            return read_ome_zarr(copick_run_tomogram(p))
        if is_ome_zarr(p) or (p / ".zattrs").is_file():
            return read_ome_zarr(p)
        raise TomosimError(f"folder is neither an OME-Zarr group nor a copick run: {p}")
    return read_mrc(p, require_voxel_size=require_voxel_size)


def volume_in_folder(folder: str | os.PathLike[str], stem: str) -> Path:
    """``<stem>.mrc`` in ``folder`` if present, else ``<stem>.zarr``; raises if neither exists."""
    root = Path(folder)
    for candidate in (root / f"{stem}.mrc", root / f"{stem}.zarr"):
        if candidate.exists():
            return candidate
    raise TomosimError(f"folder has no {stem}.mrc or {stem}.zarr: {root}")


__all__ = ["copick_run_tomogram", "read_multiscales", "read_volume", "volume_in_folder"]
