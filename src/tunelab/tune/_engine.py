"""The study engine shared by config studies and any user ``objective(trial)``.

``tune_objective`` is the whole engine for a plain objective: sampler and pruner by name, the
budget, crash-safe storage, progress, failed trials recorded, a :class:`StudyResult` at the end.
``run_study`` (``_config_study.py``) builds a training objective from an experiment config and
runs it through the same functions.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna

from ..config import parse_duration
from ..errors import ConfigError, FatalError
from ._budget import Budget
from ._loop import run_trials
from ._progress import LiveTable, progress_mode, trial_callbacks
from ._pruners import make_pruner
from ._result import StudyResult, summarize
from ._samplers import make_sampler
from ._space import as_spaces, grid_size, suggest
from ._storage import MEMORY, open_storage, reclaim_orphans


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    """Optuna's per-trial log lines and experimental warnings off; tunelab reports instead."""
    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            warnings.filterwarnings("ignore", module="optuna")
            yield
    finally:
        optuna.logging.set_verbosity(previous)


def open_study(
    storage: optuna.storages.BaseStorage,
    *,
    study_name: str,
    directions: Sequence[str],
    sampler: optuna.samplers.BaseSampler,
    pruner: optuna.pruners.BasePruner,
) -> optuna.Study:
    """Create the study, or load it to continue; a direction mismatch is one clear error."""
    try:
        existing = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        existing = None
    if existing is not None:
        found = [d.name.lower() for d in existing.directions]
        if found != list(directions):
            raise FatalError(
                f"error: study {study_name!r} in this storage optimises {found}, the config asks "
                f"for {list(directions)}; use a new experiment name or another storage"
            )
    return optuna.create_study(
        storage=storage,
        study_name=study_name,
        directions=list(directions),
        sampler=sampler,
        pruner=pruner,
        load_if_exists=True,
    )


def session_seed(seed: int | None, study: optuna.Study, worker: int = 0) -> int | None:
    """A sampler seed that differs per worker and per resumed session.

    Reusing the same seed after a resume would make a random or start-up phase replay the
    parameters of the first session; offsetting by the trials already stored avoids that.
    """
    if seed is None:
        return None
    return (
        seed + 7919 * worker + len(study._storage.get_all_trials(study._study_id, deepcopy=False))
    )


def execute(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], Any],
    budget: Budget,
    *,
    progress: str,
    title: str,
    max_consecutive_failures: int = 5,
    max_retries: int = 2,
    extra_callbacks: Sequence[Callable] = (),
    parent_pid: int | None = None,
    lock_path: Path | None = None,
) -> str:
    """Reclaim crashed trials, then run the trial loop under the chosen progress display."""
    reclaim_orphans(study, max_retries=max_retries)
    budget.restart_clock()
    mode = progress_mode(progress)
    callbacks = [*trial_callbacks(mode), *extra_callbacks]
    display = LiveTable(study, title=title) if mode == "rich" else contextlib.nullcontext()
    with display:
        return run_trials(
            study,
            objective,
            budget,
            callbacks=callbacks,
            max_consecutive_failures=max_consecutive_failures,
            max_retries=max_retries,
            parent_pid=parent_pid,
            lock_path=lock_path,
        )


def tune_objective(
    objective: Callable[..., Any],
    *,
    space: Mapping[str, Any] | None = None,
    directions: Sequence[str] = ("minimize",),
    metrics: Sequence[str] | None = None,
    trials: int = 20,
    timeout: str | float | None = None,
    max_total_epochs: int | None = None,
    sampler: str | optuna.samplers.BaseSampler = "auto",
    pruner: str | optuna.pruners.BasePruner = "none",
    max_epochs: int = 100,
    storage: str = MEMORY,
    study_name: str = "tunelab",
    seed: int | None = 0,
    startup_trials: int | None = None,
    progress: str = "none",
    heartbeat_interval: int = 10,
    max_retries: int = 2,
    max_consecutive_failures: int = 5,
) -> StudyResult:
    """Tune any ``objective`` with tunelab's engine (samplers, pruners, budget, storage).

    Args:
        objective: ``objective(trial)`` suggesting its own parameters, or -- when ``space`` is
            given -- ``objective(trial, params)`` receiving the sampled values.
        space: tuned parameters by name, as ``{choice: [...]}`` / ``{low, high, log, step}``
            dicts (the YAML form) or config ``Choice``/``Range`` objects. Needed for ``grid``.
        directions: ``"minimize"``/``"maximize"`` per objective value.
        metrics: names of the objective values (for tables); default ``value``, ``value_1``...
        trials, timeout, max_total_epochs: the budget (epochs are what the objective records
            as the ``epochs`` user attribute, else the number of reported steps).
        sampler, pruner: a name (see ``docs/tune.md``) or an Optuna sampler/pruner object.
        max_epochs: steps a trial reports at most (sizes ``hyperband``).
        storage: ``memory`` or an SQLAlchemy URL (``sqlite:///study.db``).
        seed: sampler seed.
        progress: ``none``, ``plain``, ``rich`` or ``auto``.

    Example:
        >>> from tunelab.tune import tune_objective
        >>> result = tune_objective(
        ...     lambda trial, p: (p["x"] - 2) ** 2,
        ...     space={"x": {"low": -10.0, "high": 10.0}},
        ...     trials=15, sampler="tpe",
        ... )
        >>> abs(result.best_params["x"] - 2) < 3
        True
    """
    directions = [str(d) for d in directions]
    for d in directions:
        if d not in ("minimize", "maximize"):
            raise ConfigError(f"config error: direction {d!r} — expected minimize or maximize")
    with quiet_optuna():
        return _tune_objective(
            objective,
            space=space,
            directions=directions,
            metrics=metrics,
            trials=trials,
            timeout=timeout,
            max_total_epochs=max_total_epochs,
            sampler=sampler,
            pruner=pruner,
            max_epochs=max_epochs,
            storage=storage,
            study_name=study_name,
            seed=seed,
            startup_trials=startup_trials,
            progress=progress,
            heartbeat_interval=heartbeat_interval,
            max_retries=max_retries,
            max_consecutive_failures=max_consecutive_failures,
        )


def _tune_objective(
    objective: Callable[..., Any],
    *,
    space: Mapping[str, Any] | None,
    directions: list[str],
    metrics: Sequence[str] | None,
    trials: int,
    timeout: str | float | None,
    max_total_epochs: int | None,
    sampler: str | optuna.samplers.BaseSampler,
    pruner: str | optuna.pruners.BasePruner,
    max_epochs: int,
    storage: str,
    study_name: str,
    seed: int | None,
    startup_trials: int | None,
    progress: str,
    heartbeat_interval: int,
    max_retries: int,
    max_consecutive_failures: int,
) -> StudyResult:
    spaces = as_spaces(space or {})
    wants_params = space is not None and _takes_two_args(objective)
    seconds = parse_duration(timeout) if timeout is not None else None
    storage_obj = open_storage(
        storage, heartbeat_interval=heartbeat_interval, max_retries=max_retries
    )
    pruner_name, pruner_obj = _pruner(pruner, max_epochs)
    # The study must exist before the seed can depend on it; its sampler is set right after.
    study = open_study(
        storage_obj,
        study_name=study_name,
        directions=directions,
        sampler=optuna.samplers.RandomSampler(),
        pruner=pruner_obj,
    )
    if isinstance(sampler, optuna.samplers.BaseSampler):
        sampler_name, study.sampler = type(sampler).__name__, sampler
    else:
        if sampler == "grid" and not spaces:
            raise ConfigError("config error: sampler 'grid' needs a space= of finite choices")
        choice = make_sampler(
            sampler,
            spaces,
            n_objectives=len(directions),
            trials=trials,
            pruner=pruner_name,
            seed=session_seed(seed, study) if sampler != "grid" else seed,
            startup_trials=startup_trials,
        )
        sampler_name, study.sampler = choice.name, choice.sampler
    budget = Budget(
        trials=trials,
        timeout_s=seconds,
        max_total_epochs=max_total_epochs,
        grid_size=grid_size(spaces) if sampler_name == "grid" else None,
    )

    def run(trial: optuna.Trial) -> Any:
        if wants_params:
            return objective(trial, suggest(trial, spaces))
        if spaces:
            suggest(trial, spaces)
        return objective(trial)

    reason = execute(
        study,
        run,
        budget,
        progress=progress,
        title=study_name,
        max_consecutive_failures=max_consecutive_failures,
        max_retries=max_retries,
    )
    names = list(metrics) if metrics else _default_metric_names(len(directions))
    return summarize(
        study,
        metrics=names,
        sampler=sampler_name,
        pruner=pruner_name,
        stop_reason=reason,
        storage=storage,
    )


def _pruner(
    pruner: str | optuna.pruners.BasePruner, max_epochs: int
) -> tuple[str, optuna.pruners.BasePruner]:
    if isinstance(pruner, optuna.pruners.BasePruner):
        return type(pruner).__name__, pruner
    return pruner, make_pruner(pruner, max_epochs=max_epochs)


def _default_metric_names(n: int) -> list[str]:
    return ["value"] + [f"value_{i}" for i in range(1, n)]


def _takes_two_args(fn: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return True
    positional = [
        p
        for p in params
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
    ]
    return len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in positional)
