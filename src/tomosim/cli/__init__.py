"""The ``tomosim`` command line: thin commands over the library functions.

Each command loads its inputs, calls one library function and writes files. Bad input raises
:class:`tomosim.errors.TomosimError`, which :func:`main` prints as one line on stderr with exit
code 2 (no traceback). Heavy imports (torch, dask) happen inside the commands, so ``--help`` is
instant.
"""

# the commands register on ``app`` when their modules load; this order is the order of --help
# isort: off
from tomosim.cli import simulation, segmentation, picking, export
# isort: on
from tomosim.cli.common import app
from tomosim.cli.entry import main

__all__ = ["app", "main", "export", "picking", "segmentation", "simulation"]
