"""Early stopping, best-only weights, atomic checkpoints and resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tunelab.errors import ConfigError
from tunelab.train import Callback, EarlyStopping, Trainer
from tunelab.train._checkpoint import atomic_write, save_checkpoint


def test_early_stopping_stops_after_patience_epochs_without_improvement(digits, make_mlp, quiet):
    # lr=0 leaves the weights untouched: val_loss is best at epoch 1 and never improves again.
    cfg = quiet(epochs=20, lr=1e-12, optimizer="sgd", momentum=0.0)
    cfg.early_stopping.patience = 3
    result = Trainer(cfg).fit(make_mlp(), digits)
    assert result.status == "early_stopped"
    assert result.epochs_run == 4
    assert result.best_epoch == 1
    assert "val_loss did not improve" in result.reason and "for 3 epochs" in result.reason


def test_early_stopping_counts_min_delta_and_mode():
    stopper = EarlyStopping("val_accuracy", patience=2, min_delta=0.01)
    assert stopper.mode == "max"
    seen = [stopper.update_and_check(v, e) for e, v in enumerate([0.5, 0.505, 0.52, 0.525], 1)]
    # 0.505 is not better by more than 0.01; 0.52 is; 0.525 is not -> wait 1 after epoch 4
    assert [s for s, _ in seen] == [False, False, False, False]
    stop, reason = stopper.update_and_check(0.5, 5)
    assert stop and "best 0.52 at epoch 3" in reason


def test_a_missing_monitored_metric_lists_the_metrics_that_exist(digits, make_mlp, quiet):
    cfg = quiet()
    cfg.early_stopping.monitor = "val_acc"
    with pytest.raises(ConfigError) as err:
        Trainer(cfg).fit(make_mlp(), digits)
    message = str(err.value)
    assert not torch.are_deterministic_algorithms_enabled()  # nothing global left changed
    assert "train.early_stopping.monitor" in message and "'val_acc'" in message
    assert "val_accuracy" in message and "val_f1_macro" in message and "\n" not in message


def test_best_weights_are_those_of_the_best_epoch(digits, make_mlp, quiet, tmp_path):
    class Snapshots(Callback):
        def __init__(self):
            self.states = {}

        def on_epoch_end(self, trainer, epoch, metrics):
            self.states[epoch] = {k: v.clone() for k, v in trainer.model.state_dict().items()}

    snaps = Snapshots()
    model = make_mlp()
    result = Trainer(
        quiet(epochs=6, lr=0.3, optimizer="sgd"), callbacks=[snaps], run_dir=tmp_path
    ).fit(model, digits)
    losses = [row["val_loss"] for row in result.history]
    assert result.best_epoch == losses.index(min(losses)) + 1
    saved = load_file(tmp_path / "best" / "model.safetensors")
    for name, tensor in snaps.states[result.best_epoch].items():
        torch.testing.assert_close(saved[name], tensor)
        torch.testing.assert_close(model.state_dict()[name], tensor)  # restore_best


def test_checkpoint_loads_with_weights_only(digits, make_mlp, quiet, tmp_path):
    Trainer(quiet(epochs=2), run_dir=tmp_path).fit(make_mlp(), digits)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 2 and len(state["history"]) == 2
    assert {"model", "optimizer", "schedule", "early_stopping", "rng", "callbacks"} <= set(state)
    assert state["finished"]["status"] == "completed"
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_failed_write_leaves_the_previous_checkpoint_intact(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint({"format": 1, "epoch": 1}, path)

    def crash(tmp: Path) -> None:
        tmp.write_bytes(b"half a checkp")
        raise KeyboardInterrupt  # the process is killed mid-save

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, crash)
    assert torch.load(path, weights_only=True)["epoch"] == 1
    assert list(tmp_path.iterdir()) == [path]


class StopAfter(Callback):
    """Stops once ``epoch`` is reached; counts calls so its restored state can be checked."""

    def __init__(self, epoch):
        self.epoch, self.seen = epoch, 0

    def on_epoch_end(self, trainer, epoch, metrics):
        self.seen += 1
        if epoch == self.epoch:
            trainer.request_stop("simulated crash")

    def state_dict(self):
        return {"seen": self.seen}

    def load_state_dict(self, state):
        self.seen = state["seen"]


@pytest.mark.parametrize(
    "extra",
    [
        {"optimizer": "adam", "schedule": {"name": "cosine", "warmup_epochs": 1}},
        {"optimizer": "sgd", "lr": 0.05, "schedule": {"name": "plateau", "patience": 0}},
    ],
)
def test_resume_ends_with_the_same_metrics_as_an_uninterrupted_run(extra, digits, quiet, tmp_path):
    def model():
        torch.manual_seed(0)
        return torch.nn.Sequential(
            torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Dropout(0.3), torch.nn.Linear(32, 10)
        )

    cfg = quiet(epochs=5, **extra)
    full = Trainer(cfg, seed=3, run_dir=tmp_path / "full").fit(model(), digits)

    first = StopAfter(2)
    part = Trainer(cfg, seed=3, run_dir=tmp_path / "resumed", callbacks=[first]).fit(
        model(), digits
    )
    assert part.status == "stopped" and part.epochs_run == 2
    again = StopAfter(99)
    resumed = Trainer(cfg, seed=3, run_dir=tmp_path / "resumed", callbacks=[again]).fit(
        model(), digits, resume=True
    )
    assert again.seen == 5  # 2 restored + 3 new epochs
    assert resumed.status == "completed" and resumed.epochs_run == 5

    def strip(history):
        return [{k: v for k, v in row.items() if k != "epoch_time_s"} for row in history]

    assert strip(resumed.history) == strip(full.history)
    lines = (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3, 4, 5]


def test_resuming_a_finished_run_trains_nothing(digits, make_mlp, quiet, tmp_path):
    cfg = quiet(epochs=2)
    Trainer(cfg, run_dir=tmp_path).fit(make_mlp(), digits)
    spy = StopAfter(99)
    again = Trainer(cfg, run_dir=tmp_path, callbacks=[spy]).fit(make_mlp(), digits, resume=True)
    assert again.status == "completed" and again.epochs_run == 2 and spy.seen == 0


def test_checkpoint_best_only_false_keeps_every_epochs_weights(digits, make_mlp, quiet, tmp_path):
    Trainer(quiet(epochs=3, checkpoint_best_only=False), run_dir=tmp_path).fit(make_mlp(), digits)
    kept = sorted(p.name for p in (tmp_path / "epochs").iterdir())
    assert kept == ["epoch_001.safetensors", "epoch_002.safetensors", "epoch_003.safetensors"]
    first, last = (load_file(tmp_path / "epochs" / n) for n in (kept[0], kept[-1]))
    assert not torch.equal(first["0.weight"], last["0.weight"])
    Trainer(quiet(epochs=1), run_dir=tmp_path / "default").fit(make_mlp(), digits)
    assert not (tmp_path / "default" / "epochs").exists()
