"""``tunelab train CONFIG``: the training directory, the printed summary, --find-lr, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunelab.cli import main


def _tunelab(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out, err


def _config(tmp_path: Path, train: str = "") -> Path:
    path = tmp_path / "digits.yaml"
    path.write_text(
        f"name: cli_digits\nrun_root: {tmp_path / 'runs'}\n"
        "data:\n  dataset: digits\n  max_rows: 500\n"
        "model:\n  builder: mlp\n  params: {width: 32}\n"
        "train:\n  epochs: 5\n  lr: 0.003\n  progress: plain\n" + train
    )
    return path


def test_train_writes_the_run_and_prints_metrics_and_report(tmp_path, capsys):
    code, out, err = _tunelab(capsys, "train", str(_config(tmp_path)), "--epochs", "2")
    assert code == 0, err
    run = tmp_path / "runs" / "cli_digits"
    assert json.loads((run / "result.json").read_text())["epochs_run"] == 2
    assert (run / "best" / "model.json").is_file()
    assert "epoch 2/2" in out
    assert "val_accuracy" in out and "test" in out
    assert "classification report (test):" in out and "macro avg" in out
    assert f"run directory: {run}" in out


def test_train_resume_continues_from_the_checkpoint(tmp_path, capsys):
    config = _config(tmp_path, "  checkpoint_interval_s: 0\n")
    _tunelab(capsys, "train", str(config), "--epochs", "2")
    code, out, _ = _tunelab(capsys, "train", str(config), "--resume", "--epochs", "3")
    assert code == 0
    assert "epoch 1/3" not in out and "epoch 3/3" in out
    lines = (tmp_path / "runs" / "cli_digits" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]


def test_find_lr_prints_suggestion_plots_and_writes_it(tmp_path, capsys):
    config = _config(tmp_path)
    code, out, err = _tunelab(capsys, "train", str(config), "--find-lr", "--write")
    assert code == 0, err
    assert "suggested lr:" in out
    assert (tmp_path / "runs" / "cli_digits" / "lr_find.png").is_file()
    suggested = out.split("suggested lr:")[1].split()[0]
    assert f"  lr: {suggested}\n" in config.read_text()
    assert not (tmp_path / "runs" / "cli_digits" / "metrics.jsonl").exists()  # nothing trained


def test_a_bad_monitor_is_one_line_with_exit_2(tmp_path, capsys):
    config = _config(tmp_path, "  monitor: val_acc\n")
    code, _, err = _tunelab(capsys, "train", str(config))
    assert code == 2
    assert err.count("\n") == 1 and "val_accuracy" in err and "train.monitor" in err


def test_a_config_with_search_spaces_points_to_tune(tmp_path, capsys):
    config = _config(tmp_path, "  batch_size: {choice: [32, 64]}\n")
    code, _, err = _tunelab(capsys, "train", str(config))
    assert code == 2 and "tunelab tune" in err


def test_the_doctor_rides_along_when_diagnose_is_enabled(tmp_path, capsys):
    config = _config(tmp_path)
    config.write_text(config.read_text() + "diagnose:\n  enabled: true\n")
    code, _, err = _tunelab(capsys, "train", str(config), "--epochs", "1")
    assert code == 0, err
    assert (tmp_path / "runs" / "cli_digits" / "findings.json").is_file()


def test_a_diverging_run_prints_the_reason_and_exits_1(tmp_path, capsys):
    config = _config(tmp_path, "  optimizer: sgd\n  momentum: 0.0\n")
    text = config.read_text().replace("lr: 0.003", "lr: 1.0e+30")
    config.write_text(text)
    code, out, _ = _tunelab(capsys, "train", str(config), "--epochs", "3")
    assert code == 1
    assert "nan: train loss became nan in epoch 1" in out
    result = json.loads((tmp_path / "runs" / "cli_digits" / "result.json").read_text())
    assert result["status"] == "nan" and result["test_metrics"] == {}
