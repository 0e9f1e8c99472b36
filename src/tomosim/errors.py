"""The one exception type that means "the user's input is wrong".

Every function that rejects bad input (a missing file, a corrupt model, a pixel size of -1 Å)
raises :class:`TomosimError` with a one-line message that names the problem and the input.
The command line turns it into ``tomosim: error: <message>`` on stderr and exit code 2, with no
traceback. Anything else that escapes is a bug in tomosim and keeps its traceback.
"""

from __future__ import annotations


class TomosimError(ValueError):
    """Bad input: a one-line message naming the problem and the offending input."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))
