"""The trainer callback a tuning trial adds: report-and-prune.

The trainer knows nothing of Optuna; this callback is the whole bridge. ``PruningCallback``
reports the monitored validation metric every epoch and, when the pruner says so, asks the
trainer to stop with status ``pruned`` (the objective then raises ``optuna.TrialPruned`` after
``fit`` returns, so the trial's directory is complete). A sick trial (NaN/inf or diverging
loss) is the Trainer's own guard's business (:class:`tunelab.train.SickTrialPolicy`): it ends
the fit in that epoch and the objective reads ``FitResult.sickness``.
"""

from __future__ import annotations

import math
from typing import Any

import optuna

from ..config import ConfigError
from ..train import Callback
from ._budget import EPOCHS_ATTR


class PruningCallback(Callback):
    """Report ``monitor`` to the Optuna trial each epoch; stop the fit when it should be pruned.

    Args:
        trial: the running Optuna trial.
        monitor: the epoch metric the study optimises (``val_loss``, ``val_accuracy``, ...).
        step_offset: added to the epoch number, so folds of a cross-validated trial report
            consecutive steps (fold ``k`` starts at ``k * max_epochs``).
        report: ``False`` for multi-objective studies, where Optuna cannot prune; the callback
            then only records progress.
        last_step: the trial's final step; a trial is not pruned there, since it has already
            spent its whole budget and its final value is worth keeping.
        final_rung_factor: for successive halving (``asha``/``hyperband``, factor ``r``): once
            ``step * r`` passes ``last_step`` the trial has cleared its last rung below the full
            budget and runs to the end -- pruning it then would save under ``1/r`` of its cost
            and discard a nearly finished result (10 epochs, r=3: rungs at 1 and 3, not 9).
        epochs_before: epochs the trial trained before this fit (earlier folds); when nothing
            is reported, the running total is kept in the ``epochs`` user attribute.
    """

    def __init__(
        self,
        trial: optuna.Trial,
        monitor: str,
        *,
        step_offset: int = 0,
        report: bool = True,
        last_step: int | None = None,
        epochs_before: int = 0,
        final_rung_factor: int | None = None,
    ) -> None:
        self.trial = trial
        self.monitor = monitor
        self.step_offset = step_offset
        self.report = report
        self.last_step = last_step
        self.epochs_before = epochs_before
        self.final_rung_factor = final_rung_factor
        self.pruned_reason: str | None = None

    def on_epoch_end(self, trainer: Any, epoch: int, metrics: dict[str, Any]) -> None:
        if self.monitor not in metrics:
            if not math.isfinite(float(metrics.get("train_loss", 0.0))):
                # A NaN/inf epoch is not validated; the Trainer's sick guard ends this fit and
                # the trial is recorded sick. Not a config error (that would stop the study).
                return
            known = ", ".join(sorted(k for k in metrics if isinstance(metrics[k], (int, float))))
            raise ConfigError(
                f"config error: tune.metric = {self.monitor!r} — not an epoch metric; "
                f"the trainer reports {known}"
            )
        value = float(metrics[self.monitor])
        step = self.step_offset + epoch
        if not self.report:
            # Nothing is reported, so the running epoch count is kept as an attribute instead.
            self.trial.set_user_attr(EPOCHS_ATTR, self.epochs_before + epoch)
            return
        if not math.isfinite(value):
            return  # a NaN is the sick-trial check's business, not the pruner's statistics
        self.trial.report(value, step)
        if self.last_step is not None and (
            step >= self.last_step
            or (self.final_rung_factor and step * self.final_rung_factor > self.last_step)
        ):
            return
        if self.trial.should_prune():
            self.pruned_reason = (
                f"pruned at epoch {epoch}: {self.monitor}={value:.4g} behind other trials"
            )
            trainer.request_stop(self.pruned_reason, status="pruned")
