"""``DoctorCallback``: the doctor inside tunelab's Trainer (``diagnose.enabled: true``).

The callback feeds the trainer's hooks to a :class:`Doctor`, measures the training score on a
fixed subset of training rows each epoch (the trainer only scores validation; on epochs so short
that the doctor is over its cost budget, the epochs the rules read), logs per-layer
gradient RMS and dead/saturated fractions to TensorBoard, stops a run that has clearly broken
(``diagnose.stop_on_error``), and writes ``findings.json`` into the training directory.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch

from ..config import DiagnoseConfig, ExperimentConfig
from ..rundir import TrainingDir
from ..train import Callback, EventFile
from ..train import predicted_classes as _predicted_classes
from ._doctor import Doctor
from ._finding import DiagnosisReport

# Rows of the training split scored each epoch for the train metric: a sixteenth of the split,
# at least 64 and at most 256 (an accuracy estimate within a few points, averaged over two
# epochs by the overfitting rule, for about 2% of an epoch's compute).
TRAIN_SCORE_ROWS = (64, 256)
# Errors of these kinds mean more epochs are wasted: stop when ``stop_on_error`` is set.
STOPPING_KINDS = ("diverging_loss", "exploding_gradients", "nan_or_inf_data")


class DoctorCallback(Callback):
    """Attach the doctor to a :class:`~tunelab.train.Trainer`.

    Args:
        config: the ``diagnose`` section, or a whole experiment config (its ``diagnose``
            section is used and prescriptions name its exact values).
        verbose: print the diagnosis summary when the fit ends.

    >>> from tunelab.config import parse_config
    >>> cb = DoctorCallback.from_config(parse_config({"diagnose": {"enabled": True}}))
    >>> cb.settings.every_n_steps
    10
    """

    def __init__(
        self,
        config: DiagnoseConfig | ExperimentConfig | None = None,
        *,
        verbose: bool = False,
        baseline: Any = None,
    ):
        self.config = config
        self.verbose = verbose
        # The quick reference models' score on the same split (a Baseline or its dict), so
        # underfitting is judged against what the data allow (``tunelab doctor`` passes one).
        self.baseline = baseline
        self.doctor: Doctor | None = None
        self.report: DiagnosisReport | None = None
        self._state: dict[str, Any] | None = None
        self._writer: Any = None
        self._rows: torch.Tensor | None = None
        # The scored subset, gathered once per fit (not per epoch): inputs on the model's device.
        self._subset: tuple[torch.Tensor, torch.Tensor] | None = None
        self._scored_last = True  # whether the previous epoch's training score was measured

    @classmethod
    def from_config(cls, cfg: ExperimentConfig) -> DoctorCallback:
        """The callback ``tunelab train`` attaches: prints its summary at the end."""
        return cls(cfg, verbose=True)

    @property
    def settings(self) -> DiagnoseConfig:
        if isinstance(self.config, ExperimentConfig):
            return self.config.diagnose
        return self.config if self.config is not None else DiagnoseConfig()

    # ---- hooks --------------------------------------------------------------------------------

    def on_fit_start(self, trainer: Any) -> None:
        experiment = self.config if isinstance(self.config, ExperimentConfig) else None
        self.doctor = Doctor(
            trainer.model,
            trainer.optimizer,
            every_n_steps=self.settings.every_n_steps,
            config=experiment if experiment is not None else trainer.config,
            metric_mode="max",
            classes=self._classes(trainer),
            overhead_budget=self.settings.overhead_budget,
            # The Trainer shows each step's batches (after_backward below), so the doctor
            # hooks only the forwards it samples: the others take PyTorch's hook-free path.
            step_inputs=hasattr(trainer, "step_batches"),
        )
        self._subset = None
        self._scored_last = True
        if self.baseline is not None:
            self.doctor.set_baseline(self.baseline)
        if self._state:
            self.doctor.load_state_dict(self._state)
        run_dir = getattr(trainer, "run_dir", None)
        if run_dir is not None and self.settings.tensorboard and trainer.config.tensorboard:
            # The project's one TensorBoard writer; a resumed fit drops the events it replays.
            self._writer = EventFile(
                Path(run_dir) / "tensorboard", purge_step=trainer.epoch + 1, suffix=".doctor"
            ).open()

    def after_backward(self, trainer: Any, loss: torch.Tensor) -> None:
        batches = getattr(trainer, "step_batches", None)
        self.doctor.after_backward(loss, [b[0] for b in batches] if batches else None)

    def on_epoch_end(self, trainer: Any, epoch: int, metrics: dict[str, Any]) -> None:
        doc = self.doctor
        val_metric = metrics.get("val_accuracy", metrics.get("val_r2"))
        doc.end_epoch(
            train_loss=metrics.get("train_loss"),
            val_loss=metrics.get("val_loss"),
            train_metric=self._budgeted_train_score(trainer, epoch),
            val_metric=val_metric,
            val_rows=self._val_rows(trainer),
            train_rows=len(self._rows) if self._rows is not None else None,
        )
        self._log(epoch)
        if self.settings.stop_on_error:
            broken = [f for f in doc.latest_ if f.severity == "error" and f.kind in STOPPING_KINDS]
            if broken:
                trainer.request_stop(f"{broken[0].kind}: {broken[0].evidence}", status="diverged")

    def on_fit_end(self, trainer: Any, result: Any) -> None:
        doc = self.doctor
        if doc is None:
            return
        if getattr(result, "status", None) == "oom":
            batches = getattr(trainer, "step_batches", None)
            if doc.step_inputs and batches and doc._last_input is not batches[-1][0]:
                # The step that ran out of memory never reached after_backward: its inputs are
                # looked at here (without step_inputs a forward hook saw them before the OOM;
                # an OOM in validation comes after a step the doctor has already seen).
                doc._observe_step_inputs([b[0] for b in batches])
            doc.record_oom(message=result.reason, batch_size=int(trainer.config.batch_size))
        self.report = doc.diagnose()
        doc.close()
        run_dir = getattr(trainer, "run_dir", None)
        if run_dir is not None and getattr(trainer, "is_main", True):
            self.report.save(TrainingDir(run_dir).findings)
        if self._writer is not None:
            summary = f"```\n{self.report.summary()}\n```"
            self._writer.add_text("doctor/summary", summary, int(getattr(trainer, "epoch", 0)))
            self._writer.close()
            self._writer = None
        if self.verbose:
            print(self.report.summary())

    def state_dict(self) -> dict[str, Any]:
        return self.doctor.state_dict() if self.doctor is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._state = dict(state)
        if self.doctor is not None:
            self.doctor.load_state_dict(self._state)

    # ---- helpers ------------------------------------------------------------------------------

    def _budgeted_train_score(self, trainer: Any, epoch: int) -> float | None:
        """The training score, timed against the doctor's cost budget.

        Measured on the last two planned epochs and when the fit is about to stop; any other
        epoch is skipped only when the doctor is over its budget (epochs of milliseconds). The
        overfitting rule reads the last two scored epochs: when early stopping may end the fit
        at an epoch nobody knows in advance, never two epochs in a row go without."""
        doc = self.doctor
        config = getattr(trainer, "config", None)
        planned = int(getattr(config, "epochs", 0) or 0)
        early = getattr(config, "early_stopping", None)
        may_stop_early = early is None or bool(getattr(early, "enabled", True))
        needed = (
            (may_stop_early and not self._scored_last)
            or (planned and epoch >= planned - 1)
            or bool(getattr(trainer, "stop_requested", False))
        )
        if not needed and not doc._meter.affords("score"):
            self._scored_last = False
            return None
        started = time.perf_counter()
        score = self._train_score(trainer)
        doc._meter.charge("score", time.perf_counter() - started)
        self._scored_last = True
        return score

    def _train_score(self, trainer: Any) -> float | None:
        """Accuracy (classification) or R² (regression) on a fixed subset of training rows."""
        bundle = getattr(trainer, "bundle", None)
        if bundle is None or len(bundle.X_train) == 0:
            return None
        if self._rows is None:
            n = len(bundle.X_train)
            gen = torch.Generator().manual_seed(0)
            low, high = TRAIN_SCORE_ROWS
            self._rows = torch.randperm(n, generator=gen)[: min(n, max(low, min(high, n // 16)))]
        if self._subset is None:
            X, y = bundle.X_train[self._rows], bundle.y_train[self._rows]
            device = next(trainer.model.parameters(), torch.empty(0)).device
            self._subset = (X.to(device, torch.float32), y)
        X, y = self._subset
        outputs = trainer.predict(trainer.model, X).float()
        if not bool(torch.isfinite(outputs).all()):
            return None
        if bundle.task == "classification":
            return float((_predicted_classes(outputs) == y.to(outputs.device)).float().mean())
        target = y.float().reshape(len(y), -1)
        pred = outputs.reshape(len(y), -1)
        sst = float(((target - target.mean(0)) ** 2).sum())
        return 1.0 - float(((target - pred) ** 2).sum()) / sst if sst > 0 else None

    @staticmethod
    def _classes(trainer: Any) -> list[Any] | None:
        bundle = getattr(trainer, "bundle", None)
        if bundle is None or getattr(bundle, "task", None) != "classification":
            return None
        return list(bundle.classes) or None

    @staticmethod
    def _val_rows(trainer: Any) -> int | None:
        bundle = getattr(trainer, "bundle", None)
        n = len(bundle.X_val) if bundle is not None and bundle.X_val is not None else 0
        return int(n) or None

    def _log(self, epoch: int) -> None:
        """The epoch's per-layer figures, as one TensorBoard event."""
        if self._writer is None:
            return
        record = self.doctor.record_
        scalars: dict[str, float] = {}
        if record.grad_samples:
            last = record.grad_samples[-1]
            for name, value in zip(last.names, last.grad_rms, strict=True):
                if math.isfinite(value):
                    scalars[f"doctor/grad_rms/{name}"] = value
            for name, value in zip(last.names, last.update_ratio or [], strict=False):
                if math.isfinite(value):
                    scalars[f"doctor/update_ratio/{name}"] = value
        for act in record.epochs[-1].activations if record.epochs else []:
            if act.family == "relu":
                scalars[f"doctor/dead_fraction/{act.name}"] = act.dead_fraction
            else:
                scalars[f"doctor/saturated_fraction/{act.name}"] = act.saturated_fraction
        self._writer.add_scalars(scalars, epoch)


def doctor_callbacks(cfg: ExperimentConfig, *, verbose: bool = True) -> list[Callback]:
    """The callbacks ``diagnose`` asks for: ``[DoctorCallback]`` when enabled, else ``[]``.

    Pass them to :func:`tunelab.train.run_training` (``callbacks=doctor_callbacks(cfg)``).
    """
    if not cfg.diagnose.enabled:
        return []
    return [DoctorCallback(cfg, verbose=verbose)]
