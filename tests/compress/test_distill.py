"""Distillation: the loss is Hinton's, the student is narrower, soft targets carry the task."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tunelab.compress import (
    CompressContext,
    Distill,
    Variant,
    distillation_loss,
    scale_widths,
    student_spec,
)
from tunelab.config import TrainConfig
from tunelab.errors import ConfigError
from tunelab.models import ModelSpec, count_parameters

from .conftest import accuracy


def test_alpha_zero_is_plain_cross_entropy_on_the_labels():
    s, t, y = torch.randn(8, 5), torch.randn(8, 5), torch.randint(0, 5, (8,))
    loss = distillation_loss(s, t, y, temperature=3.0, alpha=0.0)
    assert torch.allclose(loss, F.cross_entropy(s, y))


def test_alpha_one_is_temperature_squared_kl_to_the_soft_targets():
    s, t, y = torch.randn(8, 5), torch.randn(8, 5), torch.randint(0, 5, (8,))
    T = 4.0
    expected = (
        (F.softmax(t / T, 1) * (F.log_softmax(t / T, 1) - F.log_softmax(s / T, 1))).sum(1).mean()
        * T
        * T
    )
    loss = distillation_loss(s, t, y, temperature=T, alpha=1.0)
    assert torch.allclose(loss, expected, atol=1e-6)
    assert float(distillation_loss(t, t, y, temperature=T, alpha=1.0)) == pytest.approx(0, abs=1e-6)


def test_soft_loss_gradient_does_not_reach_the_teacher():
    s = torch.randn(4, 3, requires_grad=True)
    t = torch.randn(4, 3, requires_grad=True)
    distillation_loss(s, t, torch.tensor([0, 1, 2, 0]), temperature=2.0, alpha=0.5).backward()
    assert s.grad is not None and t.grad is None


def test_regression_distillation_matches_the_teacher_values():
    s, t, y = torch.randn(6, 1), torch.randn(6, 1), torch.randn(6)
    loss = distillation_loss(s, t, y, temperature=1.0, alpha=0.5, task="regression")
    expected = 0.5 * F.mse_loss(s, t) + 0.5 * F.mse_loss(s.reshape(-1), y)
    assert torch.allclose(loss, expected)


@pytest.mark.parametrize(
    ("builder", "params", "shape", "expected"),
    [
        ("mlp", {"depth": 2, "width": 128}, (64,), {"depth": 2, "width": 64}),
        ("mlp", {"widths": [256, 100]}, (64,), {"widths": [128, 50]}),
        ("cnn", {}, (1, 8, 8), {"channels": [16, 32], "hidden": 64}),
        ("lstm", {"hidden": 64}, (8, 8), {"hidden": 32}),
        ("transformer", {"d_model": 64, "heads": 4}, (10,), {"d_model": 32, "heads": 4, "ff": 64}),
    ],
)
def test_student_is_the_same_builder_at_half_the_width(builder, params, shape, expected):
    spec = ModelSpec(builder, params, input_shape=shape, output_size=10)
    teacher = spec.build()
    student = student_spec(spec, width_mult=0.5, teacher=teacher)
    assert student.builder == builder and student.params == expected
    assert count_parameters(student.build()) < 0.6 * count_parameters(teacher)


def test_width_scaling_keeps_attention_widths_divisible_by_the_heads():
    scaled, changed = scale_widths({"d_model": 36, "heads": 8, "dropout": 0.1}, 0.5)
    assert scaled["d_model"] % 8 == 0 and changed == ["d_model"]


def test_a_builder_without_width_parameters_asks_for_explicit_student_params():
    spec = ModelSpec(
        "custom", {"factory": "mypkg:make", "depth": 3}, input_shape=(4,), output_size=2
    )
    with pytest.raises(ConfigError, match="student_params"):
        student_spec(spec, width_mult=0.5)
    explicit = student_spec(spec, width_mult=0.5, params={"depth": 1})
    assert explicit.params == {"factory": "mypkg:make", "depth": 1}


def test_soft_targets_alone_teach_the_student_when_labels_are_useless(trained_mlp, digits):
    """Training labels shuffled: alpha=1 still learns digits from the teacher, alpha=0 cannot."""
    teacher, spec = trained_mlp
    g = torch.Generator().manual_seed(1)
    noisy = digits.replace(y_train=digits.y_train[torch.randperm(len(digits.y_train), generator=g)])
    variant = Variant("original", (), spec, model=teacher)
    ctx = CompressContext(bundle=noisy, train_config=TrainConfig(lr=3e-3, batch_size=64))
    soft = Distill(width_mult=0.5, alpha=1.0, temperature=4.0, epochs=6).apply(variant, ctx)
    hard = Distill(width_mult=0.5, alpha=0.0, temperature=4.0, epochs=6).apply(variant, ctx)
    assert soft.spec.params["width"] == 64
    assert count_parameters(soft.model) < 0.4 * count_parameters(teacher)
    assert accuracy(soft.model, digits) > 0.85
    assert accuracy(hard.model, digits) < 0.4
