"""``run_study(config)``: tune an experiment config end to end.

1. the config's search spaces become Optuna distributions (parameter names are dotted paths);
2. the ``tune`` section becomes one :class:`StudyOptions` (storage URL resolved once) and the
   study opens in ``runs/<name>/study.db`` (or ``tune.storage``) through ``build_study``,
   continuing it if it exists: finished trials are kept, a trial left RUNNING by a dead process
   is failed and retried;
3. the data are prepared once per process; trials train in ``trials/<number>/``, run by the
   executor (``_executor.py``; with ``tune.workers > 1`` that many processes share the
   storage, ``_workers.py``);
5. at the end the best trial's ``best/`` is copied to ``runs/<name>/best/`` (never retrained)
   and a summary is written to ``runs/<name>/tune.json``.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from ..config import ExperimentConfig, SearchSpace, load_config, parse_config
from ..data import DataBundle
from ..errors import ConfigError, FatalError
from ..rundir import RunDir
from ._budget import SEED_ATTR
from ._engine import build_study, execute, make_budget, quiet_optuna
from ._executor import make_executor
from ._measure import COST_METRICS
from ._objective import TrainingObjective
from ._options import TUNE_OVERRIDES, StudyOptions
from ._result import StudyResult, summarize
from ._space import config_data, config_spaces
from ._standby import Standby, release_standby, start_standby
from ._storage import MEMORY

# Fields that define what a study searches; a resumed study must not change them.
_IDENTITY_KEYS = ("metric", "direction", "objectives", "cv")


def resolve_config(
    config: ExperimentConfig | dict | str | Path, overrides: dict[str, Any] | None = None
) -> ExperimentConfig:
    """The experiment config with ``tune.*`` overrides (CLI flags) applied and validated.

    The one place overrides are applied; ``None`` values keep the config's own. An
    :class:`ExperimentConfig` without overrides is returned as it is (not parsed again).
    """
    if isinstance(config, (str, Path)):
        cfg = load_config(config)
    elif isinstance(config, dict):
        cfg = parse_config(config)
    else:
        cfg = config
    updates = {k: v for k, v in (overrides or {}).items() if v is not None}
    unknown = sorted(set(updates) - set(TUNE_OVERRIDES))
    if unknown:
        raise TypeError(f"resolve_config: not a tune override: {', '.join(unknown)}")
    if not updates:
        return cfg
    data = config_data(cfg)
    data["tune"] = {**data["tune"], **updates}
    return parse_config(data)


def run_study(
    config: ExperimentConfig | dict | str | Path,
    *,
    bundle: DataBundle | None = None,
    trials: int | None = None,
    timeout: str | None = None,
    workers: int | None = None,
    sampler: str | None = None,
    pruner: str | None = None,
    storage: str | None = None,
    max_total_epochs: int | None = None,
    progress: str | None = None,
    backend: str | None = None,
    address: str | None = None,
    standby: list[Standby] | None = None,
) -> StudyResult:
    """Tune ``config`` and return the study's result.

    Args:
        config: an :class:`ExperimentConfig`, its dict form, or a YAML path.
        bundle: prepared data (default: ``prepare_data(cfg.data)``, once per process); with
            several workers each worker process prepares the data itself.
        trials, timeout, workers, sampler, pruner, storage, max_total_epochs, progress,
            backend, address: override the ``tune`` section (``None`` keeps the config's value; see
            :func:`resolve_config`).
        standby: worker processes from :func:`start_standby`, already importing while this
            process prepares the study (``tunelab tune`` starts them before its own imports);
            any still missing for ``workers > 1`` start as soon as the config is read.
            Unused ones are stopped.

    Example:
        >>> from tunelab.tune import run_study                          # doctest: +SKIP
        >>> result = run_study("examples/cifar_style_grid.yaml", trials=6)  # doctest: +SKIP
        >>> result.best_params, result.best_dir                         # doctest: +SKIP
    """
    overrides = dict(
        trials=trials,
        timeout=timeout,
        workers=workers,
        sampler=sampler,
        pruner=pruner,
        storage=storage,
        max_total_epochs=max_total_epochs,
        progress=progress,
        backend=backend,
        address=address,
    )
    standby = list(standby or [])
    try:
        cfg = resolve_config(config, overrides)
        options = StudyOptions.from_config(cfg)
        missing = options.workers - 1 - len(standby)
        if missing > 0 and options.storage != MEMORY:
            folder = RunDir.for_config(cfg).workers_dir
            standby += start_standby(folder, missing, first=len(standby) + 1)
        with quiet_optuna():
            return _run(cfg, options, bundle, standby)
    finally:
        if standby:
            release_standby(standby)


def check_run_dir(cfg: ExperimentConfig) -> str:
    """What starting the study will do to ``runs/<name>/``, checked without writing anything.

    Returns ``"continue"`` (the same study is there: it goes on), ``"archive"`` (the directory
    holds another run, e.g. a ``tunelab train`` run: it will be kept as ``versions/<N>/``) or
    ``"new"``; a study of a different search there is a FatalError.
    """
    run = RunDir.for_config(cfg)
    if run.config.is_file() and run.study_db.exists():
        previous = yaml.safe_load(run.config.read_text(encoding="utf-8")) or {}
        try:
            before = parse_config(previous) if isinstance(previous, dict) else None
        except ConfigError:
            before = None  # written by another version; the study itself still loads
        current = config_data(cfg)
        if before is not None and (
            set(before.search_spaces()) != set(cfg.search_spaces())
            or any(
                config_data(before)["tune"].get(k) != current["tune"].get(k) for k in _IDENTITY_KEYS
            )
        ):
            raise FatalError(
                f"error: {run.path} holds a study of a different search (tuned fields or "
                "objectives changed); choose another name, or delete the directory to start over"
            )
        return "continue"
    if run.study_db.exists():
        return "continue"
    if not run.holds_run():
        return "new"
    if _is_study_config(run):  # a study kept in another storage (a database URL, memory)
        return "continue"
    return "archive"


def _is_study_config(run: RunDir) -> bool:
    try:
        return bool(run.read_config().search_spaces())
    except FatalError:
        return False


def prepare_run_dir(cfg: ExperimentConfig) -> Path:
    """Create ``runs/<name>/`` and its ``config.yaml``; refuse to mix two different studies.

    A directory holding another run (a training run) is not written over: that run is kept as
    ``versions/<N>/`` first (``RunDir.archive_previous``). Call it only once every check that
    needs no training has passed (:func:`check_run_dir`, the data, the objective metrics).
    """
    _prepare_run_dir(cfg, check_run_dir(cfg))
    return cfg.run_dir


def _prepare_run_dir(cfg: ExperimentConfig, plan: str) -> Path | None:
    run = RunDir.for_config(cfg)
    previous = run.archive_previous() if plan == "archive" else None
    run.path.mkdir(parents=True, exist_ok=True)
    run.config.write_text(yaml.safe_dump(config_data(cfg), sort_keys=False), encoding="utf-8")
    return previous


def load_bundle(cfg: ExperimentConfig) -> DataBundle:
    from ..data import prepare_data  # type: ignore[attr-defined]

    return prepare_data(cfg.data, seed=cfg.seed)


def check_metrics(cfg: ExperimentConfig, bundle: DataBundle, metrics: Sequence[str]) -> None:
    """Every objective metric is one the trainer reports for this data (else one clear line)."""
    from ..train import metric_names

    has_val = cfg.tune.cv.folds >= 2 or len(bundle.X_val) > 0
    known = [m for m in metric_names(bundle.task, has_val=has_val) if m != "epoch"]
    for metric in metrics:
        if metric not in known and metric not in COST_METRICS:
            field = "tune.objectives" if cfg.tune.objectives else "tune.metric"
            raise ConfigError(
                f"config error: {field} = {metric!r} — not a metric of this {bundle.task} task; "
                f"expected one of {', '.join([*known, *COST_METRICS])}"
            )


def prepare_objective(
    cfg: ExperimentConfig,
    options: StudyOptions,
    bundle: DataBundle | None,
    spaces: dict[str, SearchSpace],
    *,
    worker: int = 0,
) -> TrainingObjective:
    """This process's training objective: data prepared (once) and checked against the
    objective metrics; worker 0 saves the data profile the report shows."""
    bundle = bundle if bundle is not None else load_bundle(cfg)
    check_metrics(cfg, bundle, options.metrics)
    profile = RunDir.for_config(cfg).data_profile
    if worker == 0 and not profile.exists() and hasattr(bundle.profile, "save"):
        bundle.profile.save(profile)
    return TrainingObjective(cfg, bundle, run_dir=cfg.run_dir, spaces=spaces)


def work(
    cfg: ExperimentConfig,
    options: StudyOptions,
    *,
    worker: int,
    progress: str,
    parent_pid: int | None = None,
) -> str:
    """A helper process's share of the study (``_worker.py``); returns why it stopped."""
    spaces = config_spaces(cfg)
    opened = build_study(spaces, options, worker=worker)
    objective = prepare_objective(cfg, options, None, spaces, worker=worker)
    budget = make_budget(spaces, options, opened.sampler_name)
    if cfg.tune.executor == "population":  # each worker trains its own population
        executor = make_executor(cfg.tune)
        return executor.run_here(
            opened.study, objective, budget, options, progress=progress, parent_pid=parent_pid
        )
    return execute(
        opened.study, objective, budget, options, progress=progress, parent_pid=parent_pid
    )


def _check_tunable(cfg: ExperimentConfig, options: StudyOptions) -> None:
    if not cfg.search_spaces():
        raise ConfigError(
            "config error: nothing to tune — no field is a search space; write one as "
            "{choice: [...]} or {low, high, log, step} (or use `tunelab train`)"
        )
    if options.workers > 1 and options.storage == MEMORY:
        raise ConfigError(
            "config error: tune.storage = 'memory' — worker processes need a shared storage; "
            "leave it unset (SQLite in the run directory) or give a database URL"
        )


def _run(
    cfg: ExperimentConfig,
    options: StudyOptions,
    bundle: DataBundle | None,
    standby: list[Standby],
) -> StudyResult:
    _check_tunable(cfg, options)
    # Everything that can be checked without training is checked before the run directory is
    # touched: the directory (a different study there), the data and the objective metrics.
    plan = check_run_dir(cfg)
    bundle = bundle if bundle is not None else load_bundle(cfg)
    check_metrics(cfg, bundle, options.metrics)
    previous = _prepare_run_dir(cfg, plan)
    run_dir = cfg.run_dir
    spaces = config_spaces(cfg)
    opened = build_study(spaces, options)
    options.title = f"{options.title} ({opened.sampler_name} sampler, {options.pruner_name} pruner)"
    helpers = None
    if options.workers > 1:
        from ._workers import launch_helpers

        # This process's data are ready (checked above); each helper prepares its own.
        helpers = launch_helpers(cfg, options, standby)
    try:
        objective = prepare_objective(cfg, options, bundle, spaces)
        executor = make_executor(cfg.tune, helpers=helpers)
        budget = make_budget(spaces, options, opened.sampler_name)
        before = len(opened.study.get_trials(deepcopy=False))
        executor.run(opened.study, objective, budget, options)
    except BaseException:
        if helpers is not None:
            helpers.interrupt()  # a no-op for helpers that have ended already
        raise
    result = summarize(
        opened.study,
        metrics=list(options.metrics),
        sampler=opened.sampler_name,
        pruner=options.pruner_name,
        stop_reason=executor.stop_reason or budget.exhausted(opened.study) or "",
        run_dir=run_dir,
        storage=options.storage,
    )
    result.best_dir = copy_best(result, run_dir, cfg)
    result.previous = previous
    result.ran = len(result.trials) - before
    result.save(RunDir(run_dir).tune_summary)
    return result


def copy_best(
    result: StudyResult, run_dir: Path, cfg: ExperimentConfig | None = None
) -> Path | None:
    """Copy the best trial's ``best/`` to ``run_dir/best/`` and write ``best/config.yaml``.

    The model is never retrained. ``best/config.yaml`` is the study config (``cfg``, else the
    run's ``config.yaml``) with the best trial's values filled in: the fully resolved config
    compress, export, serve and report read (``RunDir.resolved_config()``), so none of them
    re-derives it from ``config.yaml`` + ``tune.json``.
    """
    if result.best is None:
        return None
    run = RunDir(run_dir)
    source = run.trial(result.best.number).best_model
    if not source.is_dir():
        return None
    target = run.best_model
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)
    study_cfg = cfg if cfg is not None else run.read_config()
    # Each trial trains from its own seed (tune.seed_per_trial): the resolved config says which.
    seed = result.best.user_attrs.get(SEED_ATTR)
    fixed = {"seed": int(seed)} if seed is not None else {}
    run.write_best_config(study_cfg.with_values({**result.best.params, **fixed}))
    return target
