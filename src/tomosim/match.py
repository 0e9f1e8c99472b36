"""Measuring a real tomogram for the simulator (``tomosim match``).

From one reconstructed tomogram ``(z, y, x)`` (beam along z, tilt axis along y, CONVENTIONS.md)
this module measures what a simulation needs to look like it:

- **sample thickness**: the z profile of local variance, i.e. the mean square per z-slice of the
  tomogram band-passed to 1-4 voxels (difference of Gaussians), rises from the level of the empty
  ice or vacuum above and below the sample to a plateau inside it. The thickness is the extent
  over which the profile is at least :data:`THICKNESS_LEVEL` of the way from the outer level to
  the plateau (the outer edge of the content, which thins towards the surfaces);
- **contrast polarity**: dense matter (protein, membranes) is a sparse minority of the voxels
  with the extreme values, so the distribution of the slightly smoothed tomogram inside the
  sample is skewed towards the dense matter's sign: negative skewness = protein dark (as in IMOD
  reconstructions and tomosim tomograms), positive = protein bright;
- **noise level and background spectrum**: the standard deviation and the radial amplitude
  spectrum (:mod:`tomosim.spectrum`) of the slices outside the sample (or, when there are too
  few of them, of the whole tomogram);
- **apparent tilt range**: a projection at tilt ``θ`` fills the central plane of Fourier space
  whose ``(k_x, k_z)`` direction is ``(cos θ, sin θ)``, so the power of the tomogram, averaged over
  ``k_y`` and over a band of ``|(k_x, k_z)|``, is high for angles ``φ = atan2(k_z, k_x)`` inside
  the tilt range and drops in the missing wedge. The range is where the (log) angular profile is
  above :data:`TILT_LEVEL` of the way from its wedge floor to its plateau.

:func:`measure_tomogram` returns the measurements; :func:`config_fragment` turns them into a
config tree whose values are distributions centred on them (the :mod:`tomosim.randomize` syntax).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import warnings
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import scipy.fft
import yaml
from PIL import Image, ImageDraw
from scipy import ndimage

from tomosim.dataset import draw_phantom
from tomosim.errors import TomosimError
from tomosim.formats.volumes import read_volume, volume_in_folder
from tomosim.io import atomic_path, write_text
from tomosim.pipeline import simulate
from tomosim.preview import compose, to_gray, write_png
from tomosim.spectrum import RadialSpectrum, radial_amplitude_spectrum

MIN_SIZE = 24
"""Smallest tomogram side (voxels) that the measurements accept."""

THICKNESS_LEVEL = 0.15
"""Fraction of the rise from the outer variance level to the plateau that marks the surfaces."""

TILT_LEVEL = 0.8
"""Fraction of the way from the wedge floor to the plateau that marks the tilt range's ends."""

TILT_BAND = (0.05, 0.3)
"""Band of ``|(k_x, k_z)|``, cycles/voxel, whose angular power profile gives the tilt range."""


@dataclass(frozen=True)
class TomogramMeasurements:
    """What :func:`measure_tomogram` found.

    Attributes
    ----------
    pixel_size
        Å per voxel used for the measurements.
    thickness
        Sample thickness, Å.
    sample_slices
        ``(first, last)`` z-slices (inclusive) of the sample.
    polarity
        ``"dark"`` (protein darker than ice) or ``"bright"``.
    skewness
        Skewness of the smoothed tomogram inside the sample (its sign gives the polarity).
    noise_sd
        Standard deviation of the background (tomogram units).
    background_spectrum
        Radial amplitude spectrum of the background.
    spectrum
        Radial amplitude spectrum of the whole tomogram.
    tilt_range
        ``(min_angle, max_angle)`` degrees, the apparent tilt range.
    variance_profile
        ``(z,)`` band-passed variance per z-slice.
    angle_profile
        ``(angles, log_power)``: the angular power profile used for the tilt range.
    notes
        Caveats found while measuring (also issued as warnings).
    """

    pixel_size: float
    thickness: float
    sample_slices: tuple[int, int]
    polarity: str
    skewness: float
    noise_sd: float
    background_spectrum: RadialSpectrum
    spectrum: RadialSpectrum
    tilt_range: tuple[float, float]
    variance_profile: np.ndarray
    angle_profile: tuple[np.ndarray, np.ndarray]
    notes: tuple[str, ...] = field(default=())

    def summary(self) -> dict[str, Any]:
        """Plain tree of the measurements (for JSON and the YAML header)."""
        return {
            "pixel_size": round(self.pixel_size, 4),
            "thickness": round(self.thickness, 1),
            "sample_slices": list(self.sample_slices),
            "polarity": self.polarity,
            "skewness": round(self.skewness, 4),
            "noise_sd": float(f"{self.noise_sd:.6g}"),
            "tilt_range": [round(a, 1) for a in self.tilt_range],
            "background_spectrum": self.background_spectrum.as_dict(),
            "spectrum": self.spectrum.as_dict(),
            "notes": list(self.notes),
        }


def check_tomogram(volume: np.ndarray, *, name: str) -> np.ndarray:
    """Return ``volume`` as float32 if it can be measured; else a one-line error naming ``name``.

    Raises
    ------
    TomosimError
        Not 3D (or a single slice), any side below :data:`MIN_SIZE` voxels, NaN or infinite
        values, or a constant volume.
    """
    if volume.ndim != 3 or 1 in volume.shape:
        raise TomosimError(f"not a 3D tomogram (shape {volume.shape}): {name}")
    if min(volume.shape) < MIN_SIZE:
        raise TomosimError(
            f"tomogram {volume.shape} is too small to measure (at least {MIN_SIZE} voxels per "
            f"axis): {name}"
        )
    data = np.asarray(volume, dtype=np.float32)
    if not np.isfinite(data).all():
        raise TomosimError(f"tomogram holds NaN or infinite values: {name}")
    if float(data.max()) == float(data.min()):
        raise TomosimError(f"tomogram is constant ({float(data.min()):g}): {name}")
    return data


def variance_profile(volume: np.ndarray) -> np.ndarray:
    """``(z,)`` mean square per z-slice of ``volume`` band-passed to 1-4 voxels (DoG)."""
    data = np.asarray(volume, dtype=np.float32)
    band = ndimage.gaussian_filter(data, 1.0) - ndimage.gaussian_filter(data, 4.0)
    band -= band.mean(axis=(1, 2), keepdims=True)
    return (band.astype(np.float64) ** 2).mean(axis=(1, 2))


def sample_extent(profile: np.ndarray, *, level: float = THICKNESS_LEVEL) -> tuple[int, int, bool]:
    """``(first, last, bounded)``: slices where ``profile`` is ``level`` of the way to its plateau.

    The outer level is the median of the outermost 10 % of slices (at least 2 on each side), the
    plateau the 95th percentile. ``bounded`` is False when the profile shows no clear rise (less
    than a factor 1.5), i.e. the sample seems to fill the whole box.
    """
    n = profile.size
    edge = max(2, n // 10)
    outer = float(np.median(np.r_[profile[:edge], profile[-edge:]]))
    plateau = float(np.percentile(profile, 95))
    if plateau < 1.5 * outer:
        return 0, n - 1, False
    above = np.nonzero(profile >= outer + level * (plateau - outer))[0]
    return int(above[0]), int(above[-1]), True


def contrast_skewness(volume: np.ndarray, first: int, last: int) -> float:
    """Skewness of the tomogram smoothed by a 1.5-voxel Gaussian, in slices ``first..last``."""
    smooth = ndimage.gaussian_filter(np.asarray(volume, dtype=np.float32), 1.5)[first : last + 1]
    x = smooth.astype(np.float64) - smooth.mean()
    variance = float((x**2).mean())
    return float((x**3).mean() / variance**1.5) if variance > 0 else 0.0


def angular_power_profile(
    volume: np.ndarray, *, band: tuple[float, float] = TILT_BAND, step: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Mean log power per angle ``φ = atan2(k_z, k_x)`` in ``[-90, 90)`` degrees.

    Parameters
    ----------
    volume
        ``(z, y, x)`` tomogram.
    band
        Range of ``sqrt(k_x² + k_z²)``, cycles/voxel, that is averaged (``|k_y|`` below 0.3 too).
    step
        Angular bin width, degrees.

    Returns
    -------
    tuple of numpy.ndarray
        Bin centres (degrees) and mean ``log`` power per bin (NaN where a bin is empty),
        empty bins interpolated from their neighbours, median-filtered over 5 bins.
    """
    data = np.asarray(volume, dtype=np.float32)
    power = np.abs(scipy.fft.rfftn(data - data.mean(), axes=(0, 2), workers=-1)) ** 2
    power = np.log(power.astype(np.float64) + 1e-30)
    kz = np.fft.fftfreq(data.shape[0])[:, None]
    kx = np.fft.rfftfreq(data.shape[2])[None, :]
    radius = np.hypot(kz, kx)
    angle = np.degrees(np.arctan2(kz, kx))  # kx >= 0: angles in [-90, 90]
    angle = np.where(angle >= 90, angle - 180, angle)
    keep = (radius >= band[0]) & (radius <= band[1])
    # y-averaged log power of every (kz, kx)
    mean_over_y = power.mean(axis=1)
    edges = np.arange(-90.0, 90.0 + step, step)
    index = np.digitize(angle[keep], edges) - 1
    sums = np.bincount(index, weights=mean_over_y[keep], minlength=edges.size - 1)
    counts = np.bincount(index, minlength=edges.size - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        profile = sums[: edges.size - 1] / counts[: edges.size - 1]
    centres = 0.5 * (edges[:-1] + edges[1:])
    finite = np.isfinite(profile)  # empty bins (coarse k_z sampling): interpolate, periodic
    filled = np.interp(centres, centres[finite], profile[finite], period=180.0)
    profile = ndimage.median_filter(filled, size=5, mode="wrap")
    return centres, profile


def tilt_range_from_profile(angles: np.ndarray, profile: np.ndarray) -> tuple[float, float]:
    """``(min, max)`` tilt angle: the run of ``profile`` around 0 degrees above a threshold.

    The threshold is :data:`TILT_LEVEL` of the way from the wedge floor (the 5th percentile) to
    the plateau (median of the bins within ±20°): the profile is flat inside the tilt range and
    falls steeply at its ends, then slowly into the wedge. The ends are interpolated linearly
    between bins.
    """
    plateau = float(np.median(profile[np.abs(angles) <= 20]))
    floor = float(np.percentile(profile, 5))
    threshold = floor + TILT_LEVEL * (plateau - floor)
    centre = int(np.argmin(np.abs(angles)))
    above = profile >= threshold

    def walk(direction: int) -> float:
        i = centre
        while 0 <= i + direction < angles.size and above[i + direction]:
            i += direction
        j = i + direction
        if not 0 <= j < angles.size:
            return float(angles[i])
        # interpolate the crossing between bin i (above) and j (below)
        fraction = (profile[i] - threshold) / max(profile[i] - profile[j], 1e-12)
        return float(angles[i] + fraction * (angles[j] - angles[i]))

    return walk(-1), walk(+1)


def measure_tomogram(
    volume: np.ndarray, *, pixel_size: float, name: str = "tomogram"
) -> TomogramMeasurements:
    """Measure thickness, polarity, noise, spectra and tilt range of a tomogram.

    Parameters
    ----------
    volume
        ``(z, y, x)`` reconstructed tomogram, beam along z, tilt axis along y.
    pixel_size
        Å per voxel.
    name
        Named in error messages (the file).

    Returns
    -------
    TomogramMeasurements
        The measurements (see the module docstring for the methods).

    Raises
    ------
    TomosimError
        A volume :func:`check_tomogram` refuses, or a non-positive pixel size.
    """
    if not pixel_size > 0:
        raise TomosimError(f"pixel size must be positive, got {pixel_size}: {name}")
    data = check_tomogram(volume, name=name)
    notes: list[str] = []
    profile = variance_profile(data)
    first, last, bounded = sample_extent(profile)
    if not bounded:
        notes.append("no empty layer above or below the sample: thickness is the box height")
    thickness = (last - first + 1) * pixel_size
    skewness = contrast_skewness(data, first, last)
    polarity = "dark" if skewness <= 0 else "bright"
    if abs(skewness) < 0.1:
        notes.append(f"contrast polarity uncertain (skewness {skewness:.3f})")
    outside = [data[: max(0, first - 2)], data[last + 3 :]]
    outside = [block for block in outside if block.shape[0] >= 8]
    if outside:
        background = max(outside, key=lambda block: block.shape[0])
    else:
        background = data
        notes.append("fewer than 8 empty slices: background measured on the whole tomogram")
    noise_sd = float(np.std(background, dtype=np.float64))
    angles, log_power = angular_power_profile(data)
    tilt_range = tilt_range_from_profile(angles, log_power)
    for note in notes:
        warnings.warn(f"{name}: {note}", stacklevel=2)
    return TomogramMeasurements(
        pixel_size=float(pixel_size),
        thickness=float(thickness),
        sample_slices=(first, last),
        polarity=polarity,
        skewness=skewness,
        noise_sd=noise_sd,
        background_spectrum=radial_amplitude_spectrum(background, pixel_size=pixel_size),
        spectrum=radial_amplitude_spectrum(data, pixel_size=pixel_size),
        tilt_range=tilt_range,
        variance_profile=profile,
        angle_profile=(angles, log_power),
        notes=tuple(notes),
    )


def config_fragment(
    measured: TomogramMeasurements,
    *,
    shape_yx: tuple[int, int] = (256, 256),
    spread: float = 0.1,
    tilt_spread: float = 3.0,
) -> dict[str, Any]:
    """Config tree with distributions centred on the measurements (:mod:`tomosim.randomize`).

    Parameters
    ----------
    measured
        From :func:`measure_tomogram`.
    shape_yx
        ``(y, x)`` voxels of the simulated box; z is chosen to hold the thickest ice drawn.
    spread
        Relative half-width of the uniform distributions of thickness and pixel size (the pixel
        size gets half of it).
    tilt_spread
        Half-width, degrees, of the uniform distributions of the tilt range ends.

    Returns
    -------
    dict
        ``sample`` (shape, pixel size, ice thickness), ``microscope.tilt`` (min and max angle)
        and ``reconstruction.invert`` (True for bright protein).
    """
    p = measured.pixel_size
    p_low, p_high = p * (1 - spread / 2), p * (1 + spread / 2)
    t_low, t_high = measured.thickness * (1 - spread), measured.thickness * (1 + spread)
    nz = int(8 * math.ceil(1.15 * t_high / p_low / 8))
    lo, hi = measured.tilt_range

    def clamp(angle: float) -> float:
        return float(min(90.0, max(-90.0, round(angle, 1))))

    return {
        "sample": {
            "shape": [nz, int(shape_yx[0]), int(shape_yx[1])],
            "pixel_size": {"uniform": [round(p_low, 4), round(p_high, 4)]},
            "ice_thickness": {"uniform": [round(t_low, 1), round(t_high, 1)]},
        },
        "microscope": {
            "tilt": {
                "min_angle": {
                    "uniform": [clamp(lo - tilt_spread), clamp(min(lo + tilt_spread, -1))]
                },
                "max_angle": {
                    "uniform": [clamp(max(hi - tilt_spread, 1)), clamp(hi + tilt_spread)]
                },
            }
        },
        "reconstruction": {"invert": measured.polarity == "bright"},
    }


# --------------------------------------------------------------------------------------------
# Report: match.yaml, match.json and a comparison picture
# --------------------------------------------------------------------------------------------


def line_plot(
    title: str,
    series: list[tuple[str, np.ndarray, np.ndarray, tuple[int, int, int]]],
    *,
    size: tuple[int, int] = (360, 240),
    log_y: bool = False,
    marks: tuple[float, ...] = (),
) -> np.ndarray:
    """Draw a small line plot with Pillow: ``(height, width, 3)`` uint8.

    ``series`` holds ``(name, x, y, colour)``; ``marks`` are x positions drawn as grey lines.
    """
    width, height = size
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = 44, 18, width - 8, height - 22
    draw.rectangle((left, top, right, bottom), outline="black")
    draw.text((left, 3), title, fill="black")
    ys = [np.log10(np.maximum(y, 1e-12)) if log_y else np.asarray(y, float)
          for _, _, y, _ in series]
    xs = [np.asarray(x, float) for _, x, _, _ in series]
    finite = np.concatenate([y[np.isfinite(y)] for y in ys]) if ys else np.zeros(1)
    y_low, y_high = float(finite.min()), float(finite.max())
    if y_high - y_low < 1e-12:
        y_low, y_high = y_low - 0.5, y_high + 0.5
    x_all = np.concatenate(xs)
    x_low, x_high = float(x_all.min()), float(x_all.max())
    x_high = x_high if x_high > x_low else x_low + 1

    def point(x: float, y: float) -> tuple[float, float]:
        return (left + (x - x_low) / (x_high - x_low) * (right - left),
                bottom - (y - y_low) / (y_high - y_low) * (bottom - top))

    for mark in marks:
        draw.line((*point(mark, y_low), *point(mark, y_high)), fill=(170, 170, 170))
    for k, ((name, _, _, colour), x, y) in enumerate(zip(series, xs, ys, strict=True)):
        points = [point(a, b) for a, b in zip(x, y, strict=True) if np.isfinite(b)]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        draw.text((right - 110, top + 4 + 12 * k), name, fill=colour)
    draw.text((2, top), f"{10**y_high if log_y else y_high:.3g}", fill="black")
    draw.text((2, bottom - 10), f"{10**y_low if log_y else y_low:.3g}", fill="black")
    draw.text((left, bottom + 6), f"{x_low:.3g}", fill="black")
    draw.text((right - 40, bottom + 6), f"{x_high:.3g}", fill="black")
    return np.asarray(image)


def comparison_image(
    tomogram: np.ndarray,
    measured: TomogramMeasurements,
    phantom: np.ndarray | None = None,
    phantom_measured: TomogramMeasurements | None = None,
) -> np.ndarray:
    """Slices and spectra of a tomogram beside those of a phantom simulated to match it.

    Returns
    -------
    numpy.ndarray
        ``(height, width, 3)`` uint8 RGB picture: xy and xz slices of both, their radial
        amplitude spectra, z variance profiles and angular power profiles.
    """
    blue, orange = (31, 119, 180), (255, 127, 14)
    panels = [("tomogram xy (centre)", to_gray(tomogram[tomogram.shape[0] // 2])),
              ("tomogram xz (centre)", to_gray(tomogram[:, tomogram.shape[1] // 2]))]
    spectra = [("tomogram", measured.spectrum.frequency, measured.spectrum.amplitude, blue)]
    zs = [("tomogram", np.arange(measured.variance_profile.size) * measured.pixel_size,
           measured.variance_profile / measured.variance_profile.max(), blue)]
    angles = [("tomogram", *measured.angle_profile, blue)]
    if phantom is not None and phantom_measured is not None:
        panels += [("phantom xy (centre)", to_gray(phantom[phantom.shape[0] // 2])),
                   ("phantom xz (centre)", to_gray(phantom[:, phantom.shape[1] // 2]))]
        s = phantom_measured.spectrum
        # spectra compared in shape: the phantom's scaled to the tomogram's mean amplitude
        scale = measured.spectrum.amplitude[1:].mean() / max(s.amplitude[1:].mean(), 1e-30)
        spectra.append(("phantom", s.frequency, s.amplitude * scale, orange))
        p = phantom_measured.variance_profile
        zs.append(("phantom", np.arange(p.size) * phantom_measured.pixel_size, p / p.max(), orange))
        a, lp = phantom_measured.angle_profile
        angles.append(("phantom", a, lp - lp.max() + measured.angle_profile[1].max(), orange))
    panels += [
        ("radial amplitude spectrum (x: 1/A)", line_plot("", spectra, log_y=True)),
        ("z profile of local variance (x: A)", line_plot("", zs)),
        ("log power vs angle atan2(kz, kx) (deg)",
         line_plot("", angles, marks=measured.tilt_range)),
    ]
    return compose(panels, columns=2, max_panel_size=360)


def match_config(
    measured: TomogramMeasurements, base: dict[str, Any], *, shape_yx: tuple[int, int] | None = None
) -> dict[str, Any]:
    """Merge the fragment of :func:`config_fragment` into the config tree ``base``."""
    if shape_yx is None:
        shape = base.get("sample", {}).get("shape") or (200, 256, 256)
        shape_yx = (int(shape[1]), int(shape[2]))
    return _merge(base, config_fragment(measured, shape_yx=shape_yx))


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def fragment_header(measured: TomogramMeasurements, source: str) -> str:
    """YAML comment lines stating what was measured on ``source``."""
    s = measured.summary()
    lines = [
        f"# tomosim match {source}",
        f"# pixel size {s['pixel_size']} A; sample thickness {s['thickness']} A "
        f"(slices {s['sample_slices'][0]}..{s['sample_slices'][1]}); polarity: protein "
        f"{s['polarity']} (skewness {s['skewness']}); apparent tilt range "
        f"{s['tilt_range'][0]} .. {s['tilt_range'][1]} deg; background noise s.d. {s['noise_sd']}",
        "# background radial amplitude spectrum and all numbers: the .json file beside this one.",
        "# Distributions are centred on the measurements (tomosim.randomize syntax); the rest is",
        "# the base config. Use it with tomosim simulate / dataset.",
    ]
    lines += [f"# note: {n}" for n in s["notes"]]
    return "\n".join(lines) + "\n"


def match_tomogram_file(
    tomogram: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    pixel_size: float | None = None,
    base: dict[str, Any] | None = None,
    seed: int = 0,
    picture: bool = True,
) -> TomogramMeasurements:
    """Measure a tomogram file and write ``output`` (YAML), ``.json`` and ``.png`` beside it.

    Parameters
    ----------
    tomogram
        ``(z, y, x)`` tomogram: MRC, OME-Zarr or a copick run folder.
    output
        The config to write (``match.yaml``); ``match.json`` (all measurements, spectra
        included) and ``match.png`` (comparison with a phantom simulated from the config) go
        beside it.
    pixel_size
        Å per voxel; required when the header has none, otherwise overrides it (with a warning
        when they differ by more than 1 %).
    base
        Config tree the measurements are merged into (default: the built-in demo config).
    seed
        Seed of the phantom drawn for the picture.
    picture
        Simulate the phantom and write the picture.

    Raises
    ------
    TomosimError
        Unreadable file, no voxel size and no ``pixel_size``, or a tomogram that cannot be
        measured (2D, constant, NaN, too small); each message names the file.
    """
    source = Path(tomogram)
    target = Path(output)
    volume = read_volume(source, require_voxel_size=False)
    header = float(volume.voxel_size[2])
    if pixel_size is None:
        if header <= 0:
            raise TomosimError(
                f"no voxel size in the header (read {header:g}): give --pixel-size: {source}"
            )
        pixel_size = header
    elif header > 0 and abs(header / pixel_size - 1) > 0.01:
        warnings.warn(
            f"{source}: header voxel size {header:g} A differs from --pixel-size {pixel_size:g} A; "
            "using --pixel-size",
            stacklevel=2,
        )
    measured = measure_tomogram(volume.data, pixel_size=pixel_size, name=str(source))
    if base is None:
        base = yaml.safe_load(resources.files("tomosim").joinpath("data/demo.yaml").read_text())
    tree = match_config(measured, base)
    text = fragment_header(measured, source.name) + yaml.safe_dump(tree, sort_keys=False)
    picture_rgb = None
    if picture:
        preview_tree = dict(tree)
        preview_tree["output"] = {**preview_tree.get("output", {}), "previews": False}
        config, _ = draw_phantom(preview_tree, seed, 0, source=str(target))
        with tempfile.TemporaryDirectory(prefix="tomosim-match-") as scratch:
            simulate(config, scratch, progress=False)
            phantom = read_volume(volume_in_folder(scratch, "tomogram")).data
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            phantom_measured = measure_tomogram(
                phantom, pixel_size=float(config.sample.pixel_size), name="phantom"
            )
        picture_rgb = comparison_image(volume.data, measured, phantom, phantom_measured)
    summary = {"tomogram": str(source), **measured.summary()}
    write_text(target.with_suffix(".json"), json.dumps(summary, indent=2) + "\n")
    if picture_rgb is not None:
        write_png(target.with_suffix(".png"), picture_rgb)
    with atomic_path(target) as tmp:
        tmp.write_text(text)
    return measured
