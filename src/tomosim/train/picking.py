"""Particle picking from a label volume: connected components of globular classes.

Each connected component (6-connected, :func:`scipy.ndimage.label`) of a class with at least
``min_size_px`` voxels becomes one particle at its centroid. Positions are written as a RELION 5
style STAR table: ``rlnCoordinateX/Y/Z`` in pixels (0-based voxel index, voxel ``i`` centred at
``i``) and ``rlnCenteredCoordinateX/Y/ZAngst`` in Å relative to the tomogram centre voxel
``shape // 2`` (CONVENTIONS.md), with ``rlnClassNumber`` the label id.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import ndimage

from tomosim.errors import TomosimError

CLASS_NAME_COLUMN = "tomosimClassName"
SIZE_COLUMN = "tomosimSizeVoxels"
NON_GLOBULAR_WORDS = ("membrane", "vesicle", "actin", "filament", "microtubule", "tubul")
"""Classes whose names contain one of these are not picked unless asked for by name."""


def is_globular_name(name: str) -> bool:
    """True unless ``name`` looks like a membrane or filament class."""
    lowered = name.lower()
    return not any(word in lowered for word in NON_GLOBULAR_WORDS)


def pick_particles(
    labels: np.ndarray,
    *,
    classes: Mapping[int, str],
    voxel_size: Sequence[float],
    min_size_px: int = 1,
    tomogram_name: str = "TS_01",
) -> pd.DataFrame:
    """Centroids of the connected components of each class in ``classes``.

    Parameters
    ----------
    labels
        ``(z, y, x)`` integer label ids.
    classes
        Label id -> class name of the classes to pick.
    voxel_size
        ``(z, y, x)`` voxel size, Å.
    min_size_px
        Smallest component kept, in voxels.
    tomogram_name
        ``rlnTomoName`` of every row.

    Returns
    -------
    pandas.DataFrame
        One row per particle, ordered by class id then component (raster order of first voxel):
        rlnTomoName, rlnCoordinateX/Y/Z (px), rlnCenteredCoordinateX/Y/ZAngst (Å),
        rlnClassNumber, the class name and the component size in voxels.
    """
    if labels.ndim != 3:
        raise TomosimError(f"labels must be a 3D (z, y, x) volume, got shape {labels.shape}")
    centre = np.array(labels.shape) // 2
    voxel = np.asarray(voxel_size, dtype=np.float64)
    rows = []
    for label_id, name in sorted(classes.items()):
        components, count = ndimage.label(labels == label_id)
        if count == 0:
            continue
        sizes = np.bincount(components.ravel(), minlength=count + 1)
        keep = np.flatnonzero(sizes >= max(1, min_size_px))
        keep = keep[keep > 0]
        if keep.size == 0:
            continue
        centroids = ndimage.center_of_mass(components > 0, components, keep)
        centroids = np.asarray(centroids, dtype=np.float64).reshape(-1, 3)
        for index, (z, y, x) in zip(keep, centroids, strict=False):
            rows.append({
                "rlnTomoName": tomogram_name,
                "rlnCoordinateX": x,
                "rlnCoordinateY": y,
                "rlnCoordinateZ": z,
                "rlnCenteredCoordinateXAngst": (x - centre[2]) * voxel[2],
                "rlnCenteredCoordinateYAngst": (y - centre[1]) * voxel[1],
                "rlnCenteredCoordinateZAngst": (z - centre[0]) * voxel[0],
                "rlnClassNumber": int(label_id),
                CLASS_NAME_COLUMN: name,
                SIZE_COLUMN: int(sizes[index]),
            })
    columns = [
        "rlnTomoName", "rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ",
        "rlnCenteredCoordinateXAngst", "rlnCenteredCoordinateYAngst", "rlnCenteredCoordinateZAngst",
        "rlnClassNumber", CLASS_NAME_COLUMN, SIZE_COLUMN,
    ]
    return pd.DataFrame(rows, columns=columns)
