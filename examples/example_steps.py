"""Helpers shared by the example experiment scripts (``examples/*/run.py``).

Each script is a chain of ``tomosim`` commands; these run one command as a logged step, list the
phantom folders of a ``tomosim dataset`` output and format scores for the generated pages.
Scripts import this module after putting ``examples/`` on ``sys.path``.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
from pathlib import Path


def tomosim_command() -> list[str]:
    """This Python running the CLI module (the checkout's code when PYTHONPATH points at it)."""
    return [sys.executable, "-m", "tomosim.cli"]


def run_step(name: str, args: list[str], logs: Path) -> float:
    """Run ``tomosim ARGS``, stdout and stderr to ``logs/NAME.log``; return the wall seconds.

    A line naming the step goes to stdout; a failing step ends the script with the last lines
    of its log.
    """
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{name}.log"
    shown = shlex.join(args)
    if len(shown) > 400:
        shown = shown[:200] + " ... " + shown[-150:]
    print(f"[{time.strftime('%H:%M:%S')}] {name}: tomosim {shown}", flush=True)
    start = time.monotonic()
    with open(log, "w") as handle:
        handle.write(f"$ tomosim {shlex.join(args)}\n")
        handle.flush()
        code = subprocess.call(tomosim_command() + args, stdout=handle, stderr=subprocess.STDOUT)
    seconds = time.monotonic() - start
    if code != 0:
        tail = log.read_text().splitlines()[-15:]
        sys.exit(f"step {name} failed (exit {code}); last lines of {log}:\n" + "\n".join(tail))
    return seconds


def phantom_folders(dataset: Path, marker: str = "tomogram.mrc") -> list[Path]:
    """Finished phantom folders of a ``tomosim dataset`` output (holding ``marker``), in order."""
    return sorted(p for p in dataset.glob("phantom_*") if (p / marker).is_file())


def fmt(value: float | None, sd: float | None = None, digits: int = 2, missing: str = "-") -> str:
    """A score as ``mean ± sd`` (or ``mean``), ``missing`` when there is none."""
    if value is None:
        return missing
    return f"{value:.{digits}f}" + (f" ± {sd:.{digits}f}" if sd is not None else "")
