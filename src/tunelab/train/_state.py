"""``FitState``: everything one :meth:`Trainer.fit` mutates, in one object.

The Trainer creates it once (in ``_setup``) and keeps nothing else per fit; resuming is
``state.load_state_dict(checkpoint)`` and checkpointing is ``state.state_dict()``. The keys are
those ``checkpoint.pt`` always had, so checkpoints written before this class still resume.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from ._checkpoint import restore_rng, rng_state
from ._early_stopping import EarlyStopping, Monitor
from ._health import Sickness
from ._schedules import LRSchedule


@dataclass
class FitState:
    """The mutable state of one fit: counters, optimiser, schedule, best model, RNG, clocks.

    ``stop`` is the pending ``(status, reason)`` once something asked the fit to end;
    ``best_train_loss`` is the sick-trial guard's yardstick (the lowest epoch train loss);
    ``sickness`` is the guard's verdict when it ended the fit.
    """

    optimizer: torch.optim.Optimizer
    scheduler: LRSchedule
    generator: torch.Generator
    best: Monitor
    scaler: torch.amp.GradScaler | None = None
    early: EarlyStopping | None = None
    epoch: int = 0
    global_step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int | None = None
    best_metrics: dict[str, Any] = field(default_factory=dict)
    best_weights: dict[str, torch.Tensor] | None = None
    best_dirty: bool = False
    is_best: bool = False
    best_train_loss: float = math.inf
    sickness: Sickness | None = None
    stop: tuple[str, str] | None = None
    wall_before: float = 0.0
    fit_started: float = field(default_factory=time.perf_counter)
    last_checkpoint: float = field(default_factory=time.monotonic)

    def wall_time(self) -> float:
        """Seconds of training, including those before a resume."""
        return self.wall_before + time.perf_counter() - self.fit_started

    def state_dict(self) -> dict[str, Any]:
        """Tensors and plain data only, so ``torch.load(weights_only=True)`` reads it."""
        return {
            "epoch": self.epoch,
            "global_step": self.global_step,
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else {},
            "early_stopping": self.early.state_dict() if self.early is not None else {},
            "best": {
                **self.best.state_dict(),
                "metrics": self.best_metrics,
                "state": self.best_weights,
            },
            "history": self.history,
            "rng": rng_state(self.generator),
            "health": {"best_train_loss": self.best_train_loss},
            "wall_time_s": self.wall_time(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from what :meth:`state_dict` returned (also from older checkpoints)."""
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["schedule"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        if self.early is not None and state.get("early_stopping"):
            self.early.load_state_dict(state["early_stopping"])
        best = state["best"]
        self.best.load_state_dict(best)
        self.best_epoch = best.get("best_epoch")
        self.best_metrics = dict(best.get("metrics", {}))
        self.best_weights = best.get("state")
        self.history = list(state["history"])
        self.epoch, self.global_step = int(state["epoch"]), int(state["global_step"])
        restore_rng(state["rng"], self.generator)
        health = state.get("health") or {}
        # A checkpoint from before the guard kept its yardstick: rebuild it from the history.
        losses = [float(r["train_loss"]) for r in self.history if "train_loss" in r]
        rebuilt = min((v for v in losses if math.isfinite(v)), default=math.inf)
        self.best_train_loss = float(health.get("best_train_loss", rebuilt))
        self.wall_before = float(state.get("wall_time_s", 0.0))
        self.fit_started = time.perf_counter()
