from __future__ import annotations

import optuna
import pytest

from tunelab.tune import make_pruner, tune_objective
from tunelab.tune._pruners import NoiseTolerantHalvingPruner, look_noise


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


def _finished(study, first, late):
    """Add a finished trial: ``first`` at the first rung (epoch 1), then ``late`` looks."""
    values = dict(enumerate([first, *late], start=1))
    study.add_trial(
        optuna.trial.create_trial(
            value=max(values.values()),
            intermediate_values=values,
            system_attrs={"completed_rung_0": first},
        )
    )


def _study_with_noise():
    # Late looks alternate 0.80 / 0.82: one look's noise is 1.4826 * 0.02 / sqrt 2 = 0.021.
    study = optuna.create_study(direction="maximize")
    for first in (0.80, 0.81, 0.79):
        _finished(study, first, [0.80, 0.82, 0.80, 0.82, 0.80, 0.82])
    return study


def _prunes(pruner, study, value):
    trial = study.ask()
    trial.report(value, 1)
    return pruner.prune(study, study._storage.get_trial(trial._trial_id))


def test_look_noise_comes_from_finished_trials_late_looks():
    study = _study_with_noise()
    assert look_noise(study.get_trials()) == pytest.approx(1.4826 * 0.02 / 2**0.5)
    assert look_noise([]) is None


def test_asha_with_tolerance_keeps_a_trial_within_noise_of_the_cutoff():
    # Four values at the first rung, r = 3: only the best (0.81) goes on under plain halving.
    plain = make_pruner("asha", max_epochs=20, reduction_factor=3)
    tolerant = make_pruner("asha", max_epochs=20, reduction_factor=3, prune_tolerance=1.0)
    assert isinstance(tolerant, NoiseTolerantHalvingPruner)
    assert _prunes(plain, _study_with_noise(), 0.795)
    # 0.795 is 0.015 behind the cut-off, less than one look's noise (0.021): it goes on.
    assert not _prunes(tolerant, _study_with_noise(), 0.795)
    assert _prunes(tolerant, _study_with_noise(), 0.78)


def test_asha_with_tolerance_is_plain_halving_before_any_trial_finishes():
    study = optuna.create_study(direction="maximize")
    for value in (0.9, 0.8, 0.7):
        trial = study.ask()
        trial.report(value, 1)
        study._storage.set_trial_system_attr(trial._trial_id, "completed_rung_0", value)
    tolerant = make_pruner("asha", max_epochs=20, reduction_factor=3, prune_tolerance=100.0)
    assert _prunes(tolerant, study, 0.69)
