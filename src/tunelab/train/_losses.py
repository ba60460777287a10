"""Loss functions by config name, shaped for the task.

``auto`` picks cross-entropy for classification and MSE for regression. Every loss takes the
raw model output and the bundle's targets and returns a scalar; shape glue (a ``(n, 1)`` output
against ``(n,)`` targets, a single logit for a binary task) lives here so the loop stays plain.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

CLASSIFICATION_LOSSES = ("cross_entropy", "bce")
REGRESSION_LOSSES = ("mse", "mae", "huber")


def resolve_loss_name(name: str, task: str) -> str:
    """The concrete loss for ``name`` (``auto`` follows the task); rejects a task mismatch."""
    if name == "auto":
        return "cross_entropy" if task == "classification" else "mse"
    allowed = CLASSIFICATION_LOSSES if task == "classification" else REGRESSION_LOSSES
    if name not in allowed:
        raise ConfigError(
            f"config error: train.loss — {name!r} does not fit a {task} task; "
            f"expected one of auto, {', '.join(allowed)}",
            field="train.loss",
        )
    return name


def balanced_class_weights(y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``n_samples / (n_classes * count)`` per class, as sklearn's ``'balanced'``.

    A class absent from ``y`` gets weight 0 would make its logits untrained; it gets the largest
    observed weight instead so a rare class is never ignored.
    """
    counts = torch.bincount(y.reshape(-1).to(torch.int64).cpu(), minlength=num_classes).double()
    weights = counts.sum() / (num_classes * counts.clamp(min=1))
    weights[counts == 0] = weights[counts > 0].max() if bool((counts > 0).any()) else 1.0
    return weights.float()


def _match_regression(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if out.ndim == target.ndim + 1 and out.shape[-1] == 1:
        return out.squeeze(-1)
    return out


class _Regression(nn.Module):
    def __init__(self, fn: LossFn) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        out = _match_regression(out, target)
        return self.fn(out.float(), target)


class _BinaryCrossEntropy(nn.Module):
    """BCE on one logit per row, or on one-hot targets when the model has one logit per class."""

    def __init__(self, pos_weight: torch.Tensor | None) -> None:
        super().__init__()
        self.pos_weight = pos_weight

    def forward(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        out = out.float()
        if out.ndim == 2 and out.shape[1] == 1:
            out = out.squeeze(1)
        if out.ndim == target.ndim:
            return F.binary_cross_entropy_with_logits(
                out, target.to(out.dtype), pos_weight=self.pos_weight
            )
        one_hot = F.one_hot(target, out.shape[-1]).to(out.dtype)
        return F.binary_cross_entropy_with_logits(out, one_hot, pos_weight=self.pos_weight)


def build_loss(
    name: str,
    task: str,
    *,
    num_classes: int = 0,
    y_train: torch.Tensor | None = None,
    label_smoothing: float = 0.0,
    class_weights: str = "none",
    device: torch.device | str = "cpu",
) -> nn.Module:
    """The loss module for ``name`` (already resolved or ``auto``) on ``device``."""
    name = resolve_loss_name(name, task)
    weights = None
    if class_weights == "balanced":
        if task != "classification" or y_train is None:
            raise ConfigError(
                "config error: train.class_weights — 'balanced' needs a classification task",
                field="train.class_weights",
            )
        weights = balanced_class_weights(y_train, num_classes).to(device)
    if name == "cross_entropy":
        return nn.CrossEntropyLoss(weight=weights, label_smoothing=float(label_smoothing))
    if name == "bce":
        # For one logit per row the positive class weight is w1 / w0 (the ratio BCE can express).
        pos_weight = None
        if weights is not None:
            pos_weight = (weights[1] / weights[0]).reshape(1) if num_classes == 2 else weights
        return _BinaryCrossEntropy(pos_weight)
    if name == "mse":
        return _Regression(F.mse_loss)
    if name == "mae":
        return _Regression(F.l1_loss)
    return _Regression(F.huber_loss)
