"""Setting up one fit: the fixed :class:`FitPlan` (data on the device, loss, forward wrappers,
batch layout) and the fresh :class:`~tunelab.train.FitState` the loop then mutates.

Both are built here, once per fit, by :func:`plan_fit`; the Trainer keeps nothing else per fit.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from ..config import TrainConfig
from ..errors import ConfigError
from ..models import param_groups, transfer_settings
from ._early_stopping import EarlyStopping, Monitor, check_metric
from ._losses import build_loss
from ._metrics import metric_names
from ._optim import build_optimizer, l1_parameters
from ._schedules import LRSchedule
from ._setup import (
    autocast_context,
    batch_scales,
    batch_sizes,
    resolve_precision,
    to_device,
    wrap_model,
)
from ._state import FitState


@dataclass
class FitPlan:
    """What stays fixed during one fit: the tensors, the loss, the model wrappers, the batches."""

    X: torch.Tensor
    y: torch.Tensor
    Xv: torch.Tensor
    yv: torch.Tensor
    augmenter: Any
    loss_fn: Callable[..., torch.Tensor]
    monitor: str
    autocast: Callable[[], Any]
    train_forward: Callable[[torch.Tensor], torch.Tensor]
    eval_forward: Callable[[torch.Tensor], torch.Tensor]
    ddp: Any
    trainable: list[nn.Parameter]
    l1: float
    l1_params: list[nn.Parameter]
    batch_scales: Sequence[float]
    batch_rows: list[int]
    batch_weights: torch.Tensor  # batch_rows as float64 on the device (the epoch loss weights)
    # ``yv * classes`` for the validation confusion matrix (classification only): made once.
    yv_offsets: torch.Tensor | None = None
    # fp32 without DDP, GradScaler, clipping or L1: a step is forward, loss, backward, step.
    plain: bool = False

    @property
    def has_val(self) -> bool:
        return len(self.Xv) > 0


def monitor_of(cfg: TrainConfig, task: str, has_val: bool) -> str:
    """Reject misspelt monitors up front; without a validation split fall back to train_loss."""
    names = metric_names(task, has_val=True)
    check_metric(cfg.monitor, names, field="train.monitor")
    es = cfg.early_stopping
    if es.enabled:
        check_metric(es.monitor, names, field="train.early_stopping.monitor")
    return cfg.monitor if has_val or not cfg.monitor.startswith("val_") else "train_loss"


def plan_fit(
    cfg: TrainConfig,
    model: nn.Module,
    bundle: Any,
    *,
    device: torch.device,
    world_size: int,
    seed: int,
) -> tuple[FitPlan, FitState]:
    """The fixed plan and the fresh state of a fit of ``model`` (already on ``device``)."""
    move = functools.partial(to_device, device=device, pin=cfg.pin_memory)
    X, y, Xv, yv = (move(t) for t in (bundle.X_train, bundle.y_train, bundle.X_val, bundle.y_val))
    if len(X) == 0:
        raise ConfigError("config error: data — the training split is empty")
    has_val = len(Xv) > 0
    loss_fn = build_loss(
        cfg.loss,
        bundle.task,
        num_classes=bundle.num_classes,
        y_train=bundle.y_train,
        label_smoothing=float(cfg.label_smoothing),
        class_weights=cfg.class_weights,
        device=device,
    )
    monitor = monitor_of(cfg, bundle.task, has_val)
    precision = resolve_precision(cfg.precision, device)
    train_forward, eval_forward, ddp = wrap_model(
        model, distributed=world_size > 1, compile=bool(cfg.compile)
    )
    local_rows = math.ceil(len(X) / world_size)
    l1 = float(cfg.l1)
    plan = FitPlan(
        X=X,
        y=y,
        Xv=Xv,
        yv=yv,
        augmenter=getattr(bundle, "augmenter", None),
        loss_fn=loss_fn,
        monitor=monitor,
        autocast=autocast_context(precision, device),
        train_forward=train_forward,
        eval_forward=eval_forward,
        ddp=ddp,
        trainable=list(model.parameters()),
        l1=l1,
        l1_params=l1_parameters(model) if l1 else [],
        batch_scales=batch_scales(local_rows, int(cfg.batch_size), int(cfg.accumulate_steps)),
        batch_rows=batch_sizes(local_rows, int(cfg.batch_size)),
        batch_weights=torch.tensor(
            batch_sizes(local_rows, int(cfg.batch_size)), dtype=torch.float64, device=device
        ),
    )
    if bundle.task == "classification" and has_val:
        plan.yv_offsets = yv * max(int(bundle.num_classes), 2)
    state = _fresh_state(cfg, model, plan, device=device, seed=seed, precision=precision)
    plan.plain = (
        ddp is None
        and plan.autocast is contextlib.nullcontext
        and state.scaler is None
        and cfg.clip_grad_norm is None
        and cfg.clip_grad_value is None
        and not l1
    )
    return plan, state


def steps_per_epoch(cfg: TrainConfig, plan: FitPlan) -> int:
    return math.ceil(len(plan.batch_scales) / int(cfg.accumulate_steps))


def _fresh_state(
    cfg: TrainConfig,
    model: nn.Module,
    plan: FitPlan,
    *,
    device: torch.device,
    seed: int,
    precision: str,
) -> FitState:
    # Frozen parameters stay in their group, so unfreezing later needs no new optimiser.
    if transfer_settings(model) is not None:
        groups = param_groups(model, float(cfg.lr))
    else:
        groups = [{"params": list(model.parameters()), "lr": float(cfg.lr), "name": "all"}]
    optimizer = build_optimizer(cfg, groups)
    scheduler = LRSchedule(
        cfg.schedule,
        optimizer,
        steps_per_epoch=steps_per_epoch(cfg, plan),
        epochs=int(cfg.epochs),
        monitor=plan.monitor,
    )
    scheduler.apply()
    es = cfg.early_stopping
    early = (
        EarlyStopping(es.monitor, mode=es.mode, patience=es.patience, min_delta=es.min_delta)
        if es.enabled and (plan.has_val or not es.monitor.startswith("val_"))
        else None
    )
    return FitState(
        optimizer=optimizer,
        scheduler=scheduler,
        generator=torch.Generator(device=device).manual_seed(seed),
        best=Monitor(plan.monitor),
        scaler=torch.amp.GradScaler("cuda") if precision == "fp16" else None,
        early=early,
    )


def no_sync(plan: FitPlan, last_micro: bool) -> contextlib.AbstractContextManager:
    """Accumulated micro-batches skip DDP's gradient all-reduce until the last one."""
    return contextlib.nullcontext() if last_micro or plan.ddp is None else plan.ddp.no_sync()
