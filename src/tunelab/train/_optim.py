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

# Optimisers with a fused kernel (one op updates every parameter) in torch >= 2.4 on CPU and CUDA.
FUSED_OPTIMIZERS = ("sgd", "adam", "adamw", "adagrad")


def build_optimizer(cfg: TrainConfig, groups: list[dict[str, Any]]) -> torch.optim.Optimizer:
    """The optimiser named by ``cfg.optimizer`` with weight decay (L2) from the config.

    With ``cfg.fused_optimizer`` (the default) SGD, Adam, AdamW and Adagrad use torch's fused
    kernel where this torch and the parameters' device have one: one call per step instead of
    a handful of small ops per parameter tensor (a quarter of a small MLP's CPU step time).
    The update is the same up to float rounding; a torch without the kernel gets the loop.
    """
    lr, wd = float(cfg.lr), float(cfg.weight_decay)
    name = cfg.optimizer
    if name == "sgd":
        cls: type[torch.optim.Optimizer] = torch.optim.SGD
        kwargs: dict[str, Any] = {
            "momentum": float(cfg.momentum),
            "nesterov": bool(cfg.nesterov) and float(cfg.momentum) > 0,
        }
    elif name == "adam":
        cls, kwargs = torch.optim.Adam, {"betas": tuple(cfg.betas)}
    elif name == "adamw":
        cls, kwargs = torch.optim.AdamW, {"betas": tuple(cfg.betas)}
    elif name == "rmsprop":
        cls, kwargs = torch.optim.RMSprop, {}
    elif name == "adagrad":
        cls, kwargs = torch.optim.Adagrad, {}
    else:
        raise ValueError(f"unknown optimizer {name!r}")
    if cfg.fused_optimizer and name in FUSED_OPTIMIZERS and _fusable(groups):
        try:
            return cls(groups, lr=lr, weight_decay=wd, fused=True, **kwargs)
        except (RuntimeError, TypeError, ValueError):  # no fused kernel in this torch/device
            pass
    return cls(groups, lr=lr, weight_decay=wd, **kwargs)


def _fusable(groups: list[dict[str, Any]]) -> bool:
    """Fused kernels need dense floating-point parameters on one CPU or CUDA device."""
    params = [p for group in groups for p in group["params"]]
    devices = {p.device.type for p in params}
    return (
        bool(params)
        and len(devices) == 1
        and devices <= {"cpu", "cuda"}
        and all(p.is_floating_point() and not p.is_sparse for p in params)
    )


def l1_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Weights that the explicit L1 penalty applies to (matrices and kernels, not biases/norms)."""
    return [p for p in model.parameters() if p.ndim > 1]


def l1_penalty(params: Iterable[torch.Tensor]) -> torch.Tensor:
    """``sum(|w|)`` over ``params`` as one tensor (no host sync)."""
    norms = torch._foreach_norm([p for p in params if p.requires_grad], 1)
    return torch.stack(norms).sum() if norms else torch.zeros(())
