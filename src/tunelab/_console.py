"""One console factory for every command: output that fits where it goes.

On a terminal, rich lays tables out at the terminal's width. Piped or logged (not a terminal),
rich would assume 80 columns and cut long cells (``model.params.widt…``); there the console is
:data:`WIDE` columns wide instead, so a table keeps its natural width and nothing a user needs
(a remedy, a path) is cut. Long plain lines are never wrapped (``soft_wrap``).

This module imports only :mod:`rich`.
"""

from __future__ import annotations

import os
import sys
from typing import IO, Any

from rich.console import Console

__all__ = ["WIDE", "is_terminal", "make_console", "terminal_width"]

# The width outside a terminal: wider than any table a command prints.
WIDE = 240


def is_terminal(stream: IO[str] | None = None) -> bool:
    stream = stream if stream is not None else sys.stdout
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def terminal_width(stream: IO[str] | None = None) -> int | None:
    """The terminal's width in columns, or None when the output is not a terminal."""
    stream = stream if stream is not None else sys.stdout
    if not is_terminal(stream):
        return None
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return 80


def make_console(*, stderr: bool = False, file: IO[str] | None = None, **kwargs: Any) -> Console:
    """The console a command prints with (stdout, or stderr with ``stderr=True``)."""
    stream = file if file is not None else (sys.stderr if stderr else sys.stdout)
    kwargs.setdefault("soft_wrap", True)
    if not is_terminal(stream):
        kwargs.setdefault("width", WIDE)
    return Console(file=stream, **kwargs)
