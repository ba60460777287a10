"""tune_objective: failures, budget, resume, interrupts -- the engine on plain objectives."""

from __future__ import annotations

import time

import optuna
import pytest

from tunelab.errors import ConfigError, FatalError
from tunelab.tune import tune_objective

SPACE = {"x": {"low": -1.0, "high": 1.0}}


def test_a_raising_trial_is_failed_with_its_error_and_the_study_goes_on():
    def objective(trial, p):
        if p["x"] < 0:
            raise ValueError(f"x={p['x']:.2f} is a bad combination")
        return p["x"]

    result = tune_objective(objective, space=SPACE, sampler="random", trials=12)
    failed = [t for t in result.trials if t.state == "failed"]
    assert failed and all(t.error.startswith("ValueError: x=") for t in failed)
    assert result.count("complete") == 12 - len(failed)
    assert result.best_params["x"] >= 0


def test_a_study_where_every_trial_fails_stops_with_the_error():
    def objective(trial, p):
        raise RuntimeError("CUDA out of memory")

    with pytest.raises(FatalError, match=r"first 5 trials all failed.*out of memory"):
        tune_objective(objective, space=SPACE, trials=50)


def test_timeout_budget_stops_starting_trials():
    def objective(trial, p):
        time.sleep(0.15)
        return p["x"]

    start = time.monotonic()
    result = tune_objective(objective, space=SPACE, trials=100, timeout="0.5s")
    assert time.monotonic() - start < 5
    assert 1 <= len(result.trials) < 100
    assert result.stop_reason.startswith("timeout")


def test_epoch_budget_counts_reported_steps():
    def objective(trial, p):
        for step in range(1, 4):
            trial.report(p["x"], step)
        return p["x"]

    result = tune_objective(objective, space=SPACE, trials=100, max_total_epochs=10)
    assert len(result.trials) == 4  # 3 + 3 + 3 < 10 <= 12


def test_running_again_on_the_same_storage_continues_the_study(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    first = tune_objective(lambda t, p: p["x"] ** 2, space=SPACE, trials=3, storage=url)
    second = tune_objective(lambda t, p: p["x"] ** 2, space=SPACE, trials=5, storage=url)
    assert [t.number for t in second.trials] == [0, 1, 2, 3, 4]
    assert [t.values for t in second.trials[:3]] == [t.values for t in first.trials]
    # The start-up phase does not replay the first session's parameters.
    assert second.trials[3].params != first.trials[0].params


def test_an_interrupted_trial_is_requeued_and_runs_first_next_time(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    calls = []

    def interrupted(trial, p):
        calls.append(p["x"])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return p["x"]

    with pytest.raises(KeyboardInterrupt):
        tune_objective(interrupted, space=SPACE, trials=4, storage=url, heartbeat_interval=0)
    study = optuna.load_study(study_name="tunelab", storage=url)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "FAIL", "WAITING"]
    result = tune_objective(lambda t, p: p["x"], space=SPACE, trials=4, storage=url)
    retry = result.trials[2]
    assert retry.retry_of == 1 and retry.state == "complete"
    assert retry.params == {"x": calls[1]}
    assert result.count("complete") == 4


def test_a_bad_direction_is_a_config_error():
    with pytest.raises(ConfigError, match="maximise"):
        tune_objective(lambda t: 0.0, directions=["maximise"])


def test_sklearn_estimators_tune_through_a_plain_objective():
    from sklearn.datasets import load_iris
    from sklearn.model_selection import cross_val_score

    from tunelab.sklearn import NeuralClassifier

    X, y = load_iris(return_X_y=True)

    def objective(trial, p):
        model = NeuralClassifier(epochs=5, lr=p["lr"], hidden_sizes=(8,), random_state=0)
        return cross_val_score(model, X, y, cv=2).mean()

    result = tune_objective(
        objective,
        space={"lr": {"choice": [1e-4, 3e-2]}},
        directions=["maximize"],
        sampler="grid",
        trials=2,
    )
    assert result.best_params == {"lr": 3e-2}
