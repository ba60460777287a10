"""Generalisation detectors: overfitting (train far better than val) and underfitting."""

from __future__ import annotations

import math

import numpy as np

from ._detect_loss import SlowConvergence
from ._detector import Detector, register_detector
from ._finding import Finding
from ._record import EpochRecord, TrainingRecord
from ._signals import diverged, progress, relative_improvements, score_scale, update_scale


def _metric_gap(record: TrainingRecord, epochs: list[EpochRecord]) -> tuple[float, float] | None:
    """(train - val score over the last two epochs, last train score), on a 0..1 scale."""
    scale = score_scale(record)
    pairs = [(e.train_metric, e.val_metric) for e in epochs]
    pairs = [(t, v) for t, v in pairs if t is not None and v is not None]
    if scale is None or len(pairs) < 2:
        return None
    last = pairs[-2:]
    gap = float(np.mean([(t - v) / scale for t, v in last]))
    return gap, pairs[-1][0] / scale


@register_detector("overfitting")
class Overfitting(Detector):
    """Training keeps improving while validation does not.

    Metric gap rule from AUTOTRAINER (ICSE'21): train - val accuracy >= 0.1 (>= 0.07 when train
    accuracy > 0.9), and the validation error at least ``ERROR_RATIO`` times the training error
    (a regression R² of 0.6 vs 0.45 is a hard task, not memorisation). Loss rule after
    SageMaker's Overfit/Overtraining rules (validation loss rising for several epochs while
    training loss falls), made scale-free: the validation loss
    sits at least ``RISE`` above its best for ``PATIENCE`` epochs, and the train/val loss gap is at
    least ``LOSS_GAP`` of the initial loss (a mild rise on a nearly-solved task is not a problem).
    When no scores are given, a settled gap also counts: validation loss no longer improving
    (less than ``SETTLED`` over the last third of the epochs), ``STABLE_GAP`` of the initial loss
    above a training loss at most a ``TRAIN_FRACTION``-th of it.
    """

    kinds = ("overfitting",)
    GAP = 0.10
    GAP_HIGH_TRAIN = 0.07
    ERROR_RATIO = 2.0
    RISE = 0.5
    PATIENCE = 2
    LOSS_GAP = 0.25
    STABLE_GAP = 0.15
    TRAIN_FRACTION = 10.0
    SETTLED = 0.05
    MIN_EPOCHS = 3

    def check(self, record: TrainingRecord) -> list[Finding]:
        epochs = [e for e in record.epochs if e.val_loss is not None or e.val_metric is not None]
        if len(epochs) < self.MIN_EPOCHS or diverged(record):
            return []
        initial = record.initial_loss()
        figures: dict = {}
        reasons: list[str] = []
        severity = None
        gap = _metric_gap(record, epochs)
        if gap is not None:
            g, train_score = gap
            figures.update(metric_gap=g, train_score=train_score)
            limit = self.GAP_HIGH_TRAIN if train_score > 0.9 else self.GAP
            val_error, train_error = 1 - (train_score - g), 1 - train_score
            figures["error_ratio"] = val_error / train_error if train_error > 0 else math.inf
            if g >= limit and val_error >= self.ERROR_RATIO * train_error:
                reasons.append(f"train score {train_score:.3f} vs validation {train_score - g:.3f}")
                severity = "error" if g >= 2.5 * self.GAP else "warning"
        pairs = [(e.val_loss, e.loss) for e in epochs if e.val_loss is not None]
        pairs = [
            (v, t) for v, t in pairs if t is not None and math.isfinite(v) and math.isfinite(t)
        ]
        if len(pairs) >= self.MIN_EPOCHS and initial:
            vals = [v for v, _ in pairs]
            best_i = int(np.argmin(vals))
            best = vals[best_i]
            tail = vals[-self.PATIENCE :]
            rise = min(tail) / best - 1 if best > 0 else 0.0
            train_then, train_now = pairs[best_i][1], pairs[-1][1]
            loss_gap = (vals[-1] - train_now) / initial
            since = len(vals) - 1 - best_i
            figures.update(
                val_loss_best=best,
                val_loss_best_epoch=epochs[best_i].epoch,
                val_loss_last=vals[-1],
                val_loss_rise=rise,
                train_loss_last=train_now,
                loss_gap=loss_gap,
                epochs_since_best=since,
            )
            if (
                since >= self.PATIENCE
                and rise >= self.RISE
                and loss_gap >= self.LOSS_GAP
                and train_now < train_then
            ):
                reasons.append(
                    f"validation loss rose {rise:.0%} above its best {best:.3g} (epoch "
                    f"{epochs[best_i].epoch}) while the training loss fell to {train_now:.3g}"
                )
                loss_severity = "error" if rise >= 1.0 and loss_gap >= 0.5 else "warning"
                if severity is None or loss_severity == "error":
                    severity = loss_severity
            # Without scores, a wide and settled gap says it too: validation has stopped
            # improving while the training loss is a small fraction of it.
            third = vals[-max(2, len(vals) // 3) :]
            settled = (third[0] - vals[-1]) < self.SETTLED * vals[-1]
            if (
                gap is None
                and severity is None
                and loss_gap >= self.STABLE_GAP
                and train_now * self.TRAIN_FRACTION <= vals[-1]
                and settled
            ):
                times = vals[-1] / max(train_now, 1e-12)
                reasons.append(
                    f"validation loss settled at {vals[-1]:.3g}, {times:.0f}x the training loss "
                    f"{train_now:.3g} ({loss_gap:.0%} of the initial loss apart)"
                )
                severity = "warning"
        if severity is None:
            return []
        return [
            self.finding(
                "overfitting",
                severity,
                "; ".join(reasons),
                figures,
                record.where(epoch=epochs[-1].epoch),
            )
        ]


@register_detector("underfitting")
class Underfitting(Detector):
    """The model cannot fit even the training data: the loss stalls high, scores stay low.

    AUTOTRAINER flags "not converged" when the best accuracy stays below 0.7 (Theta). Here,
    with steps of a healthy size (a tiny update/weight ratio means slow convergence instead):
    the epoch loss has stopped improving (less than ``PLATEAU`` of the initial loss per epoch over
    the last third of training) while still above ``REMAINING`` of its initial value; or the
    best train score (val if no train score) stays below ``LOW_SCORE`` while the loss gains less
    than ``CREEP`` per epoch. A score of 0.9 or more, or a train/val gap (overfitting), rules it
    out.
    """

    kinds = ("underfitting",)
    MIN_EPOCHS = 3
    PLATEAU = 0.01
    CREEP = 0.03
    REMAINING = 0.6
    LOW_SCORE = 0.7
    GOOD_SCORE = 0.9

    def check(self, record: TrainingRecord) -> list[Finding]:
        p = progress(record)
        if p is None or diverged(record):
            return []
        losses = [v for v in record.epoch_losses() if math.isfinite(v)]
        if len(losses) < self.MIN_EPOCHS:
            return []
        steps = relative_improvements(losses, p.initial)
        third = max(1, len(steps) // 3)
        late = float(np.mean(steps[-third:]))
        scale = score_scale(record)
        score = None
        if scale is not None:
            scores = record.series("train_metric") or record.series("val_metric")
            score = max(scores) / scale if scores else None
        gap = _metric_gap(record, record.epochs)
        update = update_scale(record)
        figures = {
            "loss_remaining": p.remaining,
            "initial_loss": p.initial,
            "recent_loss": p.recent,
            "late_gain_per_epoch": late,
            "best_score": score,
            "median_update_ratio": update,
        }
        if score is not None and score >= self.GOOD_SCORE:
            return []
        if gap is not None and gap[0] >= Overfitting.GAP:
            return []
        slow = SlowConvergence().measure(record)
        if slow is not None and slow["slow"]:
            return []  # small steps: that is slow convergence, not missing capacity
        stalled_high = late < self.PLATEAU and p.remaining >= self.REMAINING
        low_score = score is not None and score < self.LOW_SCORE and late < self.CREEP
        if not (stalled_high or low_score):
            return []
        what = f"best score {score:.3f}, " if score is not None else ""
        return [
            self.finding(
                "underfitting",
                "warning",
                f"the training loss stalled at {p.remaining:.0%} of its initial value "
                f"{p.initial:.3g} ({what}gaining {max(late, 0):.2%} of it per epoch lately)",
                figures,
            )
        ]
