"""The record's shortcuts for the checks detectors repeat every pass give the plain answers."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from tunelab.diagnose._probes import GradProbe
from tunelab.diagnose._record import GradSample, TrainingRecord, all_finite

BIG = 1e308  # finite, but two of them overflow a sum


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], True),
        ([0.5, 2.0, -3.0], True),
        ([BIG, BIG], True),  # the sum overflows; every value is still finite
        ([1.0, math.nan], False),
        ([math.inf, -math.inf], False),
        ([BIG, math.inf], False),
    ],
)
def test_all_finite_is_a_scan_of_every_value(values, expected):
    assert all_finite(values) is expected
    assert all_finite(values) is all(math.isfinite(v) for v in values)


@pytest.mark.parametrize(
    ("losses", "first"),
    [([1.0, 0.9], None), ([BIG, BIG, 1.0], None), ([1.0, BIG, math.nan, math.inf], 2)],
)
def test_first_nonfinite_step(losses, first):
    record = TrainingRecord(step_losses=list(losses))
    assert record.first_nonfinite_step() == first


def test_a_sample_is_finite_when_its_norms_are():
    def sample(total, weights):
        return GradSample(1, 1, ["a", "b"], [0.1, 0.1], weights, total, None)

    assert sample(1.0, [0.5, 0.5]).finite
    assert sample(1.0, [BIG, BIG]).finite
    assert not sample(math.nan, [0.5, 0.5]).finite
    assert not sample(1.0, [0.5, math.inf]).finite


def test_the_gradient_probe_counts_exact_zeros_per_layer():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    model(torch.randn(16, 4)).sum().backward()
    model[0].weight.grad[:3] = 0.0
    model[0].weight.grad[3, 0] = -0.0
    s = GradProbe(model).sample(1, 1, track_update=False, count_zeros=True)
    zeros = [float((p.grad == 0).sum()) / p.numel() for p in (model[0].weight, model[2].weight)]
    assert s.zero_by_layer == zeros
    assert s.zero_fraction == (13 + float((model[2].weight.grad == 0).sum())) / (32 + 24)
