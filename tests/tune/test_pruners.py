from __future__ import annotations

import optuna
import pytest

from tunelab.tune import make_pruner, tune_objective


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("none", optuna.pruners.NopPruner),
        ("median", optuna.pruners.MedianPruner),
        ("percentile", optuna.pruners.PercentilePruner),
        ("asha", optuna.pruners.SuccessiveHalvingPruner),
        ("hyperband", optuna.pruners.HyperbandPruner),
    ],
)
def test_pruner_names_build_the_optuna_pruner(name, cls):
    assert isinstance(make_pruner(name, max_epochs=10), cls)


def _learning_curve(trial, p):
    """A fake training run: the loss falls towards ``x``, reported each epoch."""
    loss = 0.0
    for epoch in range(1, 10):
        loss = p["x"] + 1.0 / epoch
        trial.report(loss, epoch)
        if trial.should_prune():
            trial.set_user_attr("epochs", epoch)
            raise optuna.TrialPruned()
    trial.set_user_attr("epochs", 9)
    return loss


@pytest.mark.parametrize("pruner", ["median", "percentile", "asha", "hyperband"])
def test_pruners_stop_bad_trials_early_and_save_epochs(pruner):
    result = tune_objective(
        _learning_curve,
        space={"x": {"low": 0.0, "high": 10.0}},
        sampler="random",
        pruner=pruner,
        max_epochs=9,
        trials=20,
    )
    pruned = [t for t in result.trials if t.state == "pruned"]
    assert pruned, "a pruner should stop some of 20 random trials"
    assert any(t.epochs < 9 for t in pruned)
    # The best trial is never one that was pruned.
    assert result.best.state == "complete"


def test_no_pruner_lets_every_trial_finish():
    result = tune_objective(
        _learning_curve, space={"x": {"low": 0.0, "high": 10.0}}, sampler="random", trials=8
    )
    assert result.count("complete") == 8
