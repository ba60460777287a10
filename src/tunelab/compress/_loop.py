"""A short supervised loop with a pluggable loss, for distillation.

The trainer's loss sees ``(outputs, targets)`` only, while distillation needs the teacher's
outputs on the *same* (possibly augmented) batch, so the student is trained here: one straight
loop — batch, forward, loss, backward, step — with the optimiser, learning rate, batch size and
weight decay taken from the run's ``train`` section, the validation metric checked every epoch
and the best epoch's weights kept.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import TrainConfig
from ..data import DataBundle

LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class LoopResult:
    """Best validation metric (accuracy or negative MSE), its epoch, and per-epoch history."""

    best_epoch: int
    best_val: float
    history: list[dict[str, float]] = field(default_factory=list)
    wall_time_s: float = 0.0


def make_optimizer(model: nn.Module, config: TrainConfig, *, lr: float | None = None):
    """The optimiser named in ``train.optimizer`` with the section's settings."""
    lr = float(lr if lr is not None else config.lr)
    params = [p for p in model.parameters() if p.requires_grad]
    wd = float(config.weight_decay)
    name = config.optimizer
    if name == "sgd":
        return torch.optim.SGD(
            params,
            lr=lr,
            momentum=float(config.momentum),
            nesterov=config.nesterov,
            weight_decay=wd,
        )
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=config.betas, weight_decay=wd)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, momentum=float(config.momentum), weight_decay=wd)
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=lr, weight_decay=wd)
    return torch.optim.Adam(params, lr=lr, betas=config.betas, weight_decay=wd)


def default_loss(task: str) -> LossFn:
    """Cross-entropy for classification, MSE for regression (``xb`` unused)."""
    if task == "classification":
        return lambda out, y, xb: F.cross_entropy(out, y)
    return lambda out, y, xb: F.mse_loss(out.reshape(y.shape), y)


def val_score(model: nn.Module, bundle: DataBundle, device: torch.device) -> float:
    """Validation accuracy, or negative MSE for regression: higher is better either way."""
    model.eval()
    X, y = bundle.X_val, bundle.y_val
    outs = []
    with torch.no_grad():
        for i in range(0, len(X), 512):
            outs.append(model(X[i : i + 512].to(device)).cpu())
    out = torch.cat(outs)
    if bundle.task == "classification":
        return float((out.argmax(1) == y).float().mean())
    return -float(F.mse_loss(out.reshape(y.shape), y))


def fit_loop(
    model: nn.Module,
    bundle: DataBundle,
    *,
    config: TrainConfig,
    epochs: int,
    loss_fn: LossFn | None = None,
    lr: float | None = None,
    seed: int = 0,
    device: torch.device | None = None,
) -> LoopResult:
    """Train ``model`` in place for ``epochs`` and leave the best validation epoch's weights."""
    device = device or torch.device("cpu")
    loss_fn = loss_fn or default_loss(bundle.task)
    model.to(device)
    optimizer = make_optimizer(model, config, lr=lr)
    generator = torch.Generator().manual_seed(seed)
    batch_size = int(config.batch_size)
    X, y = bundle.X_train, bundle.y_train
    best_val = val_score(model, bundle, device)
    best_state = copy.deepcopy(model.state_dict())
    best_epoch, history = 0, []
    started = time.perf_counter()
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(X), generator=generator)
        total, batches = torch.zeros(()), 0
        for start in range(0, len(X), batch_size):
            idx = order[start : start + batch_size]
            if len(idx) < 2 and len(X) > 1:  # a 1-row batch breaks BatchNorm; skip the tail
                continue
            xb = X[idx]
            if bundle.augmenter is not None:
                xb = bundle.augmenter(xb, generator)
            xb, yb = xb.to(device), y[idx].to(device)
            loss = loss_fn(model(xb), yb, xb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach().cpu()
            batches += 1
        score = val_score(model, bundle, device)
        history.append({"epoch": epoch, "train_loss": float(total) / max(batches, 1), "val": score})
        if score > best_val:
            best_val, best_epoch = score, epoch
            best_state = copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    model.eval()
    return LoopResult(best_epoch, best_val, history, time.perf_counter() - started)
