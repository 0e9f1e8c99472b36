"""Pipeline: one simulation from config to files.

``simulate(config, output_dir)`` runs every step — potentials of the structures, phantom assembly,
the microscope, weighted backprojection — and writes the complete output folder:

==========================  ==================================================================
``ground_truth.mrc``        noise-free potential of the sample (V, excess over ice), float32
``labels.mrc``              semantic labels, uint8, 0 = background
``instances.mrc``           object ids (uint16 when they fit, else float32; 0 = none)
``classes.csv``             id, name, colour (ids from the config order, never shifted)
``particles.star/.csv``     one row per particle / filament subunit (see tomosim.particles)
``tiltseries.mrc``          tilt images (electrons per pixel), IMOD-readable stack
``tiltseries.tlt``          tilt angles, one per line, in stack order
``tiltseries.mdoc``         SerialEM-style per-tilt metadata
``tilts.csv``               angle, acquisition order, dose, cumulative dose, defocus U/V, astig.
``tiltseries.xf/.rawtlt``   the true alignment for IMOD (``.xf``, ``.rawtlt``, ``.xtilt``,
``tiltseries_true.tlt``     ``_true.tlt``) and AreTomo (``.aln``); see tomosim.formats.alignment
``tiltseries.aln/.xtilt``
``tomogram.mrc``            weighted backprojection on the grid of ground_truth.mrc
``*.zarr``                  with ``output.volume_format`` ome-zarr (instead of the volume MRCs)
                            or both: the same volumes as multiscale OME-Zarr
``config.resolved.yaml``    the fully resolved config (written last: its presence marks a
                            complete folder)
``preview.png``             slices with label overlay, tilt images, power spectrum
==========================  ==================================================================

Every file is written under a temporary name and renamed when complete. Random choices flow from
``config.seed`` through independent streams per stage, so the same seed gives byte-identical files.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

import numpy as np
import yaml
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from tomosim.assemble import assemble_phantom
from tomosim.cache import load_potential
from tomosim.config import (
    OutputConfig,
    SimulationConfig,
    StructureOptions,
    config_from_dict,
    dump_config,
)
from tomosim.errors import TomosimError
from tomosim.filaments import filament_template_sources, resolved_species
from tomosim.formats.alignment import write_alignment_files
from tomosim.formats.omezarr import write_ome_zarr
from tomosim.io import atomic_path, write_mrc, write_text, write_tlt
from tomosim.labels import class_colour, class_table, write_class_table
from tomosim.memory import simulate_bytes
from tomosim.microscope import TiltSeries, simulate_tilt_series
from tomosim.microscope.tilt_scheme import tilt_angles
from tomosim.particles import optics_table, particles_table, write_particles
from tomosim.phantom import Phantom
from tomosim.potential import ICE_POTENTIAL_V, Potential
from tomosim.preview import (
    add_scale_bar,
    compose,
    overlay_labels,
    power_spectrum,
    to_gray,
    write_png,
)
from tomosim.recipe import acquisition, optics, phantom_recipe
from tomosim.reconstruct import PhaseFlipSettings, weighted_backprojection
from tomosim.rendering import template_pixel_size
from tomosim.tilt_series_files import mdoc_text, tilt_table


@dataclass(frozen=True)
class StageSeeds:
    """Independent random streams for each stage, derived from one seed."""

    assembly: np.random.Generator
    microscope: np.random.Generator

    @classmethod
    def from_seed(cls, seed: int) -> StageSeeds:
        """Independent generators of the assembly and the microscope, spawned from ``seed``."""
        assembly, microscope = np.random.SeedSequence(seed).spawn(2)
        return cls(np.random.default_rng(assembly), np.random.default_rng(microscope))


VOLUME_STEMS = ("ground_truth", "labels", "instances", "tomogram")


def output_paths(output_dir: str | os.PathLike[str], volume_format: str = "mrc") -> dict[str, Path]:
    """Names of every file ``simulate`` writes into ``output_dir``.

    ``volume_format`` (``output.volume_format``) swaps or adds the ``.zarr`` volumes.
    """
    d = Path(output_dir)
    names = [
        "ground_truth.mrc", "labels.mrc", "instances.mrc", "classes.csv", "particles.star",
        "particles.csv", "tiltseries.mrc", "tiltseries.tlt", "tiltseries.mdoc", "tilts.csv",
        "tiltseries.rawtlt", "tiltseries_true.tlt", "tiltseries.xf", "tiltseries.xtilt",
        "tiltseries.aln",
        "tomogram.mrc", "config.resolved.yaml", "preview.png",
    ]
    if volume_format != "mrc":
        names += [f"{stem}.zarr" for stem in VOLUME_STEMS]
    if volume_format == "ome-zarr":
        names = [n for n in names if n not in {f"{stem}.mrc" for stem in VOLUME_STEMS}]
    return {n: d / n for n in names}


def write_volume(
    folder: Path, stem: str, data: np.ndarray, *, voxel_size: float, output: OutputConfig,
    labels: bool = False,
) -> None:
    """Write a volume as ``<stem>.mrc`` and/or ``<stem>.zarr`` as ``output.volume_format`` says."""
    if output.volume_format in ("mrc", "both"):
        write_mrc(folder / f"{stem}.mrc", data, voxel_size=voxel_size)
    if output.volume_format in ("ome-zarr", "both"):
        chunk = output.ome_zarr_chunk_px
        write_ome_zarr(
            folder / f"{stem}.zarr", data, voxel_size=voxel_size, levels=output.ome_zarr_levels,
            labels=labels, chunks=(chunk, chunk, chunk),
        )


@dataclass(frozen=True)
class SimulationResult:
    """What :func:`simulate` produced (arrays in memory, files in ``output_dir``)."""

    phantom: Phantom
    tilt_series: TiltSeries | None
    tomogram: np.ndarray | None
    output_dir: Path
    timings: dict[str, float]


def demo_config(*, overrides: list[str] | None = None, seed: int | None = None) -> SimulationConfig:
    """The built-in demo config (``tomosim/data/demo.yaml``): a small mixed phantom, offline."""
    text = resources.files("tomosim").joinpath("data/demo.yaml").read_text()
    return config_from_dict(
        yaml.safe_load(text), source="demo.yaml", overrides=overrides, seed=seed
    )


def template_sources(config: SimulationConfig) -> dict[str, tuple[str, StructureOptions]]:
    """Every template the phantom needs: ``{template name: (structure source, options)}``.

    Protein species are keyed by species name; filament subunits by the names
    :func:`tomosim.filaments.filament_template_sources` gives them (fitted and shipped subunit
    files are read without the species' chain/segment selection).
    """
    out: dict[str, tuple[str, StructureOptions]] = {}
    for species in config.proteins.species:
        out[species.name] = (species.source, species.structure)
    for filament in config.filaments:
        if filament.count == 0:
            continue
        for name, (source, options) in filament_template_sources(filament).items():
            out.setdefault(name, (source, options))
    return out


def compute_templates(config: SimulationConfig) -> dict[str, Potential]:
    """Potentials of every template at the rendering pixel size (from the cache when there)."""
    pixel = template_pixel_size(config.sample.pixel_size)
    return {
        name: load_potential(source, pixel, potential=config.potential, structure=options)
        for name, (source, options) in template_sources(config).items()
    }


def _ice_potential(config: SimulationConfig) -> float:
    return config.potential.ice_potential_v or ICE_POTENTIAL_V


def simulation_bytes(cfg: SimulationConfig) -> float:
    """Return the estimated peak memory of simulating ``cfg``, bytes.

    See :func:`tomosim.memory.simulate_bytes`.
    """
    tilt = cfg.microscope.tilt
    n_tilts = len(tilt_angles(tilt.min_angle, tilt.max_angle, tilt.step))
    return simulate_bytes(
        cfg.sample.shape, n_tilts=n_tilts, padding=cfg.microscope.optics.padding,
        reconstruction_binning=cfg.reconstruction.binning,
    )


def simulate(
    config: SimulationConfig,
    output_dir: str | os.PathLike[str],
    *,
    progress: bool = True,
    microscope: bool = True,
) -> SimulationResult:
    """Run the whole simulation and write the output folder (see the module docstring).

    Parameters
    ----------
    config
        The validated simulation config.
    output_dir
        Folder to write into (created). ``config.resolved.yaml`` is written last.
    progress
        Show a progress bar per stage.
    microscope
        False stops after the phantom (ground truth, labels, particles): no tilt series or
        tomogram.

    Returns
    -------
    SimulationResult
    """
    out = Path(output_dir)
    if out.exists() and not out.is_dir():
        raise TomosimError(f"output path exists and is not a folder: {out}")
    out.mkdir(parents=True, exist_ok=True)
    paths = output_paths(out, config.output.volume_format)
    paths["config.resolved.yaml"].unlink(missing_ok=True)  # the folder is incomplete until the end
    seeds = StageSeeds.from_seed(config.seed)
    # fitted filament helices (helix: auto, cofilactin preset) are written into the config
    config = config.model_copy(
        update={"filaments": [resolved_species(species) if species.count else species
                              for species in config.filaments]}
    )
    timings: dict[str, float] = {}
    stages = ["potentials", "phantom", "write phantom"]
    if microscope:
        stages += ["tilt series", "tomogram", "write microscope"]
    stages.append("preview")

    with _Stages(stages, enabled=progress) as stage:
        with stage("potentials", timings):
            templates = compute_templates(config)
        with stage("phantom", timings):
            phantom = assemble_phantom(phantom_recipe(config), templates, seeds.assembly)
        with stage("write phantom", timings):
            _write_phantom(config, phantom, paths)
        tilt_series = tomogram = None
        if microscope:
            with stage("tilt series", timings):
                tilt_series = simulate_tilt_series(
                    phantom.potential,
                    pixel_size=config.sample.pixel_size,
                    ice_thickness=phantom.ice_thickness,
                    acquisition=acquisition(config.microscope),
                    optics=optics(config.microscope.optics),
                    ice_potential_v=_ice_potential(config),
                    rng=seeds.microscope,
                )
            with stage("tomogram", timings):
                tomogram = reconstruct_tomogram(tilt_series, config)
            with stage("write microscope", timings):
                _write_microscope(config, tilt_series, tomogram, paths)
        with stage("preview", timings):
            if config.output.previews:
                write_png(
                    paths["preview.png"],
                    preview_image(
                        phantom, tilt_series, tomogram, settings=preview_settings(config),
                        distractors=any(
                            s.label == "background" for s in config.proteins.species
                        ),
                        pixel_size=config.sample.pixel_size,
                        tomogram_pixel_size=(
                            config.sample.pixel_size * config.reconstruction.binning
                        ),
                    ),
                )
    write_text(paths["config.resolved.yaml"], dump_config(config))
    return SimulationResult(phantom, tilt_series, tomogram, out, timings)


def reconstruct_tomogram(tilt_series: TiltSeries, config: SimulationConfig) -> np.ndarray:
    """Weighted backprojection of a simulated tilt series on the grid of the sample volume."""
    rec = config.reconstruction
    thickness = rec.thickness_px or config.sample.shape[0]
    phase_flip = None
    if rec.phase_flip:
        phase_flip = PhaseFlipSettings(
            defocus_u=tilt_series.defocus_u,
            defocus_v=tilt_series.defocus_v,
            astigmatism_angle=tilt_series.astigmatism_angle,
            optics=tilt_series.optics,
            wiener_snr=rec.wiener_snr,
        )
    return weighted_backprojection(
        tilt_series.images,
        tilt_series.angles_deg,
        thickness_px=thickness,
        tilt_axis_angle=tilt_series.tilt_axis_angle,
        lowpass_cutoff=rec.lowpass_cutoff,
        lowpass_falloff=rec.lowpass_falloff,
        sirt_like_iterations=rec.sirt_like_iterations,
        binning=rec.binning,
        invert=rec.invert,
        pixel_size=tilt_series.pixel_size,
        phase_flip=phase_flip,
    )


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def _write_phantom(config: SimulationConfig, phantom: Phantom, paths: dict[str, Path]) -> None:
    px = config.sample.pixel_size
    folder = paths["classes.csv"].parent
    write_volume(folder, "ground_truth", phantom.potential, voxel_size=px, output=config.output)
    write_volume(folder, "labels", phantom.labels, voxel_size=px, output=config.output, labels=True)
    write_volume(
        folder, "instances", phantom.instances, voxel_size=px, output=config.output, labels=True
    )
    write_class_table(paths["classes.csv"], class_table(config.class_ids()))
    table = particles_table(
        phantom.placements,
        shape=config.sample.shape,
        pixel_size=px,
        class_names=phantom.class_names,
        tomogram_name=config.output.tomogram_name,
    )
    optics = config.microscope.optics
    relion_optics = optics_table(
        voltage_kv=optics.voltage_kv, cs_mm=optics.cs_mm,
        amplitude_contrast=optics.amplitude_contrast, pixel_size=px,
    )
    write_particles(table, paths["particles.star"], paths["particles.csv"], optics=relion_optics)


def _write_microscope(
    config: SimulationConfig, tilt_series: TiltSeries, tomogram: np.ndarray, paths: dict[str, Path]
) -> None:
    px = tilt_series.pixel_size
    out = paths["tiltseries.mrc"].parent
    write_mrc(paths["tiltseries.mrc"], tilt_series.images, voxel_size=px, is_stack=True)
    write_tlt(paths["tiltseries.tlt"], tilt_series.angles_deg)
    table = tilt_table(tilt_series)
    with atomic_path(paths["tilts.csv"]) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6f")
    write_text(paths["tiltseries.mdoc"], mdoc_text(tilt_series, image_file="tiltseries.mrc"))
    write_alignment_files(
        out, table, tilt_axis_angle=tilt_series.tilt_axis_angle, pixel_size=px,
        image_shape=tilt_series.images.shape[1:],
    )
    rec_px = px * config.reconstruction.binning
    write_volume(out, "tomogram", tomogram, voxel_size=rec_px, output=config.output)
    extra = {"noise_free": tilt_series.noise_free, "odd": tilt_series.odd, "even": tilt_series.even}
    for name, images in extra.items():
        if images is None:
            continue
        write_mrc(out / f"tiltseries_{name}.mrc", images, voxel_size=px, is_stack=True)
        if name in ("odd", "even"):
            half = replace(tilt_series, images=images, noise_free=None, odd=None, even=None)
            write_mrc(
                out / f"tomogram_{name}.mrc", reconstruct_tomogram(half, config), voxel_size=rec_px
            )


# --------------------------------------------------------------------------------------------
# Preview
# --------------------------------------------------------------------------------------------


def preview_settings(config: SimulationConfig) -> str:
    """One line of the main microscope settings, for the preview (ASCII: the font's range)."""
    scope = config.microscope
    tilt = scope.tilt
    return (
        f"{scope.optics.voltage_kv:g} kV, defocus {scope.optics.defocus_um:g} um, "
        f"dose {scope.dose.total_dose_e_per_a2:g} e/A^2, "
        f"tilts {tilt.min_angle:g}..{tilt.max_angle:g} deg step {tilt.step:g}, "
        f"pixel {config.sample.pixel_size:g} A, seed {config.seed}"
    )


def preview_image(
    phantom: Phantom,
    tilt_series: TiltSeries | None,
    tomogram: np.ndarray | None,
    *,
    settings: str = "",
    distractors: bool = False,
    pixel_size: float | None = None,
    tomogram_pixel_size: float | None = None,
) -> np.ndarray:
    """Compose the preview: ground truth xy/xz with labels, tilt images, tomogram, spectrum.

    ``pixel_size`` (Å, of the sample) adds scale bars to the xy panels (``tomogram_pixel_size``
    to the tomogram's); ``distractors`` adds a legend entry for uncoloured particles labelled
    background; ``settings`` is printed below the panels.
    """
    colours = {i: class_colour(i) for i in phantom.class_names}
    zc, yc = phantom.potential.shape[0] // 2, phantom.potential.shape[1] // 2

    def bar(title: str, panel: np.ndarray, size: float | None) -> tuple[str, np.ndarray]:
        if size is None:
            return title, panel
        image, length = add_scale_bar(panel, size)
        return f"{title}, bar {length}", image

    ground_xy = overlay_labels(to_gray(phantom.potential[zc]), phantom.labels[zc], colours)
    ground_xz = overlay_labels(to_gray(phantom.potential[:, yc]), phantom.labels[:, yc], colours)
    panels = [
        bar("ground truth xy (labels)", ground_xy, pixel_size),
        ("ground truth xz (labels)", ground_xz),
    ]
    if tilt_series is not None and tomogram is not None:
        angles = tilt_series.angles_deg
        zero, high = int(np.argmin(np.abs(angles))), int(np.argmax(np.abs(angles)))
        tz = min(zc, tomogram.shape[0] - 1)
        tomogram_xy = to_gray(tomogram[tz])
        if tomogram.shape == phantom.labels.shape:
            tomogram_labels = overlay_labels(tomogram_xy, phantom.labels[tz], colours)
        else:
            tomogram_labels = tomogram_xy
        panels += [
            (f"tilt {angles[zero]:+.0f} deg", to_gray(tilt_series.images[zero])),
            (f"tilt {angles[high]:+.0f} deg", to_gray(tilt_series.images[high])),
            bar("tomogram xy", tomogram_xy, tomogram_pixel_size),
            ("tomogram xy (labels)", tomogram_labels),
            ("tomogram xz", to_gray(tomogram[:, min(yc, tomogram.shape[1] - 1)])),
            ("power spectrum, 0 deg image", to_gray(power_spectrum(tilt_series.images[zero]))),
        ]
    legend: list[tuple[str, tuple[int, int, int] | None]] = [
        (name, colours[i]) for i, name in sorted(phantom.class_names.items()) if i > 0
    ]
    if distractors:
        legend.append(("uncoloured particles: distractors (labelled background)", None))
    return compose(panels, columns=2, legend=legend, footer=[settings] if settings else [])


class _Stages:
    """A rich progress bar over named stages (a no-op when disabled)."""

    def __init__(self, names: list[str], *, enabled: bool) -> None:
        self.names = names
        self.enabled = enabled
        self.progress: Progress | None = None
        self.task: TaskID | None = None

    def __enter__(self) -> _Stages:
        if self.enabled:
            self.progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(),
                TextColumn("{task.completed}/{task.total}"),
                TimeElapsedColumn(), transient=False,
            )
            self.progress.start()
            self.task = self.progress.add_task("simulate", total=len(self.names))
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    @contextlib.contextmanager
    def __call__(self, name: str, timings: dict[str, float]) -> Iterator[None]:
        if self.progress is not None and self.task is not None:
            self.progress.update(self.task, description=f"simulate: {name}")
        start = time.perf_counter()
        yield
        timings[name] = time.perf_counter() - start
        if self.progress is not None and self.task is not None:
            self.progress.advance(self.task)
