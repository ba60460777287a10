"""``Doctor``: watches any PyTorch training loop and says what is wrong with it.

The doctor is built for hand-written loops first (tunelab's Trainer uses it through
:class:`~tunelab.diagnose.DoctorCallback`)::

    doc = Doctor(model, optimizer)              # registers its hooks
    for epoch in range(epochs):
        for xb, yb in doc.watch(loader):         # times data wait vs compute
            loss = loss_fn(model(xb), yb)
            optimizer.zero_grad(); loss.backward()
            doc.after_backward(loss)             # before optimizer.step()
            optimizer.step()
        doc.end_epoch(train_loss=..., val_loss=..., train_metric=..., val_metric=...)
    print(doc.diagnose().summary())

Cost: per step, two root-module hooks (with ``step_inputs``, as tunelab's Trainer uses it, only
around the sampled forwards), a loss read and a counter; every ``every_n_steps``
steps, per-layer statistics reduced on the device and moved to the host in one transfer. The
doctor times that sampled work, and past the dense start and a minimum per epoch it spaces its
samples so that they take at most ``overhead_budget`` (5%) of the training time: on tiny fits
(epochs of milliseconds) it samples less often than ``every_n_steps``, on real ones it does not.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from . import _detectors  # noqa: F401  (registers the built-in detectors)
from ._baseline import Baseline, quick_baseline
from ._data_checks import check_data
from ._detect_resources import data_source
from ._detector import Detector, make_detectors
from ._finding import DiagnosisReport, Finding, merge_findings
from ._probes import (
    NORM_LAYERS,
    RELU_LIKE,
    SQUASHING,
    ActivationProbe,
    CostMeter,
    FunctionalActivations,
    GradProbe,
    current_exception,
    is_out_of_memory,
    memory_usage,
    observe_batch,
    observe_labels,
    split_batch,
)
from ._record import ActivationStat, BatchStats, EpochRecord, GradSample, TrainingRecord
from ._remedies import RemedyContext, prescribe

if TYPE_CHECKING:
    from ..train import LRFinderResult

# Losses are kept on the device and read in chunks of this many steps (one sync per chunk).
_LOSS_CHUNK = 256
# Sample every step until this many rows were seen in the epoch, so small epochs are still
# measured on enough inputs to judge "active on fewer than 1% of inputs".
_MIN_ROWS = 64
# Gradients are sampled at every one of the first steps (a cost paid once per run).
_EARLY_STEPS = 5
# Input statistics settle quickly: every sampled batch until this many rows were seen, then
# one batch in ``_BATCH_SPARSITY`` sampling periods (a NaN loss still inspects its own batch).
# The first _INPUT_ROWS rows are sampled whatever the cost budget (the data rules need 64 and
# the scale rule's RMS is within a few percent on 256); the rest only within the budget.
_BATCH_ROWS = 512
_INPUT_ROWS = 256
_BATCH_SPARSITY = 10
# Labels of every batch are counted until this many rows (a bincount per batch).
_LABEL_ROWS = 2048
# Gradient samples kept in a checkpoint (the detectors look at recent ones and medians).
_KEPT_SAMPLES = 500
# end_epoch's detector pass runs when at least this many times its own duration has passed
# (at most ~1% of the time goes to it on very short epochs).
_PASS_SHARE = 100.0
# The default share of the training time the doctor's measured work may take (see CostMeter).
# What stays whatever the budget: every one of the first _EARLY_STEPS gradient samples; one
# gradient sample per epoch with its update ratio and zero count (the detectors' medians and
# the early/late growth need samples spread over the run); activations on _MIN_ROWS inputs per
# epoch (the dead/saturated rules read the latest epoch and need 32); input statistics until
# _INPUT_ROWS rows and labels until _BATCH_ROWS rows (the data rules need 64; an imbalance is
# judged beyond the Poisson noise of the counts); the first detector pass. The budget spaces
# out everything else.
OVERHEAD_BUDGET = 0.05


class Doctor:
    """Diagnoses a training run from hooks, sampled gradients and the loss trajectory.

    Args:
        model: the model being trained (hooks go on its activation modules and on itself).
        optimizer: its optimiser (for update/weight ratios and the learning rate), or None.
        every_n_steps: sample gradients/activations/batches every this many steps.
        config: the :class:`~tunelab.config.ExperimentConfig` of the run (or just its
            ``TrainConfig``), when there is one; prescriptions then start from its values.
        metric_mode: ``"max"`` when ``train_metric``/``val_metric`` are higher-is-better
            (accuracy, F1, R²), ``"min"`` for errors (MAE), ``"auto"`` to infer it from how the
            metric moves with the loss.
        memory_budget: bytes the run may use; default: the GPU's memory, or the process limit.
        detectors: names of detectors to run (default: all registered).
        classes: the class names, in label order (label ``i`` is ``classes[i]``), so findings
            about labels seen in the batches name them; default: the label indices.
        overhead_budget: the share of the training time the doctor's sampled work may take
            (default 0.05); past the dense first steps and a minimum per epoch it samples less
            often than ``every_n_steps`` when sampling would cost more. ``None``: no budget,
            sample exactly every ``every_n_steps`` (reproducible sample positions).
        step_inputs: the loop passes each optimiser step's inputs to :meth:`after_backward`
            (``inputs=``; tunelab's Trainer does). The root-module hooks are then attached only
            around the forwards whose activations are sampled, so every other forward runs on
            PyTorch's hook-free path; activations are sampled by step count (the first
            forward of every ``every_n_steps``-th step) and out-of-memory errors are the
            loop's to report (:meth:`record_oom`; the Trainer's status says so).

    Only ``nn.Module`` activations are hooked; ``F.relu``/``torch.tanh`` calls inside
    ``forward`` are invisible to the activation checks (the other checks still work).

    >>> import torch
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> doc = Doctor(model, opt)
    >>> x, y = torch.randn(64, 4), torch.randint(0, 2, (64,))
    >>> for _ in range(20):
    ...     loss = torch.nn.functional.cross_entropy(model(x), y)
    ...     opt.zero_grad(); loss.backward(); doc.after_backward(loss); opt.step()
    >>> doc.end_epoch()
    >>> doc.diagnose().steps
    20
    """

    def __init__(
        self,
        model: nn.Module | None = None,
        optimizer: torch.optim.Optimizer | None = None,
        *,
        every_n_steps: int = 10,
        config: Any = None,
        metric_mode: str = "auto",
        memory_budget: int | None = None,
        detectors: list[str] | None = None,
        classes: Sequence[Any] | None = None,
        overhead_budget: float | None = OVERHEAD_BUDGET,
        step_inputs: bool = False,
    ) -> None:
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps must be >= 1, but got {every_n_steps}")
        if metric_mode not in ("auto", "max", "min"):
            raise ValueError(f"metric_mode must be auto, max or min, but got {metric_mode!r}")
        self.model = model
        self.optimizer = optimizer
        self.every_n_steps = every_n_steps
        self.config = config
        self.metric_mode = metric_mode
        self.memory_budget = memory_budget
        self.detectors = detectors
        self.classes = classes
        self.overhead_budget = overhead_budget
        self.step_inputs = step_inputs
        # The API: constructing the doctor registers its hooks, nothing else to call.
        self._attach()

    # ---- set-up -----------------------------------------------------------------------------

    def _attach(self) -> None:
        self.record_ = TrainingRecord()
        self.record_.metric_mode = self.metric_mode
        self.record_.class_names = [str(c) for c in self.classes] if self.classes else None
        self._detectors: list[Detector] = make_detectors(self.detectors)
        self._acts = ActivationProbe()
        self._grads = GradProbe(self.model)
        self._meter = CostMeter(self.overhead_budget)
        # A sample that was due but did not fit the budget is owed: taken at the next chance.
        self._act_owed = False
        self._input_owed = False
        self._grad_kind = "grad"  # the last gradient sample's kind (its update is booked there)
        self._handles: list[Any] = []
        self._loss_buf: list[torch.Tensor] = []
        self._first_seen: dict[str, dict[str, int | None]] = {}
        self._seen_ooms: set[int] = set()
        self._loader: Any = None
        self._current_batch: Any = None
        self._last_input: torch.Tensor | None = None
        self._fwd = 0
        # step_inputs: whether the next training forward samples activations (decided at the
        # previous step, epoch end or set-up), and the root hooks while they are attached.
        self._acts_planned = True
        self._root_handles: list[Any] = []
        self._paused = False  # find_lr's probe steps: the hooks look away
        self._batch_index = 0  # batches seen by watch(), across epochs
        self._last_grad_step = -(10**9)
        self._last_loss_finite = True
        # The findings of the last end_epoch (no remedies yet): cheap to poll every epoch.
        self.latest_: list[Finding] = []
        self._last_pass = (-math.inf, 0.0)  # (when the last detector pass ended, its duration)
        # end_epoch's last pass: (what it read, its findings), for diagnose() to reuse while
        # nothing was recorded since (see _record_state).
        self._failures = 0  # detector checks that raised (their passes are not reused)
        self._pass_memo: tuple[tuple[Any, ...], list[Finding]] | None = None
        self._new_epoch_counters()
        if self.model is not None:
            for name, module in self.model.named_modules():
                if isinstance(module, RELU_LIKE + SQUASHING):
                    self._acts.names[module] = name or type(module).__name__
            # Activation hooks are attached only for sampled forwards (see _before_forward), so
            # the other steps run the modules on PyTorch's hook-free fast path. With step_inputs
            # the root hooks too: the first forward is sampled, later ones as planned.
            self._hook_root()
        self._act_handles: list[Any] = []
        # A model without activation modules calls its activations as functions (F.relu(x)):
        # its sampled forwards run under FunctionalActivations, until one shows it calls none.
        self._functional = self.model is not None and not self._acts.names
        self._mode: FunctionalActivations | None = None
        self._step_handle: Any = None

    def _new_epoch_counters(self) -> None:
        self._epoch_loss_start = len(self.record_.step_losses) + len(self._loss_buf)
        # Rows behind each of the epoch's step losses, when watch() saw the batches (0: unknown).
        self._epoch_rows: list[int] = []
        self._rows_pending = 0
        self._epoch_step_start = self.record_.steps
        self._wait = 0.0
        self._compute = 0.0
        self._batches = 0
        self._epoch_t0: float | None = None
        self._epoch_grad_samples = 0

    def _hook_root(self) -> None:
        if self.model is not None and not self._root_handles:
            self._root_handles = [
                self.model.register_forward_pre_hook(self._before_forward),
                self.model.register_forward_hook(self._after_forward, always_call=True),
            ]

    def _unhook_root(self) -> None:
        for handle in self._root_handles:
            handle.remove()
        self._root_handles = []

    def _plan_acts(self) -> None:
        """step_inputs: decide now whether the next step's first forward samples activations,
        by the rules _before_forward applies per forward without step_inputs (steps for
        forwards), and hook the root module only if it does."""
        if self._needs_rows():
            planned = True
        elif not self._acts.names and not self._functional:
            planned = False  # nothing to sample: no hooked forwards at all
        elif self._act_owed or self.record_.steps % self.every_n_steps == 0:
            planned = self._meter.affords("acts")
            self._act_owed = not planned
        else:
            planned = False
        self._acts_planned = planned
        if planned:
            self._hook_root()
        elif self._root_handles:
            self._unhook_root()

    def _needs_rows(self) -> bool:
        """Whether this epoch's activations have not yet been counted on _MIN_ROWS inputs."""
        return (bool(self._acts.names) or self._functional) and self._acts.epoch_rows < _MIN_ROWS

    def close(self) -> None:
        """Remove every hook (the doctor keeps what it recorded)."""
        for handle in self._handles + self._act_handles:
            handle.remove()
        self._handles.clear()
        self._act_handles.clear()
        self._unhook_root()
        if self._step_handle is not None:
            self._step_handle.remove()
            self._step_handle = None

    def __enter__(self) -> Doctor:
        return self

    def __exit__(self, *exc: Any) -> None:
        if exc[1] is not None and is_out_of_memory(exc[1]):
            self.record_oom(exc[1])
        self.close()

    @property
    def record(self) -> TrainingRecord:
        """Everything observed so far, as plain numbers."""
        self._flush_losses()
        return self.record_

    @property
    def overhead(self) -> dict[str, Any]:
        """The doctor's own measured cost: ``budget``, ``spent_s`` (seconds of its timed work,
        ``diagnose()`` calls included), ``share`` (of the training time since the first step),
        ``spent_by_kind_s`` (seconds per kind of work: ``grad``, ``acts``, ``inputs``,
        ``labels``, ``epoch``, ``pass``, ``score``, ``steps``...) and ``deferred`` (optional
        samples put off per kind to stay within the budget)."""
        return self._meter.summary()

    # ---- the loop-facing API ------------------------------------------------------------------

    def watch(self, loader: Iterable[Any]) -> Iterator[Any]:
        """Yield ``loader``'s batches unchanged, timing the wait for each against the compute."""
        self._loader = loader
        self.record_.data_source = data_source(loader)
        it = iter(loader)
        while True:
            t0 = time.perf_counter()
            if self._epoch_t0 is None:
                self._epoch_t0 = t0
                self._meter.begin()
            try:
                batch = next(it)
            except StopIteration:
                return
            except Exception as exc:
                if is_out_of_memory(exc):
                    self.record_oom(exc)
                raise
            t1 = time.perf_counter()
            self._wait += t1 - t0
            self._batches += 1
            self._current_batch = batch
            charged = self._meter.spent
            x, y = split_batch(batch)
            first = x if x is not None else y
            if first is not None and first.ndim:
                self._rows_pending += int(first.shape[0])
            self._observe_input(x, y)
            t2 = time.perf_counter()
            # The bookkeeping around the sampled statistics (those are charged by kind).
            self._meter.spend(max(0.0, (t2 - t1) - (self._meter.spent - charged)))
            yield batch
            self._compute += time.perf_counter() - t2

    def after_backward(
        self,
        loss: torch.Tensor | float | None = None,
        inputs: Sequence[torch.Tensor] | None = None,
    ) -> None:
        """Call after ``loss.backward()`` and before ``optimizer.step()`` (once per step).

        ``inputs``: with ``step_inputs``, the model inputs of this step's forwards, in order
        (one per micro-batch); their statistics are sampled here instead of in a forward hook."""
        entered = time.perf_counter()
        charged = self._meter.spent
        step = self.record_.steps
        if self.step_inputs and inputs and self._loader is None:  # watch() sees them itself
            self._observe_step_inputs(inputs)
        rows, self._rows_pending = self._rows_pending, 0
        if loss is not None:
            if not rows and inputs:  # the Trainer shows the step's micro-batch inputs instead
                rows = sum(
                    int(x.shape[0]) for x in inputs if isinstance(x, torch.Tensor) and x.ndim
                )
            self._epoch_rows.append(rows)
            self._push_loss(loss)
        # Every k steps, counted across epochs (tiny epochs are still sampled, just not all), and
        # every one of the first few steps, where explosions and bad initialisations show.
        # Past those a sample must fit the cost budget; one that does not is taken at the first
        # later step that it fits. An epoch without a sample yet gets one anyway, with both the
        # update ratio and the zero count: the detectors take medians over all samples, and the
        # dense start (a high learning rate's first, largest steps) must not outweigh the rest.
        full = True
        if step < _EARLY_STEPS:
            due = True
        elif step - self._last_grad_step >= self.every_n_steps:
            full = self._meter.affords("grad")
            due = full or self._epoch_grad_samples == 0
        else:
            due = False
        if self.model is not None and due:
            started = time.perf_counter()
            self._meter.begin()
            self._last_grad_step = step
            # Update ratios need a copy of the weights: every other sample is plenty once a few
            # exist. The optimiser hook that measures the step is attached for that step only.
            samples = len(self.record_.grad_samples)
            track = (
                self.optimizer is not None
                and hasattr(self.optimizer, "register_step_post_hook")
                and (samples < 4 or samples % 2 == 0 or not full)
            )
            # The zero-gradient count costs a reduction per layer: on the other samples.
            sample = self._grads.sample(
                step + 1,
                self.record_.epoch + 1,
                track_update=track,
                count_zeros=samples < 4 or not track or not full,
            )
            if track and sample is not None and self._step_handle is None:
                self._step_handle = self.optimizer.register_step_post_hook(self._after_step)
            if sample is not None:
                self.record_.grad_samples.append(sample)
                self._epoch_grad_samples += 1
            self._grad_kind = "grad" if full else "grad_min"
            self._meter.charge(self._grad_kind, time.perf_counter() - started)
        self.record_.steps = step + 1
        if self.step_inputs and self.model is not None:
            self._plan_acts()
        # The step's bookkeeping: its time less what was charged by kind (samples, inputs).
        self._meter.spend(max(0.0, time.perf_counter() - entered - (self._meter.spent - charged)))

    def end_epoch(
        self,
        train_loss: float | None = None,
        val_loss: float | None = None,
        train_metric: float | None = None,
        val_metric: float | None = None,
        *,
        val_rows: int | None = None,
        train_rows: int | None = None,
    ) -> None:
        """Close an epoch; every argument is optional (metrics: see ``metric_mode``).

        ``val_rows``/``train_rows``: how many rows the metrics were measured on, for their
        sampling error (read off accuracy values when not given)."""
        started = time.perf_counter()
        self._flush_losses()
        rec = self._epoch_record(closing=True)
        rec.train_loss, rec.val_loss = _number(train_loss), _number(val_loss)
        rec.train_metric, rec.val_metric = _number(train_metric), _number(val_metric)
        rec.val_rows = int(val_rows) if val_rows else None
        rec.train_rows = int(train_rows) if train_rows else None
        self.record_.epochs.append(rec)
        self.record_.partial = None
        self._new_epoch_counters()
        if self.step_inputs and self.model is not None:
            self._plan_acts()  # the activation counts restart: the next forward is sampled
        now = time.perf_counter()
        self._meter.charge("epoch", now - started)
        # Run the detectors now so each finding remembers the epoch it first appeared in; when
        # epochs are so short that this would cost more than ~1% of the time, skip some, and
        # after the first pass, any that the cost budget cannot pay for.
        first = self._last_pass[1] == 0.0
        if now - self._last_pass[0] >= _PASS_SHARE * self._last_pass[1] and (
            first or self._meter.affords("pass")
        ):
            state = self._record_state()
            failures = self._failures
            self.latest_ = self._run_detectors()
            # A pass in which a detector failed is not reused (diagnose() warns again).
            self._pass_memo = (state, list(self.latest_)) if self._failures == failures else None
            end = time.perf_counter()
            self._last_pass = (end, end - now)
            self._meter.charge("pass", end - now)
            # The closing diagnose() runs the same detectors: keep its cost in hand.
            self._meter.reserve = self._meter.costs["pass"]
            for f in self.latest_:
                if f.is_problem and f.kind not in self._first_seen:
                    self._first_seen[f.kind] = f.first_seen or self.record_.where(epoch=rec.epoch)

    def record_oom(
        self,
        exc: BaseException | None = None,
        *,
        batch_size: int | None = None,
        message: str | None = None,
    ) -> None:
        """Note an out-of-memory error (the doctor also catches those raised in ``forward``)."""
        if exc is not None:
            if id(exc) in self._seen_ooms:
                return
            self._seen_ooms.add(id(exc))
            message = message or (str(exc).strip().splitlines() or [""])[0][:200]
        self.record_.ooms.append(
            {
                "step": self.record_.steps + 1,
                "epoch": self.record_.epoch + 1,
                "message": (message or "out of memory")[:300],
                "batch_size": batch_size if batch_size is not None else self._batch_size(),
            }
        )

    @contextlib.contextmanager
    def guard(self, *, suppress: bool = False) -> Iterator[None]:
        """``with doc.guard():`` records an out-of-memory error raised inside (and re-raises
        it unless ``suppress``); other exceptions pass through untouched."""
        try:
            yield
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            self.record_oom(exc)
            if not suppress:
                raise

    def find_lr(
        self,
        loss_fn: Callable[[Any, Any], torch.Tensor],
        batches: Iterable[Any] | None = None,
        *,
        steps: int = 100,
        start_lr: float = 1e-7,
        end_lr: float = 10.0,
    ) -> LRFinderResult:
        """Measure a learning rate with the LR range test, on this loop's own optimiser.

        ``loss_fn(model(inputs), targets)`` is the loop's loss; ``batches`` default to the
        loader given to :meth:`watch`. The weights, the optimiser's state and torch's random
        state are restored afterwards. From then on, learning-rate prescriptions name the
        measured rate (when it moves the way the remedy wants) instead of a 10x step.
        """
        from ._lr_probe import range_test

        if self.model is None or self.optimizer is None:
            raise ValueError("find_lr needs the Doctor's model and optimizer")
        batches = batches if batches is not None else self._loader
        if batches is None:
            raise ValueError("find_lr needs batches: pass a loader, or call watch(loader) first")
        self._paused = True
        try:
            result = range_test(
                self.model,
                self.optimizer,
                loss_fn,
                batches,
                steps=steps,
                start_lr=start_lr,
                end_lr=end_lr,
            )
        finally:
            self._paused = False
        self.record_.lr_range = {
            "suggestion": result.suggestion,
            "min_loss_lr": result.min_loss_lr,
            "steps": len(result.lrs),
        }
        return result

    def diagnose(self) -> DiagnosisReport:
        """The findings so far, worst first; safe to call at any time, also mid-epoch."""
        started = time.perf_counter()
        self._flush_losses()
        if self._epoch_step_start < self.record_.steps or not self.record_.epochs:
            self.record_.partial = self._epoch_record(closing=False)
        memo = self._pass_memo
        if memo is not None and memo[0] == self._record_state():
            # Nothing recorded since end_epoch's pass: the same record gives the same findings
            # (copies: this report fills in first_seen, remedies and causes).
            findings = copy.deepcopy(memo[1])
        else:
            findings = self._run_detectors()
        ctx = self.remedy_context()
        now = (
            self.record_.where(step=self.record_.steps)
            if self.record_.steps
            else self.record_.where(epoch=max(1, self.record_.epoch))
        )
        for f in findings:
            seen = self._first_seen.get(f.kind) if f.is_problem else None
            f.first_seen = seen or f.first_seen or dict(now)
            prescribe(f, ctx)
        report = DiagnosisReport(
            findings, epochs=len(self.record_.epochs), steps=self.record_.steps
        )
        # Booked for the report of the doctor's cost (the budget keeps it in hand, see end_epoch).
        self._meter.charge("diagnose", time.perf_counter() - started)
        return report

    def fit_baseline(
        self,
        X_train: Any,
        y_train: Any,
        X_val: Any,
        y_val: Any,
        *,
        task: str = "classification",
    ) -> Baseline | None:
        """Fit the quick reference models on the same split (about a second; see
        :func:`~tunelab.diagnose.quick_baseline`) so that "underfitting" is judged against
        what this data allows, not a constant."""
        baseline = quick_baseline(X_train, y_train, X_val, y_val, task=task)
        self.set_baseline(baseline)
        return baseline

    def set_baseline(self, baseline: Baseline | dict[str, Any] | None) -> None:
        """Use an already computed reference (a :class:`Baseline` or its ``to_dict()``)."""
        if isinstance(baseline, Baseline):
            baseline = baseline.to_dict()
        self.record_.baseline = dict(baseline) if baseline else None

    @staticmethod
    def check_data(
        X_train: Any,
        y_train: Any,
        X_val: Any = None,
        y_val: Any = None,
        *,
        task: str = "classification",
        X_test: Any = None,
    ) -> list[Finding]:
        """Checks on the arrays before training: NaN/inf, scaling, constant columns, class
        balance, train/val(/test) duplicates. See :func:`tunelab.diagnose.check_data`."""
        return check_data(X_train, y_train, X_val, y_val, task=task, X_test=X_test)

    # ---- resume ---------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The history as plain data (a trainer checkpoint stores it for resumed runs)."""
        self._flush_losses()
        rec = self.record_
        return {
            "epochs": [asdict(e) for e in rec.epochs],
            "step_losses": torch.tensor(rec.step_losses, dtype=torch.float32),
            "grad_samples": [asdict(s) for s in rec.grad_samples[-_KEPT_SAMPLES:]],
            "ooms": list(rec.ooms),
            "batches": asdict(rec.batches),
            "steps": rec.steps,
            "first_seen": dict(self._first_seen),
            "baseline": rec.baseline,
            "lr_range": rec.lr_range,
            "data_source": rec.data_source,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict` (the hooks stay as they are)."""
        if not state:
            return
        rec = self.record_
        rec.epochs = [
            EpochRecord(
                **{k: v for k, v in e.items() if k != "activations"},
                activations=[ActivationStat(**a) for a in e.get("activations", [])],
            )
            for e in state.get("epochs", [])
        ]
        losses = state.get("step_losses")
        rec.step_losses = (
            losses.tolist() if isinstance(losses, torch.Tensor) else list(losses or [])
        )
        rec.grad_samples = [GradSample(**s) for s in state.get("grad_samples", [])]
        rec.ooms = list(state.get("ooms", []))
        rec.batches = BatchStats(**state.get("batches", {}))
        rec.steps = int(state.get("steps", 0))
        self._first_seen = dict(state.get("first_seen", {}))
        rec.baseline = state.get("baseline") or rec.baseline
        rec.lr_range = state.get("lr_range") or rec.lr_range
        rec.data_source = state.get("data_source") or rec.data_source
        self._new_epoch_counters()

    # ---- what the remedies may know -----------------------------------------------------------

    def remedy_context(self) -> RemedyContext:
        ctx = RemedyContext(config=self.config)
        if self.record_.lr_range:
            ctx.measured_lr = _number(self.record_.lr_range.get("suggestion"))
        opt = self.optimizer
        if opt is not None and opt.param_groups:
            group = opt.param_groups[0]
            ctx.lr = _number(group.get("lr"))
            ctx.weight_decay = _number(group.get("weight_decay"))
            ctx.momentum = _number(group.get("momentum"))
            ctx.optimizer = type(opt).__name__.lower()
        ctx.batch_size = self._batch_size()
        ctx.num_workers = getattr(self._loader, "num_workers", None)
        if self.model is not None:
            linears = [m for m in self.model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
            hidden = [m.out_features for m in linears[:-1] if isinstance(m, nn.Linear)]
            ctx.width = max(hidden) if hidden else None
            ctx.depth = len(hidden) if linears and isinstance(linears[-1], nn.Linear) else None
            for m in self.model.modules():
                if isinstance(m, RELU_LIKE + SQUASHING):
                    ctx.activations.add(_activation_name(m))
                ctx.has_norm = ctx.has_norm or isinstance(m, NORM_LAYERS)
                if isinstance(m, nn.Dropout):
                    ctx.dropout = max(ctx.dropout or 0.0, float(m.p))
            ctx.cuda = self._device().type == "cuda"
        cfg = self.config
        train = getattr(cfg, "train", cfg)  # an ExperimentConfig or just its TrainConfig
        if train is not None and hasattr(train, "batch_size"):
            ctx.train = train
            ctx.lr, ctx.weight_decay = float(train.lr), float(train.weight_decay)
            ctx.optimizer, ctx.momentum = str(train.optimizer), float(train.momentum)
            ctx.batch_size, ctx.accumulate_steps = (
                int(train.batch_size),
                int(train.accumulate_steps),
            )
            ctx.num_workers = int(train.num_workers)
        if cfg is not None and hasattr(cfg, "model"):
            ctx.init = str(cfg.model.init)
            try:
                from ..models import builder_parameters

                ctx.builder_params = set(builder_parameters(cfg.model.builder))
            except Exception:  # a custom builder we cannot inspect: allow everything
                ctx.builder_params = None
        else:
            ctx.config = None  # remedies read model params only from a whole experiment config
        return ctx

    # ---- internals ----------------------------------------------------------------------------

    def _record_state(self) -> tuple[Any, ...]:
        """What a detector pass reads: the record's state and the detectors run on it."""
        return (self.record_.state(), tuple(self._detectors))

    def _run_detectors(self) -> list[Finding]:
        found: list[Finding] = []
        # What the detectors derive from the record (the same series, many times) is derived
        # once in this pass and forgotten after it (TrainingRecord.memo).
        with self.record_.shared():
            for detector in self._detectors:
                try:
                    found.extend(detector.check(self.record_))
                except Exception as exc:  # a broken check must never end the user's training
                    self._failures += 1
                    warnings.warn(
                        f"doctor: detector {detector.name!r} failed: {exc!r}",
                        RuntimeWarning,
                        stacklevel=2,
                    )
        return merge_findings(found)

    def _after_step(self, *_: Any) -> None:
        started = time.perf_counter()
        self._grads.after_step()
        self._meter.charge(self._grad_kind, time.perf_counter() - started, extend=True)
        if self._step_handle is not None:
            self._step_handle.remove()
            self._step_handle = None

    def _observe_step_inputs(self, inputs: Sequence[torch.Tensor]) -> None:
        """step_inputs: what _before_forward does per forward without it (the same batches, in
        order), and the reference that lets a NaN loss be blamed on its inputs."""
        for x in inputs:
            if isinstance(x, torch.Tensor):
                self._last_input = x
                self._observe_input(x, None)

    def _before_forward(self, module: nn.Module, args: Any) -> None:
        if self._paused or not (module.training and torch.is_grad_enabled()):
            self._acts.sampling = False
            return
        entered = time.perf_counter()
        charged = self._meter.spent
        self._fwd += 1
        if self._fwd == 1:
            self._meter.begin()
        if (
            self._loader is None
            and not self.step_inputs
            and args
            and isinstance(args[0], torch.Tensor)
        ):
            # No watch(): the model's input is the batch; sample its statistics here instead
            # and keep a reference, so a NaN loss can still be blamed on its inputs.
            self._last_input = args[0]
            self._observe_input(args[0], None)
        # Activations on _MIN_ROWS inputs every epoch; beyond that every k-th forward, when the
        # budget allows (a due sample it does not allow is taken at the next forward it does).
        if self.step_inputs:
            # Planned at the last step (_plan_acts); the epoch's first rows whatever the plan.
            sampling = self._acts_planned or self._needs_rows()
            self._acts_planned = False
        elif self._acts.epoch_rows < _MIN_ROWS:
            sampling = True
        elif self._act_owed or self._fwd % self.every_n_steps == 1 or self.every_n_steps == 1:
            sampling = self._meter.affords("acts")
            self._act_owed = not sampling
        else:
            sampling = False
        self._acts.sampling = sampling
        if sampling:
            started = time.perf_counter()
            self._acts.calls.clear()
            if not self._act_handles:
                self._act_handles = [
                    m.register_forward_hook(self._acts.hook) for m in self._acts.names
                ]
            if self._functional and self._mode is None:
                self._mode = FunctionalActivations(self._acts)
                self._mode.__enter__()
            self._acts.spent += time.perf_counter() - started
        # Booked apart from what _observe_input charged by kind and the attach time (charged
        # with the sampled forward's hooks in _after_forward).
        self._meter.spend(
            max(
                0.0,
                time.perf_counter() - entered - (self._meter.spent - charged) - self._acts.spent,
            )
        )

    def _after_forward(self, module: nn.Module, args: Any, output: Any) -> None:
        if self._paused:
            return
        exc = current_exception()
        if self.step_inputs:
            if module.training and torch.is_grad_enabled():
                self._finish_forward(output)
                # Hooked for the next forward only while the epoch still needs rows (or a
                # sample was planned): an unhooked forward runs on the hook-free path. Not
                # while an exception unwinds (PyTorch is iterating over these very hooks).
                if exc is None and not self._acts_planned and not self._needs_rows():
                    self._unhook_root()
            return
        if exc is not None and is_out_of_memory(exc):
            first = args[0] if args else None
            rows = int(first.shape[0]) if isinstance(first, torch.Tensor) and first.ndim else None
            self.record_oom(exc, batch_size=rows)
        self._finish_forward(output)

    def _finish_forward(self, output: Any) -> None:
        if not self._acts.sampling and not self._act_handles and self._mode is None:
            return  # the common, unsampled forward
        started = time.perf_counter()
        if self._mode is not None:
            self._mode.__exit__(None, None, None)
            self._functional = self._mode.seen  # no activation calls: never again
            self._mode = None
        if self._acts.sampling and output is not None:
            self._acts.model_output(output)
        self._acts.sampling = False
        self._acts.last = None
        for handle in self._act_handles:
            handle.remove()
        self._act_handles = []
        self._meter.charge("acts", self._acts.spent + time.perf_counter() - started)
        self._acts.spent = 0.0

    def _push_loss(self, loss: torch.Tensor | float) -> None:
        if isinstance(loss, torch.Tensor):
            if not loss.is_cuda and loss.numel() == 1:  # no device to wait for: read it now
                if self._loss_buf:
                    self._flush_losses()
                self._append_loss(loss.item())
                return
            value = loss.detach()
            if value.numel() != 1:
                value = value.float().mean()
            self._loss_buf.append(value.reshape(()))
            if len(self._loss_buf) >= _LOSS_CHUNK:
                self._flush_losses()
        else:
            self._flush_losses()
            self._append_loss(float(loss))

    def _append_loss(self, value: float) -> None:
        finite = math.isfinite(value)
        if not finite and self._last_loss_finite:
            self._inspect_current_batch()  # the first NaN/inf loss: did its batch cause it?
        self._last_loss_finite = finite
        self.record_.step_losses.append(value)

    def _flush_losses(self) -> None:
        if not self._loss_buf:
            return
        values = torch.stack([t.float() for t in self._loss_buf]).cpu().tolist()
        self._loss_buf.clear()
        for v in values:
            self._append_loss(v)

    def _observe_input(self, x: torch.Tensor | None, y: Any) -> None:
        """Sampled input statistics: every k-th batch until _BATCH_ROWS rows, then sparser and
        within the cost budget; labels of every batch until _LABEL_ROWS rows (past
        _BATCH_ROWS, within the budget)."""
        stats = self.record_.batches
        period = self.every_n_steps * (1 if stats.rows < _BATCH_ROWS else _BATCH_SPARSITY)
        index = self._batch_index
        self._batch_index += 1
        if index % period == 0 or self._input_owed:
            if stats.rows < _INPUT_ROWS or self._meter.affords("inputs"):
                started = time.perf_counter()
                observe_batch(stats, self.record_.steps + 1, x, y)
                self._meter.charge("inputs", time.perf_counter() - started)
                self._input_owed = False
                return
            self._input_owed = True
        if y is not None:
            # Labels are cheap to count: every batch until enough rows, so an imbalance is
            # judged on counts, not on the few sampled batches' noise.
            counted = sum(stats.label_counts.values())
            if counted < _LABEL_ROWS and (counted < _BATCH_ROWS or self._meter.affords("labels")):
                started = time.perf_counter()
                observe_labels(stats, y)
                self._meter.charge("labels", time.perf_counter() - started)

    def _inspect_current_batch(self) -> None:
        """The loss just turned NaN/inf: look at the batch that did it (blame the data?)."""
        if self._current_batch is not None:
            x, y = split_batch(self._current_batch)
        elif self._last_input is not None:
            x, y = self._last_input, None
        else:
            return
        observe_batch(self.record_.batches, self.record_.steps + 1, x, y)

    def _epoch_record(self, *, closing: bool) -> EpochRecord:
        rec = self.record_
        losses = rec.step_losses[self._epoch_loss_start :]
        mean = sum(losses) / len(losses) if losses else None
        rows = self._epoch_rows
        if losses and len(rows) == len(losses) and min(rows) > 0 and min(rows) != max(rows):
            # Each step loss is a mean over its batch's rows: the epoch's loss weighs each by
            # them, as a loop's own running total does. Unweighted, a last batch of a few rows
            # weighs as much as a full one and puts its noise into the epoch loss (moons, 420
            # training rows in batches of 32, a last batch of 4: a healthy run whose epoch loss
            # fell every epoch read as rising at zoo seed 325, and was called oscillating).
            mean = sum(v * n for v, n in zip(losses, rows, strict=True)) / sum(rows)
        now = time.perf_counter()
        wall = (now - self._epoch_t0) if self._epoch_t0 is not None else 0.0
        peak, limit, kind = memory_usage(self._device())
        if self.memory_budget is not None:
            limit = int(self.memory_budget)
        return EpochRecord(
            epoch=rec.epoch + 1,
            step_end=rec.steps,
            step_loss_mean=mean,
            step_losses=len(losses),
            wall_s=wall,
            data_wait_s=self._wait,
            compute_s=self._compute,
            batches=self._batches,
            memory_peak=peak,
            memory_limit=limit,
            memory_device=kind,
            activations=self._acts.collect() if closing else [],
        )

    def _device(self) -> torch.device:
        if self.model is not None:
            for p in self.model.parameters():
                return p.device
        return torch.device("cpu")

    def _batch_size(self) -> int | None:
        train = getattr(self.config, "train", self.config)
        if train is not None and hasattr(train, "batch_size"):
            return int(train.batch_size)
        size = getattr(self._loader, "batch_size", None)
        if size:
            return int(size)
        x, _ = split_batch(self._current_batch)
        return int(x.shape[0]) if x is not None and x.ndim else None


def _number(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        value = value.detach().float().mean().item()
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _activation_name(module: nn.Module) -> str:
    names = {
        nn.ReLU: "relu",
        nn.LeakyReLU: "leaky_relu",
        nn.GELU: "gelu",
        nn.Tanh: "tanh",
        nn.Sigmoid: "sigmoid",
    }
    return names.get(type(module), type(module).__name__.lower())
