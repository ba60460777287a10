"""The ``tunelab`` command line: thin commands that call the stages; no logic of its own.

Every :class:`~tunelab.errors.FatalError` (bad config, bad data) becomes one line on stderr and
exit code 2, never a traceback. Each stage's commands live in their own module and attach
themselves to ``app`` on import.
"""

from __future__ import annotations

import sys

from .._exit import quick_exit_gc
from ..errors import FatalError
from . import _compress, _data, _doctor, _report, _train, _tune, _validate  # noqa: F401  (commands register on import)
from ._app import app

__all__ = ["app", "console", "main"]


def main(argv: list[str] | None = None) -> int:
    """Run the command ``argv`` names in this process; raises ``SystemExit`` with its code."""
    try:
        app(args=argv, standalone_mode=True)
    except FatalError as exc:
        message = str(exc)
        print(
            message
            if message.startswith(("config error", "data error", "error"))
            else f"error: {message}",
            file=sys.stderr,
        )
        return _exit(2)
    except SystemExit as exc:
        return _exit(exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1))
    return _exit(0)


def console() -> None:
    """The ``tunelab`` console script and ``python -m tunelab.cli``: :func:`main`, then exit.

    The process ends right after the command, so it skips the cyclic garbage collector's
    passes at interpreter shutdown (``tunelab/_exit.py``): about a second a command.
    """
    try:
        main()
    finally:
        quick_exit_gc()


def _exit(code: int) -> int:
    if __name__ != "__main__":
        raise SystemExit(code)
    return code
