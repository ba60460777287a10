"""The trainer callbacks of a trial, against a stand-in trainer and trial."""

from __future__ import annotations

import math

import pytest
import torch

from tunelab.config import ConfigError
from tunelab.tune import PruningCallback, SickTrialCallback


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


def test_sick_callback_stops_on_a_nan_batch_loss_within_the_epoch():
    cb, trainer = SickTrialCallback(check_every=5), FakeTrainer()
    cb.on_fit_start(trainer)
    cb.on_epoch_start(trainer, 1)
    cb.on_batch_end(trainer, 5, torch.tensor(2.0))
    assert trainer.stopped is None
    cb.on_batch_end(trainer, 10, torch.tensor(math.nan))
    assert trainer.stopped[0] == "diverged"
    assert cb.findings[0]["kind"] == "exploding_gradients"
    assert cb.findings[0]["first_seen"] == {"epoch": 0, "step": 10}


def test_sick_callback_stops_a_diverging_loss():
    cb, trainer = SickTrialCallback(), FakeTrainer()
    cb.on_fit_start(trainer)
    for epoch, loss in enumerate([1.0, 0.5, 0.9, 2.1], start=1):
        cb.on_epoch_end(trainer, epoch, {"train_loss": loss, "val_loss": loss})
    assert trainer.stopped[0] == "diverged"
    assert cb.findings[0]["kind"] == "diverging_loss"
    assert "2.1" in cb.reason


def test_sick_callback_leaves_a_healthy_run_alone():
    cb, trainer = SickTrialCallback(), FakeTrainer()
    cb.on_fit_start(trainer)
    for epoch, loss in enumerate([1.0, 0.8, 0.9, 0.6], start=1):
        cb.on_epoch_end(trainer, epoch, {"train_loss": loss, "val_loss": loss})
    assert trainer.stopped is None and cb.findings == []


def test_successive_halving_lets_a_trial_past_its_last_rung_finish():
    # 10 epochs, r = 3: rungs at epochs 1 and 3 can prune; epoch 9 would only save one epoch.
    trial, trainer = FakeTrial(prune_at=1), FakeTrainer()
    cb = PruningCallback(trial, "val_loss", last_step=10, final_rung_factor=3)
    cb.on_epoch_end(trainer, 9, {"val_loss": 1.0})
    assert trainer.stopped is None
    cb.on_epoch_end(trainer, 3, {"val_loss": 1.0})
    assert trainer.stopped[0] == "pruned"
