"""The doctor's instruments: activation hooks, gradient sampling, input-batch statistics, memory.

Every probe is cheap on the steps it does not sample: a hook that returns at once, a counter. On
sampled steps it reduces tensors on their own device and moves one small tensor to the host, so
a CUDA run pays one synchronisation per sampled step, not one per layer.

Activation modules (``nn.ReLU``, ``nn.Tanh``...) are hooked. A model that has none calls its
activations as functions (``F.relu(x)``, ``torch.tanh(x)``, ``x.sigmoid()``: PyTorch's own tutorial
style); its sampled forwards run under :class:`FunctionalActivations`, a ``TorchFunctionMode`` that
counts those calls' outputs the same way.

:class:`CostMeter` keeps the optional probes within a share of the training time (the doctor's
``overhead_budget``): the doctor times its own sampled work and asks the meter before each
optional sample.
"""

from __future__ import annotations

import functools
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from ..train import GradientNormSampler
from ._record import ActivationStat, BatchStats, GradSample

# Units whose output is > 0 when "active"; a unit that is never active passes no gradient
# (for LeakyReLU/ELU-like units: almost none).
RELU_LIKE: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.PReLU,
    nn.RReLU,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
)
SQUASHING: tuple[type[nn.Module], ...] = (
    nn.Tanh,
    nn.Sigmoid,
    nn.Hardtanh,
    nn.Hardsigmoid,
    nn.Softsign,
)
NORM_LAYERS: tuple[type[nn.Module], ...] = (
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.InstanceNorm1d,
    nn.InstanceNorm2d,
)

# Activation functions a forward may call instead of modules, with the module that computes the
# same thing: the counting below asks the module what family a unit is and where it is flat.
# ``F.tanh``/``F.sigmoid`` call the tensor methods, ``F.relu`` reaches ``torch.relu`` only inside
# the mode's own handler (where the mode is off), so no call is counted twice.
_FUNCTIONAL: dict[Callable[..., Any], tuple[str, nn.Module]] = {}
for _module, _functions in (
    (nn.ReLU(), (torch.relu, torch.relu_, torch.Tensor.relu, torch.Tensor.relu_, F.relu)),
    (nn.ReLU6(), (F.relu6,)),
    (nn.LeakyReLU(), (F.leaky_relu, F.leaky_relu_)),
    (nn.ELU(), (F.elu, F.elu_)),
    (nn.SELU(), (F.selu, torch.selu)),
    (nn.CELU(), (F.celu,)),
    (nn.GELU(), (F.gelu,)),
    (nn.SiLU(), (F.silu,)),
    (nn.Mish(), (F.mish,)),
    (nn.Tanh(), (torch.tanh, torch.tanh_, torch.Tensor.tanh, torch.Tensor.tanh_)),
    (
        nn.Sigmoid(),
        (torch.sigmoid, torch.sigmoid_, torch.Tensor.sigmoid, torch.Tensor.sigmoid_),
    ),
    (nn.Hardtanh(), (F.hardtanh, F.hardtanh_)),
    (nn.Hardsigmoid(), (F.hardsigmoid,)),
    (nn.Softsign(), (F.softsign,)),
):
    for _function in _functions:
        _name = getattr(_function, "__name__", "activation").rstrip("_")
        _FUNCTIONAL[_function] = (f"{_name}()", _module)


# A unit is dead when active on fewer than 1% of inputs (SageMaker Debugger DeadRelu,
# threshold_inactivity = 1.0); saturated when in the flat region on more than 99% of them
# (SageMaker SaturatedActivation uses the same 1% inactivity rule).
INACTIVE_SHARE = 0.01


def active_counts(x: torch.Tensor, dims: list[int]) -> torch.Tensor:
    """How many entries of ``x`` are > 0, reduced over ``dims`` (float32).

    ``sign(x).clamp(min=0)`` is 1 exactly where ``x > 0`` and 0 elsewhere, so its float sum is
    the same count as ``(x > 0).sum()``; on CPU the float reduction is vectorised and the
    boolean one is not (measured 3-4x faster on a 64x256 ReLU output, 4x on a conv output).
    A NaN output gives a NaN count for that epoch (NaN activations are diagnosed separately).
    """
    return torch.sign(x).clamp_(min=0).sum(dim=dims, dtype=torch.float32)


def nonzero_count(g: torch.Tensor) -> torch.Tensor:
    """How many entries of ``g`` are not exactly zero (0-d float32; ``-0.0`` counts as zero).

    ``sum(|sign(g)|)``: the same count as ``(g != 0).sum()``, a float reduction instead of a
    boolean one (about 4x faster on CPU for a 256x256 gradient). The zeros are ``numel`` minus
    it, subtracted on the host (one device op fewer per layer).
    """
    return torch.sign(g).abs_().sum(dtype=torch.float32)


# Below this many entries a float32 2-norm of 0/1 values squares back to the exact count
# (relative error ~2**-23, under half a count): larger layers count with nonzero_count.
_EXACT_ROOT_COUNT = 1 << 22


def _fused_counts_exact(grads: list[torch.Tensor], sizes: list[int]) -> bool:
    """Whether the non-zeros of ``grads`` can be counted as squared norms of their signs (a
    16-bit norm is not exact enough: those count with nonzero_count's float32 sum)."""
    return (
        hasattr(torch, "_foreach_sign")
        and max(sizes) < _EXACT_ROOT_COUNT
        and all(g.dtype in (torch.float32, torch.float64) for g in grads)
    )


def _squared_count(root: float) -> float:
    """The count behind a 2-norm of signs (NaN stays NaN, as nonzero_count's sum gives it)."""
    return float(round(root * root)) if math.isfinite(root) else root


def saturated_mask(module: nn.Module, out: torch.Tensor) -> torch.Tensor:
    """Where a squashing unit sits in its flat part: derivative below 1% of its maximum.

    SageMaker's SaturatedActivation uses pre-activations beyond +-9.5 (tanh) and (-23, 17)
    (sigmoid), where the derivative is ~1e-8; we flag the flat part earlier, where the derivative
    is already below 1% of its peak (tanh: |y| > 0.995, sigmoid: y(1-y) < 0.0025), because the
    gradient through such units is already too small to train them.
    """
    if isinstance(module, nn.Tanh):
        return out.abs() > 0.995
    if isinstance(module, nn.Sigmoid):
        return (out < 0.0025) | (out > 0.9975)
    if isinstance(module, nn.Hardtanh):  # derivative exactly 0 at the clamps
        return (out <= module.min_val) | (out >= module.max_val)
    if isinstance(module, nn.Hardsigmoid):
        return (out <= 0) | (out >= 1)
    return out.abs() > 0.9  # Softsign: derivative (1-|y|)^2 < 0.01


def relative_derivative(module: nn.Module, out: torch.Tensor) -> torch.Tensor:
    """A squashing unit's derivative at its output, as a share of the function's steepest
    slope: the part of the gradient it passes back (1 at its centre, 0 in its flat part).

    tanh: 1 - y^2; sigmoid: y(1-y) / 0.25; Hardtanh and Hardsigmoid: 1 between their clamps;
    Softsign: (1 - |y|)^2.
    """
    if isinstance(module, nn.Tanh):
        return 1 - out * out
    if isinstance(module, nn.Sigmoid):
        return 4 * out * (1 - out)
    if isinstance(module, nn.Hardtanh):
        return ((out > module.min_val) & (out < module.max_val)).to(out.dtype)
    if isinstance(module, nn.Hardsigmoid):
        return ((out > 0) & (out < 1)).to(out.dtype)
    return (1 - out.abs()).square()


class CostMeter:
    """The doctor's own time against the training's: does one more optional probe fit?

    ``budget`` is the share of the training time (the run's time outside the doctor, since its
    first step) that the doctor's measured work may take; ``None``: no limit (sample exactly
    every ``every_n_steps``). Every timed piece of doctor work is :meth:`charge`-d, mandatory or
    not, and so is its per-step bookkeeping (:meth:`spend`); an optional piece is done only when
    :meth:`affords` says that it, at the cost its kind took last time, keeps the total within
    the budget with ``reserve`` seconds left over (the closing ``diagnose()``, which costs about
    one detector pass). Deferred pieces are retried at the next opportunity, so samples spread
    out evenly in time rather than stopping.

    Wall time (``perf_counter``), not CPU time: on a GPU the doctor's cost is partly the
    synchronisation it forces, which CPU time misses; a busy machine slows both sides alike.
    """

    def __init__(self, budget: float | None) -> None:
        if budget is not None and not 0.0 < budget <= 1.0:
            raise ValueError(f"overhead_budget must be in (0, 1], but got {budget}")
        self.budget = budget
        self.spent = 0.0
        self.start: float | None = None
        self.costs: dict[str, float] = {}  # kind -> smoothed duration of one piece
        self.reserve = 0.0  # seconds kept back for work still to come (the final diagnosis)
        self.by_kind: dict[str, float] = {}  # kind -> seconds spent in all
        self.per_step = 0.0  # seconds of per-step bookkeeping in all
        self.deferred: dict[str, int] = {}  # kind -> optional pieces put off

    def begin(self) -> None:
        """Start the training clock (the first step; set-up before it is not training)."""
        if self.start is None:
            self.start = time.perf_counter()

    def affords(self, kind: str) -> bool:
        """Whether an optional piece of ``kind`` fits: spent + its cost <= budget x training."""
        if self.budget is None or self.start is None:
            return True
        training = time.perf_counter() - self.start - self.spent
        if self.spent + self.costs.get(kind, 0.0) + self.reserve <= self.budget * training:
            return True
        self.deferred[kind] = self.deferred.get(kind, 0) + 1
        return False

    def spend(self, seconds: float) -> None:
        """Book per-step bookkeeping (loss reads, hooks, counters): no estimate to keep."""
        self.spent += seconds
        self.per_step += seconds

    def charge(self, kind: str, seconds: float, *, extend: bool = False) -> None:
        """Book ``seconds`` of doctor work of ``kind``; ``extend``: the same piece goes on (an
        update ratio measured after the step belongs to its gradient sample)."""
        self.spent += seconds
        self.by_kind[kind] = self.by_kind.get(kind, 0.0) + seconds
        old = self.costs.get(kind)
        if extend and old is not None:
            self.costs[kind] = old + seconds
        else:
            # Smoothed: the first pieces run with cold caches and cost several times more.
            self.costs[kind] = seconds if old is None else 0.5 * (old + seconds)

    def share(self) -> float | None:
        """The doctor's measured time over the training's so far (None before the first step)."""
        if self.start is None:
            return None
        training = time.perf_counter() - self.start - self.spent
        return self.spent / training if training > 0 else None

    def summary(self) -> dict[str, Any]:
        """Plain numbers for a report or a benchmark."""
        return {
            "budget": self.budget,
            "spent_s": self.spent,
            "share": self.share(),
            "spent_by_kind_s": {**self.by_kind, "steps": self.per_step},
            "deferred": dict(self.deferred),
        }


@dataclass
class _UnitCounts:
    family: str
    shape: tuple[int, ...]
    counts: torch.Tensor
    rows: int = 0
    values: torch.Tensor | None = None  # saturated values (squashing only)
    gain: torch.Tensor | None = None  # sum of the relative derivatives (squashing only)
    total_values: int = 0


@dataclass
class ActivationProbe:
    """Forward hooks on activation modules counting, per unit, how often it is active/saturated.

    A unit is a feature for 2-D outputs, a (position, feature) pair for 3-D outputs and a
    channel for 4-D and 5-D (convolutional) outputs. A module used several times in one forward
    gets one entry per call (``act#2``...). The activation that produces the model's output
    (a final sigmoid for BCELoss) is excluded: saturating there means confident predictions.
    """

    names: dict[nn.Module, str] = field(default_factory=dict)
    stats: dict[str, _UnitCounts] = field(default_factory=dict)
    output_keys: set[str] = field(default_factory=set)
    sampling: bool = False
    calls: dict[int, int] = field(default_factory=dict)
    last: tuple[str, Any] | None = None
    epoch_rows: int = 0  # most rows any layer has seen this epoch
    spent: float = 0.0  # seconds inside the hooks since the doctor last read it (its budget)

    def hook(self, module: nn.Module, inputs: Any, output: Any) -> None:
        if not self.sampling or not module.training or not isinstance(output, torch.Tensor):
            return
        if output.ndim == 0 or output.numel() == 0:
            return
        started = time.perf_counter()
        try:
            self._count(module, output)
        finally:
            self.spent += time.perf_counter() - started

    def function_output(self, name: str, module: nn.Module, output: Any) -> None:
        """A functional activation's output (from :class:`FunctionalActivations`), counted as
        ``module``'s would be, under ``name`` (``tanh()``, ``tanh()#2`` for its second call)."""
        if not self.sampling or not isinstance(output, torch.Tensor):
            return
        if output.ndim == 0 or output.numel() == 0 or not output.is_floating_point():
            return
        started = time.perf_counter()
        try:
            self._count(module, output, name)
        finally:
            self.spent += time.perf_counter() - started

    def _count(self, module: nn.Module, output: torch.Tensor, name: str | None = None) -> None:
        n = self.calls.get(id(module), 0) + 1
        self.calls[id(module)] = n
        name = name or self.names.get(module, type(module).__name__)
        key = name if n == 1 else f"{name}#{n}"
        self.last = (key, output)
        if key in self.output_keys:
            return
        x = output.detach()
        if x.ndim >= 4:
            dims = [0, *range(2, x.ndim)]
            rows = x.shape[0] * math.prod(x.shape[2:])
            shape: tuple[int, ...] = (x.shape[1],)
        else:
            dims = [0]
            rows = x.shape[0]
            shape = tuple(x.shape[1:]) if x.ndim > 1 else (1,)
        family = "relu" if isinstance(module, RELU_LIKE) else "squash"
        if family == "relu":
            counts = active_counts(x, dims).reshape(shape)
        else:
            counts = saturated_mask(module, x).sum(dim=dims, dtype=torch.float32).reshape(shape)
        entry = self.stats.get(key)
        if entry is None or entry.shape != shape or entry.counts.device != counts.device:
            # The epoch's first sample: its counts are the entry's (a fresh tensor of its own),
            # not zeros plus them: two ops fewer per layer per epoch, the same numbers.
            entry = _UnitCounts(family, shape, counts)
            self.stats[key] = entry
        else:
            entry.counts += counts
        entry.rows += rows
        self.epoch_rows = max(self.epoch_rows, entry.rows)
        if family == "squash":
            total = counts.sum()
            entry.values = total if entry.values is None else entry.values + total
            gain = relative_derivative(module, x.float()).sum()
            entry.gain = gain if entry.gain is None else entry.gain + gain
            entry.total_values += rows * math.prod(shape)

    def model_output(self, output: Any) -> None:
        """Mark the activation whose output *is* the model's output; drop its statistics."""
        if self.last is None:
            return
        key, tensor = self.last
        outs = output if isinstance(output, (tuple, list)) else (output,)
        if any(o is tensor for o in outs):
            self.output_keys.add(key)
            self.stats.pop(key, None)
        self.last = None

    def rows_seen(self) -> int:
        return self.epoch_rows

    def collect(self) -> list[ActivationStat]:
        """Close the epoch: per-layer fractions (one host transfer), then reset the counts."""
        if not self.stats:
            return []
        keys = list(self.stats)
        parts, divisors = [], []
        for key in keys:
            s = self.stats[key]
            # Units active on < 1% (dead) or flat on > 99% (saturated) of the rows, counted on
            # the device; the shares are divided out in float32 below, all layers at once (the
            # same numbers as a per-layer mean, a few ops fewer per layer).
            share = s.counts / max(s.rows, 1)
            if s.family == "relu":
                parts.append((share < INACTIVE_SHARE).sum(dtype=torch.float32))
            else:
                parts.append((share > 1 - INACTIVE_SHARE).sum(dtype=torch.float32))
                parts.append(s.values.float() if s.values is not None else parts[-1] * 0)
                parts.append(s.gain.float() if s.gain is not None else parts[-1] * 0)
                divisors.append(math.prod(s.shape))
                divisors.append(max(s.total_values, 1))
                divisors.append(max(s.total_values, 1))
                continue
            divisors.append(math.prod(s.shape))
        # One transfer for every layer.
        host = (torch.stack(parts).cpu() / torch.tensor(divisors, dtype=torch.float32)).tolist()
        result = []
        for key in keys:
            s = self.stats[key]
            stat = ActivationStat(key, s.family, math.prod(s.shape), s.rows)
            if s.family == "relu":
                stat.dead_fraction = host.pop(0)
            else:
                stat.saturated_fraction = host.pop(0)
                stat.saturated_values = host.pop(0)
                stat.mean_gain = host.pop(0)
            result.append(stat)
        self.stats.clear()
        self.epoch_rows = 0
        return result


class FunctionalActivations(TorchFunctionMode):
    """Counts the outputs of activation functions called during one sampled forward.

    Entered by the doctor's forward pre-hook for a sampled forward of a model without
    activation modules, left by its forward hook; ``seen`` says whether any call was counted (a
    model that calls none is not put under the mode again). Every torch call of that forward
    passes through :meth:`__torch_function__`: a few microseconds each, on sampled forwards only.
    """

    def __init__(self, probe: ActivationProbe) -> None:
        super().__init__()
        self.probe = probe
        self.seen = False

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        output = func(*args, **(kwargs or {}))
        known = _FUNCTIONAL.get(func)
        if known is not None:
            self.seen = True
            self.probe.function_output(known[0], known[1], output)
        return output


class GradProbe:
    """Per-layer gradient/weight norms, zero-gradient share and update/weight ratios.

    The layers are :class:`tunelab.train.GradientNormSampler`'s (weights with ``ndim >= 2`` in
    registration order, embeddings skipped), the same the Trainer's TensorBoard histograms use.
    """

    def __init__(self, model: nn.Module | None) -> None:
        self.model = model
        self._layers: list[tuple[str, nn.Parameter]] | None = None
        self._snapshot: list[torch.Tensor] | None = None
        self._pending: GradSample | None = None
        self._pending_params: list[nn.Parameter] = []
        self._pending_norms: list[float] = []

    def layers(self) -> list[tuple[str, nn.Parameter]]:
        """The trainable layers, fixed at the first call (a later unfreeze adds none)."""
        if self._layers is None:
            sampler = GradientNormSampler(self.model) if self.model is not None else None
            self._layers = [(n, p) for n, p in sampler.layers if p.requires_grad] if sampler else []
        return self._layers

    def sample(
        self, step: int, epoch: int, *, track_update: bool, count_zeros: bool
    ) -> GradSample | None:
        """Statistics of the current gradients (call after backward, before the step)."""
        chosen = [(n, p) for n, p in self.layers() if p.grad is not None and not p.grad.is_sparse]
        if not chosen:
            return None
        names = [n for n, _ in chosen]
        grads = [p.grad.detach() for _, p in chosen]
        weights = [p.detach() for _, p in chosen]
        device = grads[0].device
        sizes = [g.numel() for g in grads]
        # The zero-gradient share (AUTOTRAINER's dying-ReLU signal): sign(g)^2 is 1 where g is
        # not zero, so the squared 2-norm of the signs counts the non-zeros, in the same fused
        # kernel as the gradient and weight norms (2 ops for every layer, not 3 per layer).
        roots = count_zeros and _fused_counts_exact(grads, sizes)
        signs = list(torch._foreach_sign(grads)) if roots else []
        parts = GradientNormSampler.fused_norms(grads + weights + signs)
        if count_zeros and not roots:
            parts += [nonzero_count(g) for g in grads]
        if any(t.device != device for t in parts):
            parts = [t.to(device) for t in parts]
        # One transfer; stack promotes mixed precisions to float32, like a per-part .float().
        values = torch.stack(parts).float().tolist()
        k = len(grads)
        g_vals, w_vals = values[:k], values[k : 2 * k]
        nonzero = [_squared_count(v) for v in values[2 * k :]] if roots else values[2 * k :]
        z_vals = [n - v for n, v in zip(sizes, nonzero, strict=False)]
        total = math.sqrt(sum(v * v for v in g_vals))
        sample = GradSample(
            step=step,
            epoch=epoch,
            names=names,
            grad_rms=[v / math.sqrt(n) for v, n in zip(g_vals, sizes, strict=True)],
            weight_rms=[v / math.sqrt(n) for v, n in zip(w_vals, sizes, strict=True)],
            total_norm=total,
            zero_fraction=sum(z_vals) / max(sum(sizes), 1) if count_zeros else None,
            zero_by_layer=[z / n for z, n in zip(z_vals, sizes, strict=True)]
            if count_zeros
            else None,
        )
        if track_update:
            # Copy the weights now; the optimiser post-step hook measures how far they moved.
            self._snapshot = [w.clone() for w in weights]
            self._pending = sample
            self._pending_params = [p for _, p in chosen]
            self._pending_norms = w_vals
        return sample

    def after_step(self) -> None:
        """Optimiser post-step hook: fill the pending sample's update/weight ratios."""
        if self._pending is None or self._snapshot is None:
            return
        params = [p.detach() for p in self._pending_params]
        torch._foreach_sub_(self._snapshot, params)  # the snapshot becomes -(update), in place
        moved = GradientNormSampler.fused_norms(self._snapshot)
        norms = torch.stack(moved).float().tolist()
        self._pending.update_ratio = [
            d / w if w > 0 else (0.0 if d == 0 else float("inf"))
            for d, w in zip(norms, self._pending_norms, strict=True)
        ]
        self._pending = None
        self._snapshot = None
        self._pending_params = []


def split_batch(batch: Any) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The inputs and targets of a loader batch: ``(x, y)`` tuples, dicts, or a bare tensor."""
    if isinstance(batch, torch.Tensor):
        return batch, None
    if isinstance(batch, (tuple, list)) and batch:
        x = batch[0] if isinstance(batch[0], torch.Tensor) else None
        y = batch[1] if len(batch) > 1 and isinstance(batch[1], torch.Tensor) else None
        return x, y
    if isinstance(batch, dict):
        x = next((batch[k] for k in ("x", "input", "inputs", "features") if k in batch), None)
        y = next(
            (batch[k] for k in ("y", "label", "labels", "target", "targets") if k in batch), None
        )
        return (x if isinstance(x, torch.Tensor) else None), (
            y if isinstance(y, torch.Tensor) else None
        )
    return None, None


def observe_batch(stats: BatchStats, step: int, x: torch.Tensor | None, y: Any) -> None:
    """Fold one sampled input batch into the running input statistics (one host transfer).

    Plain Python on the host side, no numpy: right after a training step numpy's code is cold
    in the CPU caches and a handful of tiny numpy calls cost more than the torch reductions.
    """
    if x is None or not x.is_floating_point() or x.ndim < 2 or x.shape[0] == 0:
        return
    x = x.detach()
    # Images are summarised per channel, everything else per flattened feature.
    flat = x.transpose(0, 1).reshape(x.shape[1], -1).T if x.ndim >= 4 else x.reshape(len(x), -1)
    flat = flat.float()
    d = flat.shape[1]
    parts = _batch_summary(flat, flat.amin(0), flat.amax(0))
    nonfinite = 0
    if not all(map(math.isfinite, parts)):  # rare: NaN/inf inputs; summarise the finite ones
        finite = torch.isfinite(flat)
        nonfinite = int((~finite).sum())
        clean = torch.where(finite, flat, torch.zeros((), device=flat.device))
        low = torch.where(finite, flat, torch.full_like(flat, math.inf)).amin(0)
        high = torch.where(finite, flat, torch.full_like(flat, -math.inf)).amax(0)
        parts = _batch_summary(clean, low, high)
    stats.batches += 1
    stats.rows += flat.shape[0]
    if nonfinite:
        stats.nonfinite_batches += 1
        stats.nonfinite_values += nonfinite
        if stats.first_nonfinite_step is None:
            stats.first_nonfinite_step = step
    sums, sumsq = parts[:d], parts[d : 2 * d]
    mins, maxs = parts[2 * d : 3 * d], parts[3 * d :]
    if stats.feature_sumsq is None or len(stats.feature_sumsq) != d:
        stats.feature_sum, stats.feature_sumsq = sums, sumsq
        stats.feature_min, stats.feature_max = mins, maxs
    else:
        stats.feature_sum = [a + b for a, b in zip(stats.feature_sum, sums, strict=True)]
        stats.feature_sumsq = [a + b for a, b in zip(stats.feature_sumsq, sumsq, strict=True)]
        stats.feature_min = [min(a, b) for a, b in zip(stats.feature_min, mins, strict=True)]
        stats.feature_max = [max(a, b) for a, b in zip(stats.feature_max, maxs, strict=True)]
    observe_labels(stats, y)


def observe_labels(stats: BatchStats, y: Any) -> None:
    """Count the class labels of a batch (1-D integer targets; anything else is ignored)."""
    if isinstance(y, torch.Tensor) and y.ndim == 1 and not y.is_floating_point() and y.numel():
        labels = y.detach().cpu()
        if int(labels.min()) >= 0:
            for label, count in enumerate(torch.bincount(labels).tolist()):
                if count:
                    stats.label_counts[label] = stats.label_counts.get(label, 0) + count


def _batch_summary(flat: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> list[float]:
    """Per column: sum, sum of squares, min, max (float64, one host transfer)."""
    # amin/amax, not aminmax: aminmax(dim=0) takes milliseconds on a busy multi-threaded CPU.
    # cat promotes the float32 extremes to float64 (exactly) without two conversion ops.
    wide = flat.double()
    return torch.cat([wide.sum(0), (wide * wide).sum(0), low, high]).tolist()


def is_out_of_memory(exc: BaseException | None) -> bool:
    """True for CUDA/MPS/CPU allocation failures, whatever class the backend raised."""
    if exc is None:
        return False
    oom_type = getattr(torch, "OutOfMemoryError", None) or getattr(
        torch.cuda, "OutOfMemoryError", None
    )
    if oom_type is not None and isinstance(exc, oom_type):
        return True
    if isinstance(exc, MemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text or "failed to allocate" in text
    )


def current_exception() -> BaseException | None:
    """The exception being handled right now (inside an ``except``), if any."""
    return sys.exc_info()[1]


def memory_usage(device: torch.device | None) -> tuple[int | None, int | None, str]:
    """``(peak bytes, limit bytes, "cuda"|"cpu")``: CUDA allocator on a GPU, process RSS else."""
    if device is not None and device.type == "cuda" and torch.cuda.is_available():
        peak = int(torch.cuda.max_memory_reserved(device))
        _, total = torch.cuda.mem_get_info(device)
        return peak, int(total), "cuda"
    peak = _peak_rss()
    return peak, _memory_limit(), "cpu"


def _peak_rss() -> int | None:
    try:
        import resource

        kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(kib) * (1 if sys.platform == "darwin" else 1024)
    except (ImportError, OSError):
        pass
    try:
        import psutil

        return int(psutil.Process(os.getpid()).memory_info().rss)
    except Exception:  # psutil missing or the platform refuses
        return None


@functools.lru_cache(maxsize=1)
def _memory_limit() -> int | None:
    """The memory this process may use: the cgroup limit when one is set, else physical RAM."""
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path, encoding="ascii") as fh:
                text = fh.read().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < (1 << 60):
            limit = int(text)
            break
    else:
        limit = None
    try:
        import psutil

        total = int(psutil.virtual_memory().total)
        return min(limit, total) if limit else total
    except Exception:  # psutil missing: the cgroup figure or nothing
        return limit
