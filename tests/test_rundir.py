"""``tunelab.rundir``: the one owner of the run directory's layout and of its configs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tunelab.config import parse_config
from tunelab.errors import FatalError
from tunelab.rundir import RunDir, TrainingDir

PLAIN = {
    "name": "digits",
    "data": {"source": "sklearn", "dataset": "digits"},
    "model": {"builder": "mlp", "params": {"width": 32}},
    "train": {"epochs": 2, "lr": 0.01},
}
TUNING = {**PLAIN, "train": {"epochs": 2, "lr": {"low": 1e-4, "high": 1e-1, "log": True}}}


def test_layout_names_every_file_and_folder_of_a_run(tmp_path: Path):
    run = RunDir(tmp_path)
    expected = {
        run.config: "config.yaml",
        run.best_config: "best/config.yaml",
        run.best_model: "best",
        run.study_db: "study.db",
        run.tune_summary: "tune.json",
        run.trials_dir: "trials",
        run.trial(3).path: "trials/3",
        run.doctor_dir: "doctor",
        run.repaired_config: "doctor/config.yaml",
        run.fix_rounds: "doctor/fix_rounds.json",
        run.doctor.round(1).path: "doctor/round_1",
        run.compressed_dir: "compressed",
        run.compressed_table: "compressed/table.json",
        run.export_dir: "export",
        run.report_html: "report.html",
        run.data_profile: "data_profile.json",
    }
    for path, name in expected.items():
        assert path == tmp_path / name
    trial = run.trial(3)
    assert isinstance(trial, TrainingDir)
    names = {
        trial.config: "config.yaml",
        trial.metrics: "metrics.jsonl",
        trial.tensorboard: "tensorboard",
        trial.checkpoint: "checkpoint.pt",
        trial.best_model: "best",
        trial.result: "result.json",
        trial.findings: "findings.json",
        trial.best_fold: "best_fold.json",
        trial.fold(2).path: "fold_2",
    }
    for path, name in names.items():
        assert path == tmp_path / "trials" / "3" / name


def test_for_config_is_run_root_slash_name(tmp_path: Path):
    cfg = parse_config({**PLAIN, "run_root": str(tmp_path / "runs")})
    assert RunDir.for_config(cfg).path == tmp_path / "runs" / "digits"


def test_trials_lists_the_numbered_trial_folders(tmp_path: Path):
    run = RunDir(tmp_path)
    assert run.trials() == {}
    for name in ("2", "10", "0", "workers-log"):
        (run.trials_dir / name).mkdir(parents=True)
    assert list(run.trials()) == [0, 2, 10]
    assert run.trials()[10] == run.trial(10)


def test_best_config_round_trip(tmp_path: Path):
    run = RunDir(tmp_path)
    cfg = parse_config(TUNING).with_values({"train.lr": 0.003})
    assert run.write_best_config(cfg) == tmp_path / "best" / "config.yaml"
    assert run.read_best_config().to_dict() == cfg.to_dict()
    assert run.resolved_config().train.lr == pytest.approx(0.003)


def test_write_best_config_refuses_search_spaces(tmp_path: Path):
    with pytest.raises(FatalError, match=re.escape("train.lr")):
        RunDir(tmp_path).write_best_config(parse_config(TUNING))
    assert not (tmp_path / "best" / "config.yaml").exists()


def test_missing_best_config_is_a_fatal_error_naming_the_file(tmp_path: Path):
    run = RunDir(tmp_path)
    with pytest.raises(FatalError, match=re.escape(str(run.best_config))):
        run.read_best_config()
    # A tuning run whose study has not finished: resolved_config names the same file.
    run.write_config(parse_config(TUNING))
    with pytest.raises(FatalError, match=re.escape(str(run.best_config))) as info:
        run.resolved_config()
    assert "train.lr" in str(info.value) and "\n" not in str(info.value)


def test_resolved_config_of_a_plain_training_run_is_its_config_yaml(tmp_path: Path):
    run = RunDir(tmp_path)
    cfg = parse_config(PLAIN)
    run.write_config(cfg)
    assert run.read_config().to_dict() == cfg.to_dict()
    assert run.resolved_config().to_dict() == cfg.to_dict()


def test_resolved_config_without_any_config_names_the_directory(tmp_path: Path):
    with pytest.raises(FatalError, match=re.escape("no config.yaml")):
        RunDir(tmp_path).resolved_config()


def test_a_model_folder_given_as_the_run(tmp_path: Path):
    """``best/`` itself: its own config.yaml after tuning, else its run's."""
    run = RunDir(tmp_path)
    run.write_config(parse_config(PLAIN))
    run.best_model.mkdir()
    (run.best_model / "model.json").write_text("{}")
    as_run = RunDir(run.best_model)
    assert as_run.saved_model() == run.best_model
    assert as_run.resolved_config().name == "digits"
    run.write_best_config(parse_config({**PLAIN, "name": "best-trial"}))
    assert as_run.resolved_config().name == "best-trial"


def test_saved_model_says_what_is_missing(tmp_path: Path):
    with pytest.raises(FatalError, match="no such run directory"):
        RunDir(tmp_path / "absent").saved_model()
    with pytest.raises(FatalError, match="holds no saved model"):
        RunDir(tmp_path).saved_model()


def test_versioned_switch_keeps_the_previous_contents_and_earlier_versions(tmp_path):
    from tunelab.rundir import Versioned

    target = Versioned(tmp_path / "run")
    (target.path / "a.txt").parent.mkdir(parents=True)
    (target.path / "a.txt").write_text("first")
    staging = target.staging()
    (staging / "a.txt").write_text("second")
    assert target.switch_to(staging) == target.versions_dir / "1"
    assert (target.path / "a.txt").read_text() == "second"
    assert (target.versions_dir / "1" / "a.txt").read_text() == "first"
    staging = target.staging()
    (staging / "a.txt").write_text("third")
    assert target.switch_to(staging) == target.versions_dir / "2"
    assert sorted(target.versions()) == [1, 2]
    assert (target.versions_dir / "2" / "a.txt").read_text() == "second"
    failed = target.staging()
    assert target.keep_as_version(failed) == target.versions_dir / "3"
    assert (target.path / "a.txt").read_text() == "third"


def test_versioned_archive_in_place_and_nothing_to_keep(tmp_path):
    from tunelab.rundir import Versioned

    target = Versioned(tmp_path / "compressed")
    assert target.archive_previous() is None and not target.path.exists()
    (target.path / "workers").mkdir(parents=True)
    (target.path / "table.json").write_text("{}")
    assert target.archive_previous() == target.versions_dir / "1"
    assert sorted(p.name for p in target.path.iterdir()) == ["versions", "workers"]
    assert not target.holds_previous()
