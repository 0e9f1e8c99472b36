"""Commands for particle coordinates: ``pick``, ``picking-targets``, ``evaluate-picks``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tomosim.errors import TomosimError

if TYPE_CHECKING:
    pass
from tomosim.cli.common import (
    QuietOption,
    ThreadsOption,
    app,
    class_table_near,
    refuse_writing_into_inputs,
    require_torch,
)


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
    min_size_px: Annotated[
        int, typer.Option("--min-size-px", help="Labels: smallest component kept, voxels.")
    ] = 1,
    threshold: Annotated[
        float | None,
        typer.Option("--threshold", help="Model: smallest peak score (default: the model's)."),
    ] = None,
    tomogram_name: Annotated[
        str, typer.Option("--tomogram-name", help="rlnTomoName of the particles.")
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
    from tomosim.io import read_mrc, require_finite
    from tomosim.labels import label_ids, make_class_table
    from tomosim.particles import write_particles_star
    from tomosim.train.picking import is_globular_name, pick_particles

    refuse_writing_into_inputs(output, [source, *([tomogram] if tomogram else [])])
    if source.is_dir() or source.suffix == ".pt":
        if tomogram is None:
            raise TomosimError(f"give the TOMOGRAM to pick with the model {source}")
        if batch_size < 1:
            raise TomosimError(f"--batch-size must be at least 1, got {batch_size}")
        require_torch(threads)
        from tomosim.train.checkpoint import load_checkpoint
        from tomosim.train.picking_network import pick_tomogram

        checkpoint = load_checkpoint(source)
        volume = read_volume(tomogram)
        require_finite(np.asarray(volume.data), tomogram)
        try:
            particles = pick_tomogram(
                checkpoint, volume.data, voxel_size=volume.voxel_size, classes=class_names,
                threshold=threshold, tomogram_name=tomogram_name, batch_size=batch_size,
                progress=not quiet,
            )
        except TomosimError as exc:
            raise TomosimError(f"{exc}: {source}") from None
    else:
        if tomogram is not None:
            raise TomosimError(
                f"{source} is not a model folder or .pt file; a label MRC takes no TOMOGRAM"
            )
        if min_size_px < 1:
            raise TomosimError(f"--min-size-px must be at least 1 voxel, got {min_size_px}")
        volume = read_mrc(source)
        label_data = label_ids(volume.data, source)
        table = class_table_near(source, classes)
        if table is None:
            present = [int(v) for v in np.unique(label_data) if int(v) not in (0, 255)]
            table = make_class_table(present, [f"class_{v}" for v in present])
        if class_names:
            wanted = {table.id_of(name): name for name in class_names}
        else:
            wanted = {
                i: n for i, n in zip(table.ids, table.names, strict=True)
                if i != 0 and is_globular_name(n)
            }
        particles = pick_particles(
            label_data, classes=wanted, voxel_size=volume.voxel_size, min_size_px=min_size_px,
            tomogram_name=tomogram_name,
        )
    write_particles_star(output, particles)
    per_class = particles.groupby("tomosimClassName").size().to_dict() if len(particles) else {}
    typer.echo(f"{output}: {len(particles)} particles {per_class}")



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


