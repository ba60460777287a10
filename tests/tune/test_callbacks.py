"""The trainer callbacks of a trial, against a stand-in trainer and trial."""

from __future__ import annotations

import math

import pytest

from tunelab.config import ConfigError
from tunelab.diagnose import Finding
from tunelab.train import SickTrialPolicy
from tunelab.tune import PruningCallback


class FakeTrainer:
    global_step = 0

    def __init__(self):
        self.stopped = None

    def request_stop(self, reason, status="stopped"):
        self.stopped = (status, reason)


class FakeTrial:
    def __init__(self, prune_at=None):
        self.reports, self.prune_at, self.user_attrs = [], prune_at, {}

    def report(self, value, step):
        self.reports.append((step, value))

    def should_prune(self):
        return self.prune_at is not None and self.reports[-1][0] >= self.prune_at

    def set_user_attr(self, key, value):
        self.user_attrs[key] = value


def test_pruning_callback_reports_each_epoch_and_stops_as_pruned():
    trial, trainer = FakeTrial(prune_at=12), FakeTrainer()
    cb = PruningCallback(trial, "val_loss", step_offset=10, last_step=20)
    cb.on_epoch_end(trainer, 1, {"val_loss": 0.9})
    assert trainer.stopped is None
    cb.on_epoch_end(trainer, 2, {"val_loss": 0.8})
    assert trial.reports == [(11, 0.9), (12, 0.8)]
    assert trainer.stopped[0] == "pruned" and "epoch 2" in trainer.stopped[1]


def test_pruning_callback_never_prunes_the_final_epoch():
    trial, trainer = FakeTrial(prune_at=1), FakeTrainer()
    PruningCallback(trial, "val_loss", last_step=3).on_epoch_end(trainer, 3, {"val_loss": 1.0})
    assert trainer.stopped is None and trial.reports == [(3, 1.0)]


def test_pruning_callback_names_the_metrics_that_exist():
    cb = PruningCallback(FakeTrial(), "val_acc")
    with pytest.raises(ConfigError, match="val_accuracy, val_loss"):
        cb.on_epoch_end(FakeTrainer(), 1, {"val_loss": 0.5, "val_accuracy": 0.8, "epoch": 1})


def test_a_nan_epoch_without_validation_is_left_to_the_sick_guard():
    # The Trainer does not validate an epoch whose training loss is NaN. That is the trial's
    # sickness, not a config error: a ConfigError here would stop the whole study.
    trial, trainer = FakeTrial(), FakeTrainer()
    cb = PruningCallback(trial, "val_accuracy")
    cb.on_epoch_end(trainer, 3, {"epoch": 3, "train_loss": math.nan, "lr": 0.1})
    assert trial.reports == [] and trainer.stopped is None


def test_a_sick_fit_becomes_the_trials_error_finding_through_the_policy():
    from tunelab.tune._objective import _findings_of

    sickness = SickTrialPolicy().judge_step(10, math.nan, epoch=1)
    (finding,) = _findings_of(None, sickness)
    assert finding == Finding.from_sickness(sickness).to_dict()
    assert finding["kind"] == "exploding_gradients" and finding["severity"] == "error"
    assert finding["first_seen"] == {"epoch": 1, "step": 10}
    assert _findings_of(None, None) == []


def test_the_tune_stage_no_longer_has_its_own_sick_trial_check():
    import tunelab.tune._callbacks as callbacks

    assert not hasattr(callbacks, "SickTrialCallback")
    assert not hasattr(callbacks, "sick_finding")


def test_successive_halving_lets_a_trial_past_its_last_rung_finish():
    # 10 epochs, r = 3: rungs at epochs 1 and 3 can prune; epoch 9 would only save one epoch.
    trial, trainer = FakeTrial(prune_at=1), FakeTrainer()
    cb = PruningCallback(trial, "val_loss", last_step=10, final_rung_factor=3)
    cb.on_epoch_end(trainer, 9, {"val_loss": 1.0})
    assert trainer.stopped is None
    cb.on_epoch_end(trainer, 3, {"val_loss": 1.0})
    assert trainer.stopped[0] == "pruned"
