"""``FitResult``: what a fit returns, whatever way it ended."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from ._health import Sickness

Status = Literal["completed", "early_stopped", "stopped", "pruned", "diverged", "nan", "oom"]
STATUSES: tuple[str, ...] = (
    "completed",
    "early_stopped",
    "stopped",
    "pruned",
    "diverged",
    "nan",
    "oom",
)
# What a callback may ask for with ``trainer.request_stop``; the rest the trainer decides itself.
REQUESTABLE: tuple[str, ...] = ("stopped", "pruned", "diverged")


@dataclass
class FitResult:
    """The outcome of :meth:`Trainer.fit`.

    ``status`` says how it ended: ``completed`` (all epochs), ``early_stopped``, ``stopped`` (a
    callback or Ctrl-C), ``pruned`` (the tuner), ``diverged`` (the sick-trial guard or the
    doctor), ``nan`` (a NaN/inf loss) or ``oom`` (out of memory); ``reason`` says why in
    words. ``history`` has one metric dict per epoch; ``best_metrics`` is the row of
    ``best_epoch`` (by ``train.monitor``).
    ``sickness`` is the sick-trial guard's verdict when it ended the fit (status ``nan`` or
    ``diverged``), else ``None``.
    """

    status: Status
    reason: str
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int | None = None
    best_metrics: dict[str, Any] = field(default_factory=dict)
    epochs_run: int = 0
    wall_time_s: float = 0.0
    sickness: Sickness | None = None

    @property
    def ok(self) -> bool:
        """Whether the model is usable (training ended normally or early by design)."""
        return self.status in ("completed", "early_stopped", "stopped", "pruned")

    @property
    def final_metrics(self) -> dict[str, Any]:
        return dict(self.history[-1]) if self.history else {}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
