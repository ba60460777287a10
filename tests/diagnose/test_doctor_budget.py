"""The doctor's cost budget: dense at the start, a minimum per epoch, the rest within budget."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tunelab.config import ConfigError, parse_config
from tunelab.diagnose import Doctor, DoctorCallback, _probes
from tunelab.diagnose._probes import CostMeter

# A budget nothing optional fits into: only the mandatory samples are taken.
_NONE_FITS = 1e-12


def _loop(budget, *, epochs=3, batches=20, every=2, batch=32, seed=0, width=32, sgd_lr=None):
    """A plain loop with the doctor: Adam at 1e-3, or SGD at ``sgd_lr``."""
    torch.manual_seed(seed)
    X, y = torch.randn(batches * batch, 16), torch.randint(0, 4, (batches * batch,))
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(X, y),
        batch_size=batch,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )
    model = nn.Sequential(nn.Linear(16, width), nn.ReLU(), nn.Linear(width, 4))
    if sgd_lr is None:
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=sgd_lr)
    doc = Doctor(model, opt, every_n_steps=every, overhead_budget=budget)
    for _ in range(epochs):
        for xb, yb in doc.watch(loader):
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            doc.after_backward(loss)
            opt.step()
        doc.end_epoch(train_loss=float(loss.detach()))
    return doc


def test_without_a_budget_samples_are_exactly_every_n_steps():
    doc = _loop(None, every=3)
    steps = [s.step for s in doc.record.grad_samples]
    # The first five steps, then every third step counted from the last sample.
    assert steps == [1, 2, 3, 4, 5, *range(8, 61, 3)]
    assert doc.overhead["budget"] is None and doc.overhead["deferred"] == {}


def test_a_tight_budget_keeps_the_dense_start_and_the_minimum_per_epoch():
    free, tight = _loop(None), _loop(_NONE_FITS)
    steps = [s.step for s in tight.record.grad_samples]
    assert steps[:5] == [1, 2, 3, 4, 5]  # where explosions and bad initialisations show
    per_epoch = {e: sum(1 for s in tight.record.grad_samples if s.epoch == e) for e in (1, 2, 3)}
    assert min(per_epoch.values()) >= 1
    assert len(steps) < len(free.record.grad_samples) / 2
    # Those later samples measure the update ratio and the zero share too: the detectors'
    # medians would otherwise rest on the first steps alone (a high learning rate's largest).
    late = [s for s in tight.record.grad_samples if s.step > 5]
    assert late and all(s.update_ratio and s.zero_by_layer for s in late)
    assert tight.overhead["deferred"]["grad"] > 0
    # Activations on at least 64 inputs in every epoch (the dead/saturated rules need 32).
    for epoch in tight.record.epochs:
        assert epoch.activations and min(a.rows for a in epoch.activations) >= 64
    # Input statistics densely until 256 rows, labels until 512.
    assert tight.record.batches.rows >= 256
    assert sum(tight.record.batches.label_counts.values()) >= 512
    # The first detector pass always runs.
    assert tight.latest_ is not None and tight._last_pass[1] > 0


def test_a_tight_budget_does_not_change_what_a_broken_run_is_diagnosed_with():
    def diverging(budget):
        return _loop(budget, every=10, width=64, sgd_lr=20.0).diagnose()

    free, tight = diverging(None), diverging(_NONE_FITS)
    assert free.causes[0].kind == tight.causes[0].kind
    assert free.kinds("warning") == tight.kinds("warning")


def test_the_meter_spreads_optional_work_in_time(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(_probes.time, "perf_counter", lambda: now[0])
    meter = CostMeter(0.1)
    assert meter.affords("grad")  # before the first step nothing is known
    meter.begin()
    meter.charge("grad", 1.0)
    now[0] = 15.0  # 14 s of training: 1.4 s allowed, 1 s spent, the next sample costs 1 s
    assert not meter.affords("grad")
    now[0] = 21.5  # 20.5 s of training: 2.05 s allowed >= 1 + 1
    assert meter.affords("grad")
    assert meter.deferred == {"grad": 1}
    assert meter.share() == pytest.approx(1.0 / 20.5)


def test_the_meter_smooths_costs_and_books_the_update_with_its_sample():
    meter = CostMeter(0.05)
    meter.charge("grad", 4.0)
    meter.charge("grad", 2.0)
    assert meter.costs["grad"] == pytest.approx(3.0)
    meter.charge("grad", 1.0, extend=True)
    assert meter.costs["grad"] == pytest.approx(4.0) and meter.spent == pytest.approx(7.0)


@pytest.mark.parametrize("budget", [0.0, -0.1, 1.5])
def test_an_impossible_budget_is_refused(budget):
    with pytest.raises(ValueError, match="overhead_budget"):
        Doctor(nn.Linear(2, 2), None, overhead_budget=budget)


@pytest.mark.parametrize("budget", [0, 2, "lots"])
def test_the_config_setting_is_validated_in_one_line(budget):
    with pytest.raises(ConfigError) as err:
        parse_config({"diagnose": {"overhead_budget": budget}})
    message = str(err.value)
    assert "\n" not in message and "diagnose.overhead_budget" in message


def test_the_config_setting_reaches_the_doctor():
    assert parse_config({}).diagnose.overhead_budget == 0.05
    cfg = parse_config({"diagnose": {"enabled": True, "overhead_budget": None}})
    assert cfg.diagnose.overhead_budget is None


def test_the_trainer_scores_training_rows_on_the_epochs_the_rules_read(tmp_path):
    from tunelab.train import run_training

    cfg = parse_config(
        {
            "name": "budget",
            "run_root": str(tmp_path),
            "data": {"source": "sklearn", "dataset": "digits", "max_rows": 400},
            "model": {"builder": "mlp", "params": {"depth": 1, "width": 16}},
            "train": {"epochs": 7, "progress": "none", "early_stopping": {"enabled": False}},
            "diagnose": {"enabled": True, "overhead_budget": _NONE_FITS},
        }
    )
    callback = DoctorCallback(cfg)
    run_training(cfg, callbacks=[callback])
    scored = [e.train_metric is not None for e in callback.doctor.record.epochs]
    # The end is known (no early stopping): the last two planned epochs are what the rules read.
    assert scored == [False, False, False, False, False, True, True]
    stopping = cfg.with_values({"name": "stopping", "train.early_stopping.enabled": True})
    callback = DoctorCallback(stopping)
    run_training(stopping, callbacks=[callback])
    scored = [e.train_metric is not None for e in callback.doctor.record.epochs]
    # Early stopping may end it any time: never two epochs in a row without.
    assert not any(not a and not b for a, b in itertools.pairwise(scored))
    assert scored[-1]
    free = cfg.with_values({"name": "free", "diagnose.overhead_budget": None})
    callback = DoctorCallback(free)
    run_training(free, callbacks=[callback])
    assert all(e.train_metric is not None for e in callback.doctor.record.epochs)
