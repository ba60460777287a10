"""Short training runs inside compression: the fine-tune after pruning and the student of
distillation, both with :class:`~tunelab.train.Trainer`.

Both keep the run's ``train`` settings (optimiser, batch size, schedule, regularisation, early
stopping on the validation split, the best epoch restored at the end) with the epochs (and, if
given, the learning rate) replaced, and write nothing. Distillation passes its own batch loss,
which sees the inputs so the teacher can run on the same (possibly augmented) batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from ..config import TrainConfig
from ..data import DataBundle

LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class LoopResult:
    """Best validation metric (accuracy, or negative MSE for regression), its epoch, and the
    per-epoch history of the run."""

    best_epoch: int
    best_val: float
    history: list[dict[str, Any]] = field(default_factory=list)
    wall_time_s: float = 0.0
    status: str = "completed"


def short_fit(
    model: nn.Module,
    bundle: DataBundle,
    *,
    config: TrainConfig,
    epochs: int,
    loss_fn: LossFn | None = None,
    lr: float | None = None,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> Any:
    """Train ``model`` in place with the Trainer for ``epochs``; returns its ``FitResult``."""
    from ..train import Trainer

    changes: dict[str, Any] = {
        "epochs": int(epochs),
        "progress": "none",
        "tensorboard": False,
        "restore_best": True,
    }
    if lr is not None:
        changes["lr"] = float(lr)
    if device is not None:
        changes["device"] = torch.device(device).type
    return Trainer(config.model_copy(update=changes), seed=seed, loss=loss_fn).fit(model, bundle)


def fit_loop(model: nn.Module, bundle: DataBundle, **options: Any) -> LoopResult:
    """:func:`short_fit` (same keyword options), summarised: the best validation score
    (higher is better) and its epoch."""
    result = short_fit(model, bundle, **options)
    model.eval()
    best = result.best_metrics
    if "val_accuracy" in best:
        score = float(best["val_accuracy"])
    elif "val_mse" in best:
        score = -float(best["val_mse"])
    else:
        score = -float(best.get("val_loss", best.get("train_loss", float("nan"))))
    return LoopResult(
        best_epoch=int(result.best_epoch or 0),
        best_val=score,
        history=list(result.history),
        wall_time_s=float(result.wall_time_s),
        status=result.status,
    )
