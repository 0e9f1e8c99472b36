"""The entry point: one error path for every command (:func:`main`)."""

from __future__ import annotations

import sys
import warnings
from typing import TYPE_CHECKING

import typer

from tomosim.errors import TomosimError

if TYPE_CHECKING:
    pass
from tomosim.cli.common import (
    app,
)

# ---- entry point ------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Run the CLI with one error path for every command.

    Usage errors (unknown command or option, a value of the wrong type, a missing argument),
    :class:`TomosimError` (bad input), ``OSError`` (unwritable or full disk, a name too long ...)
    and ``MemoryError`` end in one line ``tomosim: error: ...`` on stderr naming the input and the
    problem, exit code 2; usage errors print the usage line first. Ctrl-C prints
    ``tomosim: interrupted`` and exits 130. Temporary files are removed on the way out.

    Returns the exit code (also raised as ``SystemExit`` when run as a script).
    """
    args = sys.argv[1:] if argv is None else list(argv)
    with warnings.catch_warnings():
        # every warning of the run as one line on stderr (not an error, whatever the caller's
        # filters say), library deprecations left out
        warnings.simplefilter("default")
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        warnings.showwarning = _show_warning
        return _run(args, argv)


def _run(args: list[str], argv: list[str] | None) -> int:
    """Run the typer app on ``args``; every failure ends in one line and an exit code."""
    try:
        result = app(args=args, prog_name="tomosim", standalone_mode=False)
    except typer.Exit as exc:
        if _interrupt_in_chain(exc):  # typer turns Ctrl-C into Exit(130)
            return _exit(_interrupted(), argv)
        return _exit(exc.exit_code, argv)
    except typer.TyperException as exc:  # typer's (bundled click's) usage errors
        return _exit(_usage_error(exc), argv)
    except TomosimError as exc:
        return _exit(_error(str(exc)), argv)
    except MemoryError as exc:
        detail = f": {exc}" if str(exc) else ""
        return _exit(_error(f"out of memory{detail} (try a smaller volume or more memory)"), argv)
    except OSError as exc:
        return _exit(_error(_os_error_message(exc)), argv)
    except (KeyboardInterrupt, typer.Abort):
        return _exit(_interrupted(), argv)
    except Exception as exc:
        if _interrupt_in_chain(exc):  # Ctrl-C inside compiled code re-raised as SystemError
            return _exit(_interrupted(), argv)
        raise
    code = result if isinstance(result, int) else 0
    if code == 130:  # typer turns Ctrl-C into exit code 130 without a word
        return _exit(_interrupted(), argv)
    return _exit(code, argv)


def _error(message: str) -> int:
    """Print one error line on stderr; return the exit code 2."""
    typer.echo(f"tomosim: error: {message}", err=True)
    return 2


def _usage_error(exc: typer.TyperException) -> int:
    """Print a usage error: the usage line (if known), then one error line; return 2."""
    ctx = getattr(exc, "ctx", None)
    if type(exc).__name__ == "NoArgsIsHelpError":  # the help text is already printed
        return _error("missing command or arguments (see the help above)")
    if ctx is not None:
        typer.echo(ctx.get_usage(), err=True)
    message = exc.format_message().replace("\n", " ")
    return _error(message)


def _os_error_message(exc: OSError) -> str:
    """``OSError`` as '<problem>: <path>' (both file names for a failed rename)."""
    problem = exc.strerror or str(exc) or type(exc).__name__
    names = [str(n) for n in (exc.filename, exc.filename2) if n is not None]
    return f"{problem}: {' -> '.join(names)}" if names else problem


def _interrupt_in_chain(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(20):
        if seen is None:
            return False
        if isinstance(seen, KeyboardInterrupt):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _interrupted() -> int:
    typer.echo("tomosim: interrupted", err=True)
    return 130


def _show_warning(  # noqa: D417
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: object = None,
    line: str | None = None,
) -> None:
    """Warnings (e.g. a placement target not reached) as one plain line on stderr."""
    typer.echo(f"tomosim: warning: {message}", err=True)


def _exit(code: int, argv: list[str] | None) -> int:
    if argv is None:  # console script
        sys.exit(code)
    return code


if __name__ == "__main__":  # pragma: no cover
    main()
