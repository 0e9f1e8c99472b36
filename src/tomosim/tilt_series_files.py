"""Tilt-series metadata files: the SerialEM-style ``.mdoc`` and the per-tilt table (``tilts.csv``).

Both describe a :class:`~tomosim.microscope.image_formation.TiltSeries` in stack order (ascending
nominal angle) and carry no timestamps of the run, so reruns compare byte for byte. The stack
itself and the ``.tlt`` angles are written by :mod:`tomosim.io`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from tomosim.microscope import TiltSeries


def tilt_table(tilt_series: TiltSeries) -> pd.DataFrame:
    """Per-tilt metadata in stack order (ascending nominal angle): ``tilts.csv``.

    Sign conventions (CONVENTIONS.md, "Per-tilt errors"): ``true_angle_deg`` is the angle the
    image was formed at (``angle_deg`` is nominal); each image was rotated by
    ``rotation_error_deg`` (counter-clockwise, about the centre ``shape // 2``, on top of the
    tilt-axis angle) and then its content displaced by ``(shift_x_a, shift_y_a)`` Å; undoing
    means shifting by minus the shift, then rotating by minus the rotation. ``defocus_u_a`` and
    ``defocus_v_a`` are the values a CTF estimation reports (used for CTF correction);
    ``true_defocus_u_a``/``true_defocus_v_a`` those the image was formed with. ``motion_blur_a``
    is the length of the linear beam-induced motion within the exposure, along
    ``motion_angle_deg`` (counter-clockwise from x).
    """
    s = tilt_series.scheme
    true_u, true_v = tilt_series.true_defocus_u, tilt_series.true_defocus_v
    true_u = tilt_series.defocus_u if true_u is None else true_u
    true_v = tilt_series.defocus_v if true_v is None else true_v
    errors = tilt_series.acquisition
    blur = np.zeros(tilt_series.n_tilts) if errors is None else errors.motion_blur
    blur_angle = np.zeros(tilt_series.n_tilts) if errors is None else errors.motion_angle
    return pd.DataFrame(
        {
            "index": np.arange(tilt_series.n_tilts),
            "angle_deg": tilt_series.angles_deg,
            "true_angle_deg": s.true_angles_deg,
            "acquisition_index": s.acquisition_index,
            "dose_e_per_a2": s.dose,
            "dose_before_e_per_a2": s.dose_before,
            "dose_after_e_per_a2": s.dose_after,
            "defocus_u_a": tilt_series.defocus_u,
            "defocus_v_a": tilt_series.defocus_v,
            "astigmatism_angle_deg": tilt_series.astigmatism_angle,
            "shift_x_a": s.shifts[:, 0],
            "shift_y_a": s.shifts[:, 1],
            "rotation_error_deg": s.rotations,
            "true_defocus_u_a": true_u,
            "true_defocus_v_a": true_v,
            "motion_blur_a": blur,
            "motion_angle_deg": blur_angle,
        }
    )


def mdoc_text(tilt_series: TiltSeries, *, image_file: str) -> str:
    """SerialEM-style ``.mdoc`` text: a header, then one ``[ZValue = i]`` section per image.

    Sections are in stack order (ascending angle). ``DateTime`` increases with acquisition order
    (30 s per tilt from a fixed start, so files are reproducible) for tools that sort by time.
    SerialEM's ``Defocus`` is negative for underfocus, so it is ``-defocus`` in µm here;
    ``TargetDefocus`` likewise.
    """
    s = tilt_series.scheme
    ny, nx = tilt_series.images.shape[1:]
    lines = [
        f"PixelSpacing = {tilt_series.pixel_size:.4f}",
        f"Voltage = {tilt_series.optics.voltage_kv:g}",
        f"ImageFile = {image_file}",
        f"ImageSize = {nx} {ny}",
        "DataMode = 2",
        "",
        "[T = tomosim simulated tilt series   "
        f"Tilt axis angle = {tilt_series.tilt_axis_angle:.2f}]",
        f"TiltAxisAngle = {tilt_series.tilt_axis_angle:.2f}",
        "",
    ]
    start = datetime(2026, 1, 1, 12, 0, 0)
    for i in range(tilt_series.n_tilts):
        mean_defocus_um = (tilt_series.defocus_u[i] + tilt_series.defocus_v[i]) / 2 / 1e4
        when = start + timedelta(seconds=30 * int(s.acquisition_index[i]))
        lines += [
            f"[ZValue = {i}]",
            f"TiltAngle = {tilt_series.angles_deg[i]:.4f}",
            f"ExposureDose = {s.dose[i]:.4f}",
            f"PriorRecordDose = {s.dose_before[i]:.4f}",
            f"PixelSpacing = {tilt_series.pixel_size:.4f}",
            f"Defocus = {-mean_defocus_um:.4f}",
            f"TargetDefocus = {-s.defocus[i] / 1e4:.4f}",
            f"RotationAngle = {tilt_series.tilt_axis_angle + s.rotations[i]:.4f}",
            f"ImageShift = {s.shifts[i, 0] / 1e4:.6f} {s.shifts[i, 1] / 1e4:.6f}",
            f"DateTime = {when.strftime('%d-%b-%y  %H:%M:%S')}",
            f"AcquisitionIndex = {int(s.acquisition_index[i])}",
            "",
        ]
    return "\n".join(lines)
