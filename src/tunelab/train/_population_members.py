"""The members of a population: their settings, grouping, the sick rule and support checks.

:class:`MemberSettings` is what may differ between members (every shape-keeping setting of a
trial); :func:`group_key` says which trials can share a population; :func:`supports` says when a
model or config must train sequentially instead; :func:`default_judge` is the sick-trial rule
(injectable, to be replaced by ``SickTrialPolicy``); :class:`Member` is one slot's trial.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch.nn as nn

from ..config import EarlyStoppingConfig, ScheduleConfig, TrainConfig
from ..models import transfer_settings
from ._population_forward import supports_module
from ._population_metrics import SUPPORTED_LOSSES
from ._population_optim import MIXED, OPTIMIZERS, OptimValues
from ._result import FitResult
from ._setup import resolve_device, resolve_precision

# A loss above this multiple of the best epoch loss so far is "diverged" (Lightning's LR finder
# uses 4x the best; tune/_callbacks.py's DIVERGENCE_FACTOR).
DIVERGENCE_FACTOR = 4.0
# Model parameters that keep parameter shapes, so members of one population may differ in them.
SHAPE_FREE_MODEL_PARAMS = ("dropout",)

Judge = Callable[[int, dict[str, Any], list[dict[str, Any]]], "tuple[str, str] | None"]


def default_judge(
    epoch: int, metrics: dict[str, Any], history: list[dict[str, Any]]
) -> tuple[str, str] | None:
    """``(kind, evidence)`` when a member is sick after ``epoch``, else None.

    The kinds are the Trainer's statuses: ``nan`` (a NaN/inf train or validation loss) and
    ``diverged`` (train loss above DIVERGENCE_FACTOR x the best earlier epoch). Replace it with
    ``tunelab.train.SickTrialPolicy.judge_epoch`` once that exists (``judge=`` argument).
    """
    for split in ("train", "val"):
        value = metrics.get(f"{split}_loss")
        if value is not None and not math.isfinite(value):
            return "nan", f"{split} loss became {value} in epoch {epoch}"
    earlier = [
        h["train_loss"] for h in history[:-1] if math.isfinite(h.get("train_loss", math.nan))
    ]
    loss = metrics.get("train_loss")
    if earlier and loss is not None and loss > DIVERGENCE_FACTOR * min(earlier) > 0:
        return "diverged", (
            f"train loss {loss:.4g} in epoch {epoch} is above {DIVERGENCE_FACTOR:g}x the best "
            f"earlier epoch ({min(earlier):.4g})"
        )
    return None


@dataclass
class MemberSettings:
    """What may differ between members of one population (every shape-keeping setting)."""

    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9  # SGD only, as in the Trainer
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float | None = None  # None: torch.optim's default for the optimiser
    alpha: float = 0.99  # RMSprop
    dropout: float = 0.0
    label_smoothing: float = 0.0
    l1: float = 0.0
    clip_grad_norm: float | None = None
    clip_grad_value: float | None = None
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    epochs: int = 20
    early_stopping: EarlyStoppingConfig | None = None  # None: off
    optimizer: str | None = None  # None: the population's; each member's own when mixed
    nesterov: bool = False  # SGD's Nesterov momentum (read per member when mixed)

    @classmethod
    def from_config(
        cls, train: TrainConfig, model_params: dict[str, Any] | None = None
    ) -> MemberSettings:
        """A resolved trial's ``train`` section and ``model.params`` as member settings."""
        es = train.early_stopping
        return cls(
            lr=float(train.lr),
            weight_decay=float(train.weight_decay),
            momentum=float(train.momentum),
            betas=(float(train.betas[0]), float(train.betas[1])),
            dropout=float((model_params or {}).get("dropout", 0.0) or 0.0),
            label_smoothing=float(train.label_smoothing),
            l1=float(train.l1),
            clip_grad_norm=None if train.clip_grad_norm is None else float(train.clip_grad_norm),
            clip_grad_value=None if train.clip_grad_value is None else float(train.clip_grad_value),
            schedule=train.schedule,
            epochs=int(train.epochs),
            early_stopping=es if es.enabled else None,
            optimizer=train.optimizer,
            nesterov=bool(train.nesterov),
        )

    def optim_values(self) -> OptimValues:
        return OptimValues(
            self.lr,
            self.weight_decay,
            self.momentum,
            self.betas[0],
            self.betas[1],
            self.eps,
            self.alpha,
            self.optimizer,
            self.nesterov,
        )


def group_key(
    train: TrainConfig, model_params: dict[str, Any] | None = None, *, mixed: bool = False
) -> tuple:
    """Trials with equal keys can share one population (same shapes, optimiser kind, batch
    size, loss and monitor); everything else is per member. ``mixed``: the optimiser (and
    Nesterov) is per member too, for a population built with ``optimizer="mixed"``."""
    params = {k: v for k, v in (model_params or {}).items() if k not in SHAPE_FREE_MODEL_PARAMS}
    return (
        MIXED if mixed else train.optimizer,
        int(train.batch_size),
        bool(train.nesterov) if train.optimizer == "sgd" and not mixed else False,
        train.loss,
        train.class_weights,
        train.monitor,
        train.device,
        repr(sorted(params.items())),
    )


def supports(
    model: nn.Module, train: TrainConfig | None = None, bundle: Any = None
) -> tuple[bool, str]:
    """``(True, "")`` when ``model`` (with ``train`` and ``bundle``) can train as a population,
    else ``(False, reason)``: the caller trains those trials one by one with a one-line notice."""
    ok, why = supports_module(model)
    if not ok:
        return False, why
    ts = transfer_settings(model)
    if ts is not None and (ts.freeze_backbone or ts.backbone_lr_mult != 1.0):
        return False, "transfer learning (frozen backbone / backbone_lr_mult) is per-trial only"
    if train is not None:
        if train.optimizer not in OPTIMIZERS:
            return False, f"optimizer {train.optimizer!r} has no vectorised step"
        if int(train.accumulate_steps) > 1:
            return False, "gradient accumulation (train.accumulate_steps > 1)"
        if resolve_precision(train.precision, resolve_device(train.device)) != "fp32":
            return False, f"mixed precision (train.precision = {train.precision!r})"
        if train.class_weights != "none":
            return False, "class weights (train.class_weights = 'balanced')"
        if train.loss != "auto" and train.loss not in SUPPORTED_LOSSES:
            return False, f"loss {train.loss!r}"
    if bundle is not None and getattr(bundle, "augmenter", None) is not None:
        return False, "data augmentation (a per-trial augmenter)"
    return True, ""


class _LR:
    """What LRSchedule needs of an optimiser: one group's ``lr`` (one per member)."""

    def __init__(self, lr: float) -> None:
        self.param_groups = [{"lr": lr}]


@dataclass
class Member:
    """One slot's trial: settings, progress, history, best epoch and cheap doctor signals."""

    settings: MemberSettings
    seed: int
    # A packed member's own model params (its shape: a narrower width than the population's);
    # None: the population's shape.
    model_params: dict[str, Any] | None = None
    status: str = "running"  # running, completed, early_stopped, pruned, stopped, nan, diverged
    reason: str = ""
    epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    signals: list[dict[str, float]] = field(default_factory=list)  # train_loss, grad_norm
    best_epoch: int | None = None
    best_metrics: dict[str, Any] = field(default_factory=dict)
    sickness: tuple[str, str] | None = None
    wall_time_s: float = 0.0
    schedule: Any = None
    generator: Any = None
    dropout_generator: Any = None
    monitor: Any = None
    early: Any = None

    @property
    def running(self) -> bool:
        return self.status == "running"

    def result(self) -> FitResult:
        return FitResult(
            status=self.status if self.status != "running" else "stopped",  # type: ignore[arg-type]
            reason=self.reason,
            history=list(self.history),
            best_epoch=self.best_epoch,
            best_metrics=dict(self.best_metrics),
            epochs_run=len(self.history),
            wall_time_s=self.wall_time_s,
        )
