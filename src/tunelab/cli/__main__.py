"""``python -m tunelab.cli``."""

from . import console

console()
