"""``python -m tunelab.cli``."""

from . import main

main()
