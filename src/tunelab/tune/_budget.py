"""The study budget: trials, wall time, total training epochs -- whichever ends first.

Trials and epochs are counted from the storage, over the whole study and every worker, so a
resumed study does only what is left and two workers together stop at the budget. A trial
counts once it is complete, pruned, or failed by its own error; a trial lost with a crashed
process does not count, since its retry runs in its place.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import optuna
from optuna.trial import FrozenTrial, TrialState

ERROR_ATTR = "error"
EPOCHS_ATTR = "epochs"
SEED_ATTR = "seed"  # the seed a trial trained from (_objective.trial_seed)


def counts_toward_budget(trial: FrozenTrial) -> bool:
    """Complete, pruned, or failed by its own error (not lost to a crashed process)."""
    if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
        return True
    return trial.state == TrialState.FAIL and ERROR_ATTR in trial.user_attrs


def trial_epochs(trial: FrozenTrial) -> int:
    """Epochs a trial trained: what it recorded, or the steps it reported if more (running)."""
    epochs = trial.user_attrs.get(EPOCHS_ATTR)
    recorded = int(epochs) if isinstance(epochs, (int, float)) else 0
    return max(recorded, len(trial.intermediate_values))


@dataclass
class Budget:
    """Limits of one study; ``exhausted`` says why it should stop, or ``None``.

    Args:
        trials: finished trials the study should have in the end (all runs together).
        timeout_s: wall-clock seconds for this invocation (a resumed run gets a fresh clock).
        max_total_epochs: training epochs summed over every trial of the study.
        grid_size: with grid search, the number of grid points (stop once each has run).
    """

    trials: int | None = None
    timeout_s: float | None = None
    max_total_epochs: int | None = None
    grid_size: int | None = None
    _started: float = field(default_factory=time.monotonic, repr=False)

    def restart_clock(self) -> None:
        self._started = time.monotonic()

    def elapsed_s(self) -> float:
        return time.monotonic() - self._started

    def exhausted(self, study: optuna.Study) -> str | None:
        """Why no further trial should start, or ``None`` while budget is left."""
        if self.timeout_s is not None and self.elapsed_s() >= self.timeout_s:
            return f"timeout of {self.timeout_s:g}s reached"
        if self.max_total_epochs is None:
            # Fast path: while even an over-count of the trials stays below every limit, one
            # COUNT query answers (loading all trials costs six queries on an RDB storage).
            upper = _count_upper_bound(study)
            limits = [n for n in (self.trials, self.grid_size) if n is not None]
            if upper is not None and limits and upper < min(limits):
                return None
        trials = study._storage.get_all_trials(study._study_id, deepcopy=False)
        done = [t for t in trials if counts_toward_budget(t)]
        running = [t for t in trials if t.state == TrialState.RUNNING]
        if self.trials is not None and len(done) + len(running) >= self.trials:
            return f"trial budget of {self.trials} reached"
        if self.max_total_epochs is not None:
            epochs = sum(trial_epochs(t) for t in done)
            if epochs >= self.max_total_epochs:
                return f"epoch budget of {self.max_total_epochs} used ({epochs} epochs)"
        if self.grid_size is not None:
            covered = {
                t.system_attrs.get("grid_id")
                for t in [*done, *running]
                if "grid_id" in t.system_attrs
            }
            if len(covered) >= self.grid_size:
                return f"all {self.grid_size} grid points done"
        return None


_COUNT_STATES = ("COMPLETE", "PRUNED", "FAIL", "RUNNING")


def _count_upper_bound(study: optuna.Study) -> int | None:
    """Complete + pruned + failed + running trials by one SQL COUNT; None if not an RDB.

    An upper bound of what the budget counts (crashed failures are included). Reads Optuna's
    ``trials`` table directly; any surprise (another storage, a schema change) returns None and
    the caller falls back to loading the trials.
    """
    backend = getattr(study._storage, "_backend", study._storage)
    engine = getattr(backend, "engine", None)
    if engine is None:
        return None
    # Imported here, not at the top: a Ray trial's worker imports this module for
    # ``ERROR_ATTR`` alone, and SQLAlchemy is a fifth of a second of every new actor's start.
    import sqlalchemy

    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sqlalchemy.text(
                    "SELECT state, COUNT(*) FROM trials WHERE study_id = :study GROUP BY state"
                ),
                {"study": study._study_id},
            ).all()
    except Exception:
        return None
    counts = {str(state).rsplit(".", 1)[-1]: int(n) for state, n in rows}
    return sum(counts.get(state, 0) for state in _COUNT_STATES)
