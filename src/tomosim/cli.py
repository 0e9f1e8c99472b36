"""The ``tomosim`` command line: thin commands over the library functions.

Each command loads its inputs, calls one library function and writes files. Bad input raises
:class:`tomosim.errors.TomosimError`, which :func:`main` prints as one line on stderr with exit
code 2 (no traceback). Heavy imports (torch, dask) happen inside the commands, so ``--help`` is
instant.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Annotated, Optional

import click
import typer

from tomosim.errors import TomosimError

app = typer.Typer(
    name="tomosim",
    help="Simulated cryo-electron tomograms with perfect labels, and networks trained on them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

SetOption = Annotated[
    Optional[list[str]],
    typer.Option("--set", help="Override a config value: section.key=value (repeatable)."),
]
SeedOption = Annotated[Optional[int], typer.Option("--seed", help="Random seed (overrides config).")]


def _version_callback(value: bool) -> None:
    if value:
        from tomosim import __version__

        typer.echo(f"tomosim {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True)
    ] = False,
) -> None:
    """tomosim: phantoms, tilt series and tomograms with perfect labels."""


# ---- commands: potential ----------------------------------------------------------------


@app.command()
def potential(
    source: Annotated[
        str, typer.Argument(help="Model or map: file (.pdb/.cif/.ent/.mrc/.map[.gz]) or pdb:/emdb:/afdb:/builtin: id.")
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output MRC file.")],
    pixel_size: Annotated[float, typer.Option("--pixel-size", help="Å per voxel, in (0, 50].")],
    resolution: Annotated[
        Optional[float], typer.Option("--resolution", help="Low-pass to this resolution, Å (B = 4 d²).")
    ] = None,
    b_factor: Annotated[float, typer.Option("--b-factor", help="Global B-factor added, Å².")] = 0.0,
    solvent: Annotated[
        str, typer.Option("--solvent", help="none: vacuum potential; ice: excess over vitreous ice.")
    ] = "none",
    hydrogens: Annotated[
        bool, typer.Option("--hydrogens/--no-hydrogens", help="Add implicit hydrogens.")
    ] = True,
    hydration_shell: Annotated[
        bool, typer.Option("--hydration-shell", help="Add a 3 Å hydration shell (ice only).")
    ] = False,
    assembly: Annotated[
        Optional[str], typer.Option("--assembly", help="Biological assembly id to expand.")
    ] = None,
    chains: Annotated[
        Optional[str], typer.Option("--chains", help="Comma-separated chain ids to keep.")
    ] = None,
    mass_kda: Annotated[
        Optional[float], typer.Option("--mass-kda", help="Map: molecular mass (kDa) to scale to volts.")
    ] = None,
    scale_v: Annotated[
        Optional[float], typer.Option("--scale-v", help="Map: volts per map unit.")
    ] = None,
    threshold: Annotated[
        Optional[float], typer.Option("--threshold", help="Map: values below are not molecule.")
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Neither read nor write the potential cache.")
    ] = False,
) -> None:
    """Compute the electrostatic potential (V) of a structure and write it as MRC.

    The MRC header carries the voxel size and an origin that puts the map on the model's
    coordinates (voxel 0 at centre_a - (shape // 2) * pixel size).
    """
    from pydantic import ValidationError

    from tomosim.config import PotentialConfig, StructureOptions
    from tomosim.io import write_mrc
    from tomosim.cache import load_potential
    from tomosim.potential import MAX_PIXEL_SIZE

    if not (0 < pixel_size <= MAX_PIXEL_SIZE):
        raise TomosimError(f"--pixel-size must be in (0, {MAX_PIXEL_SIZE:g}] Å, got {pixel_size}")
    if mass_kda is not None and scale_v is not None:
        raise TomosimError("give either --mass-kda or --scale-v, not both")
    chain_list = [c.strip() for c in chains.split(",") if c.strip()] if chains else None
    try:
        potential_config = PotentialConfig(
            solvent=solvent,  # type: ignore[arg-type]
            hydrogens=hydrogens,
            b_factor=b_factor,
            resolution=resolution,
            hydration_shell=hydration_shell,
            cache=not no_cache,
        )
        structure_options = StructureOptions(
            assembly=assembly,
            chains=chain_list,
            map_mass_kda=mass_kda,
            map_scale_v=scale_v,
            map_threshold=threshold,
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        raise TomosimError(f"invalid --{field.replace('_', '-')}: {err['msg']}") from None
    result = load_potential(
        source, pixel_size, potential=potential_config, structure=structure_options
    )
    shape = result.data.shape
    origin = tuple(
        c - (n // 2) * result.pixel_size for c, n in zip(result.centre_a, shape[::-1])
    )
    write_mrc(output, result.data, voxel_size=result.pixel_size, origin=origin)  # type: ignore[arg-type]
    typer.echo(
        f"{output}: shape (z, y, x) {shape}, {result.pixel_size:g} Å/voxel, solvent {result.solvent}, "
        f"integral {result.integral:.6g} V·Å³, min {float(result.data.min()):.4g} V, "
        f"max {float(result.data.max()):.4g} V"
    )


# ---- commands: demo ---------------------------------------------------------------------


@app.command()
def demo(
    output: Annotated[Path, typer.Option("-o", "--output", help="Output folder.")] = Path("demo_out"),
    seed: SeedOption = None,
    overrides: SetOption = None,
) -> None:
    """Simulate a small mixed phantom from the built-in coarse models (offline)."""
    from tomosim.pipeline import demo_config, simulate

    config = demo_config(overrides=overrides or [], seed=seed)
    simulate(config, output, progress=True)
    typer.echo(f"demo written to {output}/ (open preview.png, tomogram.mrc, labels.mrc)")


# ---- commands: simulate -----------------------------------------------------------------


@app.command()
def simulate(
    config: Annotated[Path, typer.Argument(help="Simulation config (YAML).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output folder.")],
    seed: SeedOption = None,
    overrides: SetOption = None,
) -> None:
    """Simulate a phantom, its tilt series and tomogram from a YAML config."""
    from tomosim.config import load_config
    from tomosim.pipeline import simulate as run_simulation

    cfg = load_config(config, overrides=overrides or [], seed=seed)
    run_simulation(cfg, output, progress=True)
    from tomosim.filaments import fitted_helix_lines

    for species in cfg.filaments:  # fitted values (also in config.resolved.yaml)
        for line in fitted_helix_lines(species) if species.count else []:
            typer.echo(line)
    typer.echo(f"simulation written to {output}/")


# ---- commands: reconstruct --------------------------------------------------------------


@app.command()
def reconstruct(
    tilt_series: Annotated[Path, typer.Argument(help="Tilt series (MRC stack), pixel size set.")],
    angles: Annotated[Path, typer.Option("--angles", help="Tilt angles (IMOD .tlt).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output tomogram (MRC).")],
    thickness: Annotated[int, typer.Option("--thickness", help="Thickness in unbinned pixels.")],
    tilt_axis_angle: Annotated[
        float, typer.Option("--tilt-axis-angle", help="Tilt axis, degrees anticlockwise from y.")
    ] = 0.0,
    cutoff: Annotated[
        float, typer.Option("--cutoff", help="Low-pass cutoff, cycles/pixel (IMOD RADIAL).")
    ] = 0.35,
    falloff: Annotated[
        float, typer.Option("--falloff", help="Low-pass Gaussian falloff (sigma), cycles/pixel.")
    ] = 0.035,
    sirt_like: Annotated[
        int, typer.Option("--sirt-like", help="SIRT-like filter iterations (0: plain WBP).")
    ] = 0,
    binning: Annotated[int, typer.Option("--binning", help="Average BxB pixels first.")] = 1,
    invert: Annotated[
        bool, typer.Option("--invert", help="Flip the sign (protein bright).")
    ] = False,
    phase_flip: Annotated[
        bool, typer.Option("--phase-flip", help="Phase-flip the images (CTF) first.")
    ] = False,
    defocus_um: Annotated[
        Optional[float], typer.Option("--defocus-um", help="Defocus, µm, positive = underfocus.")
    ] = None,
    voltage_kv: Annotated[float, typer.Option("--voltage-kv", help="Beam energy, kV.")] = 300.0,
    cs_mm: Annotated[float, typer.Option("--cs-mm", help="Spherical aberration, mm.")] = 2.7,
    amplitude_contrast: Annotated[
        float, typer.Option("--amplitude-contrast", help="Amplitude contrast fraction.")
    ] = 0.07,
) -> None:
    """Reconstruct a tomogram from a tilt series by weighted backprojection (IMOD tilt geometry).

    Writes a float32 MRC whose voxel size is the stack's pixel size times the binning.
    """
    import numpy as np

    from tomosim.io import read_mrc, read_tlt, write_mrc
    from tomosim.microscope.ctf import Optics
    from tomosim.reconstruct import PhaseFlipSettings, weighted_backprojection

    tilt_angles = read_tlt(angles)
    stack = read_mrc(tilt_series, require_voxel_size=True)
    if stack.data.ndim != 3:
        raise TomosimError(f"not a tilt series stack (shape {stack.data.shape}): {tilt_series}")
    if tilt_angles.size != stack.data.shape[0]:
        raise TomosimError(
            f"{angles} has {tilt_angles.size} tilt angles but {tilt_series} has "
            f"{stack.data.shape[0]} images"
        )
    outside = tilt_angles[np.abs(tilt_angles) > 90]
    if outside.size:
        raise TomosimError(f"tilt angle {outside[0]:g} is outside [-90, 90] degrees: {angles}")
    if thickness < 1:
        raise TomosimError(f"--thickness must be at least 1 pixel, got {thickness}")
    pixel_size = stack.voxel_size[2]
    settings = None
    if phase_flip:
        if defocus_um is None:
            raise TomosimError("--phase-flip needs --defocus-um")
        if not (voltage_kv > 0 and cs_mm >= 0 and 0 <= amplitude_contrast < 1):
            raise TomosimError(
                "--voltage-kv must be > 0, --cs-mm >= 0 and --amplitude-contrast in [0, 1)"
            )
        settings = PhaseFlipSettings(
            defocus_u=defocus_um * 1e4,
            defocus_v=defocus_um * 1e4,
            optics=Optics(voltage_kv=voltage_kv, cs_mm=cs_mm, amplitude_contrast=amplitude_contrast),
        )
    try:
        volume = weighted_backprojection(
            stack.data,
            tilt_angles,
            thickness_px=thickness,
            tilt_axis_angle=tilt_axis_angle,
            lowpass_cutoff=cutoff,
            lowpass_falloff=falloff,
            sirt_like_iterations=sirt_like,
            binning=binning,
            invert=invert,
            pixel_size=pixel_size,
            phase_flip=settings,
        )
    except TomosimError as exc:
        raise TomosimError(f"{exc}: {tilt_series}") from None
    voxel_size = pixel_size * binning
    write_mrc(output, volume, voxel_size=voxel_size)
    typer.echo(
        f"{output}: tomogram (z, y, x) {volume.shape}, {voxel_size:g} Å/voxel, "
        f"{tilt_angles.size} tilts {tilt_angles.min():g}..{tilt_angles.max():g} degrees"
    )


# ---- commands: train, segment, finetune, evaluate, pick ---------------------------------


ThreadsOption = Annotated[
    Optional[int], typer.Option("--threads", help="CPU threads for torch (default: all).")
]
QuietOption = Annotated[bool, typer.Option("--quiet", help="No progress bar.")]
DeviceOption = Annotated[
    str,
    typer.Option("--device", help="auto, cpu, cuda or mps (mixed precision on CUDA)."),
]


def _require_torch(threads: int | None) -> None:
    """Check that the training extra is installed and set torch's thread count."""
    try:
        import monai  # noqa: F401
        import torch
    except ImportError:
        raise TomosimError(
            "this command needs the training extra: pip install 'tomosim[train]' (torch, monai)"
        ) from None
    if threads is not None:
        if threads < 1:
            raise TomosimError(f"--threads must be at least 1, got {threads}")
        torch.set_num_threads(threads)


def _class_table_near(path: Path, explicit: Path | None):
    """--classes, else ``<stem>.classes.csv`` or ``classes.csv`` beside a label file, else None."""
    from tomosim.labels import read_class_table

    if explicit is not None:
        return read_class_table(explicit)
    stem = path.name.removesuffix(".gz").rsplit(".", 1)[0]
    for candidate in (path.with_name(f"{stem}.classes.csv"), path.with_name("classes.csv")):
        if candidate.is_file():
            return read_class_table(candidate)
    return None


@app.command()
def train(
    data: Annotated[
        Optional[list[Path]],
        typer.Argument(help="Simulation folders with tomogram.mrc, labels.mrc, classes.csv."),
    ] = None,
    output: Annotated[Path, typer.Option("-o", "--output", help="Model folder to write.")] = ...,
    config: Annotated[Optional[Path], typer.Option("--config", help="Training config YAML.")] = None,
    on_the_fly: Annotated[
        Optional[Path],
        typer.Option(
            "--on-the-fly",
            help="Simulation config (distributions allowed): train on phantoms simulated in the "
            "background instead of DATA folders (settings: on_the_fly section of --config).",
        ),
    ] = None,
    overrides: SetOption = None,
    seed: SeedOption = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from OUTPUT/last.pt (its config, plus --set).")
    ] = False,
    threads: ThreadsOption = None,
    quiet: QuietOption = False,
    device: DeviceOption = "cpu",
    task: Annotated[
        str | None,
        typer.Option(
            "--task",
            help="segmentation (labels.mrc) or picking (balls at the particles of "
            "particles.star); overrides the config's task.",
        ),
    ] = None,
) -> None:
    """Train a 2.5D U-Net on simulated tomograms and their labels.

    DATA are simulation folders (tomosim simulate / dataset); or, with --on-the-fly CONFIG,
    phantoms are simulated in background processes while the network trains and nothing is
    stored (phantom_config.yaml keeps the config and seed). Writes OUTPUT/model.pt (for segment),
    last.pt (for --resume), metrics.json, training_curve.png, classes.csv and
    config.resolved.yaml.
    """
    _require_torch(threads)
    from tomosim.config import read_config_tree
    from tomosim.train.config import load_train_config
    from tomosim.train.device import resolve_device
    from tomosim.train.checkpoint import RESUME_FILE, load_checkpoint
    from tomosim.labels import merge_class_tables
    from tomosim.train.data import (
        prepare_training_volume, read_simulation_folder,
    )
    from tomosim.train.training import train_network, train_on_the_fly

    if bool(data) == (on_the_fly is not None):
        raise TomosimError("give either simulation folders (DATA) or --on-the-fly CONFIG, not both")
    resolve_device(device)  # an unavailable device fails before any work
    base = None
    if resume and (output / RESUME_FILE).is_file():  # continue with the stored config
        base = load_checkpoint(output / RESUME_FILE).config
    if task is not None:
        overrides = [*(overrides or []), f"task={task}"]
    settings = load_train_config(config, overrides=list(overrides or []), seed=seed, base=base)
    if settings.task == "picking":
        from tomosim.train.localisation import read_picking_folder

        if on_the_fly is not None:
            raise TomosimError("--task picking trains on simulation folders, not --on-the-fly")
        radii = dict(settings.picking.radii)
        folders = []
        for folder in data or []:  # the first folder with a class fixes its estimated radius
            labelled, used = read_picking_folder(
                folder, radii=radii, target_fraction=settings.picking.target_fraction
            )
            radii = {**used, **radii}
            folders.append(labelled)
        settings = settings.model_copy(
            update={"picking": settings.picking.model_copy(update={"radii": radii})}
        )
    elif on_the_fly is None:
        folders = [read_simulation_folder(folder) for folder in data or []]
    if on_the_fly is not None:
        tree = read_config_tree(on_the_fly)
        result = train_on_the_fly(
            tree, phantom_seed=tree.get("seed", 0), config=settings, output_dir=output,
            device=device,
            resume=resume, progress=not quiet,
        )
        classes, pixel_size = result.checkpoint.classes, result.checkpoint.pixel_size
    else:
        classes = merge_class_tables([folder.classes for folder in folders])
        pixel_size = settings.pixel_size or float(folders[0].voxel_size[2])
        volumes = []
        while folders:  # prepare one at a time, letting go of the raw copies
            volumes.append(
                prepare_training_volume(folders.pop(0), classes=classes, pixel_size=pixel_size)
            )
        result = train_network(
            volumes, classes=classes, pixel_size=pixel_size, config=settings, output_dir=output,
            resume=resume, progress=not quiet, device=device,
        )
    final = result.history[-1] if result.history else {}
    dice = final.get("validation_dice")
    seen = final.get("phantoms_seen")
    typer.echo(
        f"{output}: {result.checkpoint.epoch} epochs, {result.checkpoint.iteration} iterations, "
        f"classes {list(classes.names[1:])}, pixel size {pixel_size:g} Å, "
        f"loss {final.get('loss', float('nan')):.4f}"
        + (f", validation Dice {dice:.3f}" if dice is not None else "")
        + (f", {seen} phantoms simulated on the fly" if seen is not None else "")
    )


@app.command()
def segment(
    model: Annotated[Path, typer.Argument(help="Model file (model.pt) or model folder.")],
    tomogram: Annotated[
        Path, typer.Argument(help="Tomogram: MRC (voxel size set), OME-Zarr or copick run.")
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output label MRC (uint8).")],
    probabilities: Annotated[
        Optional[Path],
        typer.Option("--probabilities", help="Folder for per-class probability MRCs."),
    ] = None,
    probability_dtype: Annotated[
        str, typer.Option("--probability-dtype", help="float16 or float32.")
    ] = "float16",
    batch_size: Annotated[int, typer.Option("--batch-size", help="z-slices per network call.")] = 4,
    chunk_slices: Annotated[
        int, typer.Option("--chunk-slices", help="z-slices held in memory at a time.")
    ] = 32,
    threads: ThreadsOption = None,
    quiet: QuietOption = False,
    match_spectrum: Annotated[
        bool,
        typer.Option(
            "--match-spectrum",
            help="Filter the tomogram to the amplitude spectrum of the model's training data.",
        ),
    ] = False,
    device: DeviceOption = "cpu",
) -> None:
    """Segment a tomogram: uint8 labels on the input grid (voxel size and origin kept).

    The tomogram is resampled to the model's pixel size if needed and the result mapped back.
    Also writes OUTPUT's class table as <stem>.classes.csv beside it. MODEL "default" is the
    pretrained model shipped with tomosim (docs/pretrained_model.md).
    """
    _require_torch(threads)
    import contextlib

    from tomosim.formats.volumes import read_volume
    from tomosim.io import write_mrc
    from tomosim.train.checkpoint import load_checkpoint
    from tomosim.labels import write_class_table
    from tomosim.train.device import resolve_device
    from tomosim.train.inference import probability_map_files, segment_tomogram

    resolve_device(device)
    if batch_size < 1 or chunk_slices < 1:
        raise TomosimError("--batch-size and --chunk-slices must be at least 1")
    if probability_dtype not in ("float16", "float32"):
        raise TomosimError(
            f"--probability-dtype must be float16 or float32, got {probability_dtype!r}"
        )
    checkpoint = load_checkpoint(model)
    volume = read_volume(tomogram)
    if volume.data.ndim != 3:
        raise TomosimError(
            f"tomogram must be a 3D volume, got shape {volume.data.shape}: {tomogram}"
        )
    maps = contextlib.nullcontext(None)
    if probabilities is not None:
        maps = probability_map_files(
            probabilities, checkpoint.classes.names, shape=volume.data.shape,
            dtype=probability_dtype, voxel_size=volume.voxel_size, origin=volume.origin,
        )
    with maps as arrays:
        labels = segment_tomogram(
            checkpoint, volume.data, voxel_size=volume.voxel_size, batch_size=batch_size,
            chunk_slices=chunk_slices, probabilities=arrays, progress=not quiet,
            match_spectrum=match_spectrum, device=device,
        )
    write_mrc(output, labels, voxel_size=volume.voxel_size, origin=volume.origin)
    stem = output.name.rsplit(".", 1)[0]
    write_class_table(output.with_name(f"{stem}.classes.csv"), checkpoint.classes)
    classes = zip(checkpoint.classes.ids, checkpoint.classes.names)
    counts = {name: int((labels == label_id).sum()) for label_id, name in classes}
    typer.echo(f"{output}: shape (z, y, x) {labels.shape}, voxels per class {counts}")


@app.command()
def finetune(
    model: Annotated[Path, typer.Argument(help="Model file (model.pt) or model folder.")],
    tomogram: Annotated[Path, typer.Argument(help="Real tomogram (MRC, OME-Zarr, copick run).")],
    labels: Annotated[
        Path, typer.Argument(help="Its labels, MRC or OME-Zarr (uint8; 255 = not labelled).")
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder for the new model.")],
    classes: Annotated[
        Optional[Path],
        typer.Option("--classes", help="classes.csv naming LABELS' ids (default: the model's)."),
    ] = None,
    phantoms: Annotated[
        Optional[list[Path]],
        typer.Option("--phantoms", help="Simulation folder mixed into every batch (repeatable)."),
    ] = None,
    config: Annotated[Optional[Path], typer.Option("--config", help="Training config YAML.")] = None,
    overrides: SetOption = None,
    seed: SeedOption = None,
    threads: ThreadsOption = None,
    quiet: QuietOption = False,
    device: DeviceOption = "cpu",
) -> None:
    """Fine-tune a model on a partly labelled tomogram (label 255 = not labelled, no loss).

    Uses finetune.learning_rate and finetune.epochs of the config (the model's stored config,
    updated by --config and --set); finetune.phantom_fraction of each batch comes from --phantoms.
    """
    _require_torch(threads)
    from tomosim.train.config import load_train_config
    from tomosim.train.checkpoint import load_checkpoint
    from tomosim.labels import read_class_table
    from tomosim.train.data import (
        prepare_training_volume, read_labelled_tomogram, read_simulation_folder,
    )
    from tomosim.train.device import resolve_device
    from tomosim.train.training import finetune_network

    resolve_device(device)
    checkpoint = load_checkpoint(model)
    settings = load_train_config(
        config, overrides=list(overrides or []), seed=seed, base=checkpoint.config
    )
    table = read_class_table(classes) if classes is not None else checkpoint.classes
    target = {"classes": checkpoint.classes, "pixel_size": checkpoint.pixel_size}
    volumes = [prepare_training_volume(read_labelled_tomogram(tomogram, labels, table), **target)]
    phantom_volumes = [
        prepare_training_volume(read_simulation_folder(folder), **target) for folder in phantoms or []
    ]
    result = finetune_network(
        checkpoint, volumes, config=settings, output_dir=output, phantoms=phantom_volumes,
        progress=not quiet, device=device,
    )
    final = result.history[-1] if result.history else {}
    dice = final.get("validation_dice")
    typer.echo(
        f"{output}: fine-tuned {result.checkpoint.epoch} epochs, "
        f"loss {final.get('loss', float('nan')):.4f}"
        + (f", validation Dice {dice:.3f}" if dice is not None else "")
    )


@app.command()
def evaluate(
    prediction: Annotated[Path, typer.Argument(help="Predicted labels (MRC or OME-Zarr).")],
    truth: Annotated[
        Path, typer.Argument(help="True labels, MRC or OME-Zarr (255 = not labelled, ignored).")
    ],
    classes: Annotated[
        Optional[Path],
        typer.Option("--classes", help="classes.csv (default: beside TRUTH or PREDICTION)."),
    ] = None,
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Metrics JSON.")] = None,
    filaments: Annotated[
        Optional[list[str]],
        typer.Option(
            "--filament",
            help="Class also scored with clDice (repeatable; default: names like actin, microtubule).",
        ),
    ] = None,
) -> None:
    """Per-class Dice, IoU, precision, recall, and clDice for filament classes."""
    import json

    import numpy as np
    from rich.console import Console
    from rich.table import Table

    from tomosim.formats.volumes import read_volume
    from tomosim.io import write_text
    from tomosim.train.metrics import is_filament_name, segmentation_scores, summarise_scores

    predicted = read_volume(prediction, require_voxel_size=False).data
    true = read_volume(truth, require_voxel_size=False).data
    if predicted.shape != true.shape:
        raise TomosimError(
            f"prediction shape {predicted.shape} differs from truth shape {true.shape}: {prediction}"
        )
    table = _class_table_near(truth, classes) or _class_table_near(prediction, None)
    names = dict(zip(table.ids, table.names)) if table is not None else {}
    for label_id in np.union1d(np.unique(predicted), np.unique(true)):
        if int(label_id) not in (0, 255):
            names.setdefault(int(label_id), f"class_{int(label_id)}")
    chosen = list(filaments) if filaments else [n for n in names.values() if is_filament_name(n)]
    unknown = [n for n in chosen if n not in names.values()]
    if unknown:
        raise TomosimError(
            f"--filament {unknown[0]!r} is not a class name (classes {sorted(names.values())})"
        )
    scores = segmentation_scores(predicted, true, classes=names, filaments=chosen)
    summary = summarise_scores(scores)
    grid = Table(title=f"{prediction} vs {truth}")
    keys = ("dice", "iou", "precision", "recall", "cl_dice")
    for column in ("id", "class", "Dice", "IoU", "precision", "recall", "clDice", "true voxels",
                   "predicted voxels"):
        grid.add_column(column, justify="left" if column == "class" else "right", no_wrap=True)

    def show(value: float | None) -> str:
        return "-" if value is None else f"{value:.4f}"

    for s in scores:
        grid.add_row(str(s.id), s.name, *(show(getattr(s, k)) for k in keys),
                     str(s.true_voxels), str(s.predicted_voxels))
    grid.add_row("", "mean", *(show(summary[f"mean_{k}"]) for k in keys), "", "")
    Console(width=None if sys.stdout.isatty() else 140).print(grid)
    if output is not None:
        report = {"prediction": str(prediction), "truth": str(truth), "summary": summary,
                  "classes": [s.as_dict() for s in scores]}
        write_text(output, json.dumps(report, indent=2) + "\n")


@app.command()
def pick(
    source: Annotated[
        Path,
        typer.Argument(
            help="A picking model (model folder or .pt) followed by TOMOGRAM, or a label MRC "
            "(voxel size set) whose connected components are picked."
        ),
    ],
    tomogram: Annotated[
        Path | None, typer.Argument(help="Tomogram MRC to pick (with a model only).")
    ] = None,
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Output particles STAR file.")
    ] = ...,  # type: ignore[assignment]
    classes: Annotated[
        Path | None,
        typer.Option("--classes", help="classes.csv (labels only; default: beside LABELS)."),
    ] = None,
    class_names: Annotated[
        list[str] | None,
        typer.Option(
            "--class",
            help="Class to pick (repeatable; default: the model's classes, or for labels all "
            "but membrane/filament names).",
        ),
    ] = None,
    min_size: Annotated[
        int, typer.Option("--min-size", help="Labels: smallest component kept, voxels.")
    ] = 1,
    threshold: Annotated[
        float | None,
        typer.Option("--threshold", help="Model: smallest peak score (default: the model's)."),
    ] = None,
    tomo_name: Annotated[
        str, typer.Option("--tomo-name", help="rlnTomoName of the particles.")
    ] = "TS_01",
    batch_size: Annotated[
        int, typer.Option("--batch-size", help="Model: z-slices per network call.")
    ] = 4,
    threads: ThreadsOption = None,
    quiet: QuietOption = False,
) -> None:
    """Particles as a RELION 5 style STAR file, from a picking network or from labels.

    With a model: peaks of the network's smoothed class probabilities, at least nms_fraction x
    radius apart (class-dependent), scores in rlnAutopickFigureOfMerit. With a label MRC:
    centroids of connected components. Coordinates: rlnCoordinateX/Y/Z in voxels of the input
    (voxel i centred at i) and rlnCenteredCoordinateX/Y/ZAngst from the centre voxel shape // 2.
    """
    import numpy as np

    from tomosim.formats.volumes import read_volume
    from tomosim.io import read_mrc
    from tomosim.labels import make_class_table
    from tomosim.particles import write_particles_star
    from tomosim.train.picking import is_globular_name, pick_particles

    if source.is_dir() or source.suffix == ".pt":
        if tomogram is None:
            raise TomosimError(f"give the TOMOGRAM to pick with the model {source}")
        if batch_size < 1:
            raise TomosimError(f"--batch-size must be at least 1, got {batch_size}")
        _require_torch(threads)
        from tomosim.train.checkpoint import load_checkpoint
        from tomosim.train.picking_network import pick_tomogram

        checkpoint = load_checkpoint(source)
        volume = read_volume(tomogram)
        try:
            particles = pick_tomogram(
                checkpoint, volume.data, voxel_size=volume.voxel_size, classes=class_names,
                threshold=threshold, tomogram_name=tomo_name, batch_size=batch_size,
                progress=not quiet,
            )
        except TomosimError as exc:
            raise TomosimError(f"{exc}: {source}") from None
    else:
        if tomogram is not None:
            raise TomosimError(
                f"{source} is not a model folder or .pt file; a label MRC takes no TOMOGRAM"
            )
        if min_size < 1:
            raise TomosimError(f"--min-size must be at least 1 voxel, got {min_size}")
        volume = read_mrc(source)
        table = _class_table_near(source, classes)
        if table is None:
            present = [int(v) for v in np.unique(volume.data) if int(v) not in (0, 255)]
            table = make_class_table(present, [f"class_{v}" for v in present])
        if class_names:
            wanted = {table.id_of(name): name for name in class_names}
        else:
            wanted = {
                i: n for i, n in zip(table.ids, table.names, strict=True)
                if i != 0 and is_globular_name(n)
            }
        particles = pick_particles(
            volume.data, classes=wanted, voxel_size=volume.voxel_size, min_size_px=min_size,
            tomogram_name=tomo_name,
        )
    write_particles_star(output, particles)
    per_class = particles.groupby("tomosimClassName").size().to_dict() if len(particles) else {}
    typer.echo(f"{output}: {len(particles)} particles {per_class}")


# ---- commands: dataset ------------------------------------------------------------------


@app.command("dataset")
def dataset_command(
    config: Annotated[Path, typer.Argument(help="Config (YAML); values may be distributions.")],
    count: Annotated[int, typer.Option("-n", "--count", help="Number of phantoms.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Dataset folder.")],
    workers: Annotated[int, typer.Option("--workers", help="Local worker processes.")] = 1,
    scheduler: Annotated[
        Optional[str],
        typer.Option("--scheduler", help="Dask scheduler address (tcp://host:port) or file."),
    ] = None,
    seed: SeedOption = None,
    overrides: SetOption = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace a different dataset in the folder.")
    ] = False,
) -> None:
    """Simulate N randomised phantoms in parallel (resumable: re-run to continue)."""
    import time

    from tomosim.dataset import generate_dataset

    if count < 1:
        raise TomosimError(f"-n must be at least 1, got {count}")
    if workers < 1:
        raise TomosimError(f"--workers must be at least 1, got {workers}")
    start = time.monotonic()
    index = generate_dataset(
        config, count, output, seed=seed, workers=workers, scheduler=scheduler,
        overrides=overrides or [], overwrite=overwrite, progress=True,
    )
    typer.echo(
        f"{index.done} phantoms in {output}/ (index.csv, index.json) "
        f"in {time.monotonic() - start:.1f} s"
    )


# ---- commands: picking-targets ----------------------------------------------------------


@app.command("picking-targets")
def picking_targets(
    folder: Annotated[
        Path, typer.Argument(help="Simulation folder: tomogram.mrc, particles.star, classes.csv.")
    ],
    output: Annotated[
        Path,
        typer.Option("-o", "--output", help="spheres: label MRC; heatmaps: folder of MRCs."),
    ],
    kind: Annotated[str, typer.Option("--kind", help="spheres or heatmaps.")] = "spheres",
    target_fraction: Annotated[
        float,
        typer.Option(
            "--target-fraction",
            help="Ball radius (spheres) or Gaussian sigma (heatmaps) as a fraction of the radius.",
        ),
    ] = 0.5,
    radius: Annotated[
        list[str] | None,
        typer.Option("--radius", help="Particle radius NAME=Å (default: from labels.mrc)."),
    ] = None,
) -> None:
    """Write the localisation targets that --task picking builds on the fly from particles.star.

    spheres: uint8 labels, a ball of TARGET_FRACTION x radius per particle, with
    <stem>.classes.csv; heatmaps: OUTPUT/<class>.mrc, float32 unit-peak Gaussians of standard
    deviation TARGET_FRACTION x radius. Radii not given are estimated from labels.mrc.
    """
    from tomosim.io import write_mrc
    from tomosim.labels import write_class_table
    from tomosim.train.localisation import read_heatmap_targets, read_picking_folder
    from tomosim.train.picking_metrics import parse_name_values

    if kind not in ("spheres", "heatmaps"):
        raise TomosimError(f"--kind must be spheres or heatmaps, got {kind!r}")
    if not 0 < target_fraction <= 5:
        raise TomosimError(f"--target-fraction must be in (0, 5], got {target_fraction}")
    radii = parse_name_values(radius or [], option="--radius")
    if kind == "spheres":
        data, used = read_picking_folder(folder, radii=radii, target_fraction=target_fraction)
        write_mrc(output, data.labels, voxel_size=data.voxel_size)
        stem = output.name.rsplit(".", 1)[0]
        write_class_table(output.with_name(f"{stem}.classes.csv"), data.classes)
    else:
        heatmaps, classes, used, voxel_size = read_heatmap_targets(
            folder, radii=radii, sigma_fraction=target_fraction
        )
        output.mkdir(parents=True, exist_ok=True)
        for name, heatmap in zip(classes.names[1:], heatmaps, strict=True):
            write_mrc(output / f"{name}.mrc", heatmap, voxel_size=voxel_size)
    shown = ", ".join(f"{n} {r:.0f} Å" for n, r in used.items())
    typer.echo(f"{output}: {kind} for {len(used)} classes (radii {shown})")


# ---- commands: match --------------------------------------------------------------------


@app.command("match")
def match_command(
    tomogram: Annotated[
        Path, typer.Argument(help="A real tomogram (MRC, OME-Zarr, copick run), beam along z.")
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="Config to write (match.yaml).")],
    pixel_size: Annotated[
        Optional[float],
        typer.Option("--pixel-size", help="Å per voxel (required when the header has none)."),
    ] = None,
    base: Annotated[
        Optional[Path],
        typer.Option("--base", help="Config the measurements are merged into (default: demo)."),
    ] = None,
    seed: SeedOption = None,
    no_picture: Annotated[
        bool, typer.Option("--no-picture", help="Skip the phantom and the comparison PNG.")
    ] = False,
) -> None:
    """Measure a tomogram and write a simulation config that resembles it.

    Measures pixel size, sample thickness, contrast polarity, background noise and spectrum, and
    the apparent tilt range; writes OUTPUT (a config with distributions centred on them),
    OUTPUT.json (all numbers) and OUTPUT.png (slices and spectra beside a phantom simulated from
    the config).
    """
    from tomosim.config import read_config_tree
    from tomosim.match import match_tomogram_file

    if pixel_size is not None and not 0 < pixel_size <= 100:
        raise TomosimError(f"--pixel-size must be in (0, 100] Å, got {pixel_size}")
    tree = read_config_tree(base) if base is not None else None
    measured = match_tomogram_file(
        tomogram, output, pixel_size=pixel_size, base=tree, seed=seed or 0,
        picture=not no_picture,
    )
    low, high = measured.tilt_range
    typer.echo(
        f"{output}: pixel size {measured.pixel_size:g} Å, thickness {measured.thickness:.0f} Å, "
        f"protein {measured.polarity}, tilt range {low:.1f}..{high:.1f} degrees, "
        f"background noise s.d. {measured.noise_sd:.4g}"
    )


# ---- commands: evaluate-picks -----------------------------------------------------------


@app.command("evaluate-picks")
def evaluate_picks(
    truth: Annotated[Path, typer.Argument(help="True particles STAR (e.g. particles.star).")],
    prediction: Annotated[Path, typer.Argument(help="Predicted particles STAR (tomosim pick).")],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Scores JSON.")] = None,
    radius: Annotated[
        list[str] | None,
        typer.Option(
            "--radius",
            help="Particle radius NAME=Å (repeatable; the CZII class names have the challenge's).",
        ),
    ] = None,
    weight: Annotated[
        list[str] | None,
        typer.Option(
            "--weight",
            help="Class weight NAME=W in the weighted F-beta (repeatable; default 1, or the "
            "challenge's with --czii-weights).",
        ),
    ] = None,
    czii_weights: Annotated[
        bool, typer.Option("--czii-weights", help="Start from the CZII challenge's class weights.")
    ] = False,
    beta: Annotated[
        float, typer.Option("--beta", help="F-beta's beta (recall weighs beta²).")
    ] = 4.0,
    distance_fraction: Annotated[
        float,
        typer.Option("--distance-fraction", help="Match within this fraction of the radius."),
    ] = 0.5,
    matching: Annotated[
        str, typer.Option("--matching", help="hungarian (one-to-one) or czii (challenge counting).")
    ] = "hungarian",
    pixel_size: Annotated[
        float | None,
        typer.Option("--pixel-size", help="Å/pixel if the files have only rlnCoordinateX/Y/Z."),
    ] = None,
) -> None:
    """Score picked particles against the truth: per-class precision, recall and F-beta.

    A pick is a true positive within DISTANCE_FRACTION x radius (inclusive) of an unmatched true
    particle of its class in its tomogram (rlnTomoName); counts are summed over tomograms.
    Distractors (class 0) and filament subunits in either file are not scored.
    """
    import json

    from rich.console import Console
    from rich.table import Table

    from tomosim.io import write_text
    from tomosim.train.picking_metrics import (
        CZII_WEIGHTS,
        evaluate_pick_files,
        parse_name_values,
    )

    if matching not in ("hungarian", "czii"):
        raise TomosimError(f"--matching must be hungarian or czii, got {matching!r}")
    weights = dict(CZII_WEIGHTS) if czii_weights else {}
    weights.update(parse_name_values(weight or [], option="--weight"))
    result = evaluate_pick_files(
        truth, prediction, radii=parse_name_values(radius or [], option="--radius"),
        distance_fraction=distance_fraction, beta=beta, weights=weights,
        matching=matching,  # type: ignore[arg-type]
        pixel_size=pixel_size,
    )
    title = f"{prediction} vs {truth} (F{beta:g}, within {distance_fraction:g} x radius)"
    grid = Table(title=title)
    for column in ("class", "radius Å", "weight", "true", "picked", "TP", "FP", "FN",
                   "precision", "recall", f"F{beta:g}"):
        grid.add_column(column, justify="left" if column == "class" else "right", no_wrap=True)

    def show(value: float | None) -> str:
        return "-" if value is None else f"{value:.4f}"

    for c in result.classes:
        grid.add_row(c.name, f"{c.radius:g}", f"{c.weight:g}", str(c.true_particles),
                     str(c.predicted_particles), str(c.true_positives), str(c.false_positives),
                     str(c.false_negatives), show(c.precision), show(c.recall), show(c.fbeta))
    grid.add_row("weighted", "", "", "", "", "", "", "", "", "", show(result.weighted_fbeta))
    Console(width=None if sys.stdout.isatty() else 160).print(grid)
    if output is not None:
        report = {"truth": str(truth), "prediction": str(prediction), **result.as_dict()}
        write_text(output, json.dumps(report, indent=2) + "\n")


# ---- commands: export (copick, RELION 5) -------------------------------------------------

export_app = typer.Typer(
    help="Export run folders to other tools' formats: copick projects, RELION 5 projects.",
    no_args_is_help=True,
)
app.add_typer(export_app, name="export")

RunsArgument = Annotated[
    list[Path],
    typer.Argument(help="Run folders of tomosim simulate, or dataset folders (their phantoms)."),
]


def _expand_run_folders(paths: list[Path]) -> list[Path]:
    """Run folders; a dataset folder (index.json) stands for its complete phantom folders."""
    out: list[Path] = []
    for path in paths:
        if (path / "index.json").is_file() and not (path / "config.resolved.yaml").exists():
            phantoms = sorted(
                p for p in path.glob("phantom_*") if (p / "config.resolved.yaml").is_file()
            )
            if not phantoms:
                raise TomosimError(f"dataset folder has no complete phantom folders: {path}")
            out.extend(phantoms)
        else:
            out.append(path)
    return out


@export_app.command("copick")
def export_copick_command(
    runs: RunsArgument,
    output: Annotated[Path, typer.Option("-o", "--output", help="copick project folder.")],
    names: Annotated[
        Optional[list[str]],
        typer.Option("--name", help="Run name, one per run folder (default: tomogram names)."),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace runs the project already holds.")
    ] = False,
) -> None:
    """Write run folders as runs of a copick project (tomogram, labels, picks per class)."""
    from tomosim.formats.copick import export_copick
    from tomosim.formats.run_folder import read_run_folder

    folders = [read_run_folder(path) for path in _expand_run_folders(runs)]
    result = export_copick(folders, output, names=names, overwrite=overwrite)
    typer.echo(f"{result.config}: runs {', '.join(result.runs)}")


@export_app.command("relion")
def export_relion_command(
    runs: RunsArgument,
    output: Annotated[Path, typer.Option("-o", "--output", help="RELION 5 project folder.")],
) -> None:
    """Write tomograms.star, tilt-series STAR files, particles.star and optimisation_set.star."""
    from tomosim.formats.relion import write_relion_project
    from tomosim.formats.run_folder import read_run_folder

    folders = [read_run_folder(path) for path in _expand_run_folders(runs)]
    project = write_relion_project(folders, output)
    typer.echo(
        f"{project.optimisation_set}: {len(project.tilt_series)} tilt series, "
        f"particles in {project.particles.name}"
    )


# ---- entry point ------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; bad input -> one line on stderr, exit code 2.

    Returns the exit code (also raised as ``SystemExit`` when run as a script).
    """
    args = sys.argv[1:] if argv is None else list(argv)
    warnings.showwarning = _show_warning
    try:
        result = app(args=args, prog_name="tomosim", standalone_mode=False)
    except TomosimError as exc:
        typer.echo(f"tomosim: error: {exc}", err=True)
        return _exit(2, argv)
    except click.exceptions.ClickException as exc:
        exc.show()
        return _exit(exc.exit_code, argv)
    except click.exceptions.Exit as exc:
        return _exit(exc.exit_code, argv)
    except click.exceptions.Abort:
        typer.echo("tomosim: aborted", err=True)
        return _exit(130, argv)
    except KeyboardInterrupt:
        typer.echo("tomosim: interrupted", err=True)
        return _exit(130, argv)
    code = result if isinstance(result, int) else 0
    return _exit(code, argv)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    """Warnings (e.g. a placement target not reached) as one plain line on stderr."""
    typer.echo(f"tomosim: warning: {message}", err=True)


def _exit(code: int, argv: list[str] | None) -> int:
    if argv is None:  # console script
        sys.exit(code)
    return code


if __name__ == "__main__":  # pragma: no cover
    main()
