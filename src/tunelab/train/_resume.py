"""Saving and restoring a trainer's whole state: what ``checkpoint.pt`` holds and how a resumed
fit picks it up, so it ends exactly where an uninterrupted run would.

The fit's own state is :class:`~tunelab.train.FitState` (``state_dict``/``load_state_dict``);
this module adds the model's weights, the callbacks' states and how the run finished.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..rundir import TrainingDir
from ._checkpoint import CHECKPOINT_FORMAT, load_checkpoint

if TYPE_CHECKING:
    from ._trainer import Trainer


def trainer_state(trainer: Trainer, status: str | None = None, reason: str = "") -> dict[str, Any]:
    """Everything a resumed fit needs, as tensors and plain data (``weights_only``-loadable)."""
    return {
        "format": CHECKPOINT_FORMAT,
        **trainer.state.state_dict(),
        "model": trainer.model.state_dict(),
        "callbacks": trainer._cbs.state_dict(),
        "finished": {"status": status, "reason": reason} if status else {},
    }


def restore_trainer(trainer: Trainer) -> None:
    """Load the run's ``checkpoint.pt`` into a set-up trainer, if the file exists."""
    path = TrainingDir(trainer.run_dir).checkpoint if trainer.run_dir is not None else None
    if path is None or not path.is_file():
        return
    saved = load_checkpoint(path)
    trainer.model.load_state_dict(saved["model"])
    state = trainer.state
    state.load_state_dict(saved)
    trainer._cbs.load_state_dict(saved["callbacks"])
    # A finished run stays finished, unless more epochs were asked for than it ran.
    finished = saved.get("finished") or {}
    status = finished.get("status")
    if status == "early_stopped" or (status is not None and state.epoch >= trainer.config.epochs):
        state.stop = (status, finished["reason"])
