"""The training loop: learning, hook order, stop requests, NaN and out-of-memory statuses."""

from __future__ import annotations

import math

import pytest
import torch

from tunelab.errors import ConfigError
from tunelab.train import Callback, Trainer


class Recorder(Callback):
    def __init__(self):
        self.calls: list[tuple] = []

    def on_fit_start(self, trainer):
        self.calls.append(("fit_start",))

    def on_epoch_start(self, trainer, epoch):
        self.calls.append(("epoch_start", epoch))

    def after_backward(self, trainer, loss):
        grads = [p.grad for p in trainer.model.parameters()]
        assert all(g is not None for g in grads)
        self.before = [p.detach().clone() for p in trainer.model.parameters()]
        self.calls.append(("after_backward", trainer.global_step))

    def on_batch_end(self, trainer, step, loss):
        after = list(trainer.model.parameters())
        assert any(not torch.equal(a, b) for a, b in zip(after, self.before, strict=True))
        assert loss.ndim == 0 and not loss.requires_grad
        self.calls.append(("batch_end", step))

    def on_epoch_end(self, trainer, epoch, metrics):
        self.calls.append(("epoch_end", epoch, sorted(metrics)))

    def on_fit_end(self, trainer, result):
        self.calls.append(("fit_end", result.status))


def test_fit_learns_digits(digits, make_mlp, quiet):
    result = Trainer(quiet(epochs=8, lr=3e-3)).fit(make_mlp(), digits)
    assert result.status == "completed"
    assert result.epochs_run == 8
    assert result.best_metrics["val_accuracy"] > 0.85
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def test_hooks_run_in_order_and_after_backward_precedes_the_step(digits, make_mlp, quiet):
    rec = Recorder()
    Trainer(quiet(epochs=2, batch_size=200), callbacks=[rec]).fit(make_mlp(), digits)
    kinds = [c[0] for c in rec.calls]
    # 600 rows / 200 per batch = 3 optimiser steps per epoch
    epoch = ["epoch_start"] + ["after_backward", "batch_end"] * 3 + ["epoch_end"]
    assert kinds == ["fit_start", *epoch, *epoch, "fit_end"]
    assert [c[1] for c in rec.calls if c[0] == "batch_end"] == [1, 2, 3, 4, 5, 6]
    names = rec.calls[-2][2]
    for metric in ("train_loss", "val_loss", "val_accuracy", "val_f1_macro", "lr"):
        assert metric in names
    assert rec.calls[-1] == ("fit_end", "completed")


def test_request_stop_ends_training_with_status_and_reason(digits, make_mlp, quiet):
    class Pruner(Callback):
        def on_epoch_end(self, trainer, epoch, metrics):
            if epoch == 2:
                trainer.request_stop("val_loss above the median", status="pruned")

    result = Trainer(quiet(epochs=10), callbacks=[Pruner()]).fit(make_mlp(), digits)
    assert (result.status, result.reason, result.epochs_run) == (
        "pruned",
        "val_loss above the median",
        2,
    )


def test_request_stop_from_a_batch_hook_ends_the_epoch_early(digits, make_mlp, quiet):
    class Stopper(Callback):
        def on_batch_end(self, trainer, step, loss):
            if step == 2:
                trainer.request_stop("loss spike", status="diverged")

    rec = Recorder()
    result = Trainer(quiet(epochs=5, batch_size=100), callbacks=[Stopper(), rec]).fit(
        make_mlp(), digits
    )
    assert result.status == "diverged"
    assert result.epochs_run == 1
    assert [c[1] for c in rec.calls if c[0] == "batch_end"] == [1, 2]


def test_request_stop_rejects_statuses_the_trainer_owns(digits, make_mlp, quiet):
    trainer = Trainer(quiet())
    with pytest.raises(ValueError, match="stopped, pruned, diverged"):
        trainer.request_stop("x", status="nan")


def test_same_seed_and_config_give_identical_metrics(digits, make_mlp, quiet):
    cfg = quiet(epochs=3, optimizer="sgd", lr=0.05)
    runs = [Trainer(cfg, seed=7).fit(make_mlp(seed=1), digits).history for _ in range(2)]
    strip = [[{k: v for k, v in row.items() if k != "epoch_time_s"} for row in h] for h in runs]
    assert strip[0] == strip[1]
    other = Trainer(cfg, seed=8).fit(make_mlp(seed=1), digits).history
    assert other[-1]["train_loss"] != runs[0][-1]["train_loss"]


def test_nan_loss_stops_with_status_nan_and_no_exception(digits, make_mlp, quiet):
    class Poison(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner
            self.calls = 0

        def forward(self, x):
            self.calls += 1
            out = self.inner(x)
            return out * float("nan") if self.calls > 15 else out

    # 600 rows / 64 = 10 batches per epoch, so the loss turns NaN in epoch 2.
    result = Trainer(quiet(epochs=5)).fit(Poison(make_mlp()), digits)
    assert result.status == "nan"
    assert "train loss became nan in epoch 2" in result.reason
    assert result.epochs_run == 2
    assert result.best_epoch == 1


def test_out_of_memory_becomes_a_status(digits, make_mlp, quiet):
    class Hungry(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(64, 10)

        def forward(self, x):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    result = Trainer(quiet(batch_size=32)).fit(Hungry(), digits)
    assert result.status == "oom"
    assert "batch_size 32" in result.reason and "Tried to allocate" in result.reason


def test_other_runtime_errors_are_not_swallowed(digits, quiet):
    threads = torch.get_num_threads()
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        Trainer(quiet(threads=2)).fit(torch.nn.Linear(3, 10), digits)
    # the fit's process-wide settings are put back even when it raises
    assert torch.get_num_threads() == threads
    assert not torch.are_deterministic_algorithms_enabled()


def test_a_search_space_left_in_the_config_is_a_config_error(digits, make_mlp, quiet):
    from tunelab.config import Range

    cfg = quiet()
    cfg.lr = Range(low=1e-4, high=1e-1, log=True)
    with pytest.raises(ConfigError, match=r"train\.lr is a search space"):
        Trainer(cfg).fit(make_mlp(), digits)


def test_predict_returns_logits_and_evaluate_gives_test_metrics(digits, make_mlp, quiet):
    trainer = Trainer(quiet(epochs=4, lr=3e-3))
    model = make_mlp()
    trainer.fit(model, digits)
    logits = trainer.predict(model, digits.X_test.numpy())
    assert logits.shape == (200, 10)
    metrics = trainer.evaluate(model, digits)
    assert set(metrics) == {
        "test_loss",
        "test_accuracy",
        "test_precision_macro",
        "test_recall_macro",
        "test_f1_macro",
    }
    accuracy = (logits.argmax(1) == digits.y_test).float().mean().item()
    assert metrics["test_accuracy"] == pytest.approx(accuracy)


def test_regression_reports_mse_mae_r2(diabetes, make_mlp, quiet):
    result = Trainer(quiet(epochs=15, lr=3e-3, monitor="val_r2")).fit(
        make_mlp(inputs=10, outputs=1, width=16), diabetes
    )
    best = result.best_metrics
    assert {"val_mse", "val_mae", "val_r2"} <= set(best)
    assert best["val_r2"] > 0.2
    assert best["val_r2"] == max(row["val_r2"] for row in result.history)


def test_a_batch_loss_sees_the_inputs_and_replaces_the_training_loss_only(digits, make_mlp, quiet):
    seen = []

    def batch_loss(outputs, targets, inputs):
        seen.append(inputs.shape)
        # Train towards a constant output: the run must follow this loss, not cross-entropy.
        return (outputs**2).mean()

    model = make_mlp()
    result = Trainer(quiet(epochs=2), loss=batch_loss).fit(model, digits)
    assert seen and all(s[1:] == digits.X_train.shape[1:] for s in seen)
    with torch.no_grad():
        assert model(digits.X_val).abs().mean() < 0.1  # squashed towards 0
    # Validation still reports the configured loss (cross-entropy of near-uniform logits).
    assert abs(result.history[-1]["val_loss"] - math.log(10)) < 0.1
