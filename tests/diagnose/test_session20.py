"""Rules from held-out set E's misses (session 20): an update that threw the loss to twice its
start and left the net dead is a blow-up, though the loss never reached 10x."""

from __future__ import annotations

from tunelab.diagnose import TrainingRecord
from tunelab.diagnose._detect_loss import DivergingLoss
from tunelab.diagnose._record import EpochRecord, GradSample


def _with_epochs(
    rec: TrainingRecord, *, per_epoch: int, val_metric: float, val_rows: int
) -> TrainingRecord:
    """Close ``rec``'s step losses into epochs of ``per_epoch`` steps, each with the same
    validation score on ``val_rows`` rows."""
    losses = rec.step_losses
    for e in range(1, len(losses) // per_epoch + 1):
        epoch = EpochRecord(e, e * per_epoch, train_loss=losses[e * per_epoch - 1])
        epoch.val_metric, epoch.val_rows = val_metric, val_rows
        rec.epochs.append(epoch)
    rec.steps = len(losses)
    return rec


def _killed_by_a_step(
    *, after: float = 1.38, grad_after: float = 0.0, best: float = 0.26
) -> TrainingRecord:
    """Set E's Conv1d under Adam at lr 0.05 with batches of 4 (seed 0): 1.38 before the first
    update, 3.26 at step 3, then every layer's gradient at ``grad_after`` and the loss at
    ``after`` for 300 steps; validation at ``best`` against a gradient-boosted model's 0.77."""
    losses = [1.38, 1.97, 3.26, 1.37, 1.52] + [after] * 295
    rec = TrainingRecord(step_losses=losses, metric_mode="max")
    rec.baseline = {"model": "gradient boosting", "score": 0.767}
    early = [[0.008, 0.009, 0.008, 0.013], [0.055, 0.032, 0.051, 0.55], [0.18, 0.07, 0.03, 0.4]]
    rec.grad_samples = [
        GradSample(step, 1, list("abcd"), rms, [0.2, 0.1, 0.05, 0.1], 1.0, 0.3)
        for step, rms in enumerate(early, start=1)
    ] + [
        GradSample(step, 1 + step // 100, list("abcd"), [grad_after] * 4, [0.3] * 4, 0.0, 1.0)
        for step in range(10, 300, 10)
    ]
    return _with_epochs(rec, per_epoch=100, val_metric=best, val_rows=240)


def test_a_step_at_twice_the_start_that_left_every_gradient_dead_is_a_blow_up():
    found = DivergingLoss().check(_killed_by_a_step())
    assert [(f.kind, f.severity) for f in found] == [("diverging_loss", "warning")]
    assert found[0].figures["killed_the_net"] is True
    assert found[0].first_seen["step"] == 3
    assert "left the net dead" in found[0].evidence


def test_the_same_jump_is_no_blow_up_when_the_gradients_lived_on():
    """One batch at 2.4x with the net still learning (gradients of their early size)."""
    assert DivergingLoss().check(_killed_by_a_step(grad_after=0.05)) == []


def test_the_same_jump_is_no_blow_up_when_the_loss_then_fell_far_below_its_start():
    """Gradients shrink a thousandfold as a net fits its rows: with the loss at 5 % of its
    start that is learning, not a dead net."""
    assert DivergingLoss().check(_killed_by_a_step(after=0.07)) == []


def test_the_same_jump_is_no_blow_up_when_the_run_reached_the_baseline():
    assert DivergingLoss().check(_killed_by_a_step(best=0.78)) == []


def _thrown_with_a_dip(ratios: list[float], best: float = 0.64) -> TrainingRecord:
    """Set C's Transformer under Adam at lr 0.05 (fresh seed 110): 2.44 before the first
    update, then the first steps at ``ratios`` times it, then a slow fall to half the start."""
    losses = [2.44 * r for r in [1.0, *ratios]]
    losses += [2.0 * 0.99**i for i in range(200 - len(losses))]
    rec = TrainingRecord(step_losses=losses, metric_mode="max")
    rec.baseline = {"model": "linear model", "score": 0.98}
    return _with_epochs(rec, per_epoch=20, val_metric=best, val_rows=540)


# Seed 110's first 17 steps after the first: 14 at 2x or more, split 7 and 7 by one at 1.6x.
_SEED_110 = [1.78, 3.55, 2.99, 3.51, 2.69, 6.25, 2.85, 3.04, 1.6, 3.17, 2.33, 2.92, 2.58, 2.37]
_SEED_110 += [2.51, 2.25, 1.82]


def test_six_of_ten_steps_at_twice_the_start_are_a_blow_up_though_one_dips():
    found = DivergingLoss().check(_thrown_with_a_dip(_SEED_110))
    assert [(f.kind, f.severity) for f in found] == [("diverging_loss", "warning")]
    assert found[0].figures["steps_held_at_twice_the_start"] == 14
    assert found[0].first_seen["step"] == 3
    # ... unless the run then reached the baseline: the jump cost nothing measurable.
    assert DivergingLoss().check(_thrown_with_a_dip(_SEED_110, best=0.985)) == []


def test_four_of_sixteen_steps_at_twice_the_start_are_no_blow_up():
    """The most such steps in any 16 among 804 healthy runs: a healthy Adagrad run's first
    full-rate steps."""
    assert DivergingLoss().check(_thrown_with_a_dip([2.5, 1.2, 2.2, 1.1, 2.8, 1.0, 2.1])) == []


def test_a_loss_alternating_with_twice_its_start_is_no_blow_up():
    """Every other step at 2.1x: five of any ten steps, an oscillation's pattern."""
    assert DivergingLoss().check(_thrown_with_a_dip([2.1, 0.9] * 8)) == []


def _overfit_then_recovering(back_to: float) -> TrainingRecord:
    """Set D's 60 noisy Friedman 2 rows under a 2x512 net (fresh seed 79), as accuracies: the
    validation loss at its best (0.40) at epoch 8, up to 1.2 by epoch 40 while the training
    loss falls to 0.02, then falling again to ``back_to`` over the last third."""
    epochs = 60
    val = [1.0 - 0.075 * e for e in range(8)]  # 1.0 -> 0.475, best 0.40 at epoch 9
    val += [0.40 + 0.8 * (e / 31) for e in range(32)]  # up to 1.2 at epoch 40
    val += [1.2 - (1.2 - back_to) * (e + 1) / 20 for e in range(20)]
    train = [1.0 * 0.93**e for e in range(epochs)]
    steps = [t * (0.8 if i % 2 else 1.2) for t in train for i in range(40)]
    rec = TrainingRecord(step_losses=steps, metric_mode="max")
    rec.batches.rows, rec.batches.batches = 16 * len(steps), len(steps)
    rec.baseline = {"model": "gradient boosting", "score": 0.78}
    for e in range(1, epochs + 1):
        v = val[e - 1]
        epoch = EpochRecord(e, e * 40, train_loss=train[e - 1], val_loss=v)
        epoch.train_metric, epoch.val_metric = min(0.99, 0.6 + 0.01 * e), 1.2 - v
        epoch.train_rows, epoch.val_rows = 700, 300
        rec.epochs.append(epoch)
    rec.steps = len(steps)
    return rec


def test_a_validation_loss_falling_back_towards_a_best_left_long_ago_is_still_overfitting():
    """Early stopping kept epoch 9 and would have stopped there: a late fall that ends far
    above that best is no run still improving."""
    from tunelab.diagnose._detect_fit import Overfitting

    found = Overfitting().check(_overfit_then_recovering(back_to=0.8))
    assert [f.kind for f in found] == ["overfitting"]
    assert found[0].figures["validation_improving"] is False
    assert found[0].figures["val_loss_recent_above_best"] > 0.3


def test_a_validation_loss_falling_back_to_its_best_is_a_run_still_improving():
    from tunelab.diagnose._detect_fit import Overfitting

    assert Overfitting().check(_overfit_then_recovering(back_to=0.401)) == []


def _killed_by_large_updates(update: float) -> TrainingRecord:
    """Set E's Conv1d under Adam at lr 0.05 (fresh seed 16): the loss never at twice its start
    (1.41, at most 1.54x), the first five updates moving the layers by ``update`` of their
    size, then every gradient exactly zero and the loss at the chance level."""
    rec = _killed_by_a_step()
    rec.step_losses[:5] = [1.41, 1.77, 1.50, 2.17, 1.58]
    rec.step_losses[5:] = [1.40] * (len(rec.step_losses) - 5)
    for sample in rec.grad_samples[:3]:
        sample.update_ratio = [update, update / 2, update, update / 3]
    return rec


def test_first_updates_as_large_as_the_layers_that_left_the_net_dead_are_a_blow_up():
    found = DivergingLoss().check(_killed_by_large_updates(update=0.7))
    assert [(f.kind, f.severity) for f in found] == [("diverging_loss", "warning")]
    assert found[0].figures["killed_the_net"] is True
    assert found[0].figures["largest_early_update_ratio"] == 0.7
    assert "moved a layer by 0.7 of its size" in found[0].evidence
    # Steps of a healthy size before the collapse: nothing says the rate killed the net.
    assert DivergingLoss().check(_killed_by_large_updates(update=0.003)) == []
