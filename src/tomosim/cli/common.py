"""The ``tomosim`` typer app and what its commands share: options, checks and the training extra."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tomosim.errors import TomosimError

if TYPE_CHECKING:
    pass

app = typer.Typer(
    name="tomosim",
    help="Simulated cryo-electron tomograms with perfect labels, and networks trained on them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        metavar="SECTION.KEY=VALUE",
        help="Override a config value (repeatable).",
    ),
]
SeedOption = Annotated[int | None, typer.Option("--seed", help="Random seed (overrides config).")]


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



# ---- commands: train, segment, finetune, evaluate, pick ---------------------------------


ThreadsOption = Annotated[
    int | None,
    typer.Option(
        "--threads",
        help="CPU threads for torch (default: all). Trained weights depend on it: give it to "
        "reproduce a model (recorded in metrics.json).",
    ),
]
QuietOption = Annotated[bool, typer.Option("--quiet", help="No progress bar.")]
DeviceOption = Annotated[
    str,
    typer.Option("--device", help="auto, cpu, cuda or mps (mixed precision on CUDA)."),
]


def require_torch(threads: int | None) -> None:
    """Check that the training extra is installed, set torch's thread count, keep freed memory.

    Network commands allocate and free large activations per batch; glibc is told to reuse freed
    memory rather than unmap and fault it in again (:func:`tomosim.memory.retain_freed_memory`).
    """
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
    from tomosim.memory import retain_freed_memory

    retain_freed_memory()


def class_table_near(path: Path, explicit: Path | None):
    """--classes, else ``<stem>.classes.csv`` or ``classes.csv`` beside a label file, else None."""
    from tomosim.labels import read_class_table

    if explicit is not None:
        return read_class_table(explicit)
    stem = path.name.removesuffix(".gz").rsplit(".", 1)[0]
    for candidate in (path.with_name(f"{stem}.classes.csv"), path.with_name("classes.csv")):
        if candidate.is_file():
            return read_class_table(candidate)
    return None


def _same_path(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and a.samefile(b))
    except OSError:
        return False


def refuse_writing_into_inputs(output: Path, inputs: list[Path], *, option: str = "-o") -> None:
    """Refuse an output that is one of the command's inputs (or a folder holding one)."""
    for path in inputs:
        if _same_path(output, path) or (output.is_dir() and _same_path(output, path.parent)):
            raise TomosimError(f"{option} {output} would overwrite the input {path}")


def refuse_existing_model(output: Path, *, resume: bool, overwrite: bool) -> None:
    """Refuse to train over a model folder unless continuing it or replacing it on purpose."""
    from tomosim.train.checkpoint import MODEL_FILE, RESUME_FILE

    if resume or overwrite:
        return
    for name in (MODEL_FILE, RESUME_FILE):
        if (output / name).exists():
            raise TomosimError(
                f"-o {output} already holds a model ({name}); use a new folder, --resume to "
                "continue it, or --overwrite to replace it"
            )


MAX_RESAMPLING = 8.0
"""segment refuses tomograms whose voxel size is more than this factor from the model's."""


OverwriteOption = Annotated[
    bool, typer.Option("--overwrite", help="Replace an existing non-empty output folder.")
]
MaxMemoryOption = Annotated[
    float | None,
    typer.Option(
        "--max-memory-gb",
        help="Memory limit for the size check, GiB (default: the memory available now).",
    ),
]
