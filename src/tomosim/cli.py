"""The ``tomosim`` command line: thin commands over the library functions.

Each command loads its inputs, calls one library function and writes files. Bad input raises
:class:`tomosim.errors.TomosimError`, which :func:`main` prints as one line on stderr with exit
code 2 (no traceback). Heavy imports (torch, dask) happen inside the commands, so ``--help`` is
instant.
"""

from __future__ import annotations

import sys
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


# ---- commands: demo ---------------------------------------------------------------------


# ---- commands: simulate -----------------------------------------------------------------


# ---- commands: reconstruct --------------------------------------------------------------


# ---- commands: train, segment, finetune, evaluate, pick ---------------------------------


# ---- commands: dataset ------------------------------------------------------------------


# ---- entry point ------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; bad input -> one line on stderr, exit code 2.

    Returns the exit code (also raised as ``SystemExit`` when run as a script).
    """
    args = sys.argv[1:] if argv is None else list(argv)
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


def _exit(code: int, argv: list[str] | None) -> int:
    if argv is None:  # console script
        sys.exit(code)
    return code


if __name__ == "__main__":  # pragma: no cover
    main()
