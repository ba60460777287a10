"""``tunelab data profile CONFIG``: prints the profile; bad data is one line and exit code 2."""

from __future__ import annotations

import json

import pytest

from tunelab.cli import main


def _run(argv, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(argv)
    out, err = capsys.readouterr()
    return info.value.code, out, err


def test_profile_prints_the_tables(tmp_path, capsys):
    cfg = tmp_path / "exp.yaml"
    cfg.write_text("seed: 3\ndata:\n  source: sklearn\n  dataset: iris\n")
    code, out, err = _run(["data", "profile", str(cfg)], capsys)
    assert code == 0, err
    assert "Data: iris" in out and "Class balance" in out and "setosa" in out


def test_profile_json_and_save(tmp_path, capsys):
    cfg = tmp_path / "exp.yaml"
    cfg.write_text("data:\n  dataset: wine\n  split: {val: 0.2, test: 0.2}\n")
    saved = tmp_path / "profile.json"
    code, out, _ = _run(["data", "profile", str(cfg), "--json", "--save", str(saved)], capsys)
    assert code == 0
    printed = json.loads(out)
    assert printed["rows"] == json.loads(saved.read_text())["rows"]
    assert sum(printed["rows"].values()) == 178


def test_bad_data_is_one_line_on_stderr_and_exit_code_2(tmp_path, capsys):
    csv = tmp_path / "empty.csv"
    csv.write_text("")
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(f"data:\n  source: csv\n  path: {csv}\n")
    code, out, err = _run(["data", "profile", str(cfg)], capsys)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("data error: ") and "empty.csv" in err


def test_missing_label_column_lists_the_columns_on_one_line(tmp_path, capsys):
    csv = tmp_path / "d.csv"
    csv.write_text("a,b\n1,2\n3,4\n")
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(f"data:\n  source: csv\n  path: {csv}\n")
    code, _, err = _run(["data", "profile", str(cfg)], capsys)
    assert code == 2
    assert err.count("\n") == 1
    assert "no label column" in err and "a, b" in err and "Traceback" not in err


def test_bad_config_is_a_config_error_with_exit_code_2(tmp_path, capsys):
    cfg = tmp_path / "exp.yaml"
    cfg.write_text("data:\n  scale: zscore\n")
    code, _, err = _run(["data", "profile", str(cfg)], capsys)
    assert code == 2 and err.startswith("config error: data.scale")
