"""The ``Callback`` base: no-op hooks named for the moment the trainer calls them.

Diagnosis (the doctor), tuning (pruning) and logging all plug into the trainer through these
hooks; the trainer itself knows nothing about them. A user overrides only the hooks they need.

>>> from tunelab.train import Callback
>>> class StopAtEpoch(Callback):
...     def __init__(self, last):
...         self.last = last
...     def on_epoch_end(self, trainer, epoch, metrics):
...         if epoch >= self.last:
...             trainer.request_stop(f"asked to stop after epoch {epoch}")
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from ._result import FitResult
    from ._trainer import Trainer

HOOKS = (
    "on_fit_start",
    "on_epoch_start",
    "after_backward",
    "on_batch_end",
    "on_epoch_end",
    "on_fit_end",
)


class Callback:
    """Base class of everything that watches or steers a :class:`~tunelab.train.Trainer`.

    Every hook is a no-op. Epochs are counted from 1. ``after_backward`` and ``on_batch_end``
    run once per optimiser step (after the last micro-batch when gradients are accumulated);
    ``loss`` is a detached tensor on the training device: do not call ``.item()`` on it every
    step, that forces a host sync (look at it every N steps instead). During ``after_backward``,
    ``trainer.step_batches`` holds the step's micro-batches ``(inputs, targets, share of rows)``.

    A stateful callback returns plain data (numbers, strings, lists, dicts, tensors) from
    :meth:`state_dict`; it is stored in ``checkpoint.pt`` and handed back to
    :meth:`load_state_dict` when a run resumes.
    """

    def on_fit_start(self, trainer: Trainer) -> None:
        """Before the first epoch (after a resume restored the state)."""

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        """Before the first batch of ``epoch``."""

    def after_backward(self, trainer: Trainer, loss: torch.Tensor) -> None:
        """Gradients are complete (and unscaled), the optimiser has not stepped yet."""

    def on_batch_end(self, trainer: Trainer, step: int, loss: torch.Tensor) -> None:
        """After optimiser step number ``step`` (``trainer.global_step``)."""

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, Any]) -> None:
        """After validation; ``metrics`` is the epoch's row of ``trainer.history``."""

    def on_fit_end(self, trainer: Trainer, result: FitResult) -> None:
        """After the last epoch, whatever the status."""

    def state_dict(self) -> dict[str, Any]:
        """What this callback needs to resume; plain data only."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""


def overrides(callback: Callback, hook: str) -> bool:
    """Whether ``callback`` implements ``hook`` (so per-step loops skip the no-ops)."""
    return getattr(type(callback), hook, None) is not getattr(Callback, hook)


class CallbackList:
    """The callbacks of one fit, grouped by the hooks they implement.

    Dispatching only to callbacks that override a hook keeps the per-step cost of an unused
    hook at one empty ``for`` loop.
    """

    def __init__(self, callbacks: Iterable[Callback]) -> None:
        self.callbacks: list[Callback] = list(callbacks)
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(
                    f"callbacks must derive tunelab.train.Callback, got {type(cb).__name__}"
                )
        self.by_hook: dict[str, list[Callback]] = {
            hook: [cb for cb in self.callbacks if overrides(cb, hook)] for hook in HOOKS
        }

    def keys(self) -> list[str]:
        """A stable name per callback for the checkpoint (class name, #n for duplicates)."""
        seen: dict[str, int] = {}
        names = []
        for cb in self.callbacks:
            name = type(cb).__name__
            seen[name] = seen.get(name, 0) + 1
            names.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
        return names

    def state_dict(self) -> dict[str, Any]:
        return {key: cb.state_dict() for key, cb in zip(self.keys(), self.callbacks, strict=True)}

    def load_state_dict(self, states: dict[str, Any]) -> None:
        for key, cb in zip(self.keys(), self.callbacks, strict=True):
            if key in states:
                cb.load_state_dict(states[key])

    def hook(self, name: str) -> Sequence[Callback]:
        return self.by_hook[name]
