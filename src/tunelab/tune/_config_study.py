"""``run_study(config)``: tune an experiment config end to end.

1. the config's search spaces become Optuna distributions (parameter names are dotted paths);
2. the study opens in ``runs/<name>/study.db`` (or ``tune.storage``), continuing it if it exists:
   finished trials are kept, a trial left RUNNING by a dead process is failed and retried;
3. the data are prepared once per process; trials train in ``trials/<number>/``;
4. with ``tune.workers > 1`` that many processes share the storage (``_workers.py``);
5. at the end the best trial's ``best/`` is copied to ``runs/<name>/best/`` (never retrained)
   and a summary is written to ``runs/<name>/tune.json``.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import optuna
import yaml

from ..config import ExperimentConfig, load_config, parse_config, parse_duration
from ..data import DataBundle
from ..errors import ConfigError, FatalError
from ..rundir import RunDir
from ._budget import Budget
from ._engine import execute, open_study, quiet_optuna, session_seed
from ._measure import COST_METRICS
from ._objective import TrainingObjective, max_trial_epochs, study_objectives
from ._pruners import make_pruner
from ._result import StudyResult, summarize
from ._samplers import (
    SamplerChoice,
    default_startup_trials,
    make_sampler,
    resolve_sampler_name,
)
from ._space import config_data, config_spaces, grid_size
from ._standby import Standby, release_standby, start_standby
from ._storage import open_storage, storage_url

# Fields that define what a study searches; a resumed study must not change them.
_IDENTITY_KEYS = ("metric", "direction", "objectives", "cv")


def resolve_config(
    config: ExperimentConfig | dict | str | Path, overrides: dict[str, Any] | None = None
) -> ExperimentConfig:
    """The experiment config with ``tune.*`` overrides (CLI flags) applied and validated."""
    if isinstance(config, (str, Path)):
        cfg = load_config(config)
    elif isinstance(config, dict):
        cfg = parse_config(config)
    else:
        cfg = config
    updates = {k: v for k, v in (overrides or {}).items() if v is not None}
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
    standby: list[Standby] | None = None,
) -> StudyResult:
    """Tune ``config`` and return the study's result.

    Args:
        config: an :class:`ExperimentConfig`, its dict form, or a YAML path.
        bundle: prepared data (default: ``prepare_data(cfg.data)``, once per process); with
            several workers each worker process prepares the data itself.
        trials, timeout, workers, sampler, pruner, storage, max_total_epochs, progress:
            override the ``tune`` section (``None`` keeps the config's value).
        standby: worker processes from :func:`start_standby`, already importing while this
            process prepares the study (``tunelab tune`` starts them before its own imports);
            any still missing for ``workers > 1`` start as soon as the config is read.
            Unused ones are stopped.

    Example:
        >>> from tunelab.tune import run_study                          # doctest: +SKIP
        >>> result = run_study("examples/cifar_style_grid.yaml", trials=6)  # doctest: +SKIP
        >>> result.best_params, result.best_dir                         # doctest: +SKIP
    """
    try:
        cfg = resolve_config(
            config,
            {
                "trials": trials,
                "timeout": timeout,
                "workers": workers,
                "sampler": sampler,
                "pruner": pruner,
                "storage": storage,
                "max_total_epochs": max_total_epochs,
                "progress": progress,
            },
        )
        standby = list(standby or [])
        missing = cfg.tune.workers - 1 - len(standby)
        if missing > 0 and storage_url(cfg.tune.storage, cfg.run_dir) != "memory":
            folder = cfg.run_dir / "workers"
            standby += start_standby(folder, missing, first=len(standby) + 1)
        with quiet_optuna():
            return _run(cfg, bundle, standby)
    finally:
        if standby:
            release_standby(standby)


def prepare_run_dir(cfg: ExperimentConfig) -> Path:
    """Create ``runs/<name>/`` and its ``config.yaml``; refuse to mix two different studies."""
    run_dir = cfg.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "config.yaml"
    if path.is_file() and (run_dir / "study.db").exists():
        previous = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        current = config_data(cfg)
        try:
            before = parse_config(previous) if isinstance(previous, dict) else None
        except ConfigError:
            before = None  # written by another version; the study itself still loads
        if before is not None and (
            set(before.search_spaces()) != set(cfg.search_spaces())
            or any(
                config_data(before)["tune"].get(k) != current["tune"].get(k) for k in _IDENTITY_KEYS
            )
        ):
            raise FatalError(
                f"error: {run_dir} holds a study of a different search (tuned fields or "
                "objectives changed); choose another name, or delete the directory to start over"
            )
    path.write_text(yaml.safe_dump(config_data(cfg), sort_keys=False), encoding="utf-8")
    return run_dir


def build_study(cfg: ExperimentConfig, *, worker: int = 0) -> tuple[optuna.Study, SamplerChoice]:
    """Open (or create) the study of ``cfg`` with its sampler and pruner."""
    tune = cfg.tune
    spaces = config_spaces(cfg)
    metrics, directions = study_objectives(cfg)
    url = storage_url(tune.storage, cfg.run_dir)
    storage = open_storage(
        url,
        heartbeat_interval=tune.heartbeat_interval,
        grace_period=tune.grace_period,
        max_retries=tune.max_retries,
    )
    folds = max(1, tune.cv.folds)
    startup = (
        tune.startup_trials
        if tune.startup_trials is not None
        else default_startup_trials(tune.trials)
    )
    pruner = make_pruner(
        tune.pruner if len(metrics) == 1 else "none",
        max_epochs=max_trial_epochs(cfg) * folds,
        warmup_epochs=tune.warmup_epochs,
        percentile=tune.percentile,
        reduction_factor=tune.reduction_factor,
        startup_trials=min(5, startup),
    )
    study = open_study(
        storage,
        study_name=cfg.name,
        directions=directions,
        sampler=optuna.samplers.RandomSampler(),
        pruner=pruner,
    )
    name, _ = resolve_sampler_name(
        tune.sampler, spaces, n_objectives=len(metrics), trials=tune.trials, pruner=tune.pruner
    )
    choice = make_sampler(
        tune.sampler,
        spaces,
        n_objectives=len(metrics),
        trials=tune.trials,
        pruner=tune.pruner,
        # Grid workers must share one seed: it fixes the order of the grid points.
        seed=cfg.seed if name == "grid" else session_seed(cfg.seed, study, worker),
        startup_trials=tune.startup_trials,
    )
    study.sampler = choice.sampler
    return study, choice


def make_budget(cfg: ExperimentConfig, sampler_name: str) -> Budget:
    tune = cfg.tune
    return Budget(
        trials=tune.trials,
        timeout_s=parse_duration(tune.timeout) if tune.timeout else None,
        max_total_epochs=tune.max_total_epochs,
        grid_size=grid_size(config_spaces(cfg)) if sampler_name == "grid" else None,
    )


def load_bundle(cfg: ExperimentConfig) -> DataBundle:
    from ..data import prepare_data  # type: ignore[attr-defined]

    return prepare_data(cfg.data, seed=cfg.seed)


def check_metrics(cfg: ExperimentConfig, bundle: DataBundle) -> None:
    """Every objective metric is one the trainer reports for this data (else one clear line)."""
    from ..train import metric_names

    has_val = cfg.tune.cv.folds >= 2 or len(bundle.X_val) > 0
    known = [m for m in metric_names(bundle.task, has_val=has_val) if m != "epoch"]
    metrics, _ = study_objectives(cfg)
    for metric in metrics:
        if metric not in known and metric not in COST_METRICS:
            field = "tune.objectives" if cfg.tune.objectives else "tune.metric"
            raise ConfigError(
                f"config error: {field} = {metric!r} — not a metric of this {bundle.task} task; "
                f"expected one of {', '.join([*known, *COST_METRICS])}"
            )


def work(
    cfg: ExperimentConfig,
    bundle: DataBundle | None,
    *,
    worker: int = 0,
    progress: str | None = None,
    parent_pid: int | None = None,
    opened: tuple[optuna.Study, SamplerChoice] | None = None,
) -> str:
    """Run this process's share of the study (the whole of it with one worker)."""
    study, choice = opened or build_study(cfg, worker=worker)
    bundle = bundle if bundle is not None else load_bundle(cfg)
    check_metrics(cfg, bundle)
    profile = cfg.run_dir / "data_profile.json"
    if worker == 0 and not profile.exists() and hasattr(bundle.profile, "save"):
        bundle.profile.save(profile)  # what the report's data section shows
    objective = TrainingObjective(cfg, bundle, run_dir=cfg.run_dir)
    return execute(
        study,
        objective,
        make_budget(cfg, choice.name),
        progress=progress or cfg.tune.progress,
        title=f"tunelab tune {cfg.name} ({choice.name} sampler, {cfg.tune.pruner} pruner)",
        max_consecutive_failures=cfg.tune.max_consecutive_failures,
        max_retries=cfg.tune.max_retries,
        parent_pid=parent_pid,
        # Local workers (and a second `tunelab tune` on the same run) take turns starting trials.
        lock_path=cfg.run_dir / ".start.lock",
    )


def _run(cfg: ExperimentConfig, bundle: DataBundle | None, standby: list[Standby]) -> StudyResult:
    if not cfg.search_spaces():
        raise ConfigError(
            "config error: nothing to tune — no field is a search space; write one as "
            "{choice: [...]} or {low, high, log, step} (or use `tunelab train`)"
        )
    if cfg.tune.workers > 1 and storage_url(cfg.tune.storage, cfg.run_dir) == "memory":
        raise ConfigError(
            "config error: tune.storage = 'memory' — worker processes need a shared storage; "
            "leave it unset (SQLite in the run directory) or give a database URL"
        )
    run_dir = prepare_run_dir(cfg)
    study, choice = build_study(cfg)
    if cfg.tune.workers > 1:
        from ._workers import run_workers

        def run_here(progress: str) -> str:
            return work(cfg, bundle, progress=progress, opened=(study, choice))

        reason = run_workers(cfg, study, run_here, standby)
    else:
        reason = work(cfg, bundle, opened=(study, choice))
    metrics, _ = study_objectives(cfg)
    result = summarize(
        study,
        metrics=metrics,
        sampler=choice.name,
        pruner=cfg.tune.pruner if len(metrics) == 1 else "none",
        stop_reason=reason,
        run_dir=run_dir,
        storage=storage_url(cfg.tune.storage, run_dir),
    )
    result.best_dir = copy_best(result, run_dir)
    result.save(run_dir / "tune.json")
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
    run.write_best_config(study_cfg.with_values(result.best.params))
    return target
