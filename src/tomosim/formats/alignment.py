"""True tilt-series alignment files for IMOD and AreTomo, from the simulated per-tilt errors.

IMOD: ``.rawtlt``, ``.xf``, ``.xtilt``, ``_true.tlt``; AreTomo: ``.aln``. The errors are those the
simulator applied, read from the tilt table (``tilts.csv``).

Forward model (CONVENTIONS.md, ``tomosim.microscope.projection.rotate_and_shift``): image ``i`` is
the projection at the *true* angle ``θᵢ = nominal + angle error`` with the tilt axis along y,
rotated counter-clockwise by ``φᵢ = tilt_axis_angle + rotation errorᵢ`` about the pixel
``shape // 2`` and displaced by ``sᵢ = (shift_x, shift_y)``: a point at ``x`` (pixels, ``(x, y)``
with y the row axis, relative to ``shape // 2``) lands at ``R(φᵢ) x + sᵢ``.

Sign conventions of the files written here:

- ``.xf`` (IMOD): one line ``A11 A12 A21 A22 DX DY`` per image in stack order, the transform from
  the raw image to the aligned image (tilt axis along y, no shift):
  ``x_aligned = A x_raw + D`` with coordinates in pixels relative to IMOD's image centre
  ``(nx/2, ny/2)``, where pixel ``i`` spans ``[i, i+1)``, i.e. 0-based index ``(n - 1) / 2``.
  ``A = R(−φᵢ)`` and ``D = −A sᵢ + (I − A)(c_tomosim − c_imod)``, the last term moving the
  rotation centre from ``shape // 2`` to IMOD's centre (zero for odd sizes).
- ``.rawtlt``: the nominal angles (what the stage reported); ``tiltseries_true.tlt``: the true
  angles (what ``tiltalign`` would solve), both in stack order. ``tiltseries.tlt`` stays nominal.
- ``.xtilt``: 0 for every image (no tilt about x is simulated).
- ``.aln`` (AreTomo 1/2 global alignment): ``ROT = φᵢ``, ``TX, TY`` in pixels such that the IMOD
  transform AreTomo users derive from it, ``A = R(−ROT)``, ``D = −A (TX, TY)`` (as ``alnfile``
  converts it), is the ``.xf`` above; ``TILT`` = true angle; ``GMAG`` = 1.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from tomosim.errors import TomosimError
from tomosim.io import write_text


def _rotation(angle_deg: np.ndarray) -> np.ndarray:
    a = np.deg2rad(np.asarray(angle_deg, np.float64))
    c, s = np.cos(a), np.sin(a)
    return np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)  # (n, 2, 2)


def _centre_offset(image_shape: tuple[int, int]) -> np.ndarray:
    """``c_tomosim − c_imod`` in pixels, ``(x, y)``."""
    ny, nx = image_shape
    return np.array([nx // 2 - (nx - 1) / 2, ny // 2 - (ny - 1) / 2])


def in_plane_angles(tilts: pd.DataFrame, tilt_axis_angle: float) -> np.ndarray:
    """``(n,)`` true in-plane rotation ``φ`` of each image (tilt-axis angle + error), degrees."""
    return tilt_axis_angle + tilts["rotation_error_deg"].to_numpy(np.float64)


def shifts_px(tilts: pd.DataFrame, pixel_size: float) -> np.ndarray:
    """``(n, 2)`` true image shifts ``(x, y)`` in pixels."""
    return tilts[["shift_x_a", "shift_y_a"]].to_numpy(np.float64) / pixel_size


def imod_xf(
    tilts: pd.DataFrame, *, tilt_axis_angle: float, pixel_size: float, image_shape: tuple[int, int]
) -> np.ndarray:
    """Compute the true IMOD ``.xf`` transforms (see the module docstring for the convention).

    Parameters
    ----------
    tilts
        The tilt table (``tilts.csv``) in stack order.
    tilt_axis_angle
        In-plane tilt-axis angle, degrees counter-clockwise from the image y axis.
    pixel_size
        Pixel size of the tilt series, Å.
    image_shape
        ``(ny, nx)`` of the tilt images.

    Returns
    -------
    numpy.ndarray
        ``(n, 2, 3)``: ``[[A11, A12, DX], [A21, A22, DY]]`` per image, DX/DY in pixels.
    """
    a = _rotation(-in_plane_angles(tilts, tilt_axis_angle))
    s = shifts_px(tilts, pixel_size)
    offset = _centre_offset(image_shape)
    d = -np.einsum("nij,nj->ni", a, s) + offset - np.einsum("nij,j->ni", a, offset)
    return np.concatenate([a, d[:, :, None]], axis=2)


def aretomo_shifts_px(xf: np.ndarray) -> np.ndarray:
    """``(n, 2)`` AreTomo ``TX, TY`` (pixels) whose conversion ``D = −A T`` gives ``xf``'s shift."""
    a = xf[:, :, :2]
    return -np.einsum("nji,nj->ni", a, xf[:, :, 2])  # A is a rotation: A⁻¹ = Aᵀ


def xf_text(xf: np.ndarray) -> str:
    """IMOD ``.xf`` text: ``A11 A12 A21 A22 DX DY`` per line, IMOD's fixed-width layout."""
    lines = []
    for m in np.asarray(xf, np.float64):
        lines.append(
            f"{m[0, 0]:12.7f}{m[0, 1]:12.7f}{m[1, 0]:12.7f}{m[1, 1]:12.7f}"
            f"{m[0, 2]:12.3f}{m[1, 2]:12.3f}"
        )
    return "\n".join(lines) + "\n"


def read_xf(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IMOD ``.xf`` file into ``(n, 2, 3)`` ``[[A11, A12, DX], [A21, A22, DY]]``."""
    p = Path(path)
    try:
        values = np.loadtxt(p, ndmin=2)
    except (OSError, ValueError) as exc:
        raise TomosimError(f"unreadable xf file ({exc}): {p}") from None
    if values.shape[1] != 6:
        raise TomosimError(f"xf file needs 6 numbers per line, got {values.shape[1]}: {p}")
    a11, a12, a21, a22, dx, dy = values.T
    return np.stack([np.stack([a11, a12, dx], -1), np.stack([a21, a22, dy], -1)], -2)


def aln_text(
    tilts: pd.DataFrame, *, tilt_axis_angle: float, pixel_size: float, image_shape: tuple[int, int]
) -> str:
    """AreTomo ``.aln`` text (global alignment table) of the true alignment."""
    xf = imod_xf(tilts, tilt_axis_angle=tilt_axis_angle, pixel_size=pixel_size,
                 image_shape=image_shape)
    t = aretomo_shifts_px(xf)
    rot = in_plane_angles(tilts, tilt_axis_angle)
    tilt = tilts["true_angle_deg"].to_numpy(np.float64)
    ny, nx = image_shape
    lines = [
        "# AreTomo Alignment / Priism bprmMn (written by tomosim: true simulated alignment)",
        f"# RawSize = {nx} {ny} {len(tilts)}",
        "# NumPatches = 0",
        "# SEC     ROT         GMAG       TX          TY      SMEAN     SFIT    SCALE     BASE"
        "     TILT",
    ]
    for i in range(len(tilts)):
        lines.append(
            f"{i:5d} {rot[i]:10.4f} {1.0:10.5f} {t[i, 0]:11.3f} {t[i, 1]:11.3f}"
            f" {1.0:8.2f} {1.0:8.2f} {1.0:8.2f} {0.0:8.2f} {tilt[i]:9.2f}"
        )
    return "\n".join(lines) + "\n"


def _angles_text(angles: np.ndarray) -> str:
    return "".join(f"{value:9.4f}\n" for value in np.asarray(angles, np.float64))


def write_alignment_files(
    folder: str | os.PathLike[str],
    tilts: pd.DataFrame,
    *,
    tilt_axis_angle: float,
    pixel_size: float,
    image_shape: tuple[int, int],
    stem: str = "tiltseries",
) -> list[Path]:
    """Write the true alignment files into ``folder``.

    ``<stem>.rawtlt``, ``<stem>_true.tlt``, ``<stem>.xf``, ``<stem>.xtilt``, ``<stem>.aln``, each
    written atomically. Returns the paths written.
    """
    out = Path(folder)
    texts = {
        f"{stem}.rawtlt": _angles_text(tilts["angle_deg"].to_numpy()),
        f"{stem}_true.tlt": _angles_text(tilts["true_angle_deg"].to_numpy()),
        f"{stem}.xf": xf_text(imod_xf(tilts, tilt_axis_angle=tilt_axis_angle,
                                      pixel_size=pixel_size, image_shape=image_shape)),
        f"{stem}.xtilt": _angles_text(np.zeros(len(tilts))),
        f"{stem}.aln": aln_text(tilts, tilt_axis_angle=tilt_axis_angle, pixel_size=pixel_size,
                                image_shape=image_shape),
    }
    paths = []
    for name, text in texts.items():
        write_text(out / name, text)
        paths.append(out / name)
    return paths
