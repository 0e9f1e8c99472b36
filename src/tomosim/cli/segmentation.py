"""Commands that train and apply networks.

``train``, ``segment``, ``finetune``, ``evaluate`` and ``match``.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tomosim.errors import TomosimError

if TYPE_CHECKING:
    pass
from tomosim.cli.common import (
    MAX_RESAMPLING,
    DeviceOption,
    MaxMemoryOption,
    QuietOption,
    SeedOption,
    SetOption,
    ThreadsOption,
    app,
    class_table_near,
    refuse_existing_model,
    refuse_writing_into_inputs,
    require_torch,
)


@app.command()
def train(
    output: Annotated[Path, typer.Option("-o", "--output", help="Model folder to write.")],
    data: Annotated[
        list[Path] | None,
        typer.Argument(help="Simulation folders with tomogram.mrc, labels.mrc, classes.csv."),
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", help="Training config YAML.")] = None,
    on_the_fly: Annotated[
        Path | None,
        typer.Option(
            "--on-the-fly",
            help="Simulation config (distributions allowed): train on phantoms simulated in the "
            "background instead of DATA folders (settings: on_the_fly section of --config).",
        ),
    ] = None,
    overrides: SetOption = None,
    seed: SeedOption = None,
    resume: Annotated[
        bool,
        typer.Option("--resume", help="Continue from OUTPUT/last.pt (its config, plus --set)."),
    ] = False,
    threads: ThreadsOption = None,
    quiet: QuietOption = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace a model already in OUTPUT.")
    ] = False,
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
    require_torch(threads)
    from tomosim.config import read_config_tree
    from tomosim.labels import merge_class_tables
    from tomosim.train.checkpoint import RESUME_FILE, load_checkpoint
    from tomosim.train.config import load_train_config
    from tomosim.train.data import (
        prepare_training_volume,
        read_simulation_folder,
    )
    from tomosim.train.device import resolve_device
    from tomosim.train.training import train_network, train_on_the_fly

    if bool(data) == (on_the_fly is not None):
        raise TomosimError("give either simulation folders (DATA) or --on-the-fly CONFIG, not both")
    refuse_writing_into_inputs(output, [*(data or []), *([on_the_fly] if on_the_fly else [])])
    if (output / "tomogram.mrc").exists() or (output / "labels.mrc").exists():
        raise TomosimError(f"-o {output} is a simulation folder; give a new folder for the model")
    refuse_existing_model(output, resume=resume, overwrite=overwrite)
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
        for prepared in folders:
            if abs(prepared.voxel_size[2] / pixel_size - 1) > 0.01:
                warnings.warn(
                    f"{prepared.name} has voxel size {prepared.voxel_size[2]:g} Å, the model "
                    f"{pixel_size:g} Å: resampled for training",
                    stacklevel=1,
                )
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
        Path | None,
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
    max_memory_gb: MaxMemoryOption = None,
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
    require_torch(threads)
    import contextlib

    import numpy as np

    from tomosim.formats.volumes import read_volume
    from tomosim.io import require_finite, write_mrc
    from tomosim.labels import write_class_table
    from tomosim.memory import check_memory, segment_bytes
    from tomosim.train.checkpoint import load_checkpoint
    from tomosim.train.device import resolve_device
    from tomosim.train.inference import probability_map_files, segment_tomogram

    resolve_device(device)
    if batch_size < 1 or chunk_slices < 1:
        raise TomosimError("--batch-size and --chunk-slices must be at least 1")
    if probability_dtype not in ("float16", "float32"):
        raise TomosimError(
            f"--probability-dtype must be float16 or float32, got {probability_dtype!r}"
        )
    refuse_writing_into_inputs(output, [tomogram, model])
    if probabilities is not None:
        refuse_writing_into_inputs(probabilities, [tomogram, model], option="--probabilities")
    checkpoint = load_checkpoint(model)
    volume = read_volume(tomogram)
    if volume.data.ndim != 3:
        raise TomosimError(
            f"tomogram must be a 3D volume, got shape {volume.data.shape}: {tomogram}"
        )
    require_finite(volume.data, tomogram)
    scale = max(volume.voxel_size) / checkpoint.pixel_size
    scale_low = min(volume.voxel_size) / checkpoint.pixel_size
    if scale > MAX_RESAMPLING or scale_low < 1 / MAX_RESAMPLING:
        raise TomosimError(
            f"tomogram voxel size {volume.voxel_size[::-1]} Å (x, y, z) is too far from the "
            f"model's {checkpoint.pixel_size:g} Å (resampling by more than {MAX_RESAMPLING:g}x "
            f"gives no useful segmentation; check the header): {tomogram}"
        )
    check_memory(
        segment_bytes(volume.data.shape, scale=scale),
        what=f"segmenting a {volume.data.shape} tomogram resampled by {scale:.3g}",
        max_memory_gb=max_memory_gb,
    )
    maps: contextlib.AbstractContextManager[list[np.ndarray] | None] = contextlib.nullcontext()
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
    histogram = np.bincount(labels.ravel(), minlength=256)
    classes = zip(checkpoint.classes.ids, checkpoint.classes.names, strict=True)
    counts = {name: int(histogram[label_id]) for label_id, name in classes}
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
        Path | None,
        typer.Option("--classes", help="classes.csv naming LABELS' ids (default: the model's)."),
    ] = None,
    phantoms: Annotated[
        list[Path] | None,
        typer.Option("--phantoms", help="Simulation folder mixed into every batch (repeatable)."),
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", help="Training config YAML.")] = None,
    overrides: SetOption = None,
    seed: SeedOption = None,
    threads: ThreadsOption = None,
    quiet: QuietOption = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace a model already in OUTPUT.")
    ] = False,
    device: DeviceOption = "cpu",
) -> None:
    """Fine-tune a model on a partly labelled tomogram (label 255 = not labelled, no loss).

    Uses finetune.learning_rate and finetune.epochs of the config (the model's stored config,
    updated by --config and --set); finetune.phantom_fraction of each batch comes from --phantoms.
    """
    require_torch(threads)
    from tomosim.labels import read_class_table
    from tomosim.train.checkpoint import load_checkpoint
    from tomosim.train.config import load_train_config
    from tomosim.train.data import (
        prepare_training_volume,
        read_labelled_tomogram,
        read_simulation_folder,
    )
    from tomosim.train.device import resolve_device
    from tomosim.train.training import finetune_network

    model_folder = model if model.is_dir() else model.parent
    refuse_writing_into_inputs(
        output, [model_folder, model, tomogram, labels, *(phantoms or [])]
    )
    refuse_existing_model(output, resume=False, overwrite=overwrite)
    resolve_device(device)
    checkpoint = load_checkpoint(model)
    settings = load_train_config(
        config, overrides=list(overrides or []), seed=seed, base=checkpoint.config
    )
    table = read_class_table(classes) if classes is not None else checkpoint.classes
    model_classes, model_pixel = checkpoint.classes, checkpoint.pixel_size
    volumes = [
        prepare_training_volume(
            read_labelled_tomogram(tomogram, labels, table),
            classes=model_classes, pixel_size=model_pixel,
        )
    ]
    phantom_volumes = [
        prepare_training_volume(
            read_simulation_folder(folder), classes=model_classes, pixel_size=model_pixel
        )
        for folder in phantoms or []
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
        Path | None,
        typer.Option("--classes", help="classes.csv (default: beside TRUTH or PREDICTION)."),
    ] = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Metrics JSON.")] = None,
    filaments: Annotated[
        list[str] | None,
        typer.Option(
            "--filament",
            help="Class also scored with clDice (repeatable; default: names like actin, "
            "microtubule).",
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
    from tomosim.labels import label_ids
    from tomosim.train.metrics import is_filament_name, segmentation_scores, summarise_scores

    if output is not None:
        refuse_writing_into_inputs(output, [prediction, truth])
    predicted_volume = read_volume(prediction, require_voxel_size=False)
    true_volume = read_volume(truth, require_voxel_size=False)
    predicted = label_ids(np.asarray(predicted_volume.data), prediction)
    true = label_ids(np.asarray(true_volume.data), truth)
    if predicted.shape != true.shape:
        raise TomosimError(
            f"prediction shape {predicted.shape} differs from truth shape {true.shape}: "
            f"{prediction}"
        )
    sizes = (predicted_volume.voxel_size, true_volume.voxel_size)
    if min(sizes[0]) > 0 and min(sizes[1]) > 0 and not np.allclose(*sizes, rtol=0.01):
        raise TomosimError(
            f"prediction voxel size {sizes[0][::-1]} Å differs from the truth's {sizes[1][::-1]} Å "
            f"(x, y, z): {prediction}"
        )
    table = class_table_near(truth, classes) or class_table_near(prediction, None)
    names = dict(zip(table.ids, table.names, strict=True)) if table is not None else {}
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



# ---- commands: match --------------------------------------------------------------------


@app.command("match")
def match_command(
    tomogram: Annotated[
        Path, typer.Argument(help="A real tomogram (MRC, OME-Zarr, copick run), beam along z.")
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="Config to write (match.yaml).")],
    pixel_size: Annotated[
        float | None,
        typer.Option("--pixel-size", help="Å per voxel (required when the header has none)."),
    ] = None,
    base: Annotated[
        Path | None,
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


