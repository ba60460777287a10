"""The one definition of "this trial is sick": :class:`SickTrialPolicy` and its :class:`Sickness`.

Everything that decides a run has broken asks this module: the Trainer's guard (per step and per
epoch), the LR finder's stop rule, the tune stage (through ``FitResult.sickness``) and the
doctor's ``diverging_loss`` detector. Every threshold lives in :class:`SickTrialPolicy`, with
the source it comes from (``shared/DIAGNOSIS-HEURISTICS.md``).

>>> policy = SickTrialPolicy()
>>> policy.judge_step(20, float("nan")).kind
'exploding_gradients'
>>> policy.judge_epoch(3, {"train_loss": 9.0}, best_loss=2.0).kind
'diverging_loss'
>>> policy.judge_epoch(3, {"train_loss": 2.5}, best_loss=2.0) is None
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

# The finding kinds a sickness reports, the same the tune stage and the doctor used before the
# policy existed, so findings.json and the trials' ``findings`` attribute read as they did.
NAN_KIND = "exploding_gradients"
DIVERGING_KIND = "diverging_loss"


@dataclass(frozen=True)
class Sickness:
    """The verdict on a sick run: what broke, the evidence in words and figures, and where.

    ``epoch`` and ``step`` count from 1 like the trainer's hooks (``step`` 0: not known).
    ``status`` is the :class:`~tunelab.train.FitResult` status it ends a fit with: ``nan`` for a
    non-finite loss, ``diverged`` for a finite loss that blew up.
    """

    kind: str
    evidence: str
    figures: dict[str, Any] = field(default_factory=dict)
    epoch: int = 0
    step: int = 0
    status: Literal["nan", "diverged"] = "diverged"

    def reason(self, lr: float | None = None) -> str:
        """The fit's ``reason``: the evidence (at learning rate ``lr``) and what to do."""
        at = f" (lr {lr:.3g})" if lr is not None else ""
        return f"{self.evidence}{at}; lower train.lr or set train.clip_grad_norm"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "evidence": self.evidence,
            "figures": dict(self.figures),
            "epoch": self.epoch,
            "step": self.step,
            "status": self.status,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Sickness:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass(frozen=True)
class SickTrialPolicy:
    """The thresholds of "sick", in one place; the judgements are pure functions of them.

    The policy keeps no state: the caller keeps the best loss so far and passes it in (the
    Trainer keeps it in its :class:`~tunelab.train.FitState`, so it survives a resume).

    Args:
        check_every: look at the step loss every this many optimiser steps. Each look is one
            host sync; every 20 steps keeps the guard's cost near zero (the loss otherwise stays
            on the device until the epoch ends).
        exploded_loss: a validation loss at or above this is exploding. AUTOTRAINER's monitor
            (ICSE'21, ``utils/monitor.py``): "val loss >= 1e5".
        divergence_factor: a loss above this multiple of the best so far has diverged.
            Lightning's ``LearningRateFinder`` stops at 4x the best loss ("LR range test
            conventions").
        growth_error, growth_warn, given_back, above_best: the doctor's after-the-fact reading
            of a whole loss curve (smoothed): an error at ``growth_error`` x the initial loss;
            a warning at ``growth_warn`` x, or when the curve gave back ``given_back`` of its
            progress and sits ``above_best`` x over its best. Calibrated on the doctor's zoo
            (tests/diagnose/zoo.py), with AUTOTRAINER's "NaN is an explosion" as the base.
    """

    check_every: int = 20
    exploded_loss: float = 1e5
    divergence_factor: float = 4.0
    growth_error: float = 10.0
    growth_warn: float = 1.5
    given_back: float = 0.6
    above_best: float = 3.0

    def due(self, step: int) -> bool:
        """Whether optimiser step ``step`` is one the step guard looks at."""
        return self.check_every > 0 and step % self.check_every == 0

    def judge_step(
        self, step: int, loss: float, *, epoch: int = 0, best_loss: float = math.inf
    ) -> Sickness | None:
        """A step's loss: non-finite is sick; so is one above ``divergence_factor`` x best."""
        value = float(loss)
        where = f" in epoch {epoch}" if epoch else ""
        if not math.isfinite(value):
            return Sickness(
                NAN_KIND,
                f"train loss became {value}{where} (step {step})",
                {"loss": str(value), "step": step},
                epoch,
                step,
                "nan",
            )
        if value > self.divergence_factor * best_loss:
            return Sickness(
                DIVERGING_KIND,
                f"train loss rose to {value:.4g}, over {self.divergence_factor:g}x the best "
                f"{best_loss:.4g}, at step {step}",
                {"loss": value, "best_loss": best_loss, "step": step},
                epoch,
                step,
            )
        return None

    def judge_epoch(
        self, epoch: int, metrics: dict[str, Any], *, best_loss: float = math.inf, step: int = 0
    ) -> Sickness | None:
        """An epoch's metrics: NaN/inf loss, an exploded val loss, or a diverged train loss.

        ``best_loss`` is the lowest ``train_loss`` of the earlier epochs.
        """
        for split in ("train", "val"):
            value = metrics.get(f"{split}_loss")
            if value is not None and not math.isfinite(float(value)):
                return Sickness(
                    NAN_KIND,
                    f"{split} loss became {float(value)} in epoch {epoch}",
                    {f"{split}_loss": str(float(value))},
                    epoch,
                    step,
                    "nan",
                )
        val_loss = metrics.get("val_loss")
        if val_loss is not None and float(val_loss) >= self.exploded_loss:
            return Sickness(
                NAN_KIND,
                f"val_loss reached {float(val_loss):.3g} (>= {self.exploded_loss:g}) "
                f"in epoch {epoch}",
                {"val_loss": float(val_loss)},
                epoch,
                step,
            )
        train_loss = metrics.get("train_loss")
        if train_loss is not None and float(train_loss) > self.divergence_factor * best_loss:
            return Sickness(
                DIVERGING_KIND,
                f"train_loss rose to {float(train_loss):.4g}, over {self.divergence_factor:g}x "
                f"the best {best_loss:.4g}, in epoch {epoch}",
                {"train_loss": float(train_loss), "best_train_loss": best_loss},
                epoch,
                step,
            )
        return None

    def judge_curve(self, initial: float, best: float, recent: float) -> str | None:
        """The doctor's severity for a whole (smoothed) loss curve: error, warning or None."""
        if initial <= 0:
            return None
        growth = recent / initial
        given_back = (recent - best) / (initial - best) if initial > best else 0.0
        if growth >= self.growth_error:
            return "error"
        if growth >= self.growth_warn or (
            given_back >= self.given_back and recent >= self.above_best * best
        ):
            return "warning"
        return None
