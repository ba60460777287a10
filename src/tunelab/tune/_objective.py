"""The objective of a config study: one trial = sample a config, train it, score it.

Each trial trains through :func:`tunelab.train.run_training` in ``trials/<number>/`` with two
callbacks: pruning (the monitored metric reported every epoch) and sick-trial stopping (the
doctor when ``diagnose.enabled``, else a plain NaN/divergence check). How a fit ends decides the
trial's state:

- completed or stopped early -> COMPLETE with the objective value(s) of the best epoch;
- stopped by the pruner -> PRUNED;
- NaN/inf or diverging loss -> PRUNED, with ``reason`` and ``findings`` as user attributes;
- out of memory, or any exception (a bad combination of values) -> FAIL with ``error``.

Under cross-validation each fold trains in ``trials/<number>/fold_<k>/``; the objective is the
mean over folds (``cv_mean``/``cv_std``/``fold_values`` recorded), folds report consecutive
steps so the pruner can stop a trial after any fold, and the best fold's ``best/`` becomes the
trial's ``best/``.
"""

from __future__ import annotations

import json
import math
import shutil
import statistics
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from ..config import ExperimentConfig
from ..data import DataBundle
from ..diagnose import DoctorCallback, Finding
from ..errors import TrialFailed
from ..rundir import TrainingDir
from ..train import SickTrialPolicy, run_training
from ._budget import EPOCHS_ATTR, SEED_ATTR
from ._callbacks import PruningCallback
from ._measure import COST_METRICS, measure_cost
from ._space import config_spaces, max_value, suggest

SICK_STATUSES = ("nan", "diverged")


@dataclass
class FoldOutcome:
    """What one fit (one fold, or the only fit) produced."""

    values: list[float]
    status: str
    reason: str
    epochs: int
    best_epoch: int | None
    metrics: dict[str, Any]
    directory: Path
    findings: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def of_fit(
        cls, result: Any, values: list[float], directory: Path, findings: list[dict[str, Any]]
    ) -> FoldOutcome:
        """The outcome of a fit's :class:`~tunelab.train.FitResult` (any executor's)."""
        return cls(
            values=values,
            status=result.status,
            reason=result.reason,
            epochs=int(result.epochs_run),
            best_epoch=result.best_epoch,
            metrics=_plain(result.best_metrics),
            directory=directory,
            findings=findings,
        )


def kfold_bundles(bundle: DataBundle, folds: int, stratified: bool, seed: int) -> Iterator:
    """The data stage's ``kfold_splits`` when it has one; otherwise the same thing here.

    Train and val are pooled and re-split into ``folds`` folds; test is left untouched.
    """
    try:
        from ..data import kfold_splits  # type: ignore[attr-defined]
    except ImportError:
        kfold_splits = None
    if kfold_splits is not None:
        yield from kfold_splits(bundle, folds, stratified, seed)
        return
    from sklearn.model_selection import KFold, StratifiedKFold

    X = np.concatenate([bundle.X_train.numpy(), bundle.X_val.numpy()])
    y = np.concatenate([bundle.y_train.numpy(), bundle.y_val.numpy()])
    classify = bundle.task == "classification"
    splitter = (
        StratifiedKFold(folds, shuffle=True, random_state=seed)
        if stratified and classify
        else KFold(folds, shuffle=True, random_state=seed)
    )
    import torch

    for train_idx, val_idx in splitter.split(X, y if classify else None):
        yield bundle.replace(
            X_train=torch.as_tensor(X[train_idx]),
            y_train=torch.as_tensor(y[train_idx]),
            X_val=torch.as_tensor(X[val_idx]),
            y_val=torch.as_tensor(y[val_idx]),
        )


def default_direction(metric: str) -> str:
    """``minimize`` for losses, errors and costs; ``maximize`` for accuracy-like scores."""
    lowered = metric.lower()
    if any(word in lowered for word in ("loss", "mse", "mae", "rmse", "error", *COST_METRICS)):
        return "minimize"
    return "maximize"


def study_objectives(cfg: ExperimentConfig) -> tuple[list[str], list[str]]:
    """``(metrics, directions)`` of the study the config asks for."""
    tune = cfg.tune
    if tune.objectives:
        return [o.metric for o in tune.objectives], [o.direction for o in tune.objectives]
    direction = default_direction(tune.metric) if tune.direction == "auto" else tune.direction
    return [tune.metric], [direction]


def trial_seed(cfg: ExperimentConfig, trial: optuna.Trial) -> int:
    """The seed trial ``trial`` trains from (initial weights, batch order, dropout).

    A seed already in the trial's ``seed`` attribute wins (a retry inherits its crashed
    attempt's attributes); otherwise ``seed + trial number`` under
    ``tune.seed_per_trial`` (the default), else the config's ``seed``. Recorded in the
    ``seed`` attribute, so ``best/config.yaml`` and a retrained trial use the same one.

    Why one seed per trial: with one seed for all, every trial of a shape starts from the same
    weights and sees the batches in the same order, so trials that differ in a learning rate
    or a dropout rate are nearly the same run; the sampler then models that one
    initialisation, and a study that settles on a region gets one draw of it instead of many
    (``bench/default_search.py``; docs/tune.md, "One seed per trial").
    """
    seed = trial.user_attrs.get(SEED_ATTR)
    if seed is None:
        seed = (cfg.seed + trial.number) % 2**32 if cfg.tune.seed_per_trial else cfg.seed
        trial.set_user_attr(SEED_ATTR, seed)
    return int(seed)


def max_trial_epochs(cfg: ExperimentConfig) -> int:
    """The most epochs one fit of a trial may run (the top of ``train.epochs`` if tuned)."""
    return int(max_value(cfg.train.epochs))


class TrainingObjective:
    """``objective(trial)`` for a config study (see the module doc).

    Args:
        cfg: the study config with its search spaces.
        bundle: the prepared data, shared by every trial of this process.
        run_dir: the run directory; trials train in ``run_dir/trials/<number>/``.
        spaces: ``config_spaces(cfg)`` if the caller has it already (it is the same per trial).
    """

    def __init__(
        self,
        cfg: ExperimentConfig,
        bundle: DataBundle,
        *,
        run_dir: Path,
        spaces: dict[str, Any] | None = None,
    ) -> None:
        self.cfg = cfg
        self.bundle = bundle
        self.run_dir = Path(run_dir)
        self.spaces = spaces if spaces is not None else config_spaces(cfg)
        self.metrics, _ = study_objectives(cfg)
        self._last_step = 0

    def __call__(self, trial: optuna.Trial) -> float | list[float]:
        cfg = self.cfg
        spaces, metrics = self.spaces, self.metrics
        if EPOCHS_ATTR in trial.user_attrs:
            # A retry inherits the attributes of the trial that crashed; its epochs start at 0.
            trial.set_user_attr(EPOCHS_ATTR, 0)
        values = suggest(trial, spaces)
        seed = trial_seed(cfg, trial)
        trial_cfg = cfg.with_values({**values, "seed": seed, "train.progress": "none"})
        trial_dir = self.run_dir / "trials" / str(trial.number)
        if trial_dir.exists():
            shutil.rmtree(trial_dir)  # only a crashed attempt can have left one
        trial_dir.mkdir(parents=True)
        epochs = max_trial_epochs(cfg)
        folds_n = cfg.tune.cv.folds if cfg.tune.cv.folds >= 2 else 1
        self._last_step = (folds_n - 1) * epochs + int(trial_cfg.train.epochs)
        if cfg.tune.cv.folds >= 2:
            folds = kfold_bundles(self.bundle, cfg.tune.cv.folds, cfg.tune.cv.stratified, cfg.seed)
            outcomes: list[FoldOutcome] = []
            for k, fold in enumerate(folds):
                outcome = self._fit(
                    trial,
                    trial_cfg,
                    fold,
                    trial_dir / f"fold_{k}",
                    k * epochs,
                    metrics,
                    epochs_before=sum(o.epochs for o in outcomes),
                )
                outcomes.append(outcome)
                self._record_progress(trial, outcomes)
                self._end_if_stopped(trial, outcome)
            _copy_best(_best_fold(outcomes, cfg), trial_dir)
            return self._finish(trial, outcomes, metrics)
        outcome = self._fit(trial, trial_cfg, self.bundle, trial_dir, 0, metrics)
        self._record_progress(trial, [outcome])
        self._end_if_stopped(trial, outcome)
        return self._finish(trial, [outcome], metrics)

    def _fit(
        self,
        trial: optuna.Trial,
        cfg: ExperimentConfig,
        bundle: DataBundle,
        directory: Path,
        step_offset: int,
        metrics: Sequence[str],
        epochs_before: int = 0,
    ) -> FoldOutcome:
        single = len(metrics) == 1
        pruning = PruningCallback(
            trial,
            metrics[0],
            step_offset=step_offset,
            report=single and metrics[0] not in COST_METRICS,
            last_step=self._last_step,
            final_rung_factor=(
                cfg.tune.reduction_factor if cfg.tune.pruner in ("asha", "hyperband") else None
            ),
            epochs_before=epochs_before,
        )
        callbacks: list[Any] = [pruning]
        doctor = _doctor_callback(cfg) if cfg.diagnose.enabled else None
        if doctor is not None:
            callbacks.append(doctor)
        health = SickTrialPolicy() if cfg.tune.stop_sick_trials else None
        run = run_training(
            cfg, bundle=bundle, callbacks=callbacks, run_dir=directory, health=health
        )
        result = run.result
        if result.status == "stopped" and result.reason.startswith("interrupted"):
            raise KeyboardInterrupt  # the trainer ends the fit on Ctrl-C; the study must stop too
        findings = _findings_of(doctor, result.sickness)
        values: list[float] = []
        if result.status not in SICK_STATUSES and result.status not in ("pruned", "oom"):
            for metric in metrics:
                if metric in COST_METRICS:
                    weights = TrainingDir(directory).best_model / "model.safetensors"
                    values.append(measure_cost(metric, run.model, bundle.X_val, weights))
                else:
                    values.append(_metric_value(result.best_metrics, metric))
        return FoldOutcome.of_fit(result, values, directory, findings)

    def _record_progress(self, trial: optuna.Trial, outcomes: list[FoldOutcome]) -> None:
        # Each attribute is one database write, so the per-fit record is kept to four.
        last = outcomes[-1]
        trial.set_user_attr(EPOCHS_ATTR, sum(o.epochs for o in outcomes))
        trial.set_user_attr("status", last.status)
        trial.set_user_attr("reason", last.reason)
        trial.set_user_attr("metrics", {"best_epoch": last.best_epoch, **last.metrics})
        if any(o.findings for o in outcomes):
            trial.set_user_attr("findings", [f for o in outcomes for f in o.findings])

    def _end_if_stopped(self, trial: optuna.Trial, outcome: FoldOutcome) -> None:
        if outcome.status == "oom":
            raise TrialFailed(f"out of memory: {outcome.reason}", reason="oom")
        if outcome.status in SICK_STATUSES:
            trial.set_user_attr("sick", True)
            raise optuna.TrialPruned(outcome.reason)
        if outcome.status == "pruned":
            raise optuna.TrialPruned(outcome.reason)

    def _finish(
        self, trial: optuna.Trial, outcomes: list[FoldOutcome], metrics: Sequence[str]
    ) -> float | list[float]:
        columns = list(zip(*(o.values for o in outcomes), strict=True))
        means = [statistics.fmean(c) for c in columns]
        if len(outcomes) > 1:
            trial.set_user_attr("cv_mean", means[0])
            trial.set_user_attr("cv_std", statistics.pstdev(columns[0]))
            trial.set_user_attr("fold_values", list(columns[0]))
        if not all(math.isfinite(v) for v in means):
            raise TrialFailed(f"objective is not finite: {dict(zip(metrics, means, strict=True))}")
        return means[0] if len(means) == 1 else means


def _metric_value(metrics: dict[str, Any], name: str) -> float:
    if name not in metrics:
        known = ", ".join(sorted(k for k, v in metrics.items() if isinstance(v, (int, float))))
        raise TrialFailed(f"metric {name!r} not in the trainer's metrics ({known})")
    return float(metrics[name])


def _plain(metrics: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        if isinstance(value, (int, float, str, bool)) or value is None:
            out[key] = value if not isinstance(value, float) or math.isfinite(value) else str(value)
    return out


def _best_fold(outcomes: list[FoldOutcome], cfg: ExperimentConfig) -> FoldOutcome:
    _, directions = study_objectives(cfg)
    sign = -1.0 if directions[0] == "maximize" else 1.0
    return min(outcomes, key=lambda o: sign * o.values[0])


def _copy_best(outcome: FoldOutcome, trial_dir: Path) -> None:
    """The best fold's ``best/`` becomes the trial's; ``best_fold.json`` says which fold it was."""
    source = TrainingDir(outcome.directory).best_model
    if source.is_dir():
        trial = TrainingDir(trial_dir)
        shutil.copytree(source, trial.best_model, dirs_exist_ok=True)
        trial.best_fold.write_text(
            json.dumps({"fold": outcome.directory.name, "values": outcome.values}) + "\n"
        )


def _doctor_callback(cfg: ExperimentConfig) -> DoctorCallback:
    """The doctor for one fit; its error findings of the stopping kinds end the trial at once."""
    return DoctorCallback(cfg, verbose=False)


def _findings_of(doctor: DoctorCallback | None, sickness: Any) -> list[dict[str, Any]]:
    """Error findings of the fit: the doctor's (also in ``findings.json``) and the guard's."""
    found: list[dict[str, Any]] = []
    if doctor is not None and doctor.report is not None:
        found.extend(f.to_dict() for f in doctor.report.problems if f.severity == "error")
    if sickness is not None and not any(f["kind"] == sickness.kind for f in found):
        found.append(Finding.from_sickness(sickness).to_dict())
    return found
