"""The study engine shared by config studies and any user ``objective(trial)``.

``build_study`` is the one function that opens a study (storage, sampler, pruner) from a
:class:`StudyOptions`; ``make_budget`` and ``execute`` (one process's trial loop under its
progress display) complete it. ``tune_objective`` is the whole engine for a plain objective;
``run_study`` (``_config_study.py``) builds a training objective from an experiment config and
runs it through the same functions and the same executor (``_executor.py``).
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import optuna

from ..config import SearchSpace, parse_duration
from ..errors import ConfigError, FatalError
from ._budget import Budget
from ._loop import run_trials
from ._options import StudyOptions
from ._progress import LiveTable, progress_mode, trial_callbacks
from ._pruners import make_pruner
from ._result import StudyResult, summarize
from ._samplers import make_sampler, resolve_sampler_name
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


@dataclass
class OpenedStudy:
    """A study ready to run: the Optuna study and the concrete sampler it runs with."""

    study: optuna.Study
    sampler_name: str


def build_study(
    spaces: Mapping[str, SearchSpace], options: StudyOptions, *, worker: int = 0
) -> OpenedStudy:
    """Open (or create, or continue) the study of ``options`` over ``spaces``.

    The one way a study is built, for config studies, worker processes and ``tune_objective``
    alike. ``worker`` offsets the sampler seed (except for grid search, whose workers must
    share one seed: it fixes the order of the grid points).
    """
    storage = open_storage(
        options.storage,
        heartbeat_interval=options.heartbeat_interval,
        grace_period=options.grace_period,
        max_retries=options.max_retries,
    )
    pruner = options.pruner
    if isinstance(pruner, str):
        pruner = make_pruner(
            pruner,
            max_epochs=options.max_epochs,
            warmup_epochs=options.warmup_epochs,
            percentile=options.percentile,
            reduction_factor=options.reduction_factor,
            startup_trials=options.pruner_startup_trials,
        )
    # The study must exist before the seed can depend on it; its sampler is set right after.
    study = open_study(
        storage,
        study_name=options.study_name,
        directions=options.directions,
        sampler=optuna.samplers.RandomSampler(),
        pruner=pruner,
    )
    if isinstance(options.sampler, optuna.samplers.BaseSampler):
        study.sampler = options.sampler
        return OpenedStudy(study, type(options.sampler).__name__)
    return OpenedStudy(study, _set_sampler(study, spaces, options, worker))


def _set_sampler(
    study: optuna.Study, spaces: Mapping[str, SearchSpace], options: StudyOptions, worker: int
) -> str:
    assert isinstance(options.sampler, str)
    n_objectives = len(options.directions)
    if options.sampler == "grid" and not spaces:
        raise ConfigError("config error: sampler 'grid' needs a space= of finite choices")
    name, _ = resolve_sampler_name(
        options.sampler,
        spaces,
        n_objectives=n_objectives,
        trials=options.trials,
        pruner=options.pruner_name,
    )
    choice = make_sampler(
        options.sampler,
        spaces,
        n_objectives=n_objectives,
        trials=options.trials,
        pruner=options.pruner_name,
        seed=options.seed if name == "grid" else session_seed(options.seed, study, worker),
        startup_trials=options.startup_trials,
    )
    study.sampler = choice.sampler
    return choice.name


def make_budget(
    spaces: Mapping[str, SearchSpace], options: StudyOptions, sampler_name: str
) -> Budget:
    """The budget of ``options`` (a grid study also stops once every grid point has run)."""
    return Budget(
        trials=options.trials,
        timeout_s=options.timeout_s,
        max_total_epochs=options.max_total_epochs,
        grid_size=grid_size(spaces) if sampler_name == "grid" else None,
    )


def execute(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], Any],
    budget: Budget,
    options: StudyOptions,
    *,
    progress: str | None = None,
    title: str | None = None,
    parent_pid: int | None = None,
) -> str:
    """Reclaim crashed trials, then run this process's trial loop under its progress display.

    ``progress`` overrides ``options.progress`` (worker processes and worker 0 under the
    parent's live table run with ``none`` or ``plain``).
    """
    reclaim_orphans(study, max_retries=options.max_retries)
    budget.restart_clock()
    mode = progress_mode(progress or options.progress)
    display = (
        LiveTable(study, title=title or options.title)
        if mode == "rich"
        else contextlib.nullcontext()
    )
    with display:
        return run_trials(
            study,
            objective,
            budget,
            callbacks=trial_callbacks(mode),
            max_consecutive_failures=options.max_consecutive_failures,
            max_retries=options.max_retries,
            parent_pid=parent_pid,
            lock_path=options.lock_path,
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

    The keywords become one :class:`StudyOptions`; the study runs on the ``local`` executor.

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
    options = StudyOptions(
        study_name=study_name,
        storage=storage,
        directions=tuple(directions),
        metrics=tuple(metrics) if metrics else tuple(_default_metric_names(len(directions))),
        trials=trials,
        timeout_s=parse_duration(timeout) if timeout is not None else None,
        max_total_epochs=max_total_epochs,
        sampler=sampler,
        pruner=pruner,
        seed=seed,
        startup_trials=startup_trials,
        max_epochs=max_epochs,
        heartbeat_interval=heartbeat_interval,
        max_retries=max_retries,
        max_consecutive_failures=max_consecutive_failures,
        progress=progress,
        title=study_name,
    )
    with quiet_optuna():
        return run_objective(
            objective, as_spaces(space or {}), options, pass_params=space is not None
        )


def run_objective(
    objective: Callable[..., Any],
    spaces: Mapping[str, SearchSpace],
    options: StudyOptions,
    *,
    pass_params: bool = True,
) -> StudyResult:
    """Run ``objective`` over ``spaces`` as ``options`` say; the body of ``tune_objective``."""
    from ._executor import LocalExecutor

    opened = build_study(spaces, options)
    wants_params = pass_params and _takes_two_args(objective)

    def run(trial: optuna.Trial) -> Any:
        if wants_params:
            return objective(trial, suggest(trial, spaces))
        if spaces:
            suggest(trial, spaces)
        return objective(trial)

    budget = make_budget(spaces, options, opened.sampler_name)
    executor = LocalExecutor()
    executor.run(opened.study, run, budget, options)
    return summarize(
        opened.study,
        metrics=list(options.metrics),
        sampler=opened.sampler_name,
        pruner=options.pruner_name,
        stop_reason=executor.stop_reason,
        storage=options.storage,
    )


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
