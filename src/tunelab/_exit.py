"""How a tunelab process that is about to end skips the garbage collector's shutdown passes.

Python's shutdown runs full cyclic collections while it tears down the modules; with torch,
scikit-learn and Optuna loaded each one walks millions of objects: about 1 s of every
``tunelab`` command's exit on the development machine, against 0.15 s without (BENCHMARKS.md,
"Tuning: parallel workers"), and a worker process's exit is on its parent's critical path.
``gc.freeze`` moves every object into the permanent generation those passes skip. Shutdown
itself still runs: ``atexit`` handlers, ``weakref.finalize`` callbacks, flushing stdout and
stderr, and everything reference counting frees. Only objects kept alive by a reference cycle
are left to the operating system, and Python never promised their ``__del__`` runs at exit.

This module imports only the standard library.
"""

from __future__ import annotations

import gc
import sys

__all__ = ["quick_exit_gc"]


def quick_exit_gc() -> None:
    """Freeze the collector's objects: call it only where the process ends next.

    In-process callers of a command (the tests) must keep a normal collector, so the console
    script and ``python -m`` entry points call this, never the functions they wrap.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    gc.freeze()
