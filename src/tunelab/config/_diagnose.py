"""The ``diagnose`` section: the training doctor attached to the trainer."""

from __future__ import annotations

from pydantic import Field

from ._base import Section


class DiagnoseConfig(Section):
    """The training doctor attached to the trainer (``docs/diagnose.md``)."""

    enabled: bool = False
    # Sample per-layer gradients, activations and input batches every this many steps.
    every_n_steps: int = Field(10, ge=1)
    # The share of the training time the doctor's sampled work may take: past the first steps
    # and a minimum per epoch it samples less often than every_n_steps when that would cost
    # more (tiny fits). null: no budget, exactly every_n_steps.
    overhead_budget: float | None = Field(0.05, gt=0, le=1)
    # End a fit whose loss diverged, whose gradients blew up or whose inputs hold NaN/inf.
    stop_on_error: bool = True
    # Log per-layer gradient RMS and dead/saturated fractions to the run's TensorBoard.
    tensorboard: bool = True
    # `tunelab doctor`: epochs of each diagnostic run (default: train.epochs, at most 10).
    epochs: int | None = Field(None, gt=0)
    # `tunelab doctor --fix`: how many repair rounds at most (one cause per round; a round is a
    # short diagnostic fit, so six stay cheap).
    rounds: int = Field(6, ge=1, le=10)
    # `tunelab doctor --fix`: train the repaired config and the one given in full (their own
    # epochs and early stopping) and hand back the repair only if it is not worse there: a
    # change that helps a short round can lose over the whole training.
    confirm: bool = True
