"""The console script skips the collector's shutdown passes; in-process callers keep theirs."""

from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path

import pytest

from tunelab.cli import main


def test_main_in_process_leaves_the_collector_alone(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {epochs: -1}\n")
    frozen = gc.get_freeze_count()
    with pytest.raises(SystemExit) as exited:
        main(["validate", str(bad)])
    assert exited.value.code == 2
    assert gc.get_freeze_count() == frozen


def test_a_quick_exit_still_runs_atexit_finalizers_and_flushes() -> None:
    script = (
        "import atexit, sys, weakref\n"
        "from tunelab._exit import quick_exit_gc\n"
        "class Box: pass\n"
        "box = Box()\n"
        "weakref.finalize(box, print, 'finalizer ran')\n"
        "atexit.register(print, 'atexit ran')\n"
        "sys.stdout.write('unflushed line')\n"
        "quick_exit_gc()\n"
        "sys.exit(3)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 3, done.stderr
    assert done.stdout.startswith("unflushed line")
    assert "atexit ran" in done.stdout and "finalizer ran" in done.stdout


def test_the_module_entry_point_exits_with_the_commands_code(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {epochs: -1}\n")
    done = subprocess.run(
        [sys.executable, "-m", "tunelab.cli", "validate", str(bad)], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "train.epochs" in done.stderr and "Traceback" not in done.stderr
