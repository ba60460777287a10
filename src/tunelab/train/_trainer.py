"""``Trainer``: one straight training loop with callbacks at named points.

Read :meth:`Trainer.fit` top to bottom: set up, then per epoch train (get batch, forward,
backward, clip, step: ``_step.py``), validate (``_evaluate.py``), judge the epoch (sick?
best? early stop?), call the callbacks, checkpoint. The data already sits on the device as
tensors; an epoch is a permutation indexed in slices, and the running loss is summed on the
device and read once per epoch, so the loop is as fast as a hand-written one
(``bench/trainer_overhead.py``). Per-fit state is one :class:`~tunelab.train.FitState`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.utils.deterministic

from ..config import TrainConfig
from ..models import transfer_settings
from ..models._io import WEIGHTS
from ..rundir import TrainingDir
from ._backbone import BackboneFinetuning
from ._callbacks import Callback, CallbackList
from ._checkpoint import cpu_state, save_checkpoint, save_weights
from ._evaluate import EvaluationMixin
from ._health import Sickness, SickTrialPolicy
from ._loggers import builtin_loggers, close_files
from ._plan import FitPlan, plan_fit, steps_per_epoch
from ._result import REQUESTABLE, STATUSES, FitResult
from ._resume import restore_trainer, trainer_state
from ._schedules import LRSchedule
from ._setup import check_resolved, distributed_info, is_out_of_memory, resolve_device
from ._state import FitState
from ._step import StepMixin
from ._threads import auto_threads

# Without a guard, a NaN/inf epoch loss still ends the fit (nothing useful comes after it).
_NAN_ONLY = SickTrialPolicy(check_every=0, exploded_loss=math.inf, divergence_factor=math.inf)


class Trainer(StepMixin, EvaluationMixin):
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
        health: the sick-trial guard (:class:`SickTrialPolicy`): a NaN/inf loss (looked at
            every ``check_every`` steps and every epoch), an exploded validation loss or a
            diverged training loss ends the fit with status ``nan``/``diverged`` and the
            verdict in ``FitResult.sickness``. ``None`` keeps only the epoch NaN check.

    A model built by :func:`tunelab.models.build_from_config` carries its transfer-learning
    settings: the backbone then trains at ``lr * backbone_lr_mult`` (discriminative learning
    rates) and a frozen backbone is unfrozen after ``unfreeze_after`` epochs (the trainer adds
    a :class:`BackboneFinetuning` callback).

    Everything one fit mutates lives in ``trainer.state`` (a :class:`FitState`); ``epoch``,
    ``global_step``, ``optimizer``, ``history``, ``best_metrics``... read through to it.

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
        health: SickTrialPolicy | None = SickTrialPolicy(),  # frozen: one shared default is safe
    ) -> None:
        self.config = config
        self.callbacks = list(callbacks)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.seed = seed
        self.loss = loss
        self.health = health
        self.model: nn.Module | None = None
        self.bundle: Any = None
        self.device = torch.device("cpu")
        self.rank, self.world_size = 0, 1
        self.steps_per_epoch = 0
        self.plan: FitPlan | None = None
        self.state: FitState | None = None
        # The micro-batches ``(inputs, targets, share of the step's rows)`` of the optimiser step
        # in progress, for ``after_backward`` callbacks (the doctor samples the inputs there
        # rather than hooking every forward).
        self.step_batches: Sequence[tuple[torch.Tensor, torch.Tensor, float]] = ()
        self._cbs = CallbackList([])
        self._saved_globals: tuple[bool, bool, int] | None = None

    # ---- the public surface callbacks use (read through to the fit's state) ----------------

    @property
    def optimizer(self) -> torch.optim.Optimizer | None:
        return self.state.optimizer if self.state is not None else None

    @property
    def scheduler(self) -> LRSchedule | None:
        return self.state.scheduler if self.state is not None else None

    @property
    def epoch(self) -> int:
        return self.state.epoch if self.state is not None else 0

    @property
    def global_step(self) -> int:
        return self.state.global_step if self.state is not None else 0

    @property
    def history(self) -> list[dict[str, Any]]:
        return self.state.history if self.state is not None else []

    @property
    def best_epoch(self) -> int | None:
        return self.state.best_epoch if self.state is not None else None

    @property
    def best_metrics(self) -> dict[str, Any]:
        return self.state.best_metrics if self.state is not None else {}

    @property
    def is_best(self) -> bool:
        """Whether the epoch just ended is the best so far (for ``on_epoch_end``)."""
        return self.state is not None and self.state.is_best

    def request_stop(self, reason: str, status: str = "stopped") -> None:
        """End training after the current step (mid-epoch) or epoch, with ``status``."""
        if status not in REQUESTABLE:
            raise ValueError(f"status must be one of {', '.join(REQUESTABLE)}, got {status!r}")
        if self.state.stop is None:
            self.state.stop = (status, reason)

    @property
    def stop_requested(self) -> bool:
        return self.state is not None and self.state.stop is not None

    @property
    def is_main(self) -> bool:
        """Whether this process writes files and runs callbacks (rank 0 of a DDP group)."""
        return self.rank == 0

    @property
    def lr(self) -> float:
        opt = self.optimizer
        return float(opt.param_groups[0]["lr"]) if opt is not None else 0.0

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
            if self.state.stop is not None:  # the checkpoint says this run already finished
                return self._finish(*self.state.stop)
            return self._finish(*self._loop())
        finally:
            self._reset_globals()  # also when a callback or a bug raises
            close_files(self._cbs.callbacks)  # what the loggers hold, when on_fit_end did not run

    def _loop(self) -> tuple[str, str]:
        """The epochs; returns ``(status, reason)``."""
        cfg, st = self.config, self.state
        has_val, writes = self.plan.has_val, self._writes_files
        for cb in self._cbs.hook("on_fit_start"):
            cb.on_fit_start(self)
        try:
            for epoch in range(st.epoch + 1, cfg.epochs + 1):
                st.epoch = epoch
                for cb in self._cbs.hook("on_epoch_start"):
                    cb.on_epoch_start(self, epoch)
                t0 = time.perf_counter()
                metrics: dict[str, Any] = {"epoch": epoch, "train_loss": self._train_epoch()}
                if has_val and math.isfinite(metrics["train_loss"]):
                    metrics.update(self._validate())
                metrics["lr"] = self.lr
                metrics["epoch_time_s"] = time.perf_counter() - t0
                st.history.append(metrics)
                healthy = self._judge_epoch(epoch, metrics)  # sick, best, early stop, LR schedule
                for cb in self._cbs.hook("on_epoch_end"):
                    cb.on_epoch_end(self, epoch, metrics)
                if self.world_size > 1:
                    self._sync_stop()
                if healthy and writes:
                    self._checkpoint_epoch(epoch)
                if st.stop is not None:
                    return st.stop
        except KeyboardInterrupt:
            return "stopped", f"interrupted by the user in epoch {st.epoch}"
        except RuntimeError as exc:  # only out-of-memory becomes a status; bugs still raise
            if not is_out_of_memory(exc):
                raise
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            return "oom", self._oom_reason(exc)
        return "completed", f"ran all {cfg.epochs} epochs"

    def _judge_epoch(self, epoch: int, metrics: dict[str, Any]) -> bool:
        """Sick-trial guard, best weights, early stopping, LR schedule; False on a NaN/inf loss."""
        st = self.state
        policy = self.health if self.health is not None else _NAN_ONLY
        sickness = policy.judge_epoch(
            epoch, metrics, best_loss=st.best_train_loss, step=st.global_step
        )
        if sickness is None:
            st.best_train_loss = min(st.best_train_loss, float(metrics["train_loss"]))
        else:
            self._sicken(sickness)
            if sickness.status == "nan":
                return False
        self._keep_best(epoch, metrics)
        if st.early is not None:
            stop, why = st.early.update_and_check(float(metrics[st.early.metric]), epoch)
            if stop:
                st.stop = st.stop or ("early_stopped", why)
        st.scheduler.step_epoch(metrics)
        return True

    def _sicken(self, sickness: Sickness | None) -> None:
        """Record the guard's verdict and end the fit with its status (the first one wins)."""
        st = self.state
        if sickness is None or st.sickness is not None:
            return
        st.sickness = sickness
        st.stop = st.stop or (sickness.status, sickness.reason(self.lr))

    def _oom_reason(self, exc: BaseException) -> str:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        return (
            f"out of memory in epoch {self.epoch} (batch_size {self.config.batch_size}): "
            f"{first}; lower train.batch_size, use train.accumulate_steps or a smaller model"
        )

    # ---- set-up, best model, checkpoints ------------------------------------------------------

    def _setup(self, model: nn.Module, bundle: Any) -> None:
        """Create this fit's plan and state (the only place either is made)."""
        cfg = self.config
        check_resolved(cfg)
        self.rank, self.world_size = distributed_info()
        self.device = resolve_device(cfg.device)
        # torch.manual_seed would also seed lazily-initialised backends by capturing a stack
        # trace (milliseconds per fit); seeding the CPU and CUDA generators directly is enough.
        torch.default_generator.manual_seed(self.seed + self.rank)
        if torch.cuda.is_available():
            torch.cuda.manual_seed_all(self.seed + self.rank)
        self.model, self.bundle = model.to(self.device), bundle
        self.plan, self.state = plan_fit(
            cfg, self.model, bundle, device=self.device, world_size=self.world_size, seed=self.seed
        )
        self.steps_per_epoch = steps_per_epoch(cfg, self.plan)
        # Built-in callbacks that steer the model run on every rank; the rest on rank 0 only.
        steering = [BackboneFinetuning()] if transfer_settings(self.model) is not None else []
        watching = self.callbacks + builtin_loggers(cfg, self.run_dir) if self.is_main else []
        self._cbs = CallbackList(steering + watching)
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
        elif self.device.type == "cpu" and len(self.bundle.X_train):
            # The rule and its reasons: train/_threads.py.
            example = self.bundle.X_train[:1].to(self.device)
            torch.set_num_threads(auto_threads(self.model, example, int(cfg.batch_size)))
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

    def _keep_best(self, epoch: int, metrics: dict[str, Any]) -> None:
        st = self.state
        value = metrics.get(self.plan.monitor)
        st.is_best = value is not None and st.best.update(float(value), epoch)
        if st.is_best:
            st.best_epoch, st.best_metrics = epoch, dict(metrics)
            if st.best_weights is None:
                st.best_weights = cpu_state(self.model)
            else:  # reuse the snapshot's memory: no allocation per improvement, one copy op
                current = self.model.state_dict()
                best = st.best_weights
                torch._foreach_copy_([best[name] for name in current], list(current.values()))
            st.best_dirty = True

    def _sync_stop(self) -> None:
        """In DDP, rank 0's decision to stop (its callbacks ran alone) reaches every rank."""
        st = self.state
        if self.world_size == 1:
            return
        code = torch.tensor([STATUSES.index(st.stop[0]) + 1 if st.stop else 0])
        torch.distributed.broadcast(code, src=0)
        if code.item() and st.stop is None:
            st.stop = (STATUSES[int(code.item()) - 1], "stopped on rank 0")

    @property
    def _writes_files(self) -> bool:
        return self.run_dir is not None and self.is_main

    def _checkpoint_epoch(self, epoch: int) -> None:
        if self._checkpoint_due(epoch):
            self._save_checkpoint()
        if not self.config.checkpoint_best_only and self._writes_files:
            path = self.run_dir / "epochs" / f"epoch_{epoch:03d}.safetensors"
            save_weights(cpu_state(self.model), path)

    def _checkpoint_due(self, epoch: int) -> bool:
        if not self._writes_files:
            return False
        if epoch == self.config.epochs or self.state.stop is not None:
            return False  # the final checkpoint is written once, with the status, by _finish
        elapsed = time.monotonic() - self.state.last_checkpoint
        return elapsed >= self.config.checkpoint_interval_s

    def _save_checkpoint(self, status: str | None = None, reason: str = "") -> None:
        save_checkpoint(trainer_state(self, status, reason), TrainingDir(self.run_dir).checkpoint)
        self._save_best()
        self.state.last_checkpoint = time.monotonic()

    def _save_best(self) -> None:
        st = self.state
        if st.best_dirty and st.best_weights is not None:
            # best_weights is the trainer's own snapshot (cpu_state): no clone needed.
            save_weights(
                st.best_weights, TrainingDir(self.run_dir).best_model / WEIGHTS, snapshot=True
            )
            st.best_dirty = False

    def _finish(self, status: str, reason: str) -> FitResult:
        st = self.state
        interrupted = status == "stopped" and reason.startswith("interrupted")
        if self._writes_files and status not in ("nan", "oom"):
            # Mid-epoch state is not resumable, so Ctrl-C keeps the last epoch's checkpoint.
            if not interrupted:
                self._save_checkpoint(status, reason)
            else:
                self._save_best()
        if self.config.restore_best and st.best_weights is not None:
            self.model.load_state_dict(st.best_weights)
        self.model.train()  # validation leaves eval mode on; a fit returns the model in train mode
        result = FitResult(
            status=status,
            reason=reason,
            history=list(st.history),
            best_epoch=st.best_epoch,
            best_metrics=dict(st.best_metrics),
            epochs_run=len(st.history),
            wall_time_s=st.wall_time(),
            sickness=st.sickness,
        )
        for cb in self._cbs.hook("on_fit_end"):
            cb.on_fit_end(self, result)
        return result
