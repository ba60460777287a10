"""``run_training``: config in, training directory out (what ``tunelab train`` runs).

Prepares the data (unless a bundle is given), builds the model, fits, evaluates the best
weights on the test split and writes the training directory of ``docs/contracts.md``::

    config.yaml  metrics.jsonl  tensorboard/  checkpoint.pt  best/  result.json
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..config import ExperimentConfig
from ..errors import ConfigError
from ._callbacks import Callback
from ._checkpoint import atomic_write
from ._health import SickTrialPolicy
from ._loggers import jsonable
from ._metrics import Evaluation
from ._result import FitResult
from ._setup import distributed_info
from ._trainer import Trainer

# What a training run writes; a fresh (not resumed) run removes these first and nothing else.
ARTIFACTS = ("metrics.jsonl", "checkpoint.pt", "result.json", "tensorboard", "best", "epochs")


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


def _fresh_directory(run_dir: Path) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    for name in ARTIFACTS:
        path = run_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


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
    from ..models import build_from_config, save_model

    torch.manual_seed(cfg.seed)  # the same seed builds the same initial weights
    model, spec = build_from_config(cfg.model, bundle, seed=cfg.seed)
    if rank == 0:
        if not resume:
            _fresh_directory(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(run_dir / "config.yaml", lambda p: p.write_text(cfg.to_yaml()))
    trainer = Trainer(
        cfg.train, callbacks=callbacks, run_dir=run_dir, seed=cfg.seed, health=health
    )
    result = trainer.fit(model, bundle, resume=resume)
    run = TrainingRun(cfg, run_dir, model, spec, bundle, result, None)
    if rank != 0:
        return run
    run.evaluation = _evaluate_test(trainer, model, bundle, result)
    if result.best_epoch is not None:
        metrics = {"best_epoch": result.best_epoch, **result.best_metrics, **run.test_metrics}
        save_model(
            run_dir / "best",
            model,
            spec,
            getattr(bundle, "preprocessing", None),
            metrics={k: v for k, v in metrics.items() if _finite(v)},
        )
    text = json.dumps(run.summary(), indent=2)
    atomic_write(run_dir / "result.json", lambda p: p.write_text(text, encoding="utf-8"))
    return run


def _finite(value: Any) -> bool:
    return not isinstance(value, float) or math.isfinite(value)
