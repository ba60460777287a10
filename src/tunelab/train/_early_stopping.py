"""Early stopping and "is this the best epoch?": one small monitor class for both.

Like Lightning's ``EarlyStopping``, :meth:`EarlyStopping.update` returns ``(should_stop,
reason)`` so the reason ends up in the result, and a monitored metric that does not exist is
an error that lists the metrics that do.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Literal

from ..errors import ConfigError

_LOWER_IS_BETTER = ("loss", "mse", "mae", "rmse", "error", "time")


def infer_mode(metric: str) -> Literal["min", "max"]:
    """``min`` for losses and errors, ``max`` for accuracy, F1, precision, recall, R2."""
    return "min" if any(part in metric for part in _LOWER_IS_BETTER) else "max"


def check_metric(metric: str, available: Iterable[str], *, field: str, hint: str = "") -> None:
    """Raise a one-line :class:`ConfigError` when ``metric`` is not among ``available``."""
    names = sorted(available)
    if metric not in names:
        raise ConfigError(
            f"config error: {field} — metric {metric!r} does not exist in this run; "
            f"metrics: {', '.join(names)}{hint}",
            field=field,
        )


class Monitor:
    """Tracks the best value of one metric (``mode`` min or max, improvement > ``min_delta``)."""

    def __init__(self, metric: str, mode: str = "auto", min_delta: float = 0.0) -> None:
        self.metric = metric
        self.mode = infer_mode(metric) if mode == "auto" else mode
        self.min_delta = min_delta
        self.best: float | None = None
        self.best_epoch: int | None = None

    def improves(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def update(self, value: float, epoch: int) -> bool:
        """Record ``value``; True when it is a new best."""
        if self.improves(value):
            self.best, self.best_epoch = float(value), epoch
            return True
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = state.get("best")
        self.best_epoch = state.get("best_epoch")


class EarlyStopping(Monitor):
    """Stop when ``metric`` has not improved by more than ``min_delta`` for ``patience`` epochs.

    >>> stopper = EarlyStopping("val_loss", patience=2)
    >>> [stopper.update_and_check(v, e)[0] for e, v in enumerate([1.0, 0.9, 0.95, 0.91], 1)]
    [False, False, False, True]
    """

    def __init__(
        self, metric: str, *, mode: str = "auto", patience: int = 5, min_delta: float = 0.0
    ) -> None:
        super().__init__(metric, mode, min_delta)
        self.patience = patience
        self.wait = 0

    def update_and_check(self, value: float, epoch: int) -> tuple[bool, str]:
        """Record the epoch's value; ``(should_stop, reason)``."""
        if self.update(value, epoch):
            self.wait = 0
            return False, ""
        self.wait += 1
        if self.wait >= self.patience:
            return True, (
                f"{self.metric} did not improve by more than {self.min_delta:g} for "
                f"{self.wait} epochs (best {self.best:.6g} at epoch {self.best_epoch})"
                if self.best is not None
                else f"{self.metric} was never finite in {self.wait} epochs"
            )
        return False, ""

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "wait": self.wait}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.wait = int(state.get("wait", 0))
