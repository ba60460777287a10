"""What the doctor has observed so far: the plain-number history detectors read.

The probes (hooks, timers) write here; detectors only read. Everything is host-side Python
numbers, so ``diagnose()`` never touches the device and stays fast on a long history.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

_T = TypeVar("_T")


@dataclass
class GradSample:
    """Per-layer gradient statistics at one sampled step (weights with ``ndim >= 2`` only)."""

    step: int
    epoch: int
    names: list[str]
    grad_rms: list[float]
    weight_rms: list[float]
    total_norm: float
    zero_fraction: float | None
    update_ratio: list[float] | None = None
    zero_by_layer: list[float] | None = None

    @functools.cached_property
    def finite(self) -> bool:
        """Whether the norms are finite (a sample is not changed once taken, and the detectors
        ask this of every sample several times per pass: kept after the first answer)."""
        return math.isfinite(self.total_norm) and all_finite(self.weight_rms)


@dataclass
class ActivationStat:
    """One activation layer over one epoch's sampled training forwards.

    ``dead_fraction``: share of units active (output > 0) on fewer than 1% of sampled inputs.
    ``saturated_fraction``: share of units in the flat part of tanh/sigmoid on more than 99% of
    sampled inputs; ``saturated_values``: share of all sampled values in the flat part;
    ``mean_gain``: the mean derivative of those values as a share of the function's steepest
    slope (the part of the gradient the layer passes back; None before it was measured).
    """

    name: str
    family: str  # "relu" (ReLU-like) or "squash" (tanh/sigmoid-like)
    units: int
    rows: int
    dead_fraction: float = 0.0
    saturated_fraction: float = 0.0
    saturated_values: float = 0.0
    mean_gain: float | None = None


@dataclass
class EpochRecord:
    """One finished epoch: user metrics, the loss seen per step, timing and memory."""

    epoch: int
    step_end: int
    train_loss: float | None = None
    val_loss: float | None = None
    train_metric: float | None = None
    val_metric: float | None = None
    step_loss_mean: float | None = None
    step_losses: int = 0
    wall_s: float = 0.0
    data_wait_s: float = 0.0
    compute_s: float = 0.0
    batches: int = 0
    memory_peak: int | None = None
    memory_limit: int | None = None
    memory_device: str = "cpu"
    activations: list[ActivationStat] = field(default_factory=list)
    val_rows: int | None = None  # validation rows behind val_metric (its sampling error)
    train_rows: int | None = None  # training rows behind train_metric

    @property
    def loss(self) -> float | None:
        """The epoch's training loss: the mean of its step losses, else what the user passed."""
        return self.step_loss_mean if self.step_loss_mean is not None else self.train_loss


@dataclass
class BatchStats:
    """Running statistics of sampled input batches (seen through ``Doctor.watch``)."""

    batches: int = 0
    rows: int = 0
    nonfinite_batches: int = 0
    nonfinite_values: int = 0
    first_nonfinite_step: int | None = None
    feature_sum: list[float] | None = None
    feature_sumsq: list[float] | None = None
    feature_min: list[float] | None = None
    feature_max: list[float] | None = None
    label_counts: dict[int, int] = field(default_factory=dict)


@dataclass
class TrainingRecord:
    """Everything observed during training, in plain numbers."""

    epochs: list[EpochRecord] = field(default_factory=list)
    step_losses: list[float] = field(default_factory=list)
    grad_samples: list[GradSample] = field(default_factory=list)
    ooms: list[dict[str, Any]] = field(default_factory=list)
    batches: BatchStats = field(default_factory=BatchStats)
    steps: int = 0
    lr: float | None = None
    metric_mode: str = "auto"  # "max" | "min" | "auto": direction of train/val metrics
    class_names: list[str] | None = None  # label i is class_names[i] (Doctor(classes=...))
    # Doctor.find_lr's range test: {"suggestion": lr, "min_loss_lr": lr, "steps": n}.
    lr_range: dict[str, Any] | None = None
    # The expert's reference point on the same split (``Doctor.fit_baseline``): {"model": name,
    # "score": val score on the metric's 0..1 scale, "scores": {model: score}, "seconds": s}.
    baseline: dict[str, Any] | None = None
    # Where ``Doctor.watch``'s batches come from: "tensors" (a DataLoader over a TensorDataset:
    # the rows are already in memory), "dataset" (any other map/iterable dataset, whose rows are
    # read or built per item), or None (not a DataLoader: the user's own batch iterator).
    data_source: str | None = None
    # The epoch in progress (not yet closed by end_epoch); detectors may look at it.
    partial: EpochRecord | None = None
    # Detectors share derived numbers (the loss progress, the finite step losses, the metric
    # series...) through here (``memo``) within one detector pass (``shared``).
    cache: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)
    _sharing: int = field(default=0, repr=False, compare=False)

    @property
    def epoch(self) -> int:
        """Epochs finished so far (the one in progress is ``epoch + 1``)."""
        return len(self.epochs)

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        """A detector pass: inside, ``memo`` keeps what it derives (emptied on entry and exit,
        so a record changed in place between passes, as tests and resumed runs do, is read
        afresh by the next pass)."""
        self.cache.clear()
        self._sharing += 1
        try:
            yield
        finally:
            self._sharing -= 1
            if not self._sharing:
                self.cache.clear()

    def memo(self, name: Any, compute: Callable[[], _T]) -> _T:
        """``compute()``, kept in ``cache`` within a detector pass (``shared``).

        A detector pass derives the same series from the record many times (every detector
        asks for the step losses' finite values, the metric series, the loss progress...):
        each is derived once per pass. Outside a pass it is computed on every call. Within
        one, the record's lengths are checked too (a detector run on a record that grows
        inside the pass still reads it afresh).
        """
        if not self._sharing:
            return compute()
        state = (
            len(self.step_losses),
            len(self.epochs),
            self.steps,
            id(self.partial),
            len(self.grad_samples),
        )
        cache = self.cache
        if cache.get("_state") != state:
            cache.clear()
            cache["_state"] = state
        if name not in cache:
            cache[name] = compute()
        return cache[name]

    def state(self) -> tuple[Any, ...]:
        """What the detectors read, as far as it can change: the growing lists themselves with
        their lengths (they only grow; a tuple compares the same list object by identity, and
        load_state_dict's new lists by content), the counters, the user-given settings and
        reference values. Equal states give equal findings (the doctor reuses a pass on it)."""
        b = self.batches
        return (
            self.step_losses,
            len(self.step_losses),
            self.epochs,
            len(self.epochs),
            self.grad_samples,
            len(self.grad_samples),
            self.ooms,
            len(self.ooms),
            self.steps,
            self.partial,
            b,
            (b.batches, b.rows, b.nonfinite_batches, b.nonfinite_values),
            dict(b.label_counts),
            self.lr,
            self.metric_mode,
            self.class_names,
            self.lr_range,
            self.baseline,
            self.data_source,
        )

    def all_epochs(self) -> list[EpochRecord]:
        """Finished epochs, plus the one in progress when it has seen steps and none finished."""
        if not self.epochs and self.partial is not None and self.partial.step_losses:
            return [self.partial]
        return list(self.epochs)

    def epoch_losses(self) -> list[float]:
        """Training loss per finished epoch (step means, falling back to user values)."""
        return list(self.memo("epoch_losses", self._epoch_losses))

    def _epoch_losses(self) -> list[float]:
        return [e.loss for e in self.all_epochs() if e.loss is not None]

    def series(self, name: str) -> list[float]:
        """A user metric per epoch where it was given (``val_loss``, ``val_metric``...)."""
        return list(self.memo(("series", name), lambda: self._series(name)))

    def _series(self, name: str) -> list[float]:
        values = [getattr(e, name) for e in self.all_epochs()]
        return [float(v) for v in values if v is not None]

    def finite_step_losses(self) -> list[float]:
        """The finite step losses, in order (a copy: derived once per pass)."""
        return list(self.memo("finite_steps", self._finite_steps))

    def _finite_steps(self) -> list[float]:
        if all_finite(self.step_losses):
            return list(self.step_losses)
        return [v for v in self.step_losses if math.isfinite(v)]

    def initial_loss(self) -> float | None:
        """The loss before training did much: median of the first few step losses.

        Non-finite values are skipped; the first epoch's loss is the fallback when no step
        losses were recorded.
        """
        head = [v for v in self.step_losses[:5] if math.isfinite(v)]
        if head:
            return _median(head)
        losses = self.epoch_losses()
        return losses[0] if losses else None

    def recent_loss(self, fraction: float = 0.2, minimum: int = 5) -> float | None:
        """Median of the most recent step losses (robust to one bad batch)."""
        n = len(self.step_losses)
        if n == 0:
            losses = self.epoch_losses()
            return losses[-1] if losses else None
        k = max(minimum, int(n * fraction))
        tail = [v for v in self.step_losses[-k:] if math.isfinite(v)]
        return _median(tail) if tail else None

    def first_nonfinite_step(self) -> int | None:
        """The 0-based index of the first NaN/inf step loss (None: all finite)."""
        return self.memo("first_nonfinite", self._first_nonfinite)

    def _first_nonfinite(self) -> int | None:
        if all_finite(self.step_losses):
            return None
        return next((i for i, v in enumerate(self.step_losses) if not math.isfinite(v)), None)

    def epoch_of_step(self, step: int) -> int:
        """The (1-based) epoch in which 1-based ``step`` ran."""
        for e in self.epochs:
            if step <= e.step_end:
                return e.epoch
        return len(self.epochs) + 1

    def where(self, step: int | None = None, epoch: int | None = None) -> dict[str, int | None]:
        """A ``first_seen`` value for a 1-based step (or a 1-based epoch: its last step)."""
        if step is not None and epoch is None:
            epoch = self.epoch_of_step(step)
        if step is None and epoch is not None:
            ends = [e.step_end for e in self.epochs if e.epoch == epoch]
            step = ends[0] if ends and ends[0] > 0 else (self.steps or None)
        return {"epoch": epoch, "step": step}


def all_finite(values: list[float]) -> bool:
    """Whether every value is finite.

    A sum is finite exactly when all its terms are, unless finite terms overflow it: one C-level
    sum decides the usual all-finite case (detectors ask this several times per pass, about
    every step loss and sample), and only a non-finite sum is checked value by value.
    """
    return math.isfinite(sum(values)) or all(map(math.isfinite, values))


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    mid = n // 2
    return ordered[mid] if n % 2 else 0.5 * (ordered[mid - 1] + ordered[mid])


def median(values: list[float]) -> float | None:
    """Median of the finite values, None when there are none."""
    finite = [v for v in values if math.isfinite(v)]
    return _median(finite) if finite else None
