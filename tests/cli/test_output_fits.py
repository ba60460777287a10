"""Output that fits where it goes (issue 16 point 6) and the smaller CLI items."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.table import Table

from tunelab._console import WIDE, make_console
from tunelab.cli import main

REMEDY = "lower the width: model.params.width=16, model.params.depth=1, train.weight_decay=0.001"


def _tunelab(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out, err


def test_console_outside_a_terminal_is_wide_and_never_cuts_a_remedy():
    stream = io.StringIO()
    console = make_console(file=stream)
    assert console.width == WIDE
    table = Table(expand=True, show_lines=True)
    for name, ratio in (("kind", None), ("evidence", 3), ("remedy", 2)):
        table.add_column(name, ratio=ratio, no_wrap=ratio is None)
    table.add_row("overfitting", "val loss rises from epoch 3 while train loss falls " * 2, REMEDY)
    console.print(table)
    text = stream.getvalue()
    assert "…" not in text
    assert "model.params.width=16," in text


def test_train_piped_prints_no_cut_line(tmp_path: Path):
    config = tmp_path / "c.yaml"
    config.write_text(
        f"name: piped\nrun_root: {tmp_path / 'runs'}\n"
        "data: {dataset: digits, max_rows: 300}\nmodel: {builder: mlp, params: {width: 16}}\n"
        "train: {epochs: 1, progress: none}\n"
    )
    env = {**os.environ, "COLUMNS": "80"}
    done = subprocess.run(
        [sys.executable, "-m", "tunelab.cli", "train", str(config)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "…" not in done.stdout
    assert f"run directory: {tmp_path / 'runs' / 'piped'}" in done.stdout


@pytest.mark.parametrize("command", ["train", "compress", "export", "data profile"])
def test_help_shows_no_bool_metavar(capsys, command):
    code, out, _ = _tunelab(capsys, *command.split(), "--help")
    assert code == 0
    assert "<bool>" not in out


def test_serve_a_config_says_pass_a_run_directory(tmp_path, capsys):
    config = tmp_path / "exp.yaml"
    config.write_text("name: x\n")
    code, _, err = _tunelab(capsys, "serve", str(config))
    assert code == 2
    assert err.strip().splitlines() == [
        f"error: {config} is a config; pass a run directory (runs/<name>, written by "
        "`tunelab train` or `tunelab tune`)"
    ]
