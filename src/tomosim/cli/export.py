"""``tomosim export``: run folders as copick and RELION 5 projects."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tomosim.errors import TomosimError

if TYPE_CHECKING:
    pass
from tomosim.cli.common import (
    app,
)

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
        list[str] | None,
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


