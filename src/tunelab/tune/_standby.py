"""Worker processes started ahead of need (stdlib only, so the CLI can call it before torch).

``tunelab tune --workers N`` calls :func:`start_standby` as soon as it has read the config: each
helper runs ``python -m tunelab.tune._worker --standby SPEC``, imports and warms up, and waits
for the parent to write ``SPEC`` (see :mod:`tunelab.tune._worker`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

Standby = tuple[subprocess.Popen, Path]
"""A worker process started with ``--standby SPEC`` and the spec path it waits for."""


def start_standby(folder: Path, count: int, *, first: int = 1) -> list[Standby]:
    """Start ``count`` worker processes (numbered from ``first``) that import everything, then
    wait for their specs."""
    folder.mkdir(parents=True, exist_ok=True)
    started = []
    for index in range(first, first + count):
        spec = folder / f"standby-{os.getpid()}-{index}.json"
        command = [sys.executable, "-m", "tunelab.tune._worker", "--standby", str(spec)]
        started.append((subprocess.Popen(command), spec))
    return started


def release_standby(standby: list[Standby]) -> None:
    """Stop the standby workers that never got a spec (the parent failed or needed fewer).

    They hold no trial and no storage connection yet, so terminating them loses nothing.
    """
    unused = [proc for proc, spec in standby if not spec.exists()]
    for proc in unused:
        if proc.poll() is None:
            proc.terminate()
    for proc in unused:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
