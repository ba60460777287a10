"""Optimisers by config name and the explicit L1 penalty.

Parameter groups for transfer learning (head at ``lr``, backbone at ``lr * backbone_lr_mult``)
come from :func:`tunelab.models.param_groups`; a parameter without a gradient (a frozen
backbone) is skipped by every torch optimiser, so it is neither decayed nor updated.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.nn as nn

from ..config import TrainConfig


def build_optimizer(cfg: TrainConfig, groups: list[dict[str, Any]]) -> torch.optim.Optimizer:
    """The optimiser named by ``cfg.optimizer`` with weight decay (L2) from the config."""
    lr, wd = float(cfg.lr), float(cfg.weight_decay)
    name = cfg.optimizer
    if name == "sgd":
        return torch.optim.SGD(
            groups,
            lr=lr,
            momentum=float(cfg.momentum),
            nesterov=bool(cfg.nesterov) and float(cfg.momentum) > 0,
            weight_decay=wd,
        )
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr, betas=tuple(cfg.betas), weight_decay=wd)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=tuple(cfg.betas), weight_decay=wd)
    if name == "rmsprop":
        return torch.optim.RMSprop(groups, lr=lr, weight_decay=wd)
    if name == "adagrad":
        return torch.optim.Adagrad(groups, lr=lr, weight_decay=wd)
    raise ValueError(f"unknown optimizer {name!r}")


def l1_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Weights that the explicit L1 penalty applies to (matrices and kernels, not biases/norms)."""
    return [p for p in model.parameters() if p.ndim > 1]


def l1_penalty(params: Iterable[torch.Tensor]) -> torch.Tensor:
    """``sum(|w|)`` over ``params`` as one tensor (no host sync)."""
    norms = torch._foreach_norm([p for p in params if p.requires_grad], 1)
    return torch.stack(norms).sum() if norms else torch.zeros(())
