"""Trainer callbacks a tuning trial adds: report-and-prune, and stop a sick trial at once.

The trainer knows nothing of Optuna; these callbacks are the whole bridge. ``PruningCallback``
reports the monitored validation metric every epoch and, when the pruner says so, asks the
trainer to stop with status ``pruned`` (the objective then raises ``optuna.TrialPruned`` after
``fit`` returns, so the trial's directory is complete). ``SickTrialCallback`` is the plain check
used when the doctor is off: a NaN/inf loss or a diverging loss ends the trial in that epoch.
"""

from __future__ import annotations

import math
from typing import Any

import optuna

from ..config import ConfigError
from ..train import Callback
from ._budget import EPOCHS_ATTR

# Lightning's learning-rate finder calls a loss above 4x the best seen "diverged"
# (DIAGNOSIS-HEURISTICS.md, "LR range test conventions").
DIVERGENCE_FACTOR = 4.0
# AUTOTRAINER's monitor treats a validation loss of 1e5 or more as exploding.
EXPLODED_LOSS = 1e5


def sick_finding(kind: str, evidence: str, figures: dict[str, Any], epoch: int, step: int) -> dict:
    """A finding in the doctor's JSON shape (``findings.json``), so both read the same."""
    return {
        "kind": kind,
        "severity": "error",
        "evidence": evidence,
        "figures": figures,
        "remedy": "lower train.lr, or set train.clip_grad_norm",
        "config_change": None,
        "first_seen": {"epoch": epoch, "step": step},
    }


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


class SickTrialCallback(Callback):
    """Stop a trial whose loss is NaN/inf, explodes, or diverges -- in the epoch it happens.

    Args:
        check_every: look at the batch loss every this many optimiser steps (each look is one
            host sync, so not every step).
        divergence_factor: an epoch's training loss above this multiple of the best so far
            counts as diverging.
    """

    def __init__(self, *, check_every: int = 20, divergence_factor: float = DIVERGENCE_FACTOR):
        self.check_every = check_every
        self.divergence_factor = divergence_factor
        self.findings: list[dict[str, Any]] = []
        self.reason: str | None = None
        self._best_train: float = math.inf
        self._epoch = 0

    def on_fit_start(self, trainer: Any) -> None:
        self.findings, self.reason, self._best_train = [], None, math.inf

    def on_epoch_start(self, trainer: Any, epoch: int) -> None:
        self._epoch = epoch

    def on_batch_end(self, trainer: Any, step: int, loss: Any) -> None:
        if self.reason is not None or step % self.check_every:
            return
        value = float(loss)
        if not math.isfinite(value):
            self._stop(
                trainer,
                "exploding_gradients",
                f"training loss became {value} at step {step}",
                {"loss": str(value)},
                step,
            )

    def on_epoch_end(self, trainer: Any, epoch: int, metrics: dict[str, Any]) -> None:
        if self.reason is not None:
            return
        step = int(getattr(trainer, "global_step", 0))
        for name in ("train_loss", "val_loss"):
            value = metrics.get(name)
            if value is not None and not math.isfinite(float(value)):
                self._stop(
                    trainer,
                    "exploding_gradients",
                    f"{name} is {value} at epoch {epoch}",
                    {name: str(value)},
                    step,
                )
                return
        val_loss = metrics.get("val_loss")
        if val_loss is not None and float(val_loss) >= EXPLODED_LOSS:
            self._stop(
                trainer,
                "exploding_gradients",
                f"val_loss reached {float(val_loss):.3g} (>= {EXPLODED_LOSS:g}) at epoch {epoch}",
                {"val_loss": float(val_loss)},
                step,
            )
            return
        train_loss = metrics.get("train_loss")
        if train_loss is None:
            return
        train_loss = float(train_loss)
        if train_loss > self.divergence_factor * self._best_train:
            self._stop(
                trainer,
                "diverging_loss",
                f"train_loss rose to {train_loss:.4g}, over {self.divergence_factor:g}x the best "
                f"{self._best_train:.4g}, at epoch {epoch}",
                {"train_loss": train_loss, "best_train_loss": self._best_train},
                step,
            )
            return
        self._best_train = min(self._best_train, train_loss)

    def _stop(
        self, trainer: Any, kind: str, evidence: str, figures: dict[str, Any], step: int
    ) -> None:
        self.reason = f"{kind.replace('_', ' ')}: {evidence}"
        # Findings count epochs from 0 (diagnose/_finding.py); the trainer's hooks from 1.
        self.findings.append(sick_finding(kind, evidence, figures, max(0, self._epoch - 1), step))
        trainer.request_stop(self.reason, status="diverged")

    def state_dict(self) -> dict[str, Any]:
        return {"best_train": self._best_train}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._best_train = float(state.get("best_train", math.inf))
