"""Learning-rate schedules as one multiplier of each group's base LR, with linear warm-up.

Every schedule is a pure function of progress (optimiser steps and epochs done), except
reduce-on-plateau, which keeps its best value and patience; so the whole state is a few numbers
and a resumed run sets exactly the learning rate the uninterrupted run had.

- ``step``: ``gamma ** (epoch // step_size)``; ``exponential``: ``gamma ** epoch``;
- ``cosine``: from the base LR down to ``min_lr`` over the steps after warm-up;
- ``onecycle``: up from ``peak / 25`` to ``peak = lr * max_lr_mult`` over the first 30 % of the
  steps, then cosine down to ``peak / 1e4`` (torch's ``OneCycleLR`` defaults);
- ``plateau``: multiply by ``factor`` when the monitored metric has not improved for
  ``patience`` epochs, never below ``min_lr``.

Warm-up ramps the multiplier linearly from ``1 / warmup_steps`` to 1 over ``warmup_epochs``.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..config import ScheduleConfig
from ._early_stopping import Monitor


class LRSchedule:
    """Sets ``group["lr"]`` of ``optimizer`` from the schedule in ``cfg``.

    Call :meth:`step_batch` after each optimiser step and :meth:`step_epoch` after each epoch.
    """

    def __init__(
        self,
        cfg: ScheduleConfig,
        optimizer: torch.optim.Optimizer,
        *,
        steps_per_epoch: int,
        epochs: int,
        monitor: str = "val_loss",
    ) -> None:
        self.cfg = cfg
        self.optimizer = optimizer
        self.steps_per_epoch = max(1, steps_per_epoch)
        self.epochs = epochs
        self.base_lrs = [float(g["lr"]) for g in optimizer.param_groups]
        self.step = 0
        self.epoch = 0
        self.plateau_mult = 1.0
        self.plateau = Monitor(monitor)
        self.plateau_wait = 0
        self._changes_per_step = self.per_step  # the config is fixed; step_batch runs every step

    @property
    def warmup_steps(self) -> int:
        return int(self.cfg.warmup_epochs) * self.steps_per_epoch

    @property
    def per_step(self) -> bool:
        """Whether the LR changes inside an epoch (otherwise only at epoch boundaries)."""
        return self.warmup_steps > 0 or self.cfg.name in ("cosine", "onecycle")

    def multiplier(self, base_lr: float) -> float:
        """The factor applied to ``base_lr`` at the current step and epoch."""
        name, total = self.cfg.name, self.epochs * self.steps_per_epoch
        warm = self.warmup_steps
        mult = 1.0
        if name == "step":
            mult = float(self.cfg.gamma) ** (self.epoch // int(self.cfg.step_size))
        elif name == "exponential":
            mult = float(self.cfg.gamma) ** self.epoch
        elif name == "cosine":
            span = max(1, total - warm)
            progress = min(1.0, max(0, self.step - warm) / span)
            floor = min(1.0, self.cfg.min_lr / base_lr) if base_lr > 0 else 0.0
            mult = floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
        elif name == "onecycle":
            mult = self._onecycle(total)
        elif name == "plateau":
            mult = self.plateau_mult
            if base_lr > 0:
                mult = max(mult, self.cfg.min_lr / base_lr)
        if warm > 0 and self.step < warm:
            mult *= (self.step + 1) / warm
        return mult

    def _onecycle(self, total: int) -> float:
        peak = float(self.cfg.max_lr_mult)
        start, end = peak / 25.0, peak / 1e4
        rise = max(1, int(0.3 * total))
        if self.step < rise:
            t = self.step / rise
            return start + (peak - start) * 0.5 * (1 - math.cos(math.pi * t))
        t = min(1.0, (self.step - rise) / max(1, total - rise))
        return end + (peak - end) * 0.5 * (1 + math.cos(math.pi * t))

    def apply(self) -> None:
        for group, base in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["lr"] = base * self.multiplier(base)

    def step_batch(self) -> None:
        self.step += 1
        if self._changes_per_step:
            self.apply()

    def step_epoch(self, metrics: dict[str, Any]) -> None:
        self.epoch += 1
        if self.cfg.name == "plateau":
            value = metrics.get(self.plateau.metric)
            if value is not None:
                if self.plateau.update(float(value), self.epoch):
                    self.plateau_wait = 0
                else:
                    self.plateau_wait += 1
                    if self.plateau_wait > self.cfg.patience:
                        self.plateau_mult *= self.cfg.factor
                        self.plateau_wait = 0
        self.apply()

    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "epoch": self.epoch,
            "plateau_mult": self.plateau_mult,
            "plateau_wait": self.plateau_wait,
            "plateau": self.plateau.state_dict(),
            "base_lrs": list(self.base_lrs),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = int(state["step"])
        self.epoch = int(state["epoch"])
        self.plateau_mult = float(state["plateau_mult"])
        self.plateau_wait = int(state["plateau_wait"])
        self.plateau.load_state_dict(state["plateau"])
        self.base_lrs = [float(v) for v in state["base_lrs"]]
        self.apply()
