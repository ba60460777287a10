"""``tunelab report RUN_DIR`` writes the page and lists what is missing; bad dirs are one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def _tunelab(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tunelab.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_report_command_writes_report_and_names_missing_sections(training_only_run: Path):
    result = _tunelab("report", str(training_only_run))
    assert result.returncode == 0, result.stderr
    assert (training_only_run / "report.html").stat().st_size > 1_000_000  # plotly.js inlined
    assert f"report: {training_only_run / 'report.html'}" in result.stdout
    assert "missing Hyperparameter search: no study.db" in result.stdout


def test_report_command_output_option(training_only_run: Path, tmp_path: Path):
    target = tmp_path / "elsewhere.html"
    result = _tunelab("report", str(training_only_run), "--output", str(target))
    assert result.returncode == 0, result.stderr
    assert target.read_text().startswith("<!DOCTYPE html>")


def test_report_on_a_non_run_directory_is_one_line_exit_2(tmp_path: Path):
    result = _tunelab("report", str(tmp_path / "nope"))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "no such run directory" in result.stderr
