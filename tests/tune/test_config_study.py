"""run_study on real (tiny) training: run directory, best/ copy, sick and failed trials."""

from __future__ import annotations

import json

import optuna
import pytest
import yaml

from tunelab.config import parse_config
from tunelab.errors import ConfigError
from tunelab.models import build_model, count_parameters
from tunelab.tune import run_study

from .conftest import tiny_config

FAST_TRAIN = {"epochs": 2, "batch_size": 32, "tensorboard": False}


def test_study_writes_the_run_directory_and_copies_the_best_weights(tmp_path):
    cfg = tiny_config(
        tmp_path, train={**FAST_TRAIN, "tensorboard": True, "lr": {"choice": [0.003, 0.03]}}
    )
    result = run_study(cfg, trials=2, pruner="none")
    run = tmp_path / "runs" / "tiny"
    # study.db is a plain Optuna storage: optuna-dashboard and load_study open it.
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{run / 'study.db'}")
    assert len(study.trials) == 2
    assert study.best_trial.number == result.best.number
    for trial in study.trials:
        trial_dir = run / "trials" / str(trial.number)
        for name in ("metrics.jsonl", "result.json", "config.yaml", "best/model.safetensors"):
            assert (trial_dir / name).exists(), name
        assert list((trial_dir / "tensorboard").glob("events.out.tfevents*"))
        assert len((trial_dir / "metrics.jsonl").read_text().splitlines()) == 2
    # best/ is a byte-for-byte copy of the best trial's weights: never retrained.
    best_trial_weights = run / "trials" / str(result.best.number) / "best" / "model.safetensors"
    assert (run / "best" / "model.safetensors").read_bytes() == best_trial_weights.read_bytes()
    assert result.best_dir == run / "best"
    summary = json.loads((run / "tune.json").read_text())
    assert summary["best"]["params"] == study.best_params
    # The run's config.yaml parses back to the same search.
    again = parse_config(yaml.safe_load((run / "config.yaml").read_text()))
    assert set(again.search_spaces()) == {"train.lr"}


@pytest.mark.parametrize("doctor", [False, True], ids=["plain-check", "doctor"])
def test_nan_trial_is_pruned_with_reason_and_findings_and_the_study_goes_on(tmp_path, doctor):
    train = {**FAST_TRAIN, "optimizer": "sgd", "momentum": 0.0, "lr": {"choice": [1.0e6, 0.01]}}
    cfg = tiny_config(tmp_path, train=train, diagnose={"enabled": doctor, "tensorboard": False})
    result = run_study(cfg, sampler="grid", trials=2)
    by_lr = {t.params["train.lr"]: t for t in result.trials}
    sick, healthy = by_lr[1.0e6], by_lr[0.01]
    assert sick.state == "pruned"
    assert sick.user_attrs["sick"] is True
    assert sick.reason
    findings = sick.user_attrs["findings"]
    assert findings and findings[0]["kind"] in ("exploding_gradients", "diverging_loss")
    assert sick.epochs <= 1, "a sick trial ends in the epoch it turns sick"
    assert healthy.state == "complete"
    assert result.best.number == healthy.number


def test_a_bad_config_value_found_mid_trial_stops_the_study_after_recording_it(tmp_path):
    # width 0 is a bad value the model builder rejects (a ConfigError): every trial drawing it
    # would fail the same way, so the study stops at once with the trial recorded failed. (A
    # trial's own error, RuntimeError or OOM, fails only that trial: tests/tune/test_fatal.py.)
    model = {"builder": "mlp", "params": {"depth": 1, "width": {"choice": [0, 8]}}}
    cfg = tiny_config(tmp_path, model=model, train=FAST_TRAIN)
    with pytest.raises(ConfigError, match=r"model\.params\.width = 0"):
        run_study(cfg, sampler="grid", trials=5)
    study = optuna.load_study(
        study_name="tiny", storage=f"sqlite:///{tmp_path / 'runs' / 'tiny' / 'study.db'}"
    )
    last = study.trials[-1]
    assert last.params["model.params.width"] == 0 and last.state.name == "FAIL"
    assert "width" in last.user_attrs["error"]


def test_cross_validation_reports_mean_and_std_and_prunes_across_folds(tmp_path):
    tune = {"trials": 1, "progress": "none", "heartbeat_interval": 0, "cv": {"folds": 3}}
    result = run_study(
        tiny_config(tmp_path, train=FAST_TRAIN | {"lr": {"choice": [0.01]}}, tune=tune)
    )
    trial = result.trials[0]
    folds = trial.user_attrs["fold_values"]
    assert len(folds) == 3
    assert trial.value == pytest.approx(sum(folds) / 3)
    assert trial.user_attrs["cv_std"] >= 0
    assert trial.epochs == 6
    run = tmp_path / "runs" / "tiny" / "trials" / "0"
    assert all((run / f"fold_{k}" / "metrics.jsonl").is_file() for k in range(3))
    assert (run / "best" / "model.safetensors").is_file()
    # Folds report consecutive steps, so a pruner compares fold k of every trial.
    study = result.load_study()
    assert sorted(study.trials[0].intermediate_values) == [1, 2, 3, 4, 5, 6]


def test_multi_objective_study_measures_model_cost_and_returns_a_pareto_front(tmp_path):
    model = {"builder": "mlp", "params": {"depth": 1, "width": {"choice": [4, 32]}}}
    tune = {
        "trials": 2,
        "sampler": "grid",
        "progress": "none",
        "heartbeat_interval": 0,
        "objectives": [
            {"metric": "val_accuracy", "direction": "maximize"},
            {"metric": "params", "direction": "minimize"},
        ],
    }
    result = run_study(
        tiny_config(tmp_path, model=model, train=FAST_TRAIN | {"lr": 0.01}, tune=tune)
    )
    assert result.directions == ["maximize", "minimize"]
    assert result.pareto
    for trial in result.trials:
        width = trial.params["model.params.width"]
        net = build_model("mlp", {"depth": 1, "width": width}, input_shape=(6,), output_size=3)
        assert trial.values[1] == count_parameters(net)


def test_latency_objective_is_a_positive_time(tmp_path):
    tune = {
        "trials": 1,
        "progress": "none",
        "heartbeat_interval": 0,
        "objectives": [
            {"metric": "val_loss", "direction": "minimize"},
            {"metric": "latency_ms", "direction": "minimize"},
            {"metric": "size_mb", "direction": "minimize"},
        ],
    }
    train = FAST_TRAIN | {"lr": {"choice": [0.01]}}
    result = run_study(tiny_config(tmp_path, train=train, tune=tune))
    _, latency, size = result.trials[0].values
    assert 0 < latency < 1000
    assert 0 < size < 1


def test_epoch_budget_stops_the_study(tmp_path):
    result = run_study(
        tiny_config(tmp_path, train=FAST_TRAIN | {"lr": {"low": 1e-3, "high": 1e-1}}),
        trials=10,
        pruner="none",
        max_total_epochs=5,
    )
    assert result.count("complete") == 3  # 2 + 2 + 2 epochs >= 5
    assert "epoch budget" in result.stop_reason


def test_a_config_without_search_space_is_one_clear_error(tmp_path):
    cfg = tiny_config(tmp_path, train=FAST_TRAIN | {"lr": 0.01})
    with pytest.raises(ConfigError, match="nothing to tune"):
        run_study(cfg)


def test_resuming_a_run_directory_with_another_search_is_refused(tmp_path):
    run_study(tiny_config(tmp_path, train=FAST_TRAIN | {"lr": {"choice": [0.01]}}), trials=1)
    other = tiny_config(tmp_path, train=FAST_TRAIN | {"weight_decay": {"choice": [0.0, 0.1]}})
    with pytest.raises(Exception, match="different search"):
        run_study(other, trials=1)


def test_an_unknown_objective_metric_is_one_clear_error_before_any_trial(tmp_path):
    tune = {"metric": "val_acc", "progress": "none", "heartbeat_interval": 0}
    cfg = tiny_config(tmp_path, train=FAST_TRAIN | {"lr": {"choice": [0.01]}}, tune=tune)
    with pytest.raises(ConfigError, match=r"tune.metric = 'val_acc' .*val_accuracy"):
        run_study(cfg)
    assert not (tmp_path / "runs" / "tiny" / "trials").exists()
