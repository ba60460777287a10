"""Losses, optimisers, regularisation, clipping, accumulation, precision and compile."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tunelab.errors import ConfigError
from tunelab.train import Callback, Trainer
from tunelab.train._losses import balanced_class_weights, build_loss


class GradSpy(Callback):
    """Keeps the gradients seen before the first optimiser step, and norms after clipping."""

    def __init__(self):
        self.first: list[torch.Tensor] | None = None
        self.clipped_norms: list[float] = []
        self.max_abs: list[float] = []

    def after_backward(self, trainer, loss):
        if self.first is None:
            self.first = [p.grad.detach().clone() for p in trainer.model.parameters()]

    def on_batch_end(self, trainer, step, loss):
        # The trainer zeroes gradients at the start of the next step, so here they are the
        # clipped ones the optimiser just used.
        grads = [p.grad for p in trainer.model.parameters()]
        self.clipped_norms.append(torch.norm(torch.stack([g.norm() for g in grads])).item())
        self.max_abs.append(max(g.abs().max().item() for g in grads))


def test_gradient_accumulation_equals_the_big_batch(digits, make_mlp, quiet):
    big, small = GradSpy(), GradSpy()
    Trainer(quiet(epochs=1, batch_size=120), callbacks=[big]).fit(make_mlp(), digits)
    # 4 micro-batches of 30 rows make one effective batch of 120: same rows, same order.
    Trainer(quiet(epochs=1, batch_size=30, accumulate_steps=4), callbacks=[small]).fit(
        make_mlp(), digits
    )
    for a, b in zip(big.first, small.first, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_accumulation_takes_one_step_per_group(digits, make_mlp, quiet):
    trainer = Trainer(quiet(epochs=1, batch_size=50, accumulate_steps=4))
    trainer.fit(make_mlp(), digits)
    # 12 micro-batches -> 3 optimiser steps
    assert trainer.global_step == 3


def test_clipping_by_norm_bounds_the_gradient_norm(digits, make_mlp, quiet):
    spy = GradSpy()
    Trainer(quiet(epochs=1, lr=0.5, clip_grad_norm=0.05), callbacks=[spy]).fit(make_mlp(), digits)
    assert max(spy.clipped_norms) <= 0.05 * 1.0001
    unclipped = GradSpy()
    Trainer(quiet(epochs=1, lr=0.5), callbacks=[unclipped]).fit(make_mlp(), digits)
    assert max(unclipped.clipped_norms) > 0.05


def test_clipping_by_value_bounds_every_gradient_entry(digits, make_mlp, quiet):
    spy = GradSpy()
    Trainer(quiet(epochs=1, clip_grad_value=1e-3), callbacks=[spy]).fit(make_mlp(), digits)
    assert max(spy.max_abs) == pytest.approx(1e-3)  # float32 rounding of the bound


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "rmsprop", "adagrad"])
def test_every_optimiser_trains(name, digits, make_mlp, quiet):
    lr = {"sgd": 0.1, "adagrad": 0.05}.get(name, 3e-3)
    trainer = Trainer(quiet(epochs=3, optimizer=name, lr=lr, nesterov=True))
    result = trainer.fit(make_mlp(), digits)
    assert type(trainer.optimizer).__name__.lower() == name
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    if name == "sgd":
        assert trainer.optimizer.param_groups[0]["nesterov"] is True


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "adagrad"])
def test_fused_kernels_give_the_loop_implementations_result(name, digits, make_mlp, quiet):
    lr = {"sgd": 0.1, "adagrad": 0.05}.get(name, 3e-3)
    models, trainers = [], []
    for fused in (True, False):
        torch.manual_seed(0)
        model = make_mlp()
        trainer = Trainer(quiet(epochs=2, optimizer=name, lr=lr, fused_optimizer=fused))
        trainer.fit(model, digits)
        models.append(model)
        trainers.append(trainer)
    assert trainers[0].optimizer.param_groups[0]["fused"] is True
    assert not trainers[1].optimizer.param_groups[0].get("fused")
    for fused_param, loop_param in zip(models[0].parameters(), models[1].parameters(), strict=True):
        torch.testing.assert_close(fused_param, loop_param, rtol=1e-4, atol=1e-5)


def test_rmsprop_has_no_fused_kernel_and_uses_the_loop(digits, make_mlp, quiet):
    trainer = Trainer(quiet(epochs=1, optimizer="rmsprop"))
    trainer.fit(make_mlp(), digits)
    assert "fused" not in trainer.optimizer.param_groups[0]


def _weight_l1(model):
    return sum(p.abs().sum().item() for p in model.parameters() if p.ndim > 1)


def test_weight_decay_and_l1_shrink_the_weights(digits, make_mlp, quiet):
    sizes = {}
    for label, extra in {"plain": {}, "l2": {"weight_decay": 0.05}, "l1": {"l1": 1e-3}}.items():
        model = make_mlp()
        Trainer(quiet(epochs=3, optimizer="sgd", lr=0.1, restore_best=False, **extra)).fit(
            model, digits
        )
        sizes[label] = _weight_l1(model)
    assert sizes["l2"] < sizes["plain"]
    assert sizes["l1"] < sizes["plain"]


def test_balanced_class_weights_follow_sklearn():
    from sklearn.utils.class_weight import compute_class_weight

    y = torch.tensor([0] * 8 + [1] * 2 + [2] * 5)
    expected = compute_class_weight("balanced", classes=np.arange(3), y=y.numpy())
    torch.testing.assert_close(balanced_class_weights(y, 3), torch.tensor(expected).float())


def test_class_weights_and_label_smoothing_reach_the_loss(digits):
    loss = build_loss(
        "auto",
        "classification",
        num_classes=10,
        y_train=digits.y_train,
        label_smoothing=0.1,
        class_weights="balanced",
    )
    assert isinstance(loss, torch.nn.CrossEntropyLoss)
    assert loss.label_smoothing == 0.1 and loss.weight.shape == (10,)


def test_losses_match_the_task_and_shapes():
    out, y = torch.tensor([[0.5], [2.0]]), torch.tensor([1.0, 1.0])
    assert build_loss("auto", "regression")(out, y).item() == pytest.approx((0.25 + 1.0) / 2)
    assert build_loss("mae", "regression")(out, y).item() == pytest.approx(0.75)
    assert build_loss("huber", "regression")(out, y).item() == pytest.approx((0.125 + 0.5) / 2)
    bce = build_loss("bce", "classification", num_classes=2)
    logit, target = torch.tensor([[0.0]]), torch.tensor([1])
    assert bce(logit, target).item() == pytest.approx(0.6931, abs=1e-4)
    with pytest.raises(ConfigError, match="does not fit a regression task"):
        build_loss("cross_entropy", "regression")


def test_bf16_autocast_trains_on_cpu(digits, make_mlp, quiet):
    fp32 = Trainer(quiet(epochs=4, lr=1e-2)).fit(make_mlp(), digits)
    bf16 = Trainer(quiet(epochs=4, precision="bf16", lr=1e-2)).fit(make_mlp(), digits)
    assert bf16.status == "completed"
    assert bf16.best_metrics["val_accuracy"] > 0.8
    # bf16 rounds activations, so the runs differ a little, not a lot
    assert bf16.history[-1]["train_loss"] != fp32.history[-1]["train_loss"]
    assert bf16.best_metrics["val_accuracy"] == pytest.approx(
        fp32.best_metrics["val_accuracy"], abs=0.05
    )


def test_fp16_without_cuda_is_a_config_error(digits, make_mlp, quiet):
    if torch.cuda.is_available():
        pytest.skip("CUDA present: fp16 is valid here")
    with pytest.raises(ConfigError, match=r"fp16.*needs a CUDA device"):
        Trainer(quiet(precision="fp16")).fit(make_mlp(), digits)


def test_compile_flag_compiles_the_forward(digits, make_mlp, quiet, monkeypatch):
    compiled = []

    def fake_compile(module, *args, **kwargs):
        compiled.append(module)
        return module

    monkeypatch.setattr(torch, "compile", fake_compile)
    model = make_mlp()
    Trainer(quiet(epochs=1, compile=True)).fit(model, digits)
    assert compiled == [model]
