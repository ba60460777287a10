"""One seed per trial: trial n trains from seed + n, recorded, and carried into best/config."""

from __future__ import annotations

import optuna
import pytest
import yaml

from tunelab.config import parse_config
from tunelab.tune import run_study
from tunelab.tune._budget import SEED_ATTR
from tunelab.tune._objective import trial_seed

from .conftest import tiny_config


def _config(tmp_path, **tune):
    return tiny_config(
        tmp_path,
        seed=7,
        train={"epochs": 3, "batch_size": 32, "lr": {"low": 1e-3, "high": 1e-1, "log": True}},
        tune={"trials": 4, "progress": "none", "heartbeat_interval": 0, "pruner": "none"} | tune,
    )


def _written_seed(tmp_path, number: int) -> int:
    config = tmp_path / "runs" / "tiny" / "trials" / str(number) / "config.yaml"
    return yaml.safe_load(config.read_text())["seed"]


@pytest.mark.parametrize("per_trial", [True, False], ids=["seed-per-trial", "one-seed"])
def test_each_trial_trains_from_its_own_seed_unless_turned_off(tmp_path, per_trial):
    result = run_study(_config(tmp_path, seed_per_trial=per_trial))
    for trial in result.trials:
        seed = 7 + trial.number if per_trial else 7
        assert trial.user_attrs[SEED_ATTR] == seed
        assert _written_seed(tmp_path, trial.number) == seed
    best = yaml.safe_load((result.best_dir / "config.yaml").read_text())
    assert best["seed"] == (7 + result.best.number if per_trial else 7)


def test_a_seed_already_recorded_wins(tmp_path):
    # A retried trial inherits its crashed attempt's attributes, seed included.
    trial = optuna.create_study().ask()
    trial.set_user_attr(SEED_ATTR, 42)
    assert trial_seed(parse_config(_config(tmp_path)), trial) == 42
