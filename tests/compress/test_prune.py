"""Pruning: the sparsity asked for is reached, structured pruning really shrinks the layers."""

from __future__ import annotations

import copy
import time

import pytest
import torch
import torch.nn as nn

from tunelab.compress import (
    CompressContext,
    Prune,
    Variant,
    layer_widths,
    load_variant,
    make_permanent,
    prunable_layers,
    prune_structured,
    prune_unstructured,
    save_variant,
    weight_sparsity,
)
from tunelab.config import TrainConfig
from tunelab.models import ModelSpec, count_parameters

from .conftest import accuracy

FAST = TrainConfig(epochs=2, lr=1e-3, progress="none", tensorboard=False)


def test_global_unstructured_pruning_reaches_the_target_sparsity(trained_mlp):
    model = copy.deepcopy(trained_mlp[0])
    prune_unstructured(model, 0.7)
    assert weight_sparsity(model) == pytest.approx(0.7, abs=0.005)
    # global: layers end up with different sparsities, ranked across the whole model
    per_layer = [float((m.weight == 0).float().mean()) for m in prunable_layers(model)]
    assert max(per_layer) - min(per_layer) > 0.01
    make_permanent(model)
    assert not any(hasattr(m, "weight_orig") for m in model.modules())
    assert weight_sparsity(model) == pytest.approx(0.7, abs=0.005)


def test_unstructured_pruning_leaves_the_output_layer_alone(trained_mlp):
    model = copy.deepcopy(trained_mlp[0])
    prune_unstructured(model, 0.9)
    assert float((model.head.weight == 0).float().mean()) == 0.0


def test_pruned_weights_stay_zero_through_the_fine_tune(trained_mlp, digits):
    variant = Variant("original", (), trained_mlp[1], model=trained_mlp[0])
    ctx = CompressContext(bundle=digits, train_config=FAST)
    pruned = Prune(sparsity=0.6, structured=False, finetune_epochs=2).apply(variant, ctx)
    assert weight_sparsity(pruned.model) >= 0.595
    assert pruned.info["prune"]["finetune"], "the fine-tune did not run"
    assert accuracy(pruned.model, digits) > 0.85


def test_structured_pruning_removes_half_the_neurons_of_an_mlp(trained_mlp):
    model = copy.deepcopy(trained_mlp[0])
    before = count_parameters(model)
    prune_structured(model, 0.5, torch.zeros(2, 64))
    assert layer_widths(model) == [64, 64, 10]  # hidden 128 -> 64, the head keeps 10 classes
    assert model.body[1].in_features == 64 and model.head.in_features == 64
    assert count_parameters(model) < 0.4 * before
    assert model(torch.zeros(3, 64)).shape == (3, 10)


def test_structured_pruning_removes_conv_channels_and_follows_them_into_the_head(trained_cnn):
    model = copy.deepcopy(trained_cnn[0])
    prune_structured(model, 0.5, torch.zeros(2, 1, 8, 8))
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert [c.out_channels for c in convs] == [8, 16]
    assert [n.num_features for n in norms] == [8, 16]
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)


def test_structured_pruning_works_through_residual_blocks():
    spec = ModelSpec("resnet", {"stages": 2, "width": 16}, input_shape=(1, 8, 8), output_size=10)
    model = spec.build().eval()
    before = count_parameters(model)
    prune_structured(model, 0.5, torch.zeros(2, 1, 8, 8))
    assert count_parameters(model) < 0.5 * before
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)


def test_fine_tune_recovers_accuracy_lost_to_structured_pruning(trained_mlp, digits):
    variant = Variant("original", (), trained_mlp[1], model=trained_mlp[0])
    ctx = CompressContext(bundle=digits, train_config=FAST)
    raw = Prune(sparsity=0.75, finetune_epochs=0).apply(variant, ctx)
    tuned = Prune(sparsity=0.75, finetune_epochs=3).apply(variant, ctx)
    assert layer_widths(raw.model) == layer_widths(tuned.model) == [32, 32, 10]
    assert accuracy(tuned.model, digits) > accuracy(raw.model, digits)
    assert accuracy(tuned.model, digits) > 0.85


def test_iterative_schedule_fine_tunes_after_every_step(trained_mlp, digits):
    variant = Variant("original", (), trained_mlp[1], model=trained_mlp[0])
    ctx = CompressContext(bundle=digits, train_config=FAST)
    pruned = Prune(sparsity=0.5, steps=2, finetune_epochs=1).apply(variant, ctx)
    assert [s["step"] for s in pruned.info["prune"]["finetune"]] == [1, 2]
    assert layer_widths(pruned.model) == [64, 64, 10]


def test_a_structurally_pruned_model_saves_and_loads_with_its_smaller_layers(
    trained_cnn, digit_images, tmp_path
):
    variant = Variant("original", (), trained_cnn[1], model=trained_cnn[0])
    ctx = CompressContext(bundle=digit_images, train_config=FAST)
    pruned = Prune(sparsity=0.5, finetune_epochs=0).apply(variant, ctx)
    save_variant(tmp_path / "v", pruned)
    loaded = load_variant(tmp_path / "v")
    assert layer_widths(loaded.model) == layer_widths(pruned.model)
    x = digit_images.X_test[:16]
    with torch.no_grad():
        assert torch.allclose(loaded.model(x), pruned.model(x), atol=1e-6)


def test_unstructured_pruning_reaches_recurrent_weights_too():
    spec = ModelSpec("lstm", {"hidden": 16}, input_shape=(8, 8), output_size=3)
    model = spec.build().eval()
    prune_unstructured(model, 0.5)
    make_permanent(model)
    assert weight_sparsity(model) == pytest.approx(0.5, abs=0.01)
    assert float((model.rnn.weight_hh_l0 == 0).float().mean()) > 0.2
    assert model(torch.zeros(2, 8, 8)).shape == (2, 3)


def test_structured_pruning_shrinks_the_feed_forward_part_of_a_transformer():
    spec = ModelSpec(
        "transformer", {"d_model": 32, "heads": 4, "ff": 128}, input_shape=(10,), output_size=3
    )
    model = spec.build().eval()
    prune_structured(model, 0.5, torch.zeros(2, 10))
    assert [layer.linear1.out_features for layer in model.encoder.layers] == [64, 64]
    assert model(torch.zeros(2, 10)).shape == (2, 3)


def test_an_unprunable_model_fails_before_any_method_runs(digits, tmp_path):
    from tunelab.compress import compress_model
    from tunelab.data import DataBundle
    from tunelab.errors import ConfigError

    seq = DataBundle.from_arrays(
        digits.X_train.reshape(-1, 8, 8),
        digits.y_train,
        digits.X_val.reshape(-1, 8, 8),
        digits.y_val,
    )
    spec = ModelSpec("lstm", {"hidden": 8}, input_shape=(8, 8), output_size=10)
    started = time.perf_counter()
    with pytest.raises(ConfigError, match="structured: false"):
        compress_model(spec.build(), spec, seq, methods=["distill", "prune"], out_dir=tmp_path)
    assert time.perf_counter() - started < 10  # distillation never started
