"""``tunelab report RUN_DIR`` writes the page and lists what is missing; bad dirs are one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunelab.cli import main


def _tunelab(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out, err


def test_report_command_writes_report_and_names_missing_sections(training_only_run: Path, capsys):
    code, out, _ = _tunelab(capsys, "report", str(training_only_run))
    assert code == 0
    assert (training_only_run / "report.html").stat().st_size > 1_000_000  # plotly.js inlined
    assert f"report: {training_only_run / 'report.html'}" in out
    assert "missing Hyperparameter search: no study.db" in out


def test_report_command_output_option(training_only_run: Path, tmp_path: Path, capsys):
    target = tmp_path / "elsewhere.html"
    code, _, _ = _tunelab(capsys, "report", str(training_only_run), "--output", str(target))
    assert code == 0
    assert target.read_text().startswith("<!DOCTYPE html>")
    assert not (training_only_run / "report.html").exists()


def test_report_on_a_non_run_directory_is_one_line_exit_2(tmp_path: Path, capsys):
    code, _, err = _tunelab(capsys, "report", str(tmp_path / "nope"))
    assert code == 2
    assert err.strip().count("\n") == 0
    assert "no such run directory" in err
