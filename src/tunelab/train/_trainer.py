"""``Trainer``: one straight training loop with callbacks at named points.

Read :meth:`Trainer.fit` top to bottom: set up, then per epoch train (get batch, forward,
backward, clip, step), validate, keep the best, check early stopping, call the callbacks,
checkpoint. The data already sits on the device as tensors; an epoch is a permutation indexed
in slices, and the running loss is summed on the device and read once per epoch, so the loop is
as fast as a hand-written one (``bench/trainer_overhead.py``).
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.utils.deterministic

from ..config import TrainConfig
from ..errors import ConfigError
from ..models import apply_unfreeze_schedule, param_groups, transfer_settings
from ._callbacks import Callback, CallbackList
from ._checkpoint import cpu_state, save_checkpoint, save_weights
from ._early_stopping import EarlyStopping, Monitor, check_metric
from ._loggers import builtin_loggers
from ._losses import build_loss
from ._metrics import Evaluation, epoch_scores, full_evaluation, metric_names
from ._optim import build_optimizer, l1_parameters, l1_penalty
from ._result import REQUESTABLE, STATUSES, FitResult
from ._resume import restore_trainer, trainer_state
from ._schedules import LRSchedule
from ._setup import (
    autocast_context,
    batch_scales,
    batch_sizes,
    check_resolved,
    distributed_info,
    is_out_of_memory,
    resolve_device,
    resolve_precision,
    to_device,
    wrap_model,
)


class Trainer:
    """Trains a model on a :class:`~tunelab.data.DataBundle` as ``config`` says.

    Args:
        config: the ``train`` section.
        callbacks: :class:`Callback` objects, called in order at each hook.
        run_dir: where ``metrics.jsonl``, ``tensorboard/``, ``checkpoint.pt`` and
            ``best/model.safetensors`` go; ``None`` writes nothing.
        seed: seeds the epoch permutations, augmentation and torch's global RNG (dropout).
        loss: a training loss ``loss(outputs, targets, inputs) -> scalar`` used instead of
            ``config.loss`` for the training steps, for losses that need the batch itself
            (knowledge distillation runs the teacher on ``inputs``). Validation metrics keep
            ``config.loss``, so they compare with any other run.

    A model built by :func:`tunelab.models.build_from_config` carries its transfer-learning
    settings: the backbone then trains at ``lr * backbone_lr_mult`` (discriminative learning
    rates) and a frozen backbone is unfrozen after ``unfreeze_after`` epochs.

    >>> import torch
    >>> from tunelab.config import TrainConfig
    >>> from tunelab.data import DataBundle
    >>> from tunelab.train import Trainer
    >>> g = torch.Generator().manual_seed(0)
    >>> X = torch.randn(200, 4, generator=g); y = (X[:, 0] > 0).long()
    >>> bundle = DataBundle.from_arrays(X[:150], y[:150], X[150:], y[150:])
    >>> cfg = TrainConfig(epochs=30, lr=0.05, progress="none", tensorboard=False)
    >>> result = Trainer(cfg).fit(torch.nn.Linear(4, 2), bundle)
    >>> result.status, result.best_metrics["val_accuracy"] > 0.9
    ('completed', True)
    """

    def __init__(
        self,
        config: TrainConfig,
        *,
        callbacks: Iterable[Callback] = (),
        run_dir: str | Path | None = None,
        seed: int = 0,
        loss: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        self.config = config
        self.callbacks = list(callbacks)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.seed = seed
        self.loss = loss
        self.model: nn.Module | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.scheduler: LRSchedule | None = None
        self.bundle: Any = None
        self.device = torch.device("cpu")
        self.epoch = 0
        self.global_step = 0
        self.steps_per_epoch = 0
        self.history: list[dict[str, Any]] = []
        self.best_epoch: int | None = None
        self.best_metrics: dict[str, Any] = {}
        self.is_best = False
        self.rank, self.world_size = 0, 1
        self._stop: tuple[str, str] | None = None
        self._autocast: Any = contextlib.nullcontext
        self._wall_before = 0.0
        self._fit_started = time.perf_counter()
        self._saved_globals: tuple[bool, bool, int] | None = None

    # ---- the public surface callbacks use ---------------------------------------------------

    def request_stop(self, reason: str, status: str = "stopped") -> None:
        """End training after the current step (mid-epoch) or epoch, with ``status``."""
        if status not in REQUESTABLE:
            raise ValueError(f"status must be one of {', '.join(REQUESTABLE)}, got {status!r}")
        if self._stop is None:
            self._stop = (status, reason)

    @property
    def stop_requested(self) -> bool:
        return self._stop is not None

    @property
    def is_main(self) -> bool:
        """Whether this process writes files and runs callbacks (rank 0 of a DDP group)."""
        return self.rank == 0

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"]) if self.optimizer else 0.0

    # ---- fit --------------------------------------------------------------------------------

    def fit(self, model: nn.Module, bundle: Any, *, resume: bool = False) -> FitResult:
        """Train ``model`` on ``bundle``; never raises for NaN loss or out-of-memory.

        With ``resume=True`` and a ``checkpoint.pt`` in ``run_dir``, training continues from
        it (model, optimiser, schedule, early stopping, callbacks, RNG) and ends with the same
        metrics as an uninterrupted run.
        """
        self._setup(model, bundle)
        try:
            if resume:
                restore_trainer(self)
            if self._stop is not None:  # the checkpoint says this run already finished
                return self._finish(*self._stop)
            return self._finish(*self._loop())
        finally:
            self._reset_globals()  # also when a callback or a bug raises

    def _loop(self) -> tuple[str, str]:
        """The epochs; returns ``(status, reason)``."""
        cfg = self.config
        for cb in self._cbs.hook("on_fit_start"):
            cb.on_fit_start(self)
        try:
            for epoch in range(self.epoch + 1, cfg.epochs + 1):
                self.epoch = epoch
                self._maybe_unfreeze(epoch)
                for cb in self._cbs.hook("on_epoch_start"):
                    cb.on_epoch_start(self, epoch)
                t0 = time.perf_counter()
                metrics: dict[str, Any] = {"epoch": epoch, "train_loss": self._train_epoch()}
                if math.isfinite(metrics["train_loss"]) and self._has_val:
                    metrics.update(self._validate())
                metrics["lr"] = self.lr
                metrics["epoch_time_s"] = time.perf_counter() - t0
                self.history.append(metrics)
                healthy = self._judge_epoch(epoch, metrics)  # NaN, best, early stop, LR schedule
                for cb in self._cbs.hook("on_epoch_end"):
                    cb.on_epoch_end(self, epoch, metrics)
                self._sync_stop()
                if healthy:
                    self._checkpoint_epoch(epoch)
                if self._stop is not None:
                    return self._stop
        except KeyboardInterrupt:
            return "stopped", f"interrupted by the user in epoch {self.epoch}"
        except RuntimeError as exc:  # only out-of-memory becomes a status; bugs still raise
            if not is_out_of_memory(exc):
                raise
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            return "oom", self._oom_reason(exc)
        return "completed", f"ran all {cfg.epochs} epochs"

    def _judge_epoch(self, epoch: int, metrics: dict[str, Any]) -> bool:
        """NaN check, best weights, early stopping and the LR schedule; False on a NaN/inf loss."""
        for split in ("train", "val"):
            value = metrics.get(f"{split}_loss")
            if value is not None and not math.isfinite(value):
                self._stop = self._stop or (
                    "nan",
                    f"{split} loss became {value} in epoch {epoch} (lr {metrics['lr']:.3g}); "
                    "lower train.lr or set train.clip_grad_norm",
                )
                return False
        self._keep_best(epoch, metrics)
        if self._early is not None:
            stop, why = self._early.update_and_check(float(metrics[self._early.metric]), epoch)
            if stop:
                self._stop = self._stop or ("early_stopped", why)
        self.scheduler.step_epoch(metrics)
        return True

    def _checkpoint_epoch(self, epoch: int) -> None:
        if self._checkpoint_due(epoch):
            self._save_checkpoint()
        if not self.config.checkpoint_best_only and self._writes_files:
            save_weights(cpu_state(self.model), self._epoch_weights(epoch))

    def _oom_reason(self, exc: BaseException) -> str:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        return (
            f"out of memory in epoch {self.epoch} (batch_size {self.config.batch_size}): "
            f"{first}; lower train.batch_size, use train.accumulate_steps or a smaller model"
        )

    def _train_epoch(self) -> float:
        """One pass over the training data; returns the mean loss (one host sync)."""
        cfg, model, opt = self.config, self.model, self.optimizer
        X, y = self._X, self._y
        order = self._epoch_order()
        bs, accum = int(cfg.batch_size), int(cfg.accumulate_steps)
        augment, gen = self._augmenter, self._gen
        after_backward = self._cbs.hook("after_backward")
        batch_end = self._cbs.hook("on_batch_end")
        scheduler = self.scheduler
        micro_batches = len(self._batch_scales)
        # The step losses stay on the device until the epoch ends: no per-step host sync, and
        # no per-step accumulate op either (appending to a list is ~50x cheaper than add_).
        losses: list[torch.Tensor] = []
        model.train()
        for i, scale in enumerate(self._batch_scales):
            idx = order[i * bs : (i + 1) * bs]
            xb, yb = X[idx], y[idx]
            if augment is not None:
                xb = augment(xb, gen)
            last_micro = (i + 1) % accum == 0 or i + 1 == micro_batches
            if i % accum == 0:
                opt.zero_grad(set_to_none=True)
            # Accumulated micro-batches skip DDP's gradient all-reduce until the last one.
            sync = (
                contextlib.nullcontext() if last_micro or self._ddp is None else self._ddp.no_sync()
            )
            with sync, self._autocast():
                outputs = self._train_forward(xb)
                loss = (
                    self._loss_fn(outputs, yb) if self.loss is None else self.loss(outputs, yb, xb)
                )
                penalty = loss + self._l1 * l1_penalty(self._l1_params) if self._l1 else loss
                # Weight each micro-batch by its share of rows so accumulation equals the big batch.
                backward = penalty if scale == 1.0 else penalty * scale
                if self._scaler is not None:
                    self._scaler.scale(backward).backward()
                else:
                    backward.backward()
            step_loss = loss.detach()
            losses.append(step_loss)
            if not last_micro:
                continue
            if self._scaler is not None:
                self._scaler.unscale_(opt)  # callbacks and clipping see the true gradients
            for cb in after_backward:
                cb.after_backward(self, step_loss)
            if cfg.clip_grad_norm is not None:
                nn.utils.clip_grad_norm_(self._trainable, float(cfg.clip_grad_norm))
            elif cfg.clip_grad_value is not None:
                nn.utils.clip_grad_value_(self._trainable, float(cfg.clip_grad_value))
            if self._scaler is not None:
                self._scaler.step(opt)
                self._scaler.update()
            else:
                opt.step()
            self.global_step += 1
            scheduler.step_batch()
            for cb in batch_end:
                cb.on_batch_end(self, self.global_step, step_loss)
            if self._stop is not None and self.world_size == 1:
                break
        rows = self._batch_rows[: len(losses)]
        weights = torch.tensor(rows, dtype=torch.float64, device=self.device)
        total = torch.dot(torch.stack(losses).double().reshape(-1), weights)
        if self.world_size > 1:
            totals = torch.stack([total, weights.sum()])
            torch.distributed.all_reduce(totals)
            return float(totals[0] / totals[1])
        return float(total) / max(1, sum(rows))

    # ---- evaluation -------------------------------------------------------------------------

    @torch.no_grad()
    def _outputs(self, model: nn.Module, X: torch.Tensor, *, restore: bool = True) -> torch.Tensor:
        was_training = model.training
        model.eval()
        bs = self._eval_batch_size()
        with self._autocast():
            outs = [model(X[i : i + bs]) for i in range(0, len(X), bs)]
        if restore:
            model.train(was_training)
        return (torch.cat(outs) if len(outs) > 1 else outs[0]).float()

    def _validate(self) -> dict[str, float]:
        # No switch back to train mode: the next epoch starts with model.train() anyway, and
        # each switch walks every submodule.
        outputs = self._outputs(self._eval_forward, self._Xv, restore=False)
        with torch.no_grad():
            loss = self._loss_fn(outputs, self._yv)
        scores = epoch_scores(outputs, self._yv, loss, self.bundle.task, self.bundle.num_classes)
        return {f"val_{k}": v for k, v in scores.items()}

    def predict(self, model: nn.Module, X: Any) -> torch.Tensor:
        """Raw outputs for ``X`` on the CPU: logits for classification, values for regression."""
        device = next(model.parameters()).device
        X = torch.as_tensor(X, dtype=torch.float32, device=device)
        return self._outputs(model, X).cpu()

    def evaluation(self, model: nn.Module, bundle: Any, split: str = "test") -> Evaluation:
        """sklearn's metrics, per-class scores, confusion matrix and report for ``split``."""
        X, y = bundle.split(split)
        outputs = self.predict(model, X)
        loss_fn = build_loss(
            self.config.loss,
            bundle.task,
            num_classes=bundle.num_classes,
            y_train=bundle.y_train,
            label_smoothing=float(self.config.label_smoothing),
            class_weights=self.config.class_weights,
        )
        with torch.no_grad():
            loss = float(loss_fn(outputs, y.cpu()))
        return full_evaluation(
            outputs, y.cpu(), loss, task=bundle.task, classes=list(bundle.classes), split=split
        )

    def evaluate(self, model: nn.Module, bundle: Any, split: str = "test") -> dict[str, float]:
        """Flat metrics of ``split`` (``test_loss``, ``test_accuracy``, ``test_f1_macro``, ...)."""
        return self.evaluation(model, bundle, split).metrics

    # ---- set-up, best model, checkpoints ------------------------------------------------------

    def _setup(self, model: nn.Module, bundle: Any) -> None:
        cfg = self.config
        check_resolved(cfg)
        self.rank, self.world_size = distributed_info()
        self.device = resolve_device(cfg.device)
        precision = resolve_precision(cfg.precision, self.device)
        self._autocast = autocast_context(precision, self.device)
        self._scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None
        # torch.manual_seed would also seed lazily-initialised backends by capturing a stack
        # trace (milliseconds per fit); seeding the CPU and CUDA generators directly is enough.
        torch.default_generator.manual_seed(self.seed + self.rank)
        if torch.cuda.is_available():
            torch.cuda.manual_seed_all(self.seed + self.rank)
        self._gen = torch.Generator(device=self.device).manual_seed(self.seed)
        self.model, self.bundle = model.to(self.device), bundle
        move = functools.partial(to_device, device=self.device, pin=cfg.pin_memory)
        self._X, self._y = move(bundle.X_train), move(bundle.y_train)
        self._Xv, self._yv = move(bundle.X_val), move(bundle.y_val)
        if len(self._X) == 0:
            raise ConfigError("config error: data — the training split is empty")
        self._has_val = len(self._Xv) > 0
        self._augmenter = getattr(bundle, "augmenter", None)
        self._loss_fn = build_loss(
            cfg.loss,
            bundle.task,
            num_classes=bundle.num_classes,
            y_train=bundle.y_train,
            label_smoothing=float(cfg.label_smoothing),
            class_weights=cfg.class_weights,
            device=self.device,
        )
        self._check_monitors(bundle.task)
        # Frozen parameters stay in their group, so unfreezing later needs no new optimiser.
        if transfer_settings(self.model) is not None:
            groups = param_groups(self.model, float(cfg.lr))
        else:
            groups = [{"params": list(self.model.parameters()), "lr": float(cfg.lr), "name": "all"}]
        self.optimizer = build_optimizer(cfg, groups)
        self._trainable = list(self.model.parameters())
        self._l1 = float(cfg.l1)
        self._l1_params = l1_parameters(self.model) if self._l1 else []
        self._train_forward, self._eval_forward, self._ddp = wrap_model(
            self.model, distributed=self.world_size > 1, compile=bool(cfg.compile)
        )
        local_rows = math.ceil(len(self._X) / self.world_size)
        self._batch_scales = batch_scales(
            local_rows, int(cfg.batch_size), int(cfg.accumulate_steps)
        )
        self._batch_rows = batch_sizes(local_rows, int(cfg.batch_size))
        self.steps_per_epoch = math.ceil(len(self._batch_scales) / int(cfg.accumulate_steps))
        self.scheduler = LRSchedule(
            cfg.schedule,
            self.optimizer,
            steps_per_epoch=self.steps_per_epoch,
            epochs=int(cfg.epochs),
            monitor=self._monitor,
        )
        self.scheduler.apply()
        es = cfg.early_stopping
        self._early = (
            EarlyStopping(es.monitor, mode=es.mode, patience=es.patience, min_delta=es.min_delta)
            if es.enabled and (self._has_val or not es.monitor.startswith("val_"))
            else None
        )
        self._best = Monitor(self._monitor)
        self._best_state: dict[str, torch.Tensor] | None = None
        self._best_dirty = False
        self.epoch, self.global_step, self.history = 0, 0, []
        self.best_epoch, self.best_metrics, self.is_best, self._stop = None, {}, False, None
        self._last_checkpoint = time.monotonic()
        self._wall_before, self._fit_started = 0.0, time.perf_counter()
        loggers = builtin_loggers(cfg, self.run_dir)
        self._cbs = CallbackList(self.callbacks + loggers if self.is_main else [])
        self._set_globals()

    def _set_globals(self) -> None:
        """Process-wide torch settings for the fit; :meth:`_reset_globals` puts them back."""
        cfg = self.config
        self._saved_globals = (
            torch.are_deterministic_algorithms_enabled(),
            torch.utils.deterministic.fill_uninitialized_memory,
            torch.get_num_threads(),
        )
        if cfg.threads is not None:
            torch.set_num_threads(int(cfg.threads))
        if cfg.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
            # Filling every new tensor with NaN only helps find reads of uninitialised memory;
            # results are as reproducible without it, and it costs ~5% on small models.
            torch.utils.deterministic.fill_uninitialized_memory = False

    def _reset_globals(self) -> None:
        if self._saved_globals is None:
            return
        deterministic, fill, threads = self._saved_globals
        torch.use_deterministic_algorithms(deterministic)
        torch.utils.deterministic.fill_uninitialized_memory = fill
        torch.set_num_threads(threads)
        self._saved_globals = None

    def _check_monitors(self, task: str) -> None:
        """Reject misspelt monitors up front; without a validation split fall back to train_loss."""
        names = metric_names(task, has_val=True)
        check_metric(self.config.monitor, names, field="train.monitor")
        es = self.config.early_stopping
        if es.enabled:
            check_metric(es.monitor, names, field="train.early_stopping.monitor")
        monitor = self.config.monitor
        self._monitor = monitor if self._has_val or not monitor.startswith("val_") else "train_loss"

    def _epoch_order(self) -> torch.Tensor:
        n = len(self._X)
        order = torch.randperm(n, generator=self._gen, device=self.device)
        if self.world_size == 1:
            return order
        # DistributedSampler's split: pad by wrapping so every rank gets the same count.
        per_rank = math.ceil(n / self.world_size)
        padded = torch.cat([order, order[: per_rank * self.world_size - n]])
        return padded[self.rank :: self.world_size]

    def _eval_batch_size(self) -> int:
        return int(self.config.eval_batch_size or max(4 * int(self.config.batch_size), 1024))

    def _maybe_unfreeze(self, epoch: int) -> None:
        if apply_unfreeze_schedule(self.model, epochs_done=epoch - 1) and self.world_size > 1:
            raise ConfigError(
                "config error: model.unfreeze_after — unfreezing during a distributed run is "
                "not supported; train with --nproc 1 or without unfreeze_after",
                field="model.unfreeze_after",
            )

    def _keep_best(self, epoch: int, metrics: dict[str, Any]) -> None:
        value = metrics.get(self._monitor)
        self.is_best = value is not None and self._best.update(float(value), epoch)
        if self.is_best:
            self.best_epoch, self.best_metrics = epoch, dict(metrics)
            if self._best_state is None:
                self._best_state = cpu_state(self.model)
            else:  # reuse the snapshot's memory: no allocation per improvement
                for name, value in self.model.state_dict().items():
                    self._best_state[name].copy_(value)
            self._best_dirty = True

    def _sync_stop(self) -> None:
        """In DDP, rank 0's decision to stop (its callbacks ran alone) reaches every rank."""
        if self.world_size == 1:
            return
        code = torch.tensor([STATUSES.index(self._stop[0]) + 1 if self._stop else 0])
        torch.distributed.broadcast(code, src=0)
        if code.item() and self._stop is None:
            self._stop = (STATUSES[int(code.item()) - 1], "stopped on rank 0")

    def _checkpoint_due(self, epoch: int) -> bool:
        if self.run_dir is None or not self.is_main:
            return False
        if epoch == self.config.epochs or self._stop is not None:
            return False  # the final checkpoint is written once, with the status, by _finish
        return time.monotonic() - self._last_checkpoint >= self.config.checkpoint_interval_s

    @property
    def _writes_files(self) -> bool:
        return self.run_dir is not None and self.is_main

    def _epoch_weights(self, epoch: int) -> Path:
        """Where ``checkpoint_best_only: false`` keeps every epoch's weights."""
        return self.run_dir / "epochs" / f"epoch_{epoch:03d}.safetensors"

    def _wall_time(self) -> float:
        return self._wall_before + time.perf_counter() - self._fit_started

    def _save_checkpoint(self, status: str | None = None, reason: str = "") -> None:
        save_checkpoint(trainer_state(self, status, reason), self.run_dir / "checkpoint.pt")
        if self._best_dirty and self._best_state is not None:
            save_weights(self._best_state, self.run_dir / "best" / "model.safetensors")
            self._best_dirty = False
        self._last_checkpoint = time.monotonic()

    def _finish(self, status: str, reason: str) -> FitResult:
        interrupted = status == "stopped" and reason.startswith("interrupted")
        if self.run_dir is not None and self.is_main and status not in ("nan", "oom"):
            # Mid-epoch state is not resumable, so Ctrl-C keeps the last epoch's checkpoint.
            if not interrupted:
                self._save_checkpoint(status, reason)
            elif self._best_dirty and self._best_state is not None:
                save_weights(self._best_state, self.run_dir / "best" / "model.safetensors")
        if self.config.restore_best and self._best_state is not None:
            self.model.load_state_dict(self._best_state)
        self.model.train()  # validation leaves eval mode on; a fit returns the model in train mode
        result = FitResult(
            status=status,
            reason=reason,
            history=list(self.history),
            best_epoch=self.best_epoch,
            best_metrics=dict(self.best_metrics),
            epochs_run=len(self.history),
            wall_time_s=self._wall_time(),
        )
        for cb in self._cbs.hook("on_fit_end"):
            cb.on_fit_end(self, result)
        return result
