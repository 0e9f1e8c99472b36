"""Localisation targets from particle lists, and peaks of score maps as particle lists.

Targets for a picking network are built from a phantom's ``particles.star`` (positions
``rlnCoordinateX/Y/Z`` in voxels of the tomogram grid: voxel ``i`` is centred at ``i``,
CONVENTIONS.md) on the fly; nothing needs writing. Two kinds:

- :func:`sphere_labels`: label ids in a ball of radius ``fraction x particle radius`` around each
  centre (a voxel belongs to the ball when the distance from its centre to the particle centre is
  at most the ball radius; where balls overlap, the voxel goes to the particle it is relatively
  nearest to, ``distance / ball radius``). A segmentation network trained on them
  (:mod:`tomosim.train.training`) scores "near the centre of a particle of class c".
- :func:`gaussian_heatmaps`: one channel per class, ``max_p exp(-|x - p|^2 / (2 sigma_c^2))``
  over the particles ``p`` of class ``c`` (peak value 1 at every centre, full width at half
  maximum ``2 sqrt(2 ln 2) sigma``).

:func:`find_peaks` turns a score map back into positions: local maxima above a threshold, then
greedy non-maximum suppression (highest score first, anything within ``min_distance_px`` of a kept
peak dropped). Arrays are ``(z, y, x)``; positions ``(x, y, z)`` in voxels unless stated.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage
from scipy.spatial import cKDTree

from tomosim.errors import TomosimError
from tomosim.formats.volumes import read_volume, volume_in_folder
from tomosim.labels import ClassTable, make_class_table, read_class_table
from tomosim.train.data import LabelledTomogram
from tomosim.train.picking import is_globular_name

NON_PARTICLE_CLASS = 0
"""``rlnClassNumber`` of distractors (background), which are never targets."""


def particle_centres(
    particles: pd.DataFrame, *, classes: Mapping[str, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Positions and label ids of the particles of ``classes`` in a tomosim particle table.

    Rows of other classes, distractors (class 0) and filament subunits (``rlnHelicalTubeID`` > 0)
    are left out.

    Parameters
    ----------
    particles
        Table with ``rlnCoordinateX/Y/Z`` (voxels) and ``tomosimClassName``.
    classes
        Class name -> label id to use.

    Returns
    -------
    centres, ids
        ``(n, 3)`` float64 ``(x, y, z)`` voxel positions and ``(n,)`` int64 label ids.

    Raises
    ------
    TomosimError
        A table without coordinates or class names.
    """
    needed = ["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ", "tomosimClassName"]
    missing = [c for c in needed if c not in particles.columns]
    if missing:
        raise TomosimError(f"particle table lacks column(s) {missing}")
    keep = particles["tomosimClassName"].astype(str).isin(list(classes)).to_numpy().copy()
    if "rlnClassNumber" in particles.columns:
        keep &= particles["rlnClassNumber"].to_numpy() != NON_PARTICLE_CLASS
    if "rlnHelicalTubeID" in particles.columns:
        keep &= particles["rlnHelicalTubeID"].to_numpy() <= 0
    rows = particles[keep]
    centres = rows[needed[:3]].to_numpy(np.float64).reshape(-1, 3)
    ids = np.array([classes[str(n)] for n in rows["tomosimClassName"]], np.int64)
    return centres, ids


def _boxes(
    shape: Sequence[int], centre_zyx: np.ndarray, reach: float
) -> tuple[tuple[slice, ...], list[np.ndarray]] | None:
    """Index window within ``reach`` voxels of a centre, and its voxel coordinates per axis."""
    lo = np.maximum(np.ceil(centre_zyx - reach).astype(int), 0)
    hi = np.minimum(np.floor(centre_zyx + reach).astype(int) + 1, np.asarray(shape))
    if np.any(hi <= lo):
        return None
    window = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    axes = [np.arange(a, b, dtype=np.float64) for a, b in zip(lo, hi, strict=True)]
    return window, axes


def sphere_labels(
    shape: Sequence[int],
    centres: np.ndarray,
    ids: np.ndarray,
    *,
    radii_px: Mapping[int, float],
) -> np.ndarray:
    """Label volume with a ball of radius ``radii_px[id]`` around every particle centre.

    Parameters
    ----------
    shape
        ``(z, y, x)`` of the volume.
    centres
        ``(n, 3)`` particle positions ``(x, y, z)``, voxels (voxel ``i`` centred at ``i``).
    ids
        ``(n,)`` label ids (1..254).
    radii_px
        Label id -> ball radius in voxels (> 0).

    Returns
    -------
    numpy.ndarray
        ``(z, y, x)`` uint8: the id of the ball a voxel centre lies in (distance <= radius), 0
        elsewhere; in overlaps, the ball whose centre is nearest relative to its radius.
    """
    labels = np.zeros(tuple(shape), np.uint8)
    nearest = np.full(tuple(shape), np.inf, np.float32)  # distance / radius of the owner
    for (x, y, z), label_id in zip(np.asarray(centres, np.float64).reshape(-1, 3), ids,
                                   strict=True):
        radius = float(radii_px[int(label_id)])
        if not radius > 0:
            raise TomosimError(f"the target radius of class id {int(label_id)} must be > 0")
        box = _boxes(shape, np.array([z, y, x]), radius)
        if box is None:
            continue
        window, (zz, yy, xx) = box
        relative = np.sqrt(
            (zz[:, None, None] - z) ** 2 + (yy[None, :, None] - y) ** 2
            + (xx[None, None, :] - x) ** 2
        ).astype(np.float32) / np.float32(radius)
        take = (relative <= 1.0) & (relative < nearest[window])
        nearest[window][take] = relative[take]
        labels[window][take] = np.uint8(label_id)
    return labels


def gaussian_heatmaps(
    shape: Sequence[int],
    centres: np.ndarray,
    channels: np.ndarray,
    *,
    sigmas_px: Sequence[float],
    truncate: float = 4.0,
) -> np.ndarray:
    """One heatmap per class: the maximum over its particles of a unit-peak Gaussian.

    Parameters
    ----------
    shape
        ``(z, y, x)`` of the volume.
    centres
        ``(n, 3)`` particle positions ``(x, y, z)``, voxels.
    channels
        ``(n,)`` output channel of each particle (0 .. len(sigmas_px) - 1).
    sigmas_px
        Gaussian standard deviation of each channel, voxels (> 0).
    truncate
        Values beyond ``truncate x sigma`` from a centre are 0.

    Returns
    -------
    numpy.ndarray
        ``(channels, z, y, x)`` float32 in [0, 1]; exactly 1 at a centre that falls on a voxel
        centre.
    """
    out = np.zeros((len(sigmas_px), *shape), np.float32)
    for (x, y, z), channel in zip(np.asarray(centres, np.float64).reshape(-1, 3), channels,
                                  strict=True):
        sigma = float(sigmas_px[int(channel)])
        if not sigma > 0:
            raise TomosimError(f"the heatmap sigma of channel {int(channel)} must be > 0")
        box = _boxes(shape, np.array([z, y, x]), truncate * sigma)
        if box is None:
            continue
        window, (zz, yy, xx) = box
        gz = np.exp(-((zz - z) ** 2) / (2 * sigma**2))
        gy = np.exp(-((yy - y) ** 2) / (2 * sigma**2))
        gx = np.exp(-((xx - x) ** 2) / (2 * sigma**2))
        value = (gz[:, None, None] * gy[None, :, None] * gx[None, None, :]).astype(np.float32)
        target = out[int(channel)][window]
        np.maximum(target, value, out=target)
    return out


def find_peaks(
    score: np.ndarray, *, min_distance_px: float, threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """Local maxima of ``score`` above ``threshold``, at least ``min_distance_px`` apart.

    A voxel is a candidate when its score is at least ``threshold`` and equals the maximum of the
    cube of half-width ``h = max(1, floor(min_distance_px / sqrt(3)))`` voxels around it (the
    cube fits inside the suppression ball, so no voxel that is the maximum of its ball is missed,
    and the separable cube filter keeps the candidates few). Candidates are then taken by
    decreasing score (ties in raster order), dropping every candidate within
    ``min_distance_px`` of one already taken (greedy non-maximum suppression).

    Parameters
    ----------
    score
        ``(z, y, x)`` score map.
    min_distance_px
        Suppression distance, voxels (>= 0).
    threshold
        Smallest score kept.

    Returns
    -------
    positions, scores
        ``(k, 3)`` float64 ``(x, y, z)`` voxel positions and their ``(k,)`` scores, by
        decreasing score.
    """
    if score.ndim != 3:
        raise TomosimError(f"a score map must be 3D (z, y, x), got shape {score.shape}")
    if not min_distance_px >= 0:
        raise TomosimError(f"the suppression distance must be >= 0 voxels, got {min_distance_px}")
    half = max(1, int(np.floor(min_distance_px / np.sqrt(3.0))))
    local_max = ndimage.maximum_filter(score, size=2 * half + 1, mode="nearest")
    candidates = np.flatnonzero((score == local_max) & (score >= threshold))
    del local_max
    values = score.ravel()[candidates]
    order = np.argsort(-values, kind="stable")
    candidates, values = candidates[order], values[order]
    zyx = np.column_stack(np.unravel_index(candidates, score.shape)).astype(np.float64)
    keep = np.ones(len(candidates), bool)
    if len(candidates) > 1 and min_distance_px > 0:
        neighbours = cKDTree(zyx).query_ball_point(zyx, r=min_distance_px)
        for k in range(len(candidates)):
            if keep[k]:
                for other in neighbours[k]:
                    if other > k:
                        keep[other] = False
    return zyx[keep][:, ::-1].copy(), values[keep].astype(np.float64)


# --------------------------------------------------------------------------------------------
# Simulation folders as picking training data
# --------------------------------------------------------------------------------------------


def _read_particles(path: Path) -> pd.DataFrame:
    import starfile

    try:
        blocks = starfile.read(path, always_dict=True)
    except Exception as exc:  # noqa: BLE001 - any parser failure means "not a STAR table"
        raise TomosimError(f"not a readable STAR file ({type(exc).__name__}): {path}") from None
    tables = [v for v in blocks.values() if isinstance(v, pd.DataFrame)]
    if not tables:
        raise TomosimError(f"no particle table in STAR file: {path}")
    table = blocks["particles"] if "particles" in blocks else tables[0]
    return table


def picking_class_table(classes: ClassTable, particles: pd.DataFrame) -> ClassTable:
    """Keep the globular classes of ``classes`` that have particles in ``particles``.

    Membrane and filament classes (:func:`tomosim.train.picking.is_globular_name`), class 0 and
    classes without a particle are left out; ids are kept.
    """
    centres, ids = particle_centres(
        particles, classes={n: i for i, n in zip(classes.ids, classes.names, strict=True)
                            if i != 0 and is_globular_name(n)},
    )
    present = sorted(set(int(i) for i in ids))
    return make_class_table(present, [classes.name_of(i) for i in present])


def estimate_radius(labels: np.ndarray, label_id: int, count: int, voxel_size: float) -> float:
    """Radius (Å) of a ball with the mean labelled volume per particle of class ``label_id``.

    ``r = (3 V / (4 pi N))^(1/3)`` with ``V`` the labelled volume of the class and ``N`` its
    particle count; overlaps and particles cut by the volume's edges make it an estimate.
    """
    voxels = int(np.count_nonzero(labels == label_id))
    if voxels == 0 or count == 0:
        raise TomosimError(f"class id {label_id} has no labelled voxels to estimate a radius from")
    return float((3.0 * voxels / (4.0 * np.pi * count)) ** (1.0 / 3.0) * voxel_size)


def read_picking_folder(
    folder: str | os.PathLike[str],
    *,
    radii: Mapping[str, float] | None = None,
    target_fraction: float = 0.5,
) -> tuple[LabelledTomogram, dict[str, float]]:
    """Read a simulation folder as picking training data: its tomogram with ball targets.

    Reads ``tomogram.mrc``, ``particles.star`` and ``classes.csv`` (and ``labels.mrc`` when a
    class has no radius in ``radii``, to estimate one with :func:`estimate_radius`). Every
    particle of a globular class gets a ball of ``target_fraction x radius`` labelled with its
    class id (:func:`sphere_labels`).

    Returns
    -------
    data, radii
        The tomogram with its ball labels (the picking classes as its class table), and the
        radius (Å) used for each class.

    Raises
    ------
    TomosimError
        Missing files, a particle table without coordinates, a non-positive radius.
    """
    root = Path(folder)
    for name in ("particles.star", "classes.csv"):
        if not (root / name).is_file():
            raise TomosimError(f"picking training folder has no {name}: {root}")
    volume = read_volume(volume_in_folder(root, "tomogram"))
    particles = _read_particles(root / "particles.star")
    classes = picking_class_table(read_class_table(root / "classes.csv"), particles)
    lookup = {n: i for i, n in zip(classes.ids, classes.names, strict=True) if i != 0}
    centres, ids = particle_centres(particles, classes=lookup)
    used = dict(radii or {})
    voxel = float(volume.voxel_size[2])
    missing = [n for n in lookup if n not in used]
    if missing:
        if not any((root / f"labels{suffix}").exists() for suffix in (".mrc", ".zarr")):
            raise TomosimError(
                f"no radius for class(es) {missing} and no labels.mrc to estimate one: {root}"
            )
        labels = read_volume(volume_in_folder(root, "labels"), require_voxel_size=False).data
        for name in missing:
            used[name] = estimate_radius(
                labels, lookup[name], int(np.count_nonzero(ids == lookup[name])), voxel
            )
    for name in lookup:
        if not used[name] > 0:
            raise TomosimError(f"the radius of class {name!r} must be > 0 Å, got {used[name]}")
    targets = sphere_labels(
        volume.data.shape, centres, ids,
        radii_px={i: target_fraction * used[n] / voxel for n, i in lookup.items()},
    )
    data = LabelledTomogram(
        tomogram=volume.data.astype(np.float32, copy=False), labels=targets,
        voxel_size=volume.voxel_size, classes=classes, name=str(root),
    )
    return data, {n: float(used[n]) for n in lookup}


def read_heatmap_targets(
    folder: str | os.PathLike[str],
    *,
    radii: Mapping[str, float] | None = None,
    sigma_fraction: float = 0.5,
) -> tuple[np.ndarray, ClassTable, dict[str, float], tuple[float, float, float]]:
    """Gaussian heatmap targets of a simulation folder (:func:`gaussian_heatmaps`).

    The classes and radii are those of :func:`read_picking_folder`; class ``c`` gets a unit-peak
    Gaussian of standard deviation ``sigma_fraction x radius_c`` at each of its particles.

    Returns
    -------
    heatmaps, classes, radii, voxel_size
        ``(len(classes.ids) - 1, z, y, x)`` float32 (channel ``k`` is ``classes.ids[k + 1]``),
        the picking classes, the radii used (Å) and the ``(z, y, x)`` voxel size (Å).
    """
    if not sigma_fraction > 0:
        raise TomosimError(f"the heatmap sigma fraction must be > 0, got {sigma_fraction}")
    data, used = read_picking_folder(folder, radii=radii)
    root = Path(folder)
    particles = _read_particles(root / "particles.star")
    lookup = {n: i for i, n in zip(data.classes.ids, data.classes.names, strict=True) if i != 0}
    centres, ids = particle_centres(particles, classes=lookup)
    channel_of = {label_id: k for k, label_id in enumerate(data.classes.ids[1:])}
    voxel = float(data.voxel_size[2])
    heatmaps = gaussian_heatmaps(
        data.tomogram.shape, centres, np.array([channel_of[int(i)] for i in ids], np.int64),
        sigmas_px=[sigma_fraction * used[n] / voxel for n in data.classes.names[1:]],
    )
    return heatmaps, data.classes, used, data.voxel_size
