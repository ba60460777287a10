"""``run_training``: config in, training directory out (what ``tunelab train`` runs).

Prepares the data (unless a bundle is given), builds the model, fits, evaluates the best
weights on the test split and writes the training directory of ``docs/contracts.md``::

    config.yaml  metrics.jsonl  tensorboard/  checkpoint.pt  best/  result.json

Nothing a user made is lost (``tunelab.rundir.Versioned``): every check that needs no training
(data, model, monitor, loss, device) runs before the directory is touched; a directory that
already holds a run is not overwritten: the new run is written beside it (``.<name>.staging/``)
and becomes the directory only when it produced a usable model, the previous run then kept as
``versions/<N>/``. A run that fails (an exception, or a status in :data:`UNUSABLE`) leaves the
previous run as it was (the failed one kept as the next ``versions/<N>/`` unless it raised).
``resume=True`` continues the directory in place.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..config import ExperimentConfig
from ..errors import ConfigError
from ..rundir import RunDir, TrainingDir, kept_line
from ._callbacks import Callback
from ._checkpoint import atomic_write
from ._health import SickTrialPolicy
from ._loggers import jsonable
from ._metrics import Evaluation
from ._result import FitResult
from ._setup import distributed_info
from ._trainer import Trainer

# What a training run writes (into a fresh directory or a staging one: never over a run).
ARTIFACTS = ("metrics.jsonl", "checkpoint.pt", "result.json", "tensorboard", "best", "epochs")

# Statuses after which there is no usable model: such a run never replaces a previous one.
UNUSABLE = ("nan", "oom", "diverged")


@dataclass
class TrainingRun:
    """Everything a training run produced; ``model`` holds the best weights."""

    config: ExperimentConfig
    run_dir: Path | None
    model: nn.Module
    spec: Any
    bundle: Any
    result: FitResult
    evaluation: Evaluation | None
    previous: Path | None = None  # where the run this one replaced was kept (versions/<N>)
    kept_failed: bool = False  # True: this failed run went to versions/<N>, the previous stayed

    @property
    def note(self) -> str:
        """One line on what happened to the previous run (empty when there was none)."""
        if self.kept_failed:
            return (
                f"previous run left as it was; this {self.result.status} run kept as {self.run_dir}"
            )
        return kept_line(self.previous)

    @property
    def test_metrics(self) -> dict[str, float]:
        return dict(self.evaluation.metrics) if self.evaluation is not None else {}

    def summary(self) -> dict[str, Any]:
        """The content of ``result.json``."""
        ev = self.evaluation
        return jsonable(
            {
                "name": self.config.name,
                "status": self.result.status,
                "reason": self.result.reason,
                "epochs_run": self.result.epochs_run,
                "best_epoch": self.result.best_epoch,
                "best_metrics": self.result.best_metrics,
                "final_metrics": self.result.final_metrics,
                "test_metrics": self.test_metrics,
                "per_class": ev.per_class if ev else {},
                "confusion_matrix": ev.confusion_matrix if ev else [],
                "classification_report": ev.classification_report if ev else "",
                "classes": [str(c) for c in getattr(self.bundle, "classes", [])],
                "task": self.bundle.task,
                "model": {"builder": self.spec.builder, "params": self.spec.params},
                "wall_time_s": self.result.wall_time_s,
                "sickness": sick.to_dict() if (sick := self.result.sickness) else None,
            }
        )


def check_training(cfg: ExperimentConfig, bundle: Any) -> None:
    """What the trainer would reject at the start of a fit, checked without writing anything.

    The monitored metrics exist for the task, no search space is left in ``train``, the device
    exists and the loss can be built for these labels (class weights...): a ConfigError here
    leaves every directory untouched.
    """
    from ._losses import build_loss
    from ._plan import monitor_of
    from ._setup import check_resolved, resolve_device

    check_resolved(cfg.train)
    resolve_device(cfg.train.device)
    monitor_of(cfg.train, bundle.task, len(bundle.X_val) > 0)
    build_loss(
        cfg.train.loss,
        bundle.task,
        num_classes=bundle.num_classes,
        y_train=bundle.y_train,
        label_smoothing=float(cfg.train.label_smoothing),
        class_weights=cfg.train.class_weights,
        device=torch.device("cpu"),
    )


def _evaluate_test(trainer: Trainer, model: nn.Module, bundle: Any, result: FitResult) -> Any:
    """The test evaluation of the best weights; None when there is nothing sound to evaluate."""
    if len(bundle.X_test) == 0 or result.best_epoch is None:
        return None
    outputs = trainer.predict(model, bundle.X_test[:1])
    if not bool(torch.isfinite(outputs).all()):
        return None
    return trainer.evaluation(model, bundle, "test")


def run_training(
    cfg: ExperimentConfig,
    *,
    bundle: Any = None,
    callbacks: Iterable[Callback] = (),
    run_dir: str | Path | None = None,
    resume: bool = False,
    health: SickTrialPolicy | None = SickTrialPolicy(),  # frozen: one shared default is safe
) -> TrainingRun:
    """Train the model ``cfg`` describes and write its training directory.

    Args:
        cfg: a plain experiment config (no search spaces left).
        bundle: prepared data; by default ``tunelab.data.prepare_data(cfg.data, seed=cfg.seed)``.
        callbacks: extra callbacks (the doctor, a pruning reporter...).
        run_dir: the training directory; default ``runs/<cfg.name>``.
        resume: continue from ``run_dir/checkpoint.pt`` when it exists.
        health: the trainer's sick-trial guard (``None``: only the NaN check).
    """
    spaces = cfg.search_spaces()
    if spaces:
        raise ConfigError(
            f"config error: {next(iter(spaces))} is a search space; `tunelab train` needs plain "
            f"values (tuned fields: {', '.join(spaces)}); run `tunelab tune` instead"
        )
    rank, _ = distributed_info()
    run_dir = Path(run_dir) if run_dir is not None else cfg.run_dir
    if bundle is None:
        from ..data import prepare_data

        bundle = prepare_data(cfg.data, seed=cfg.seed)
    from ..models import build_from_config

    torch.manual_seed(cfg.seed)  # the same seed builds the same initial weights
    model, spec = build_from_config(cfg.model, bundle, seed=cfg.seed)
    check_training(cfg, bundle)  # before anything is written
    target = RunDir(run_dir)
    # A directory holding a run is never written over: the new run goes to a staging folder
    # beside it (every rank computes the same path, before rank 0 switches it at the end).
    staged = not resume and target.holds_run()
    work_dir = target.path.with_name(f".{target.path.name}.staging") if staged else run_dir
    if rank == 0:
        if staged:
            work_dir = target.staging()
        work_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(TrainingDir(work_dir).config, lambda p: p.write_text(cfg.to_yaml()))
    try:
        run = _train_into(work_dir, cfg, model, spec, bundle, callbacks, resume, health, rank)
    except BaseException:
        if staged and rank == 0:
            target.discard(work_dir)
        raise
    if staged and rank == 0:
        if run.result.status in UNUSABLE:
            run.run_dir, run.kept_failed = target.keep_as_version(work_dir), True
        else:
            run.previous = target.switch_to(work_dir)
            run.run_dir = run_dir
    return run


def _train_into(
    run_dir: Path,
    cfg: ExperimentConfig,
    model: nn.Module,
    spec: Any,
    bundle: Any,
    callbacks: Iterable[Callback],
    resume: bool,
    health: SickTrialPolicy | None,
    rank: int,
) -> TrainingRun:
    trainer = Trainer(cfg.train, callbacks=callbacks, run_dir=run_dir, seed=cfg.seed, health=health)
    result = trainer.fit(model, bundle, resume=resume)
    run = TrainingRun(cfg, run_dir, model, spec, bundle, result, None)
    if rank != 0:
        return run
    from ..models import save_model

    run.evaluation = _evaluate_test(trainer, model, bundle, result)
    if result.best_epoch is not None:
        metrics = {"best_epoch": result.best_epoch, **result.best_metrics, **run.test_metrics}
        save_model(
            TrainingDir(run_dir).best_model,
            model,
            spec,
            getattr(bundle, "preprocessing", None),
            metrics={k: v for k, v in metrics.items() if _finite(v)},
        )
    text = json.dumps(run.summary(), indent=2)
    atomic_write(TrainingDir(run_dir).result, lambda p: p.write_text(text, encoding="utf-8"))
    return run


def _finite(value: Any) -> bool:
    return not isinstance(value, float) or math.isfinite(value)
