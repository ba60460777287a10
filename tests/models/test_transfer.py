"""Transfer learning: checkpoint -> new head -> frozen backbone -> discriminative LR -> thaw."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from tunelab.config import ModelConfig, TrainConfig
from tunelab.data import DataBundle
from tunelab.errors import ConfigError
from tunelab.models import (
    apply_unfreeze_schedule,
    backbone_parameters,
    build_from_config,
    build_model,
    freeze_backbone,
    head_parameters,
    is_frozen,
    load_model,
    param_groups,
    replace_head,
    save_model,
    transfer_settings,
    unfreeze,
)
from tunelab.train import Trainer


def _bundle(n=40, features=6, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, features, generator=g)
    y = torch.arange(n) % classes
    return DataBundle.from_arrays(X, y, X[:12], y[:12], classes=[f"c{i}" for i in range(classes)])


def _quiet(**kw) -> TrainConfig:
    base = dict(progress="none", tensorboard=False, early_stopping={"enabled": False})
    return TrainConfig(**{**base, **kw})


@pytest.fixture
def checkpoint(tmp_path):
    """A small saved MLP (3 classes, 6 features)."""
    bundle = _bundle()
    model, spec = build_from_config(
        ModelConfig(builder="mlp", params={"widths": [16, 8], "batch_norm": True}), bundle
    )
    save_model(tmp_path / "pre", model, spec)
    return tmp_path / "pre", model


def test_replace_head_keeps_the_backbone_and_changes_the_output_size():
    model = build_model("cnn", {"channels": [4]}, input_shape=(1, 8, 8), output_size=5)
    before = [p.detach().clone() for p in backbone_parameters(model)]
    replace_head(model, 7)
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 7)
    assert all(torch.equal(a, b) for a, b in zip(before, backbone_parameters(model), strict=True))


def test_frozen_backbone_gets_no_gradient_and_only_the_head_learns():
    model = freeze_backbone(
        build_model("mlp", {"depth": 2, "width": 8}, input_shape=(4,), output_size=2)
    )
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.SGD(param_groups(model, 0.5), lr=0.5)
    model(torch.randn(8, 4)).sum().backward()
    opt.step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed == {"head.weight", "head.bias"}
    assert all(p.grad is None for p in backbone_parameters(model))


def test_frozen_batchnorm_keeps_its_statistics_until_unfrozen():
    model = build_model("mlp", {"widths": [8], "batch_norm": True}, input_shape=(4,), output_size=2)
    bn = model.body[2]
    freeze_backbone(model).train()
    model(torch.randn(16, 4) * 5 + 3)
    assert torch.equal(bn.running_mean, torch.zeros(8))
    unfreeze(model).train()
    model(torch.randn(16, 4) * 5 + 3)
    assert not torch.equal(bn.running_mean, torch.zeros(8))


def test_param_groups_give_the_backbone_a_scaled_learning_rate():
    model = build_model("mlp", {"depth": 1, "width": 8}, input_shape=(4,), output_size=2)
    groups = {g["name"]: g for g in param_groups(model, 0.01, backbone_lr_mult=0.1)}
    assert groups["head"]["lr"] == 0.01 and groups["backbone"]["lr"] == pytest.approx(0.001)
    assert {id(p) for p in groups["head"]["params"]} == {id(p) for p in head_parameters(model)}
    plain = torch.nn.Linear(4, 2)  # no head: one group
    assert [g["name"] for g in param_groups(plain, 0.01)] == ["all"]


def test_unfreeze_schedule_thaws_after_the_given_epochs(checkpoint):
    folder, _ = checkpoint
    cfg = ModelConfig(checkpoint=str(folder), freeze_backbone=True, unfreeze_after=2)
    model, _ = build_from_config(cfg, _bundle(classes=4))
    assert is_frozen(model)
    assert not apply_unfreeze_schedule(model, epochs_done=1)
    assert apply_unfreeze_schedule(model, epochs_done=2)
    assert not is_frozen(model)


def test_checkpoint_with_the_same_classes_keeps_its_head(checkpoint):
    folder, pre = checkpoint
    model, spec = build_from_config(ModelConfig(checkpoint=str(folder)), _bundle())
    x = torch.randn(3, 6)
    assert torch.equal(model.eval()(x), pre.eval()(x))
    assert spec.pretrained_from == str(folder) and not transfer_settings(model).head_replaced


def test_checkpoint_for_new_classes_replaces_the_head_and_saves_with_it(checkpoint, tmp_path):
    folder, pre = checkpoint
    bundle = _bundle(classes=5)
    model, spec = build_from_config(ModelConfig(checkpoint=str(folder)), bundle)
    assert model.head.out_features == 5 and transfer_settings(model).head_replaced
    assert torch.equal(model.body[1].weight, pre.body[1].weight)
    assert spec.builder == "mlp" and spec.output_size == 5 and spec.classes == bundle.classes
    save_model(tmp_path / "tuned", model, spec)
    x = torch.randn(3, 6)
    assert torch.equal(load_model(tmp_path / "tuned").model(x), model.eval()(x))


def test_checkpoint_errors_name_the_field(checkpoint, tmp_path):
    folder, _ = checkpoint
    wrong_shape = DataBundle.from_arrays(
        np.zeros((4, 5)), np.arange(4) % 2, np.zeros((2, 5)), np.arange(2)
    )
    with pytest.raises(ConfigError, match=r"model\.checkpoint .*shape \(6,\).*\(5,\)"):
        build_from_config(ModelConfig(checkpoint=str(folder)), wrong_shape)
    with pytest.raises(ConfigError, match=r"model\.params\.width .*comes from model\.checkpoint"):
        build_from_config(ModelConfig(checkpoint=str(folder), params={"width": 3}), _bundle())
    with pytest.raises(ConfigError, match=r"model\.checkpoint .*no such directory"):
        build_from_config(ModelConfig(checkpoint=str(tmp_path / "missing")), _bundle())
    torch.save({"w": torch.zeros(1)}, tmp_path / "weights.pt")
    with pytest.raises(ConfigError, match="never unpickles"):
        build_from_config(ModelConfig(checkpoint=str(tmp_path / "weights.pt")), _bundle())
    # Params equal to what the checkpoint was built with are fine.
    build_from_config(ModelConfig(checkpoint=str(folder), params={"widths": [16, 8]}), _bundle())


def test_trainer_keeps_a_frozen_backbone_fixed_and_trains_the_head(checkpoint):
    folder, _ = checkpoint
    cfg = ModelConfig(checkpoint=str(folder), freeze_backbone=True)
    model, _ = build_from_config(cfg, _bundle(classes=4))
    backbone = [p.detach().clone() for p in backbone_parameters(model)]
    head = [p.detach().clone() for p in head_parameters(model)]
    Trainer(_quiet(epochs=3, lr=0.05, batch_size=8)).fit(model, _bundle(classes=4))
    assert all(torch.equal(a, b) for a, b in zip(backbone, backbone_parameters(model), strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(head, head_parameters(model), strict=True))


def test_trainer_uses_the_backbone_lr_mult_and_unfreezes_on_schedule(checkpoint):
    folder, _ = checkpoint
    cfg = ModelConfig(
        checkpoint=str(folder), freeze_backbone=True, unfreeze_after=1, backbone_lr_mult=0.25
    )
    model, _ = build_from_config(cfg, _bundle(classes=4))
    backbone = [p.detach().clone() for p in backbone_parameters(model)]
    trainer = Trainer(_quiet(epochs=3, lr=0.04, batch_size=8))
    trainer.fit(model, _bundle(classes=4))
    lrs = {g["name"]: g["lr"] for g in trainer.optimizer.param_groups}
    assert lrs == {"backbone": pytest.approx(0.01), "head": pytest.approx(0.04)}
    assert not is_frozen(model)
    assert not all(
        torch.equal(a, b) for a, b in zip(backbone, backbone_parameters(model), strict=True)
    )


# ---- the real thing: digits 0-4 -> digits 5-9 with three samples per class ---------------------

RESNET = {"widths": [16, 32], "blocks_per_stage": 1}


def _digits():
    digits = load_digits()
    return (digits.images / 16.0).astype("float32")[:, None], digits.target


@pytest.mark.slow
def test_fine_tuning_a_pretrained_model_beats_training_from_scratch_on_few_samples(tmp_path):
    """Pretrain on digits 0-4, then learn 5-9 from 3 images per class.

    Both arms get the same 15 images, optimiser, learning rate, batch size and number of steps
    (no early stopping, no best-epoch selection); they differ only in the starting point. The
    test images are all other 5-9 digits (~850). ``bench/transfer_digits.py`` runs the same
    protocol over seeds 0-4: the pretrained model won 5/5 (+2 to +10 points, mean +5.9); with
    10 images per class the from-scratch model catches up (see BENCHMARKS.md).
    """
    X, y = _digits()
    low = np.flatnonzero(y < 5)
    np.random.default_rng(0).shuffle(low)
    pre_bundle = DataBundle.from_arrays(X[low[:750]], y[low[:750]], X[low[750:]], y[low[750:]])
    torch.manual_seed(0)
    pre_model, pre_spec = build_from_config(
        ModelConfig(builder="resnet", params=RESNET), pre_bundle
    )
    Trainer(_quiet(epochs=6, lr=1e-3, batch_size=32), seed=0).fit(pre_model, pre_bundle)
    save_model(tmp_path / "digits04", pre_model, pre_spec)

    high = np.flatnonzero(y >= 5)
    fine_tune = _quiet(epochs=60, lr=3e-3, batch_size=8, restore_best=False)
    margins = []
    for seed in range(3):
        rng = np.random.default_rng(seed)
        picked = np.stack([rng.choice(high[y[high] == c], 6, replace=False) for c in range(5, 10)])
        train, val = picked[:, :3].ravel(), picked[:, 3:].ravel()
        test = np.setdiff1d(high, picked.ravel())
        bundle = DataBundle.from_arrays(
            X[train],
            y[train] - 5,
            X[val],
            y[val] - 5,
            X[test],
            y[test] - 5,
            classes=[str(c) for c in range(5, 10)],
        )
        accuracy = {}
        for arm, cfg in {
            "transfer": ModelConfig(
                checkpoint=str(tmp_path / "digits04"), freeze_backbone=True, unfreeze_after=5
            ),
            "scratch": ModelConfig(builder="resnet", params=RESNET),
        }.items():
            torch.manual_seed(seed)  # the new head and the scratch model start from this seed
            model, _ = build_from_config(cfg, bundle)
            trainer = Trainer(fine_tune, seed=seed)
            trainer.fit(model, bundle)
            accuracy[arm] = trainer.evaluate(model, bundle)["test_accuracy"]
        margins.append(accuracy["transfer"] - accuracy["scratch"])
        assert accuracy["transfer"] > accuracy["scratch"], (seed, accuracy)
    assert np.mean(margins) > 0.03, margins
