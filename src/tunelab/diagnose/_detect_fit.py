"""Generalisation detectors: overfitting (train far better than val) and underfitting."""

from __future__ import annotations

import math

from ._detect_loss import DivergingLoss, SlowConvergence
from ._detector import Detector, register_detector
from ._finding import Finding
from ._record import EpochRecord, TrainingRecord
from ._short import argmin, mean
from ._signals import (
    NOISE_Z,
    binomial_se,
    difference_noise,
    diverged,
    expected_max_normal,
    mean_loss_se,
    median_abs_diff,
    progress,
    relative_improvements,
    rows_behind,
    score_scale,
    update_scale,
)


def _metric_gap(record: TrainingRecord, epochs: list[EpochRecord]) -> tuple[float, float] | None:
    """(train - val score over the last two epochs, last train score), on a 0..1 scale."""
    scale = score_scale(record)
    pairs = [(e.train_metric, e.val_metric) for e in epochs]
    pairs = [(t, v) for t, v in pairs if t is not None and v is not None]
    if scale is None or len(pairs) < 2:
        return None
    last = pairs[-2:]
    gap = mean([(t - v) / scale for t, v in last])
    return gap, pairs[-1][0] / scale


def _gap_spread(record: TrainingRecord, epochs: list[EpochRecord]) -> float:
    """Standard error of ``_metric_gap``'s two-epoch mean from the per-epoch gap's own
    epoch-to-epoch spread over the second half of the epochs (0.0 when too few)."""
    scale = score_scale(record)
    pairs = [(e.train_metric, e.val_metric) for e in epochs]
    gaps = [(t - v) / scale for t, v in pairs if t is not None and v is not None] if scale else []
    late = gaps[len(gaps) // 2 :]
    if len(late) < 3:
        return 0.0
    per_epoch = median_abs_diff(late) / 0.6745 / math.sqrt(2)
    return per_epoch / math.sqrt(2)


@register_detector("overfitting")
class Overfitting(Detector):
    """Training keeps improving while validation does not.

    Metric gap rule from AUTOTRAINER (ICSE'21): train - val accuracy >= 0.1 (>= 0.07 when train
    accuracy > 0.9), and the validation error at least ``ERROR_RATIO`` times the training error
    (a regression R² of 0.6 vs 0.45 is a hard task, not memorisation). Loss rule after
    SageMaker's Overfit/Overtraining rules (validation loss rising for several epochs while
    training loss falls), made scale-free: the validation loss
    sits at least ``RISE`` above its best for ``PATIENCE`` epochs while the validation score (when
    there is one) has left its best beyond its noise, and the train/val loss gap is at
    least ``LOSS_GAP`` of the initial loss (a mild rise on a nearly-solved task is not a problem),
    and the training loss itself has fallen at least ``LOSS_GAP`` of the initial loss (a net
    whose training loss is still at chance level fits nothing, so it overfits nothing).
    When no scores are given, a settled gap also counts: validation loss no longer improving
    (less than ``SETTLED`` over the last third of the epochs), ``STABLE_GAP`` of the initial loss
    above a training loss at most a ``TRAIN_FRACTION``-th of it.

    Noise (../shared/DIAGNOSIS-HEURISTICS.md, "Noise of a measurement"): the metric gap counts
    only beyond ``NOISE_Z`` binomial standard errors of the two scores (sqrt(p(1-p)/n) on the
    rows each was measured on: 0.071 for a 0.926 accuracy on 54 rows), and a gap while
    validation is still at its best, within the noise of its own measurement (see
    ``_validation_at_best``), is a generalisation gap, not overfitting (early stopping would
    keep that epoch), unless the gap is twice its noise and the training rows are memorised
    (training error zero within its noise). Nor is any gap while the validation
    loss still falls beyond its noise over the recent epochs (``_validation_improving``):
    overfitting is validation that has stopped improving.
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
    RECENT_STEPS = 3

    def check(self, record: TrainingRecord) -> list[Finding]:
        epochs = [e for e in record.epochs if e.val_loss is not None or e.val_metric is not None]
        if len(epochs) < self.MIN_EPOCHS or diverged(record):
            return []
        initial = record.initial_loss()
        figures: dict = {}
        reasons: list[str] = []
        rules: list[str] = []  # the rule behind each reason (figures["evidence_from"])
        severity = None
        gap = _metric_gap(record, epochs)
        if gap is not None:
            g, train_score = gap
            figures.update(metric_gap=g, train_score=train_score)
            limit = self.GAP_HIGH_TRAIN if train_score > 0.9 else self.GAP
            val_error, train_error = 1 - (train_score - g), 1 - train_score
            figures["error_ratio"] = val_error / train_error if train_error > 0 else math.inf
            n_val, n_train = rows_behind(record, "val"), rows_behind(record, "train")
            se_val = binomial_se(train_score - g, n_val)
            se_train = binomial_se(train_score, n_train) or 0.0
            noise = NOISE_Z * math.hypot(se_val, se_train) if se_val is not None else 0.0
            # The gap also moves from epoch to epoch with the optimiser's state (both scores
            # jump on a noisy SGD run): its own spread over the second half of the epochs
            # (robust: MAD of consecutive differences / sqrt 2), for a mean of two epochs
            # another / sqrt 2, is the other yardstick; the larger one counts.
            own = _gap_spread(record, epochs)
            figures["metric_gap_own_noise"] = NOISE_Z * own
            noise = max(noise, NOISE_Z * own)
            figures.update(metric_gap_noise=noise, val_rows=n_val)
            at_best = self._validation_at_best(record, epochs, n_val, figures)
            figures["validation_at_best"] = at_best
            improving = self._validation_improving(record, epochs, n_val, figures)
            figures["validation_improving"] = improving
            # With validation still at its best, a gap is overfitting only when the training
            # rows are memorised: the training error is zero within its noise (NOISE_Z
            # binomial SE on the training rows). A net that still misses a tenth of its
            # training rows while validation is at its best has a generalisation gap, not a
            # memorised training set (early stopping would keep this epoch).
            memorised = train_error <= NOISE_Z * (binomial_se(train_score, n_train) or 0.0)
            figures["training_rows_memorised"] = memorised
            if (
                g >= limit
                and g >= noise
                and val_error >= self.ERROR_RATIO * train_error
                and (not at_best or (g >= 2 * noise and memorised))
                and not improving
            ):
                reasons.append(f"train score {train_score:.3f} vs validation {train_score - g:.3f}")
                rules.append("score_gap")
                severity = "error" if g >= 2.5 * self.GAP else "warning"
        kept = [
            e
            for e in epochs
            if e.val_loss is not None
            and e.loss is not None
            and math.isfinite(e.val_loss)
            and math.isfinite(e.loss)
        ]
        pairs = [(e.val_loss, e.loss) for e in kept]
        if len(pairs) >= self.MIN_EPOCHS and initial:
            vals = [v for v, _ in pairs]
            best_i = argmin(vals)
            best = vals[best_i]
            tail = vals[-self.PATIENCE :]
            rise = min(tail) / best - 1 if best > 0 else 0.0
            # A run that overfitted for many epochs and then blew up in its last ones (Adam at
            # full batch once its loss is tiny: set B's noisy-label circles at fresh seed 117,
            # val loss 0.35 -> 2.2 over 280 epochs while the training loss fell to 0.07, then
            # 1.03) did overfit: the training side is judged where the loss was lowest before
            # the blow-up, which the oscillation or divergence findings report on their own.
            now_i = _before_a_late_blow_up([t for _, t in pairs], best_i)
            train_then, train_now = pairs[best_i][1], pairs[now_i][1]
            loss_gap = (vals[now_i] - train_now) / initial
            since = len(vals) - 1 - best_i
            figures.update(
                val_loss_best=best,
                val_loss_best_epoch=epochs[best_i].epoch,
                val_loss_last=vals[-1],
                val_loss_rise=rise,
                train_loss_last=pairs[-1][1],
                train_loss_judged=train_now,
                train_loss_judged_epoch=kept[now_i].epoch,
                loss_gap=loss_gap,
                epochs_since_best=since,
            )
            # Overfitting is fitting the training rows better than the model generalises
            # (Goodfellow, Bengio and Courville, Deep Learning 2016, 5.2: underfitting is a
            # training error that is not low enough, overfitting a gap between training and
            # test error that is too large), so the training rows must be fitted: the training
            # loss at least ``LOSS_GAP`` of the initial loss below it. A net whose training
            # loss is still at its initial (chance-level) value fits nothing; a validation loss
            # that blew up there is the diverging or oscillating steps' doing (momentum SGD at
            # lr 0.8 whose evaluation outputs stayed huge after the training loss came back to
            # chance).
            fitted = train_now <= (1 - self.LOSS_GAP) * initial
            figures["training_loss_fitted"] = fitted
            # With validation scores, the score must have left its best too (beyond the noise
            # of a difference of two scores, ``_score_at_best``). A validation loss can
            # rise for many epochs while the score keeps improving: the net grows confident on
            # the few rows it still misses, a cross-entropy cost the score does not share, and
            # early stopping on the score keeps the last epoch (session 12: held-out
            # digits/Adagrad at seed 86, val loss 52% above its epoch-1 best, val accuracy at
            # its best, 0.985 on 540 rows, in the last epoch). On the 3,703 development records
            # this dropped only secondary overfitting findings of oscillating runs.
            #
            # The best-of-k selection bias is not allowed here: the rising loss is the evidence,
            # and the score vetoes it only when it has not measurably fallen from its best at
            # all (set B's noisy-label circles at seed 64: val loss 0.28 -> 0.51 over 300
            # epochs, the score 0.904 -> 0.849, inside the bias-widened band).
            score_holds = (
                self._score_at_best(
                    record, epochs, rows_behind(record, "val"), net_of_selection=False
                )
                is True
            )
            # And the training rows must still be fitted as well as when validation was at its
            # best: a last epoch that threw the training score down with the validation score
            # (0.96 -> 0.865 and 0.926 -> 0.863, the zoo's noisy Nesterov-SGD run at seed 362)
            # is the steps' doing, not a net that fits its rows better than new ones.
            train_fell = self._train_score_fell(record, kept[best_i], kept[now_i])
            figures["train_score_fell_since_best"] = train_fell
            # From which epoch the validation loss stayed RISE above its best to the end, and
            # when that had lasted PATIENCE epochs (the causal rules compare it with when the
            # loss first swung).
            risen = len(vals)  # walk back from the end while the loss stays risen
            while risen > best_i + 1 and vals[risen - 1] >= (1 + self.RISE) * best:
                risen -= 1
            if risen + self.PATIENCE - 1 < len(vals):
                figures["val_loss_rise_established_epoch"] = kept[risen + self.PATIENCE - 1].epoch
            if (
                since >= self.PATIENCE
                and rise >= self.RISE
                and loss_gap >= self.LOSS_GAP
                and train_now < train_then
                and fitted
                and not score_holds
                and not train_fell
            ):
                reasons.append(
                    f"validation loss rose {rise:.0%} above its best {best:.3g} (epoch "
                    f"{epochs[best_i].epoch}) while the training loss fell to {train_now:.3g}"
                )
                rules.append("val_loss_rise")
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
                and fitted
            ):
                times = vals[-1] / max(train_now, 1e-12)
                reasons.append(
                    f"validation loss settled at {vals[-1]:.3g}, {times:.0f}x the training loss "
                    f"{train_now:.3g} ({loss_gap:.0%} of the initial loss apart)"
                )
                rules.append("loss_gap")
                severity = "warning"
        if severity is None:
            return []
        figures["evidence_from"] = rules  # which of the rules above fired
        return [
            self.finding(
                "overfitting",
                severity,
                "; ".join(reasons),
                figures,
                record.where(epoch=epochs[-1].epoch),
            )
        ]

    def _validation_at_best(
        self, record: TrainingRecord, epochs: list[EpochRecord], n_val: int | None, figures: dict
    ) -> bool:
        """Has validation not measurably worsened since its best epoch?

        A train/val gap while validation is still at its best is a generalisation gap, not
        overfitting: early stopping would keep this very epoch. "At its best" is judged within
        the noise of each measurement (../shared/DIAGNOSIS-HEURISTICS.md, "Noise of a
        measurement"): the validation score has not fallen from its best by more than
        ``NOISE_Z`` binomial standard errors on the n validation rows, and the validation loss
        has not risen above its best by more than ``NOISE_Z`` sampling errors of a mean loss on
        those rows (``mean_loss_se``: the per-row spread the training steps show). The
        comparison is of two epochs on the same rows, so this error is an upper bound: an
        alarm on a gap that is only just beyond its own noise needs validation to have
        clearly worsened. Without the row count, the validation loss's own epoch-to-epoch
        spread (second half) is the yardstick.
        """
        vloss = [e.val_loss for e in epochs if e.val_loss is not None]
        vloss = [v for v in vloss if math.isfinite(v)]
        loss_at_best = True
        if len(vloss) >= 2:
            best, rise = min(vloss), vloss[-1] - min(vloss)
            se = mean_loss_se(record, n_val, best)
            # The validation loss also moves from epoch to epoch with the optimiser's state
            # (a noisy momentum-SGD run's val loss jumps on the same rows): a last value above
            # the best by less than that own spread is not evidence of worsening either. The
            # spread is that of a difference of two epochs' values, as last - best is (robust:
            # MAD of consecutive differences over the second half / 0.6745); the best is one
            # such noisy value too, and the lowest of several.
            half = vloss[len(vloss) // 2 :]
            spread = median_abs_diff(half) / 0.6745 if len(half) >= 3 else 0.0
            tolerance = NOISE_Z * max(se or 0.0, spread)
            if se is None:
                tolerance = max(tolerance, 1e-3 * abs(best))
            loss_at_best = rise <= tolerance
            figures.update(val_loss_rise_since_best=rise, val_loss_noise=tolerance)
        score_at_best = self._score_at_best(record, epochs, n_val)
        if score_at_best is not None:
            figures["val_score_at_best"] = score_at_best
        return loss_at_best and score_at_best is not False

    def _train_score_fell(
        self, record: TrainingRecord, then: EpochRecord, now: EpochRecord
    ) -> bool:
        """The training score at ``now`` lies below that at ``then`` beyond ``NOISE_Z``
        binomial standard errors of a difference of two scores on the training rows (False
        when either score or the row count is unknown)."""
        scale = score_scale(record)
        if scale is None or then.train_metric is None or now.train_metric is None:
            return False
        n = rows_behind(record, "train")
        before, after = then.train_metric / scale, now.train_metric / scale
        noise = difference_noise(before, n, after, n)
        return noise is not None and before - after > noise

    def _score_at_best(
        self,
        record: TrainingRecord,
        epochs: list[EpochRecord],
        n_val: int | None,
        *,
        net_of_selection: bool = True,
    ) -> bool | None:
        """Has the validation score not fallen from its best beyond its noise? None when
        there is no score on [0, 1] or no row count to judge it by. ``net_of_selection``:
        allow for the best being the highest of k noisy epochs (below)."""
        scale = score_scale(record)
        scores = [e.val_metric / scale for e in epochs if e.val_metric is not None] if scale else []
        if len(scores) < 2:
            return None
        best_score = max(scores)
        # Both the best and the last score are measurements on the n rows: the drop is
        # judged against the standard error of a difference of two, sqrt(se1^2 + se2^2)
        # (the best's own error alone is tiny near a perfect score: a score of 0.98 on 54
        # rows has an error of 0.019, so two rows that flip would count as "worse").
        # The score moves with the optimiser's state as well (the same own-spread
        # yardstick as the loss in _validation_at_best).
        se_best, se_last = binomial_se(best_score, n_val), binomial_se(scores[-1], n_val)
        if se_best is None or se_last is None:
            return None
        drop = best_score - scores[-1]
        late = scores[len(scores) // 2 :]
        own = median_abs_diff(late) / 0.6745 if len(late) >= 3 else 0.0
        # The best is the highest of the epochs' scores, and where they jump from epoch to
        # epoch with the optimiser's state the best of k such jumps lies
        # expected_max_normal(k) of their standard deviations above the level they jump
        # around, so even a flat run "falls" from its best by that much. The fall is judged
        # net of this selection bias, with k the second half's epochs (where a run that has
        # stopped improving sits on its plateau) and one epoch's own spread (own / sqrt 2;
        # not the binomial error: the rows are the same at every epoch, so a net that has
        # stopped changing repeats its score exactly, with no selection in its best).
        # Session 13: a healthy noisy Nesterov-SGD run (zoo seed 280, scores jumping
        # 0.87-0.92 for ten epochs) had its last epoch 0.055 under its best, 2.1 standard
        # errors of a difference.
        bias = expected_max_normal(len(late)) * own / math.sqrt(2) if net_of_selection else 0.0
        return drop <= NOISE_Z * max(math.hypot(se_best, se_last), own) + bias

    def _validation_improving(
        self, record: TrainingRecord, epochs: list[EpochRecord], n_val: int | None, figures: dict
    ) -> bool:
        """Is the validation loss still falling beyond its noise over the recent epochs?

        Overfitting is validation that has stopped improving while training goes on
        (Goodfellow et al., "Deep Learning", 7.8: early stopping keeps the epoch where the
        validation error stops falling). A train/val gap while the validation loss still falls
        is a model that is still learning what generalises (a recurrent net at epoch 8 of a
        run that goes on improving), not one that memorises. "Still falling" is judged over
        the last third of the epochs (at least ``RECENT_STEPS`` epoch-to-epoch steps): the
        loss at its start minus the lowest since must exceed ``NOISE_Z`` sampling errors of a
        mean loss on the validation rows (``mean_loss_se``, an upper bound for two epochs on
        the same rows, so a claim of "improving" is conservative).
        """
        vloss = [e.val_loss for e in epochs if e.val_loss is not None]
        vloss = [v for v in vloss if math.isfinite(v)]
        recent = vloss[-(max(self.RECENT_STEPS, len(vloss) // 3) + 1) :]
        if len(recent) < self.RECENT_STEPS + 1:
            return False
        se = mean_loss_se(record, n_val, min(vloss))
        if se is None:
            return False
        fall = recent[0] - min(recent[1:])
        figures.update(val_loss_recent_fall=fall, val_loss_recent_noise=NOISE_Z * se)
        if not fall > NOISE_Z * se:
            return False
        # Falling back towards a best left long ago is no "still learning": early stopping
        # kept that best and would have stopped there. Only a fall that reaches the best
        # within its noise (or sets a new one) is a run still improving.
        back = min(recent[1:]) - min(vloss)
        figures["val_loss_recent_above_best"] = back
        return back <= NOISE_Z * se


@register_detector("underfitting")
class Underfitting(Detector):
    """The model cannot fit even the training data: the loss stalls high, or the run settles
    far below what a quick standard model reaches on the same split.

    AUTOTRAINER flags "not converged" when the best accuracy stays below a constant 0.7; an
    expert compares with a reference instead (../shared/DIAGNOSIS-HEURISTICS.md: "A baseline is
    the expert's reference point"). With steps of a healthy size (a tiny update/weight ratio
    means slow convergence instead), either

    - the epoch loss has stopped improving (less than ``PLATEAU`` of the initial loss per epoch
      over the last third of training) while still above ``REMAINING`` of its initial value; or
    - a baseline is known (``Doctor.fit_baseline``; ``tunelab doctor`` always fits one) and the
      best validation score lies below it by more than ``NOISE_Z`` standard errors of the
      difference (binomial, on the validation rows), while the loss gains less than ``CREEP``
      of the initial loss per epoch (it has settled: a run still improving fast is young, not
      too small), and, when training scores are given, the best training score is below the
      baseline too beyond the noise of both: a net that fits its training rows as well as the
      reference does unseen ones is not short of capacity (underfitting is failing to fit the
      training set, Goodfellow et al., "Deep Learning", 5.2).

    Which limit it is, from the training curve and the update ratios: steps of a healthy size
    with train and val scores together is missing capacity ("capacity"); otherwise the
    optimisation ("optimisation": too few or too small steps). A train/val gap (overfitting)
    rules it out.
    """

    kinds = ("underfitting",)
    MIN_EPOCHS = 3
    PLATEAU = 0.01
    CREEP = 0.03
    REMAINING = 0.6

    def check(self, record: TrainingRecord) -> list[Finding]:
        p = progress(record)
        if p is None or diverged(record):
            return []
        losses = [v for v in record.epoch_losses() if math.isfinite(v)]
        if len(losses) < self.MIN_EPOCHS:
            return []
        steps = relative_improvements(losses, p.initial)
        if not steps:
            return []  # a loss that starts at or below zero (a Poisson NLL): no shares of it
        third = max(1, len(steps) // 3)
        late = mean(steps[-third:])
        scale = score_scale(record)
        vals = record.series("val_metric")
        trains = record.series("train_metric")
        val_best = max(vals) / scale if scale is not None and vals else None
        train_best = max(trains) / scale if scale is not None and trains else None
        gap = _metric_gap(record, record.epochs)
        update = update_scale(record)
        figures: dict = {
            "loss_remaining": p.remaining,
            "initial_loss": p.initial,
            "recent_loss": p.recent,
            "late_gain_per_epoch": late,
            "best_score": val_best if val_best is not None else train_best,
            "median_update_ratio": update,
        }
        if (
            gap is not None
            and gap[0] >= Overfitting.GAP
            and not self._train_below_baseline(record, train_best)
        ):
            # A gap means the training data are fitted better than new data: overfitting's
            # territory -- unless even the training score is far below what a quick model
            # reaches on unseen data, when the net cannot fit at all (a width-3 layer).
            return []
        slow = SlowConvergence().measure(record)
        if slow is not None and slow["slow"]:
            return []  # small steps: that is slow convergence, not missing capacity
        stalled_high = late < self.PLATEAU and p.remaining >= self.REMAINING
        below = self._below_baseline(record, val_best, figures)
        # The training score as the evidence: when it moves with the validation score (no gap
        # beyond the noise of the two) both measure the same net, and the training score has
        # the more rows behind it. A CNN pooled to 2x2 on digits: train 0.938 on 1,257 rows,
        # val 0.944 on 540, baseline 0.969: 13 validation rows under the baseline (inside two
        # standard errors of that difference), 0.031 on the training rows (3 of them).
        reference = (record.baseline or {}).get("score")
        by_training = (
            not below
            and val_best is not None
            and reference is not None
            and val_best < float(reference)
            and self._train_below_baseline(record, train_best)
            and self._scores_together(record, train_best, val_best)
        )
        below = below or by_training
        # Underfitting is failing to fit the training data (Goodfellow, Bengio & Courville,
        # "Deep Learning", 5.2: "not able to obtain a sufficiently low error value on the
        # training set"). A net whose training score reaches what the reference reaches on
        # unseen rows has the capacity; its shortfall on validation is a young run or a
        # generalisation matter, not missing capacity (a GRU on digits at epoch 8: train 0.98,
        # val 0.92 and still rising, baseline 0.967; it reaches 0.95-0.96 by epoch 20).
        fits_training = self._train_reaches_baseline(record, train_best)
        figures["train_best"] = train_best
        # A run still gaining fast is young, not too small -- unless it has been slow over the
        # whole run (under CREEP of the loss per epoch on average) and most of its loss is
        # still left (over REMAINING, the bar of a stalled run) while even its training score
        # lies below the reference beyond the noise. The case: a 4-channel CNN pooled over the
        # image, 15 epochs on digits, 77-84 % of its loss left, train and val 0.40-0.49
        # against a linear model's 0.96-0.99, gaining 3-5 % per epoch only after eight epochs
        # near chance. A repair round of 4 epochs at 0.52 that removed 37 % of its loss
        # (9 % per epoch) is young.
        average_gain = (1.0 - p.remaining) / max(1, len(losses))
        barely_started = (
            p.remaining >= self.REMAINING
            and average_gain < self.CREEP
            and (train_best is None or self._train_below_baseline(record, train_best))
        )
        figures["average_gain_per_epoch"] = average_gain
        below = below and (late < self.CREEP or barely_started) and not fits_training
        figures["still_gaining"] = below and late >= self.CREEP
        if not (stalled_high or below):
            return []
        together = gap is None or abs(gap[0]) < Overfitting.GAP
        healthy_steps = update is None or update >= SlowConvergence.TINY_UPDATE
        figures["limited_by"] = "capacity" if healthy_steps and together else "optimisation"
        text = (
            f"the training loss stalled at {p.remaining:.0%} of its initial value "
            f"{p.initial:.3g} (gaining {max(late, 0):.2%} of it per epoch lately)"
        )
        base = record.baseline
        if below and base:
            if by_training:
                gap_t = self._train_gap_to_baseline(record, train_best)
                shortfall = (
                    f"on its training rows {train_best:.3f} (more than {gap_t[1]:.3f}, "
                    f"{NOISE_Z:.0f} standard errors, below; validation {val_best:.3f} moves "
                    f"with it)"
                )
                figures["below_on"] = "training rows"
            else:
                shortfall = (
                    f"{val_best:.3f} (more than {figures['baseline_margin']:.3f}, "
                    f"{NOISE_Z:.0f} standard errors, below)"
                )
                figures["below_on"] = "validation rows"
            pace = (
                f"still has {p.remaining:.0%} of its initial loss left after "
                f"{p.epochs} epochs (gaining {max(late, 0):.2%} of it per epoch lately)"
                if figures["still_gaining"]
                else f"its loss has settled at {p.remaining:.0%} of the initial value "
                f"(gaining {max(late, 0):.2%} per epoch)"
            )
            text = (
                f"a {base['model']} reaches {base['score']:.3f} on the same split; this network "
                f"{shortfall} and {pace}"
            )
        text += (
            "; train and validation scores move together and the steps are of a healthy size: "
            "the model lacks capacity"
            if figures["limited_by"] == "capacity"
            else "; it is under-optimised"
        )
        return [self.finding("underfitting", "warning", text, figures)]

    def _train_gap_to_baseline(
        self, record: TrainingRecord, train_best: float | None
    ) -> tuple[float, float] | None:
        """(baseline's validation score - best training score, the noise of that difference:
        ``NOISE_Z`` binomial SEs of both on their rows), or None when either is unknown."""
        base = record.baseline
        if not base or train_best is None or base.get("score") is None:
            return None
        ref = float(base["score"])
        n_val = rows_behind(record, "val") or base.get("val_rows")
        noise = difference_noise(ref, n_val, train_best, rows_behind(record, "train"))
        return None if noise is None else (ref - train_best, noise)

    def _train_below_baseline(self, record: TrainingRecord, train_best: float | None) -> bool:
        """The best training score lies below the baseline's validation score beyond the
        noise of both (False when either is unknown)."""
        gap = self._train_gap_to_baseline(record, train_best)
        return gap is not None and gap[0] > gap[1]

    def _train_reaches_baseline(self, record: TrainingRecord, train_best: float | None) -> bool:
        """The net fits its training rows as well as the reference predicts unseen ones: its
        best training score is at or above the baseline's validation score (False when
        unknown). The GRU this veto is for: train 0.98, val 0.92 and still rising, baseline
        0.967 (it reaches 0.95-0.96 by epoch 20).

        Within the noise below the baseline is not enough, even when the training score is
        measurably above the validation score: a net that fits its rows no better than the
        reference does unseen ones, while its validation score lies beyond the noise below
        the reference (judged by the caller), has not shown it has the capacity. A CNN pooled
        to 2x2 on digits, 12 epochs, at held-out seed 199: train 0.944 on 1,257 rows (0.017
        under the linear baseline's 0.961, inside that difference's noise, 0.021), val 0.915
        on 540 (5 SE under the baseline), 0.029 apart from the training score (2.1 SE): read
        as "fits its training rows", it was called healthy; so was session 11's seed 69
        (train 0.938, val 0.917, baseline 0.965).
        """
        gap = self._train_gap_to_baseline(record, train_best)
        return gap is not None and gap[0] <= 0

    def _score_gap(
        self, record: TrainingRecord, train_best: float | None, val_best: float | None
    ) -> tuple[float, float] | None:
        """(best training - best validation score, ``NOISE_Z`` binomial SEs of that
        difference on their rows), or None when either is unknown."""
        if train_best is None or val_best is None:
            return None
        noise = difference_noise(
            train_best, rows_behind(record, "train"), val_best, rows_behind(record, "val")
        )
        return None if noise is None else (train_best - val_best, noise)

    def _scores_together(
        self, record: TrainingRecord, train_best: float | None, val_best: float | None
    ) -> bool:
        """The best training and validation scores differ by no more than their noise."""
        gap = self._score_gap(record, train_best, val_best)
        return gap is not None and abs(gap[0]) <= gap[1]

    def _below_baseline(self, record: TrainingRecord, val_best: float | None, figures) -> bool:
        base = record.baseline
        if not base or val_best is None or base.get("score") is None:
            return False
        n = rows_behind(record, "val") or base.get("val_rows")
        ref = float(base["score"])
        noise = difference_noise(ref, n, val_best, n)
        margin = noise if noise is not None else 0.05
        figures.update(baseline=ref, baseline_model=base.get("model"), baseline_margin=margin)
        return ref - val_best > margin


def _before_a_late_blow_up(train: list[float], start: int) -> int:
    """The epoch (an index into ``train``, the epoch training losses) at which the
    validation-loss rule judges the training side: the last one, unless the last epoch's loss
    was thrown back to the sick-trial policy's ``above_best`` (3x) the lowest since ``start``;
    then that lowest one, the state the net had reached before the blow-up."""
    last = len(train) - 1
    low = min(range(start, last + 1), key=lambda i: train[i])
    above = DivergingLoss.policy.above_best
    return low if train[last] >= above * train[low] > 0 else last
