"""Optimisers by config name, parameter groups for transfer learning, and the L1 penalty.

Transfer learning follows the models stage's convention: the final layer is ``model.head``,
everything else is the backbone. The backbone group gets ``lr * backbone_lr_mult``
(discriminative learning rates); a frozen backbone stays in its group with
``requires_grad=False`` so unfreezing later needs no new optimiser (a parameter without a
gradient is skipped by every torch optimiser, so it is neither decayed nor updated meanwhile).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.nn as nn

from ..config import TrainConfig


def head_and_backbone(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """``(head, backbone)`` parameters; all of them are "head" when the model has no ``head``."""
    head = getattr(model, "head", None)
    if not isinstance(head, nn.Module):
        return list(model.parameters()), []
    head_ids = {id(p) for p in head.parameters()}
    return (
        [p for p in model.parameters() if id(p) in head_ids],
        [p for p in model.parameters() if id(p) not in head_ids],
    )


def parameter_groups(
    model: nn.Module, lr: float, *, backbone_lr_mult: float = 1.0, transfer: bool = False
) -> list[dict[str, Any]]:
    """One group per learning rate; ``name`` tags each group for logs and tests."""
    if not transfer:
        return [{"params": list(model.parameters()), "lr": lr, "name": "all"}]
    head, backbone = head_and_backbone(model)
    groups = [{"params": head, "lr": lr, "name": "head"}]
    if backbone:
        groups.append({"params": backbone, "lr": lr * backbone_lr_mult, "name": "backbone"})
    return groups


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


def set_backbone_trainable(model: nn.Module, trainable: bool) -> int:
    """Freeze or unfreeze everything but ``model.head``; returns how many tensors changed."""
    _, backbone = head_and_backbone(model)
    changed = 0
    for p in backbone:
        if p.requires_grad != trainable:
            p.requires_grad_(trainable)
            changed += 1
    return changed
