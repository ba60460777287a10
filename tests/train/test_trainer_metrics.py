"""On-device epoch metrics equal sklearn's; schedules set the learning rates they promise."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from tunelab.config import ScheduleConfig
from tunelab.train import LRSchedule
from tunelab.train._metrics import epoch_scores, full_evaluation


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_epoch_classification_scores_equal_sklearn(seed):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(120, 5, generator=g)
    logits[:, 4] -= 10  # class 4 is never predicted
    y = torch.randint(0, 4, (120,), generator=g)  # and never true
    scores = epoch_scores(logits, y, torch.tensor(0.5), "classification", 5)
    pred = logits.argmax(1).numpy()
    p, r, f, _ = skm.precision_recall_fscore_support(
        y.numpy(), pred, average="macro", zero_division=0
    )
    assert scores["accuracy"] == pytest.approx(skm.accuracy_score(y.numpy(), pred))
    assert scores["precision_macro"] == pytest.approx(p)
    assert scores["recall_macro"] == pytest.approx(r)
    assert scores["f1_macro"] == pytest.approx(f)
    assert scores["loss"] == 0.5


def test_epoch_regression_scores_equal_sklearn():
    g = torch.Generator().manual_seed(0)
    y = torch.randn(50, generator=g)
    out = (y + 0.3 * torch.randn(50, generator=g)).unsqueeze(1)
    scores = epoch_scores(out, y, torch.tensor(0.0), "regression", 0)
    assert scores["mse"] == pytest.approx(skm.mean_squared_error(y, out.squeeze(1)))
    assert scores["mae"] == pytest.approx(skm.mean_absolute_error(y, out.squeeze(1)))
    assert scores["r2"] == pytest.approx(skm.r2_score(y, out.squeeze(1)))


def test_full_evaluation_has_per_class_scores_matrix_and_report():
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    logits = torch.nn.functional.one_hot(torch.tensor([0, 1, 1, 1, 2, 0]), 3).float()
    ev = full_evaluation(
        logits, y, 0.1, task="classification", classes=["a", "b", "c"], split="test"
    )
    assert ev.confusion_matrix == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert ev.per_class["b"]["precision"] == pytest.approx(2 / 3)
    assert ev.per_class["c"]["recall"] == pytest.approx(0.5)
    assert ev.metrics["test_accuracy"] == pytest.approx(4 / 6)
    assert "macro avg" in ev.classification_report and " b " in ev.classification_report


def _lrs(cfg: ScheduleConfig, epochs=4, steps=5, base=0.1, metrics=None):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=base)
    sched = LRSchedule(cfg, opt, steps_per_epoch=steps, epochs=epochs)
    sched.apply()
    seen = []
    for epoch in range(epochs):
        for _ in range(steps):
            seen.append(opt.param_groups[0]["lr"])
            sched.step_batch()
        sched.step_epoch((metrics or {}).get(epoch, {}))
    return seen, sched


def test_step_and_exponential_schedules_decay_per_epoch():
    seen, _ = _lrs(ScheduleConfig(name="step", step_size=2, gamma=0.5))
    assert seen[::5] == pytest.approx([0.1, 0.1, 0.05, 0.05])
    seen, _ = _lrs(ScheduleConfig(name="exponential", gamma=0.5))
    assert seen[::5] == pytest.approx([0.1, 0.05, 0.025, 0.0125])


def test_cosine_with_warmup_ramps_up_then_anneals_to_min_lr():
    seen, sched = _lrs(ScheduleConfig(name="cosine", warmup_epochs=1, min_lr=0.001))
    assert seen[:5] == pytest.approx([0.02, 0.04, 0.06, 0.08, 0.1])
    assert all(a >= b for a, b in itertools.pairwise(seen[5:]))
    sched.apply()
    assert sched.optimizer.param_groups[0]["lr"] == pytest.approx(0.001)


def test_onecycle_peaks_at_max_lr_mult_then_ends_near_zero():
    seen, _ = _lrs(ScheduleConfig(name="onecycle", max_lr_mult=10.0), epochs=10)
    assert seen[0] == pytest.approx(1.0 / 25)
    assert max(seen) == pytest.approx(1.0, rel=1e-3)
    assert seen.index(max(seen)) == 15  # 30 % of 50 steps
    assert seen[-1] < 0.01


def test_plateau_cuts_the_lr_when_the_monitor_stalls_and_state_round_trips():
    stalled = {e: {"val_loss": 1.0} for e in range(6)}
    cfg = ScheduleConfig(name="plateau", patience=1, factor=0.5)
    seen, sched = _lrs(cfg, epochs=6, steps=1, metrics=stalled)
    assert seen == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05, 0.025])
    p = torch.nn.Parameter(torch.zeros(1))
    other = LRSchedule(cfg, torch.optim.SGD([p], lr=0.1), steps_per_epoch=1, epochs=6)
    other.load_state_dict(sched.state_dict())
    assert other.optimizer.param_groups[0]["lr"] == pytest.approx(
        sched.optimizer.param_groups[0]["lr"]
    )
    assert math.isclose(other.plateau_mult, 0.25)


def test_schedules_scale_every_parameter_group_from_its_own_base_lr():
    a, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([{"params": [a], "lr": 0.1}, {"params": [b], "lr": 0.01}])
    sched = LRSchedule(
        ScheduleConfig(name="exponential", gamma=0.5), opt, steps_per_epoch=1, epochs=3
    )
    sched.step_epoch({})
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.05, 0.005])
    assert np.isfinite([g["lr"] for g in opt.param_groups]).all()
