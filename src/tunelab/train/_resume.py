"""Saving and restoring a trainer's whole state: what ``checkpoint.pt`` holds and how a resumed
fit picks it up (model, optimiser, schedule, GradScaler, early stopping, best weights, history,
callback states and RNG states), so it ends exactly where an uninterrupted run would.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._checkpoint import CHECKPOINT_FORMAT, load_checkpoint, restore_rng, rng_state

if TYPE_CHECKING:
    from ._trainer import Trainer


def trainer_state(trainer: Trainer, status: str | None = None, reason: str = "") -> dict[str, Any]:
    """Everything a resumed fit needs, as tensors and plain data (``weights_only``-loadable)."""
    return {
        "format": CHECKPOINT_FORMAT,
        "epoch": trainer.epoch,
        "global_step": trainer.global_step,
        "model": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "schedule": trainer.scheduler.state_dict(),
        "scaler": trainer._scaler.state_dict() if trainer._scaler is not None else {},
        "early_stopping": trainer._early.state_dict() if trainer._early is not None else {},
        "best": {
            **trainer._best.state_dict(),
            "metrics": trainer.best_metrics,
            "state": trainer._best_state,
        },
        "history": trainer.history,
        "callbacks": trainer._cbs.state_dict(),
        "rng": rng_state(trainer._gen),
        "finished": {"status": status, "reason": reason} if status else {},
        "wall_time_s": trainer._wall_time(),
    }


def restore_trainer(trainer: Trainer) -> None:
    """Load ``trainer.run_dir / "checkpoint.pt"`` into a set-up trainer, if the file exists."""
    path = trainer.run_dir / "checkpoint.pt" if trainer.run_dir is not None else None
    if path is None or not path.is_file():
        return
    state = load_checkpoint(path)
    trainer.model.load_state_dict(state["model"])
    trainer.optimizer.load_state_dict(state["optimizer"])
    trainer.scheduler.load_state_dict(state["schedule"])
    if trainer._scaler is not None and state["scaler"]:
        trainer._scaler.load_state_dict(state["scaler"])
    if trainer._early is not None and state["early_stopping"]:
        trainer._early.load_state_dict(state["early_stopping"])
    best = state["best"]
    trainer._best.load_state_dict(best)
    trainer.best_epoch, trainer.best_metrics = best.get("best_epoch"), dict(best.get("metrics", {}))
    trainer._best_state = best.get("state")
    trainer.history = list(state["history"])
    trainer.epoch, trainer.global_step = int(state["epoch"]), int(state["global_step"])
    trainer._cbs.load_state_dict(state["callbacks"])
    restore_rng(state["rng"], trainer._gen)
    trainer._maybe_unfreeze(trainer.epoch + 1)
    # A finished run stays finished, unless more epochs were asked for than it ran.
    finished = state.get("finished") or {}
    status = finished.get("status")
    if status == "early_stopped" or (status is not None and trainer.epoch >= trainer.config.epochs):
        trainer._stop = (status, finished["reason"])
    trainer._wall_before = float(state.get("wall_time_s", 0.0))
