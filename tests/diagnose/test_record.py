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


@pytest.mark.parametrize("fused", [True, False])
def test_both_ways_of_counting_zeros_give_the_same_numbers(monkeypatch, fused):
    """Squared norms of the signs (one fused kernel) and per-layer sums (large or 16-bit
    layers) count the same zeros, -0.0 included, and a NaN entry alike (torch's sign(NaN) is 0)."""
    from tunelab.diagnose import _probes

    if not fused:
        monkeypatch.setattr(_probes, "_EXACT_ROOT_COUNT", 1)
    torch.manual_seed(1)
    model = nn.Sequential(
        nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10)
    )
    model(torch.randn(32, 64)).relu().sum().backward()
    model[2].weight.grad[5, :] = -0.0
    probe = GradProbe(model)
    s = probe.sample(1, 1, track_update=False, count_zeros=True)
    layers = [model[0].weight, model[2].weight, model[4].weight]
    assert s.zero_by_layer == [float((p.grad == 0).sum()) / p.numel() for p in layers]
    model[4].weight.grad[0, 0] = math.nan
    s = probe.sample(2, 1, track_update=False, count_zeros=True)
    n = [p.numel() for p in layers]
    counted = [
        (k - float(_probes.nonzero_count(p.grad))) / k for k, p in zip(n, layers, strict=True)
    ]
    assert s.zero_by_layer == counted


def test_memo_keeps_a_value_within_a_pass_only():
    record = TrainingRecord(step_losses=[1.0, math.nan, 0.5])
    calls = []

    def compute():
        calls.append(1)
        return len(calls)

    assert record.memo("x", compute) == 1  # outside a pass: computed every time
    assert record.memo("x", compute) == 2
    with record.shared():
        assert record.memo("x", compute) == 3
        assert record.memo("x", compute) == 3  # kept within the pass
        assert record.finite_step_losses() == [1.0, 0.5]
        record.step_losses.append(0.25)  # the record grew inside the pass: read afresh
        assert record.memo("x", compute) == 4
        assert record.finite_step_losses() == [1.0, 0.5, 0.25]
    assert not record.cache  # forgotten after the pass
    assert record.finite_step_losses() == [1.0, 0.5, 0.25]


def test_median_abs_diff_is_numpys_number():
    import numpy as np

    from tunelab.diagnose._signals import median_abs_diff

    rng = np.random.default_rng(0)
    cases = [[1.0, 2.0], [0.3, 0.1, 0.7, 0.2], [1.0, math.nan, 2.0, 3.0], [0.0, -0.0, 1e-300]]
    cases += [rng.normal(size=n).tolist() for n in (3, 8, 31, 300)]
    for values in cases:
        want = float(np.median(np.abs(np.diff(values))))
        got = median_abs_diff(values)
        assert repr(got) == repr(want)


def test_diagnose_reuses_the_last_pass_only_while_nothing_was_recorded():
    from tunelab.diagnose import Doctor, _doctor

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    opt = torch.optim.SGD(model.parameters(), lr=2.0)
    doc = Doctor(model, opt, overhead_budget=None)
    x, y = torch.randn(64, 4), torch.randint(0, 2, (64,))

    def epoch():
        for _ in range(10):
            loss = torch.nn.functional.cross_entropy(model(x) * 50, y)
            opt.zero_grad()
            loss.backward()
            doc.after_backward(loss)
            opt.step()

    runs = []
    original = _doctor.Doctor._run_detectors

    def counted(self):
        runs.append(1)
        return original(self)

    _doctor.Doctor._run_detectors = counted
    try:
        epoch()
        doc.end_epoch(val_loss=1.0, val_metric=0.5)
        assert len(runs) == 1
        reused = doc.diagnose()
        assert len(runs) == 1  # nothing recorded since end_epoch's pass
        doc._pass_memo = None
        fresh = doc.diagnose()
        assert len(runs) == 2
        assert [f.to_dict() for f in reused] == [f.to_dict() for f in fresh]
        assert not any(f.remedy for f in doc.latest_)  # the pass's own findings untouched
        epoch()  # steps since the pass: a new one
        doc.diagnose()
        assert len(runs) == 3
    finally:
        _doctor.Doctor._run_detectors = original
