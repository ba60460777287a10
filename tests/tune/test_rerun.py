"""Re-runs of the best configurations with new seeds in the last share of the budget."""

from __future__ import annotations

import optuna
import pytest
import yaml
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from tunelab.config import parse_config
from tunelab.tune import StudyOptions, run_study
from tunelab.tune._budget import Budget
from tunelab.tune._rerun import RERUN_OF_ATTR, SEED_ATTR, next_to_rerun

from .conftest import tiny_config

_LR = {"train.lr": FloatDistribution(1e-3, 1e-1, log=True)}


def _trial(number: int, value: float | None, state=TrialState.COMPLETE, **attrs):
    trial = create_trial(
        state=state,
        value=value,
        params={"train.lr": 0.01 * (number + 1)},
        distributions=_LR,
        user_attrs=attrs,
        intermediate_values={0: value or 0.0},
    )
    trial.number = number
    return trial


def test_the_best_complete_original_not_yet_rerun_goes_next():
    trials = [
        _trial(0, 0.70),
        _trial(1, 0.80),
        _trial(2, 0.90, state=TrialState.PRUNED),  # pruned: its value is not a finished one
        _trial(3, 0.75),
    ]
    assert next_to_rerun(trials, sign=-1.0).number == 1  # maximise
    assert next_to_rerun(trials, sign=1.0).number == 0  # minimise
    # Trial 4 re-ran trial 1 (and did better): a re-run is never re-run, so 3 is next.
    trials.append(_trial(4, 0.85, **{RERUN_OF_ATTR: 1, SEED_ATTR: 4}))
    assert next_to_rerun(trials, sign=-1.0).number == 3
    assert next_to_rerun([_trial(0, None, state=TrialState.PRUNED)], sign=-1.0) is None


def test_used_fraction_is_the_largest_share_of_any_limit():
    study = optuna.create_study()
    for number in range(3):
        trial = _trial(number, 0.5)
        trial.set_user_attr("epochs", 10)
        study.add_trial(trial)
    assert Budget(trials=12).used_fraction(study) == 0.25
    assert Budget(trials=12, max_total_epochs=40).used_fraction(study) == 0.75
    assert Budget(max_total_epochs=20).used_fraction(study) == 1.0
    assert Budget().used_fraction(study) == 0.0


def _study_config(tmp_path, **tune):
    return tiny_config(
        tmp_path,
        train={"epochs": 3, "batch_size": 32, "lr": {"low": 1e-3, "high": 1e-1, "log": True}},
        tune={"trials": 8, "progress": "none", "heartbeat_interval": 0, "metric": "val_accuracy"}
        | tune,
    )


def _written_seed(tmp_path, name: str, number: int) -> int:
    config = tmp_path / "runs" / name / "trials" / str(number) / "config.yaml"
    return yaml.safe_load(config.read_text())["seed"]


@pytest.mark.parametrize("per_trial", [True, False], ids=["seed-per-trial", "one-seed"])
def test_the_last_share_of_the_budget_reruns_the_best_configs_with_new_seeds(tmp_path, per_trial):
    cfg = _study_config(tmp_path, rerun_fraction=0.4, pruner="none", seed_per_trial=per_trial)
    trials = run_study(cfg).load_study().trials
    reruns = [t for t in trials if RERUN_OF_ATTR in t.user_attrs]
    # 8 trials: re-runs are queued once 60% of the budget is spent, after trials 4, 5 and 6
    # finish (none after trial 7: the budget is spent, a queued trial would never run).
    assert [t.number for t in reruns] == [5, 6, 7] and len(trials) == 8
    ranked = sorted(trials[:5], key=lambda t: -t.value)
    assert [t.user_attrs[RERUN_OF_ATTR] for t in reruns] == [t.number for t in ranked[:3]]
    for trial in trials:
        rerun = RERUN_OF_ATTR in trial.user_attrs
        seed = trial.number if per_trial or rerun else 0  # the study's seed is 0
        assert trial.user_attrs[SEED_ATTR] == seed
        assert _written_seed(tmp_path, "tiny", trial.number) == seed
        if rerun:
            assert trial.params == trials[trial.user_attrs[RERUN_OF_ATTR]].params


def test_the_best_config_records_the_seed_of_the_best_trial(tmp_path):
    result = run_study(_study_config(tmp_path))
    best = yaml.safe_load((result.best_dir / "config.yaml").read_text())
    assert best["seed"] == result.best.number


def test_no_reruns_when_off_under_grid_search_or_with_several_objectives(tmp_path):
    study = run_study(_study_config(tmp_path, rerun_fraction=0.0, pruner="none")).load_study()
    assert not any(RERUN_OF_ATTR in t.user_attrs for t in study.trials)
    grid = _study_config(tmp_path, rerun_fraction=0.5, sampler="grid", trials=4) | {
        "name": "grid",
        "train": {"epochs": 2, "batch_size": 32, "lr": {"choice": [0.01, 0.1]}},
    }
    study = run_study(grid).load_study()
    assert not any(RERUN_OF_ATTR in t.user_attrs for t in study.trials)
    two = _study_config(
        tmp_path,
        rerun_fraction=0.5,
        objectives=[
            {"metric": "val_accuracy", "direction": "maximize"},
            {"metric": "val_loss", "direction": "minimize"},
        ],
    )
    assert StudyOptions.from_config(parse_config(two | {"name": "two"})).rerun_fraction == 0.0
