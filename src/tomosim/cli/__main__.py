"""``python -m tomosim.cli``."""

from tomosim.cli.entry import main

main()
