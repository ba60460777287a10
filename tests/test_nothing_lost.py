"""Nothing a user made is lost (issue 16, point 1).

For ``train``, ``tune``, ``doctor`` and ``compress``: a command that fails at its start leaves
every file of the previous run as it was (a hash of every file, before and after), and a
successful rerun keeps the previous run findable under ``versions/<N>/``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

from tunelab.cli import main
from tunelab.rundir import RunDir


def _tunelab(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out, err


def _hashes(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _config(tmp_path: Path, name: str = "keep", **sections: dict) -> Path:
    data: dict = {
        "name": name,
        "run_root": str(tmp_path / "runs"),
        "data": {"dataset": "digits", "max_rows": 300},
        "model": {"builder": "mlp", "params": {"width": 16}},
        "train": {"epochs": 1, "progress": "none", "deterministic": False},
    }
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def trained(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> RunDir:
    code, _, err = _tunelab(capsys, "train", str(_config(tmp_path)))
    assert code == 0, err
    return RunDir(tmp_path / "runs" / "keep")


def test_train_that_fails_at_start_leaves_the_previous_run(tmp_path, capsys, trained):
    before = _hashes(trained.path)
    bad = _config(tmp_path, train={"monitor": "val_f1"})
    code, _, err = _tunelab(capsys, "train", str(bad))
    assert code == 2 and "val_f1" in err
    assert _hashes(trained.path) == before
    assert not list((tmp_path / "runs").glob(".*"))  # no staging folder left behind


def test_train_rerun_keeps_the_previous_run_as_a_version(tmp_path, capsys, trained):
    before = _hashes(trained.path)
    code, out, err = _tunelab(capsys, "train", str(_config(tmp_path)))
    assert code == 0, err
    kept = trained.versions_dir / "1"
    assert f"previous run kept as {kept}" in out
    assert _hashes(kept) == before
    assert (trained.best_model / "model.json").is_file()
    code, out, _ = _tunelab(capsys, "train", str(_config(tmp_path)))
    assert code == 0 and f"previous run kept as {trained.versions_dir / '2'}" in out
    assert _hashes(kept) == before and sorted(trained.versions()) == [1, 2]


def test_train_resume_continues_in_place(tmp_path, capsys, trained):
    code, out, err = _tunelab(capsys, "train", str(_config(tmp_path)), "--resume", "--epochs", "2")
    assert code == 0, err
    assert "previous run kept" not in out and not trained.versions()


def test_tune_that_fails_at_start_leaves_the_previous_run(tmp_path, capsys, trained):
    before = _hashes(trained.path)
    bad = _config(tmp_path, train={"lr": {"low": 1e-3, "high": 0.1}}, tune={"metric": "val_f1"})
    code, _, err = _tunelab(capsys, "tune", str(bad), "--trials", "1", "--progress", "none")
    assert code == 2 and "val_f1" in err
    assert _hashes(trained.path) == before


def test_tune_over_a_training_run_keeps_it_as_a_version(tmp_path, capsys, trained):
    before = _hashes(trained.path)
    cfg = _config(tmp_path, train={"lr": {"low": 1e-3, "high": 0.1}})
    code, out, err = _tunelab(capsys, "tune", str(cfg), "--trials", "1", "--progress", "none")
    assert code == 0, err
    kept = trained.versions_dir / "1"
    assert f"previous run kept as {kept}" in out
    assert _hashes(kept) == before
    # Running it again continues the same study in place: no new version.
    code, out, err = _tunelab(capsys, "tune", str(cfg), "--trials", "2", "--progress", "none")
    assert code == 0, err
    assert sorted(trained.versions()) == [1] and "1 run by this command" in out


def test_doctor_that_fails_at_start_leaves_the_previous_doctor_run(tmp_path, capsys, trained):
    code, _, err = _tunelab(capsys, "doctor", str(_config(tmp_path)), "--epochs", "1")
    assert code == 0, err
    before = _hashes(trained.path)
    bad = _config(tmp_path, train={"monitor": "val_f1"})
    code, _, err = _tunelab(capsys, "doctor", str(bad), "--epochs", "1")
    assert code == 2 and "val_f1" in err
    assert _hashes(trained.path) == before
    # A successful rerun keeps the previous doctor run under doctor/versions/1.
    doctor_before = _hashes(trained.doctor.path)
    code, _, err = _tunelab(capsys, "doctor", str(_config(tmp_path)), "--epochs", "1")
    assert code == 0, err
    assert _hashes(trained.doctor.versions_dir / "1") == doctor_before
    assert trained.fix_rounds.is_file()


def test_compress_that_fails_at_start_leaves_the_previous_run(tmp_path, capsys, trained):
    code, _, err = _tunelab(capsys, "compress", str(trained.path), "--methods", "prune")
    assert code == 0, err
    before = _hashes(trained.path)
    code, _, err = _tunelab(capsys, "compress", str(trained.path), "--methods", "quantize,prune")
    assert code == 2 and "config error" in err
    assert _hashes(trained.path) == before
    compressed = trained.compressed
    previous = _hashes(compressed.path)
    code, _, err = _tunelab(capsys, "compress", str(trained.path), "--methods", "prune")
    assert code == 0, err
    assert f"previous compress run kept as {compressed.versions_dir / '1'}" in err
    assert _hashes(compressed.versions_dir / "1") == previous
    assert trained.compressed_table.is_file()


def test_compress_reports_the_monitored_metric_too(tmp_path, capsys):
    # Issue 16 (smaller): train.monitor = val_f1_macro -> the table shows test f1_macro too.
    config = _config(tmp_path, name="f1", train={"monitor": "val_f1_macro"})
    code, _, err = _tunelab(capsys, "train", str(config))
    assert code == 0, err
    code, out, err = _tunelab(capsys, "compress", str(tmp_path / "runs" / "f1"), "-m", "prune")
    assert code == 0, err
    assert "test accuracy" in out and "test f1_macro" in out and " pt" in out
