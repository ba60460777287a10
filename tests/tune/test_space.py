from __future__ import annotations

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from tunelab.config import ConfigError, parse_config
from tunelab.tune import grid_values, to_distributions, tune_objective
from tunelab.tune._space import config_spaces


def _spaces(data):
    return parse_config(data).search_spaces()


def test_config_spaces_become_optuna_distributions_named_by_dotted_path():
    spaces = _spaces(
        {
            "train": {
                "lr": {"low": 1e-4, "high": 1e-1, "log": True},
                "batch_size": {"choice": [32, 64]},
                "epochs": {"low": 2, "high": 10, "step": 2},
            },
            "model": {"params": {"dropout": {"low": 0.0, "high": 0.5, "step": 0.1}}},
        }
    )
    dists = to_distributions(spaces)
    assert dists["train.lr"] == FloatDistribution(1e-4, 1e-1, log=True)
    assert dists["train.batch_size"] == CategoricalDistribution([32, 64])
    assert dists["train.epochs"] == IntDistribution(2, 10, step=2)
    assert dists["model.params.dropout"] == FloatDistribution(0.0, 0.5, step=0.1)


def test_grid_refuses_a_continuous_range_and_names_it():
    spaces = _spaces({"train": {"lr": {"low": 1e-4, "high": 1e-1, "log": True}}})
    with pytest.raises(ConfigError, match=r"train\.lr is a continuous range.*step"):
        grid_values(spaces)


def test_grid_of_stepped_and_integer_ranges_lists_every_point():
    spaces = _spaces({"train": {"weight_decay": {"low": 0.1, "high": 0.3, "step": 0.1}}})
    grid = grid_values(
        config_spaces(parse_config({"model": {"params": {"depth": {"low": 1, "high": 3}}}}))
        | spaces
    )
    assert grid["train.weight_decay"] == [0.1, 0.2, 0.3]
    assert grid["model.params.depth"] == [1, 2, 3]


def test_list_valued_choices_round_trip_through_optuna():
    seen = []

    def objective(trial, params):
        seen.append(params["hidden"])
        return float(sum(params["hidden"]))

    result = tune_objective(
        objective, space={"hidden": {"choice": [[64, 64], [32]]}}, sampler="grid", trials=5
    )
    assert sorted(seen) == [[32], [64, 64]]
    assert result.best_params == {"hidden": [32]}


def test_integer_model_params_are_sampled_as_integers():
    cfg = parse_config({"model": {"builder": "mlp", "params": {"depth": {"low": 1, "high": 4}}}})
    dist = to_distributions(config_spaces(cfg))["model.params.depth"]
    assert dist == IntDistribution(1, 4)
