"""Prescriptions: for each finding kind, what to do, why, and the config change that does it.

A :class:`Remedy` turns a finding plus what is known about the run (:class:`RemedyContext`: the
optimiser's learning rate, the model's activations, and the experiment config when there is one)
into a sentence and a ``{dotted.config.path: new value}`` change. Changes are computed from the
run's own values (the learning rate divided by ten, the batch halved with accumulation doubled),
so they also make sense for a hand-written loop that has no tunelab config. Register a new remedy
for a kind with :func:`register_remedy`; the last one registered for a kind is used.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ._finding import KINDS, Finding

_REMEDIES: dict[str, type[Remedy]] = {}
_BY_KIND: dict[str, str] = {}


@dataclass
class RemedyContext:
    """What a remedy may know about the run; every field may be unknown (None)."""

    lr: float | None = None
    weight_decay: float | None = None
    optimizer: str | None = None
    momentum: float | None = None
    batch_size: int | None = None
    accumulate_steps: int = 1
    num_workers: int | None = None
    cuda: bool = False
    activations: set[str] = field(default_factory=set)  # "relu", "tanh", "sigmoid", ...
    has_norm: bool = False
    dropout: float | None = None
    init: str | None = None
    width: int | None = None  # widest hidden layer of the model, when it can be read
    depth: int | None = None  # hidden weight layers
    builder_params: set[str] | None = None  # what model.params accepts (None: unknown)
    # The LR range test's suggestion (Doctor.find_lr), when it was run: LR prescriptions use it
    # when it moves the rate the way the remedy wants, instead of a fixed step.
    measured_lr: float | None = None
    config: Any = None  # an ExperimentConfig when the run came from one
    train: Any = None  # its TrainConfig (also known when only the trainer's config is)

    def accepts(self, param: str) -> bool:
        """Whether ``model.params.<param>`` can be set (unknown builders: yes)."""
        return self.builder_params is None or param in self.builder_params

    def model_param(self, name: str, default: Any = None) -> Any:
        if self.config is None:
            return default
        return self.config.model.params.get(name, default)


class Remedy(ABC):
    """Prescribes for one finding kind: ``prescribe`` returns (advice, config change or None)."""

    name: ClassVar[str] = ""
    kind: ClassVar[str] = ""

    @abstractmethod
    def prescribe(self, finding: Finding, ctx: RemedyContext) -> tuple[str, dict[str, Any] | None]:
        """Advice for ``finding``, and the config change that applies it (or None)."""


def register_remedy(name: str, kind: str) -> Callable[[type[Remedy]], type[Remedy]]:
    """Class decorator: the remedy ``name`` becomes the prescription for ``kind``."""
    if kind not in KINDS:
        raise ValueError(f"unknown finding kind {kind!r}; expected one of {KINDS}")

    def decorate(cls: type[Remedy]) -> type[Remedy]:
        cls.name, cls.kind = name, kind
        _REMEDIES[name] = cls
        _BY_KIND[kind] = name
        return cls

    return decorate


def remedy_names() -> list[str]:
    return list(_REMEDIES)


def prescribe(finding: Finding, ctx: RemedyContext) -> Finding:
    """Fill ``finding.remedy`` and ``finding.config_change`` from the kind's remedy."""
    name = _BY_KIND.get(finding.kind)
    if name is None:
        return finding
    text, change = _REMEDIES[name]().prescribe(finding, ctx)
    finding.remedy = text
    finding.config_change = change or None
    return finding


def _lr(ctx: RemedyContext, factor: float, *, cap: float | None = None) -> dict[str, Any]:
    """A lower learning rate: the range test's, when one was measured below the current rate
    (by more than its own resolution, 1.5x), else ``factor`` times the current one."""
    if ctx.lr is None:
        return {}
    measured = ctx.measured_lr
    if measured is not None and 0 < measured < ctx.lr / 1.5:
        return {"train.lr": float(f"{measured:.3g}")}
    value = ctx.lr * factor
    if cap is not None:
        value = min(value, cap)
    return {"train.lr": float(f"{value:.3g}")}


def _changed(ctx: RemedyContext, path: str, value: Any) -> dict[str, Any]:
    """``{path: value}`` unless the config already has that value."""
    root, rest = ctx.config, path
    if root is None and path.startswith("train.") and ctx.train is not None:
        root, rest = ctx.train, path[len("train.") :]
    if root is not None:
        node: Any = root
        for part in rest.split("."):
            node = node.get(part) if isinstance(node, dict) else getattr(node, part, None)
        if node == value:
            return {}
    return {path: value}


@register_remedy("regularise", "overfitting")
class Regularise(Remedy):
    def prescribe(self, finding, ctx):
        change: dict[str, Any] = {}
        wd = ctx.weight_decay or 0.0
        change["train.weight_decay"] = float(f"{min(max(wd * 10, 1e-3), 0.1):.3g}")
        if ctx.accepts("dropout"):
            current = float(ctx.dropout or ctx.model_param("dropout", 0.0) or 0.0)
            change["model.params.dropout"] = round(min(0.5, current + 0.2 if current else 0.3), 2)
        if ctx.train is not None and not ctx.train.early_stopping.enabled:
            change["train.early_stopping.enabled"] = True
        return (
            "The model fits the training set far better than unseen data: regularise it "
            "(weight decay, dropout), stop at the best validation epoch, or add data/augmentation.",
            change,
        )


@register_remedy("add_capacity", "underfitting")
class AddCapacity(Remedy):
    def prescribe(self, finding, ctx):
        change: dict[str, Any] = {}
        wd = ctx.weight_decay or 0.0
        if wd > 1e-3:  # strong regularisation is the usual cause when the model is big enough
            change["train.weight_decay"] = float(f"{wd / 100:.3g}")
        dropout = float(ctx.dropout or ctx.model_param("dropout", 0.0) or 0.0)
        if dropout > 0.2:
            change["model.params.dropout"] = 0.1
        if not change:
            change.update(_bigger_model(ctx))
        return (
            "The model cannot even fit the training data: give it more capacity (wider/deeper) "
            "or less regularisation, and train longer.",
            change,
        )


# Widening doubles a layer, but a layer narrower than this is the bottleneck itself: doubling
# 3 -> 6 units only delays the fix by rounds (the repair loop keeps a wider net only while it
# pays beyond the noise, so a generous step costs nothing when it does not help).
MIN_WIDTH = 32


def _wider(width: int) -> int:
    return max(2 * int(width), MIN_WIDTH)


def _bigger_model(ctx: RemedyContext) -> dict[str, Any]:
    change: dict[str, Any] = {}
    if ctx.config is None:
        if ctx.width:
            change["model.params.width"] = _wider(ctx.width)
        if ctx.depth is not None and ctx.depth < 2:
            change["model.params.depth"] = ctx.depth + 1
        return change
    params = ctx.config.model.params
    if ctx.accepts("widths") and params.get("widths"):
        change["model.params.widths"] = [_wider(w) for w in params["widths"]]
    elif ctx.accepts("width"):
        defaults = _builder_defaults(ctx)
        change["model.params.width"] = _wider(params.get("width", defaults.get("width", 64)))
        depth = int(params.get("depth", defaults.get("depth", 2)))
        if ctx.accepts("depth") and depth < 2:
            change["model.params.depth"] = depth + 1
    elif ctx.accepts("channels"):
        channels = params.get("channels") or _builder_defaults(ctx).get("channels") or [32, 64]
        change["model.params.channels"] = [2 * int(c) for c in channels]
    return change


def _builder_defaults(ctx: RemedyContext) -> dict[str, Any]:
    try:
        from ..models import builder_parameters

        return {
            k: v
            for k, v in builder_parameters(ctx.config.model.builder).items()
            if v is not None and not isinstance(v, type)
        }
    except Exception:  # an unknown or custom builder: no defaults to read
        return {}


@register_remedy("relu_kaiming_batchnorm", "vanishing_gradients")
class FixVanishing(Remedy):
    def prescribe(self, finding, ctx):
        change: dict[str, Any] = {}
        if ctx.accepts("activation") and (
            ctx.activations & {"sigmoid", "tanh"} or not ctx.activations
        ):
            change["model.params.activation"] = "relu"
        change.update(_changed(ctx, "model.init", "kaiming"))
        if ctx.accepts("batch_norm") and not ctx.has_norm:
            change["model.params.batch_norm"] = True
        return (
            "The gradient shrinks layer by layer, so the early layers barely learn: use ReLU-like "
            "activations with He (Kaiming) initialisation and add batch normalisation "
            "(or residual connections).",
            change,
        )


@register_remedy("clip_and_lower_lr", "exploding_gradients")
class FixExploding(Remedy):
    def prescribe(self, finding, ctx):
        change: dict[str, Any] = {"train.clip_grad_norm": 1.0, **_lr(ctx, 0.1)}
        if ctx.accepts("batch_norm") and not ctx.has_norm:
            change["model.params.batch_norm"] = True
        return (
            "The gradient grows layer by layer (or blew up to inf/NaN): clip the gradient norm, "
            "lower the learning rate, and normalise activations (batch norm) or re-initialise.",
            change,
        )


@register_remedy("leaky_relu_lower_lr", "dead_relu")
class FixDeadRelu(Remedy):
    def prescribe(self, finding, ctx):
        change: dict[str, Any] = {}
        if ctx.accepts("activation"):
            change["model.params.activation"] = "leaky_relu"
        change.update(_lr(ctx, 0.1))
        change.update(_changed(ctx, "model.init", "kaiming"))
        return (
            "Most units of a ReLU layer never fire, so they pass no gradient and never recover: "
            "lower the learning rate (large steps push biases negative), use LeakyReLU, and He "
            "initialisation.",
            change,
        )


@register_remedy("unsaturate", "saturated_activations")
class FixSaturation(Remedy):
    def prescribe(self, finding, ctx):
        change: dict[str, Any] = {}
        if ctx.accepts("activation"):
            change["model.params.activation"] = "relu"
        if ctx.accepts("batch_norm") and not ctx.has_norm:
            change["model.params.batch_norm"] = True
        change.update(_changed(ctx, "data.scale", "standard"))
        return (
            "Tanh/sigmoid units sit in their flat region, where the gradient is ~0: standardise "
            "the inputs, add batch normalisation, use Xavier initialisation or switch to ReLU.",
            change,
        )


@register_remedy("lower_lr_and_clip", "diverging_loss")
class FixDiverging(Remedy):
    def prescribe(self, finding, ctx):
        change = {**_lr(ctx, 0.1), "train.clip_grad_norm": 1.0}
        return (
            "The loss grows instead of falling (or became NaN/inf): the learning rate is too high "
            "for this model; lower it 10x and clip the gradient norm.",
            change,
        )


@register_remedy("lower_lr", "oscillating_loss")
class FixOscillating(Remedy):
    def prescribe(self, finding, ctx):
        change: dict[str, Any] = _lr(ctx, 0.2)
        if ctx.batch_size is not None and ctx.batch_size < 32:
            change["train.batch_size"] = ctx.batch_size * 2
        return (
            "The loss jumps up and down instead of settling: the steps overshoot; lower the "
            "learning rate (or use a decaying schedule) and avoid very small batches.",
            change,
        )


@register_remedy("raise_lr", "slow_convergence")
class FixSlow(Remedy):
    def prescribe(self, finding, ctx):
        sgd = (ctx.optimizer or "").startswith("sgd")
        change: dict[str, Any] = _raise_lr(ctx, cap=0.3 if sgd else 0.01)
        if sgd and not ctx.momentum:
            change["train.momentum"] = 0.9
        return (
            "The loss falls steadily but very slowly: the updates are tiny next to the weights; "
            "raise the learning rate (`tunelab doctor --fix` measures one with the LR range "
            "test; in your own loop, `doc.find_lr(loss_fn)`) or use momentum/Adam.",
            change,
        )


def _raise_lr(ctx: RemedyContext, *, cap: float) -> dict[str, Any]:
    """10x the learning rate, at most ``cap``, and never lower than it is: a learning rate
    already at or above the cap is doubled (raise_lr never lowers it)."""
    if ctx.lr is None:
        return {}
    measured = ctx.measured_lr
    if measured is not None and measured > 1.5 * ctx.lr:
        return {"train.lr": float(f"{measured:.3g}")}
    value = min(ctx.lr * 10.0, max(cap, ctx.lr * 2.0))
    return {"train.lr": float(f"{value:.3g}")}


@register_remedy("faster_loading", "data_bottleneck")
class FixBottleneck(Remedy):
    def prescribe(self, finding, ctx):
        # No config change: tunelab's Trainer loads tensors already in memory (its
        # train.num_workers has no effect there), so the fix is in how the data are prepared.
        change: dict[str, Any] = {}
        if ctx.cuda:
            change.update(_changed(ctx, "train.pin_memory", True))
        if finding.figures.get("data_source") == "tensors":
            # Rows already in memory: workers would only add inter-process copies, and there
            # is nothing to pre-process; what costs is collating the batch row by row.
            return (
                "The rows are already tensors in memory, so the wait is the DataLoader "
                "indexing and stacking them one row at a time: index whole batches instead "
                "(DataLoader(dataset, sampler=BatchSampler(RandomSampler(dataset), batch_size, "
                "drop_last=False), batch_size=None), or slice the tensors with a shuffled "
                "index); background workers would not help here.",
                change,
            )
        return (
            "The model waits for data most of the time: decode/pre-process the data once, "
            "before training, instead of per batch; in your own loop, load batches in background "
            "workers (DataLoader num_workers) and pin memory for the GPU.",
            change,
        )


@register_remedy("halve_batch_accumulate", "memory_pressure")
class FixMemory(Remedy):
    def prescribe(self, finding, ctx):
        change: dict[str, Any] = {}
        batch = ctx.batch_size or finding.figures.get("batch_size")
        if batch is not None and batch > 1:
            change["train.batch_size"] = max(1, int(batch) // 2)
            change["train.accumulate_steps"] = ctx.accumulate_steps * 2
        if ctx.cuda:
            change["train.precision"] = "bf16"
        return (
            "Training ran out of (or close to) memory: halve the batch and accumulate gradients "
            "over twice the steps (same effective batch), or use mixed precision.",
            change,
        )


@register_remedy("impute", "nan_or_inf_data")
class FixNan(Remedy):
    def prescribe(self, finding, ctx):
        return (
            "Inputs or targets contain NaN/inf, which poisons every gradient: impute or drop "
            "those values before training (the model cannot learn around them).",
            _changed(ctx, "data.clean.missing", "median"),
        )


@register_remedy("standardise", "unscaled_inputs")
class FixScale(Remedy):
    def prescribe(self, finding, ctx):
        return (
            "Features are on very different or very large scales, so one direction dominates "
            "the gradient: standardise them (fit the scaler on the training split only).",
            _changed(ctx, "data.scale", "standard"),
        )


@register_remedy("drop_constant", "constant_features")
class FixConstant(Remedy):
    def prescribe(self, finding, ctx):
        if finding.severity == "info":
            return ("Constant columns carry no information; dropping them is optional.", None)
        return (
            "Every feature is constant, so nothing can be learned: check how the data is loaded "
            "(wrong columns, a failed join, everything imputed).",
            None,
        )


@register_remedy("class_weights", "class_imbalance")
class FixImbalance(Remedy):
    def prescribe(self, finding, ctx):
        return (
            "A few classes dominate, so the model can score well by ignoring the rare ones: "
            "weight the loss by inverse class frequency (or resample) and watch macro F1.",
            _changed(ctx, "train.class_weights", "balanced"),
        )


@register_remedy("deduplicate", "data_leakage")
class FixLeakage(Remedy):
    def prescribe(self, finding, ctx):
        column = (finding.figures or {}).get("label_column")
        if column is not None:
            return (
                f"Find out where column {column} comes from: if it is derived from the label or "
                "known only after the outcome, drop it before training; a model that relies on "
                "it cannot be used where the label is unknown.",
                None,
            )
        return (
            "Validation rows also appear (nearly) unchanged in the training set, so validation "
            "scores overstate real performance: drop duplicates before splitting, or split by "
            "group (patient, user, source image).",
            _changed(ctx, "data.clean.duplicates", "drop"),
        )
