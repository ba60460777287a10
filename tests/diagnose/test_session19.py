"""Rules from held-out set D's misses (session 19): a run slow from the start, far below the
baseline, is underfitting even when it has lately sped up."""

from __future__ import annotations

from tunelab.diagnose import TrainingRecord
from tunelab.diagnose._detect_fit import Underfitting
from tunelab.diagnose._record import EpochRecord, GradSample


def _curve_record(losses: list[float], update: float) -> TrainingRecord:
    """An epoch-level record, 20 steps an epoch, with an update/weight ratio every 10 steps."""
    steps = [loss for loss in losses for _ in range(20)]
    rec = TrainingRecord(step_losses=steps)
    rec.grad_samples = [
        GradSample(step, 1 + step // 20, ["a"], [0.1], [1.0], 0.1, 0.0, update_ratio=[update])
        for step in range(0, len(steps), 10)
    ]
    for e, loss in enumerate(losses, start=1):
        rec.epochs.append(EpochRecord(e, e * 20, train_loss=loss))
    rec.steps = len(steps)
    return rec


def _run(losses: list[float], train: list[float], val: list[float]) -> TrainingRecord:
    """``_curve_record`` with steps of a healthy size (Adam's update/weight ratio of ~3e-3),
    train and val scores on 1,257 and 540 rows, and a linear baseline at 0.97."""
    rec = _curve_record(losses, update=3e-3)
    rec.metric_mode = "max"
    rec.baseline = {"model": "logistic regression", "score": 0.97}
    for epoch, t, v in zip(rec.epochs, train, val, strict=True):
        epoch.train_metric, epoch.val_metric = t, v
        epoch.train_rows, epoch.val_rows = 1257, 540
    return rec


def _slow_start(epochs: int = 15) -> list[float]:
    """A loss near chance for eight epochs, then falling ~3.5 % of the initial loss an epoch."""
    losses = [2.40 - 0.01 * e for e in range(8)]
    while len(losses) < epochs:
        losses.append(losses[-1] - 0.085)
    return losses


def test_a_run_slow_from_the_start_and_far_below_the_baseline_is_underfitting():
    """A 4-channel CNN pooled over the image (set D): 15 epochs, ~80 % of its loss left, train
    and val near 0.4 against a linear model's 0.97, gaining fast only lately."""
    losses = _slow_start()
    scores = [0.1 + 0.02 * e for e in range(15)]
    found = Underfitting().check(_run(losses, scores, [s - 0.01 for s in scores]))
    assert [f.kind for f in found] == ["underfitting"]
    assert found[0].figures["still_gaining"] is True
    assert found[0].figures["average_gain_per_epoch"] < Underfitting.CREEP
    assert "initial loss left after 15 epochs" in found[0].evidence


def test_a_young_run_gaining_fast_on_average_is_not_underfitting():
    """A 4-epoch repair round that removed 37 % of its loss (9 % an epoch) at 0.52 against the
    baseline's 0.95 is young."""
    losses = [2.30, 2.05, 1.75, 1.45]
    assert Underfitting().check(_run(losses, [0.3, 0.45, 0.58, 0.64], [0.3, 0.4, 0.48, 0.52])) == []


def test_a_slow_run_that_fits_its_training_rows_is_not_underfitting():
    """The training score at the baseline's level: the capacity is there (a young run or a
    generalisation matter), however slow the loss."""
    losses = _slow_start()
    train = [0.5 + 0.035 * e for e in range(15)]  # up to 0.99
    val = [0.1 + 0.02 * e for e in range(15)]
    assert Underfitting().check(_run(losses, train, val)) == []


def _thrown_then_settling(best: float) -> TrainingRecord:
    """Set C's Transformer under Adam at lr 0.05 (fresh seed 70): 2.4 before the first update,
    then 12 steps at 2.5-4.6x it, never two in a row at the step guard's 4x, then a slow fall."""
    ratios = [1.0, 2.5, 4.0, 3.9, 4.6, 2.8, 4.6, 3.7, 2.8, 2.9, 2.8, 3.6, 2.5]
    losses = [2.4 * r for r in ratios] + [2.0 * 0.985**i for i in range(187)]
    rec = TrainingRecord(step_losses=losses, metric_mode="max")
    rec.baseline = {"model": "logistic regression", "score": 0.972}
    for e in range(1, 11):
        epoch = EpochRecord(e, e * 20, train_loss=losses[e * 20 - 1], val_metric=best)
        epoch.val_rows = 540
        rec.epochs.append(epoch)
    rec.steps = len(losses)
    return rec


def test_a_loss_held_at_twice_its_start_for_many_steps_is_a_blow_up():
    from tunelab.diagnose._detect_loss import DivergingLoss

    found = DivergingLoss().check(_thrown_then_settling(best=0.79))
    assert [(f.kind, f.severity) for f in found] == [("diverging_loss", "warning")]
    assert found[0].figures["steps_held_at_twice_the_start"] == 12
    assert found[0].first_seen["step"] == 2
    # The same jump in a run that then reaches the baseline cost nothing measurable.
    assert DivergingLoss().check(_thrown_then_settling(best=0.975)) == []


def test_two_steps_at_twice_the_start_are_no_blow_up():
    """A healthy Adagrad run's first full-rate steps (the longest such run in 385 healthy
    records of session 19's first round: 2 steps)."""
    from tunelab.diagnose._detect_loss import DivergingLoss

    rec = _thrown_then_settling(best=0.79)
    rec.step_losses[3:13] = [2.0] * 10  # only steps 2-3 stay at 2.5x and 4x the start
    assert DivergingLoss().check(rec) == []


def test_a_loss_crawling_from_the_start_is_slow_convergence():
    """Adagrad at lr 1e-3 (set D): lower at every epoch, 3 % gone in 15 epochs, gains shrinking
    as Adagrad's steps do, update ratios at 1.1e-3 (just above the tiny-step bar)."""
    from tunelab.diagnose._detect_loss import SlowConvergence

    losses = [1.10 - 0.012 * (1 - 0.8**e) / 0.2 * 0.5 for e in range(15)]
    found = SlowConvergence().check(_curve_record(losses, update=1.1e-3))
    assert [f.kind for f in found] == ["slow_convergence"]
    # A loss that fell by a third and then levelled off is no crawl, at the same step size.
    levelled = [1.10 * (0.67 + 0.33 * 0.5**e) for e in range(15)]
    assert SlowConvergence().check(_curve_record(levelled, update=1.1e-3)) == []
