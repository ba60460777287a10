from __future__ import annotations

import optuna
import pytest

from tunelab.config import Choice, Range, parse_config
from tunelab.tune import make_sampler, resolve_sampler_name, tune_objective
from tunelab.tune._samplers import default_startup_trials

NUMERIC = parse_config(
    {
        "train": {
            "lr": {"low": 1e-4, "high": 1e-1, "log": True},
            "momentum": {"low": 0.0, "high": 0.9},
        }
    }
).search_spaces()
SMALL_GRID = parse_config(
    {"train": {"lr": {"choice": [1e-4, 1e-3]}, "batch_size": {"choice": [32, 64, 128]}}}
).search_spaces()
WITH_CHOICE = parse_config(
    {
        "train": {
            "lr": {"low": 1e-4, "high": 1e-1, "log": True},
            "optimizer": {"choice": ["adam", "sgd"]},
        }
    }
).search_spaces()


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("random", optuna.samplers.RandomSampler),
        ("tpe", optuna.samplers.TPESampler),
        ("gp", optuna.samplers.GPSampler),
        ("cmaes", optuna.samplers.CmaEsSampler),
        ("qmc", optuna.samplers.QMCSampler),
        ("nsga2", optuna.samplers.NSGAIISampler),
    ],
)
def test_sampler_names_build_the_optuna_sampler(name, cls):
    assert isinstance(make_sampler(name, NUMERIC).sampler, cls)


def test_tpe_is_multivariate():
    sampler = make_sampler("tpe", NUMERIC).sampler
    assert sampler._multivariate is True


@pytest.mark.parametrize(
    ("spaces", "kwargs", "expected"),
    [
        (SMALL_GRID, {"n_objectives": 1, "trials": 6, "pruner": "asha"}, "grid"),
        (SMALL_GRID, {"n_objectives": 1, "trials": 5, "pruner": "asha"}, "tpe"),
        (NUMERIC, {"n_objectives": 1, "trials": 30, "pruner": "none"}, "gp"),
        (NUMERIC, {"n_objectives": 1, "trials": 30, "pruner": "asha"}, "tpe"),
        (WITH_CHOICE, {"n_objectives": 1, "trials": 30, "pruner": "none"}, "tpe"),
        (NUMERIC, {"n_objectives": 2, "trials": 30, "pruner": "none"}, "tpe"),
        (NUMERIC, {"n_objectives": 2, "trials": 200, "pruner": "none"}, "nsga2"),
    ],
)
def test_auto_rule(spaces, kwargs, expected):
    name, why = resolve_sampler_name("auto", spaces, **kwargs)
    assert name == expected
    assert why.startswith("auto:")


SPACE = {"x": {"low": -5.0, "high": 5.0}, "y": {"low": -5.0, "high": 5.0}}


@pytest.mark.parametrize("sampler", ["random", "tpe", "gp", "cmaes", "qmc", "nsga2", "auto"])
def test_every_sampler_finds_a_better_point_than_its_first(sampler):
    result = tune_objective(
        lambda trial, p: (p["x"] - 1) ** 2 + (p["y"] + 2) ** 2,
        space=SPACE,
        sampler=sampler,
        trials=10,
        startup_trials=4,
    )
    assert result.count("complete") == 10
    first = result.trials[0].value
    assert result.best_value <= first
    assert result.best_value < 10.0


def test_grid_sampler_runs_every_combination_exactly_once():
    seen = []

    def objective(trial, p):
        seen.append((p["lr"], p["batch"]))
        return p["lr"] * p["batch"]

    result = tune_objective(
        objective,
        space={"lr": {"choice": [1e-4, 1e-3]}, "batch": {"choice": [32, 64, 128]}},
        sampler="grid",
        trials=50,
    )
    assert len(seen) == 6 and len(set(seen)) == 6
    assert result.stop_reason == "all 6 grid points done"
    assert result.best_params == {"lr": 1e-4, "batch": 32}


def test_nsga2_gives_a_pareto_front_for_two_objectives():
    result = tune_objective(
        lambda trial, p: (p["x"] ** 2, (p["x"] - 2) ** 2),
        space={"x": {"low": -1.0, "high": 3.0}},
        directions=["minimize", "minimize"],
        sampler="nsga2",
        trials=12,
    )
    assert len(result.pareto) >= 2
    xs = sorted(t.params["x"] for t in result.pareto)
    # Every Pareto-optimal point of this pair lies between the two minima.
    assert all(-1e-9 <= x <= 2 + 1e-9 for x in xs)


def test_startup_trials_scale_with_the_largest_choice_within_a_fifth_of_the_budget():
    space = {"width": Choice(choice=[8, 16, 32, 64, 128]), "lr": Range(low=1e-3, high=1e-1)}
    assert default_startup_trials(10_000) == 10  # numeric or no space: Optuna's 10
    assert default_startup_trials(10_000, space, per_choice=4) == 20  # ASHA's per_choice
    assert default_startup_trials(10_000, space) == 10  # two per value
    assert default_startup_trials(60, space, per_choice=4) == 12  # at most a fifth of 60
    assert default_startup_trials(20, space, per_choice=4) == 4
    tpe = make_sampler("auto", space, trials=10_000, pruner="asha").sampler
    assert tpe._n_startup_trials == 20
