"""``StudyOptions``: everything about *how* a study runs, resolved once, in one typed object.

A config study derives it from the ``tune`` section (:meth:`StudyOptions.from_config`, which
also resolves the storage URL, once); ``tune_objective`` builds it from its keyword arguments.
The study builder (``build_study``), the executor and the worker processes (which get it in
their spec, :meth:`to_dict`/:meth:`from_dict`) all read it instead of re-deriving the values.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import ExperimentConfig, parse_duration
from ._storage import MEMORY, storage_url

if TYPE_CHECKING:
    import optuna

# The ``tune`` fields the ``tunelab tune`` flags (and run_study's keywords) override.
TUNE_OVERRIDES = (
    "trials",
    "timeout",
    "workers",
    "sampler",
    "pruner",
    "storage",
    "max_total_epochs",
    "progress",
    "backend",
    "address",
)


@dataclass
class StudyOptions:
    """How one study runs. Plain values only (names, not objects), except that
    ``tune_objective`` may pass an Optuna sampler or pruner object through.

    Attributes:
        study_name: the study's name in the storage.
        storage: the resolved storage URL (``memory`` or an SQLAlchemy URL).
        directions, metrics: one ``minimize``/``maximize`` and one name per objective value.
        trials, timeout_s, max_total_epochs: the budget (see :class:`Budget`).
        sampler, pruner: names (``docs/tune.md``), or Optuna objects from ``tune_objective``.
        seed, startup_trials: sampler seed and random start-up trials (``None``: default).
        max_epochs, warmup_epochs, percentile, reduction_factor, pruner_startup_trials: sizes
            of the pruner.
        heartbeat_interval, grace_period, max_retries: crash safety of the storage.
        max_consecutive_failures: stop when the first trials all fail.
        progress, title: the progress display and its title.
        workers: processes on this machine (``local`` executor).
        lock_path: a file that serialises trial starts among local processes.
    """

    study_name: str = "tunelab"
    storage: str = MEMORY
    directions: tuple[str, ...] = ("minimize",)
    metrics: tuple[str, ...] = ("value",)
    trials: int = 20
    timeout_s: float | None = None
    max_total_epochs: int | None = None
    sampler: str | optuna.samplers.BaseSampler = "auto"
    pruner: str | optuna.pruners.BasePruner = "none"
    seed: int | None = 0
    startup_trials: int | None = None
    max_epochs: int = 100
    warmup_epochs: int = 1
    percentile: float = 25.0
    reduction_factor: int = 3
    pruner_startup_trials: int = 5
    heartbeat_interval: int = 10
    grace_period: int | None = None
    max_retries: int = 2
    max_consecutive_failures: int = 5
    progress: str = "none"
    title: str = "tunelab"
    workers: int = 1
    lock_path: Path | None = None

    @property
    def pruner_name(self) -> str:
        return self.pruner if isinstance(self.pruner, str) else type(self.pruner).__name__

    @classmethod
    def from_config(cls, cfg: ExperimentConfig) -> StudyOptions:
        """The options of ``cfg``'s study; the storage URL is resolved here and only here."""
        from ._objective import max_trial_epochs, study_objectives
        from ._samplers import default_startup_trials
        from ._space import config_spaces

        tune = cfg.tune
        metrics, directions = study_objectives(cfg)
        # Optuna cannot prune a multi-objective trial: the pruner is off there.
        pruner = tune.pruner if len(metrics) == 1 else "none"
        startup = tune.startup_trials
        if startup is None:
            # Under successive halving only one trial in r clears the first rung: four random
            # trials per value of the largest choice, so each value is seen past it (docs/tune.md).
            halving = pruner in ("asha", "hyperband")
            startup = default_startup_trials(
                tune.trials,
                config_spaces(cfg),
                per_choice=max(4, tune.reduction_factor) if halving else 2,
            )
        fit_epochs = max_trial_epochs(cfg)
        # The first rung at a tenth of a trial (at least one epoch): after one epoch of a
        # 20-epoch trial the ranking is by start speed (small batches, high learning rates),
        # and on an imbalanced task most trials still predict the majority class (tied values).
        warmup = tune.warmup_epochs if tune.warmup_epochs is not None else max(1, fit_epochs // 10)
        return cls(
            study_name=cfg.name,
            storage=storage_url(tune.storage, cfg.run_dir),
            directions=tuple(directions),
            metrics=tuple(metrics),
            trials=tune.trials,
            timeout_s=parse_duration(tune.timeout) if tune.timeout else None,
            max_total_epochs=tune.max_total_epochs,
            sampler=tune.sampler,
            pruner=pruner,
            seed=cfg.seed,
            startup_trials=startup,
            max_epochs=fit_epochs * max(1, tune.cv.folds),
            warmup_epochs=warmup,
            percentile=tune.percentile,
            reduction_factor=tune.reduction_factor,
            pruner_startup_trials=min(5, startup),
            heartbeat_interval=tune.heartbeat_interval,
            grace_period=tune.grace_period,
            max_retries=tune.max_retries,
            max_consecutive_failures=tune.max_consecutive_failures,
            progress=tune.progress,
            title=f"tunelab tune {cfg.name}",  # run_study adds the sampler once it is chosen
            workers=tune.workers,
            # Local workers (and a second `tunelab tune` on the same run) take turns starting.
            lock_path=cfg.run_dir / ".start.lock",
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, for a worker's spec (names only: no sampler/pruner objects)."""
        if not isinstance(self.sampler, str) or not isinstance(self.pruner, str):
            raise TypeError("StudyOptions with sampler/pruner objects cannot go to a worker")
        data = asdict(self)
        data["lock_path"] = str(self.lock_path) if self.lock_path else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StudyOptions:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["directions"] = tuple(values.get("directions", ("minimize",)))
        values["metrics"] = tuple(values.get("metrics", ("value",)))
        if values.get("lock_path"):
            values["lock_path"] = Path(values["lock_path"])
        return cls(**values)
