"""From symptoms to causes: which finding explains which, and the evidence for each link.

An expert reads a run's findings as a causal chain, not a list: inputs on scales in the thousands
saturate or kill the units downstream; a learning rate that makes the loss rise also kills ReLUs
and blows up the gradient; a large initial weight scale grows the gradient layer by layer before
the loss diverges. Following DeepDiagnosis (ICSE 2022: each symptom is mapped to root causes,
numerical errors first pointing at the learning rate, then the initialisation, then the data)
and AUTOTRAINER's repair order (../shared/DIAGNOSIS-HEURISTICS.md), each rule below names a
cause kind, the kinds it can explain, and how the signals relate. The rules read only kinds,
figures and ``first_seen``: never data-set names, sizes or layer names.

Data faults (NaN/inf, unscaled inputs, leakage, imbalance, constant columns) are causes and never
consequences: nothing in training makes the data bad. Between training kinds the direction is
fixed by :data:`CAUSAL_ORDER` (an earlier kind may explain a later one, never the reverse), except
for two pairs whose direction the evidence decides: exploding gradients from the first steps
with the gradient growing layer by layer explain a diverging loss (a bad initialisation); a loss
that rose first explains the exploding gradient (a too-high learning rate). And a loss that gave
back its progress (a diverging-loss warning) after it had already jumped up and come back down is
the latest swing of an oscillation, which then explains it, and so is a transient blow-up that
came back down in a run found oscillating (its largest swing); a NaN or 10x loss stays the cause.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from ._detect_activations import DeadRelu
from ._detect_gradients import ExplodingGradients
from ._finding import Finding, severity_rank
from ._signals import TINY_UPDATE

DATA_KINDS = (
    "nan_or_inf_data",
    "unscaled_inputs",
    "data_leakage",
    "class_imbalance",
    "constant_features",
)

# Most causal first. A kind may explain only kinds after it (and only through a rule below).
CAUSAL_ORDER: tuple[str, ...] = (
    *DATA_KINDS,
    "memory_pressure",
    "exploding_gradients",  # only when it started at the initialisation (see _explodes_first)
    "diverging_loss",
    "oscillating_loss",
    "saturated_activations",
    "vanishing_gradients",
    "dead_relu",
    "slow_convergence",
    "underfitting",
    "overfitting",
    "data_bottleneck",
)

# Gradient samples are taken at every one of the first 5 steps (the Doctor's _EARLY_STEPS): an
# explosion seen there started at the initialisation, before training could have caused it.
EARLY_STEPS = 5

_TRAINING_EFFECTS = (
    "exploding_gradients",
    "diverging_loss",
    "oscillating_loss",
    "saturated_activations",
    "vanishing_gradients",
    "dead_relu",
    "slow_convergence",
    "underfitting",
    "overfitting",
)

Rule = Callable[[Finding, Finding], str | None]


def _when(f: Finding) -> str:
    seen = f.first_seen or {}
    if seen.get("step"):
        return f"step {seen['step']}"
    if seen.get("epoch"):
        return f"epoch {seen['epoch']}"
    return "before training"


def _step(f: Finding) -> float:
    seen = f.first_seen or {}
    if seen.get("step"):
        return float(seen["step"])
    return float("inf") if seen.get("epoch") else 0.0


def _large(f: Finding) -> bool:
    """Exploding gradients that were large, not only grown: a per-weight gradient above the
    detector's ``LARGE_RMS`` or a typical step larger than the layer (``UPDATE``), or NaN/inf
    (a finding without those figures, saved before they existed, counts as large)."""
    fig = f.figures or {}
    if "previous_norm" in fig or (
        "large_gradient" not in fig and "median_max_update_ratio" not in fig
    ):
        return True  # NaN/inf, or saved without the figures
    update = fig.get("median_max_update_ratio")
    return bool(fig.get("large_gradient")) or (
        isinstance(update, (int, float)) and update > ExplodingGradients.UPDATE
    )


def _explodes_first(f: Finding) -> bool:
    """Exploding gradients that began at the initialisation: layer-by-layer growth or a huge
    gradient in the first sampled steps (not an update-ratio blow-up caused by a large LR)."""
    fig = f.figures or {}
    ratio = fig.get("first_over_last")
    layered = isinstance(ratio, (int, float)) and ratio > 100.0
    if "large_at_first_step" in fig:
        # the gradient of the initial weights (step 1, before any update) was already huge; a
        # too-high learning rate needs a few updates first, so a peak at step 2-5 is its
        # (a finding saved before this figure existed falls back to the peak's step)
        return layered or bool(fig["large_at_first_step"])
    early = fig.get("largest_grad_step")
    at_init = (
        isinstance(early, (int, float)) and early <= EARLY_STEPS and bool(fig.get("large_gradient"))
    )
    return layered or at_init


def _large_weights(saturated: Finding, exploding: Finding) -> bool:
    """Exploding gradients that are the large weights' own, in a net whose squashing units
    they saturated: an expert names the saturation (and the initial scale behind it).

    Glorot and Bengio (AISTATS 2010): too large an initial weight scale drives tanh/sigmoid
    units into their flat region from the first step; the same scale multiplies the backward
    signal at every layer, so the gradient per weight is large too. That gradient is no
    separate fault when the steps stay small next to the weights (median update/weight ratio
    under ``ExplodingGradients.UPDATE``; SageMaker's WeightUpdateRatio), nothing became
    NaN/inf, the gradient did not grow over the run and did not grow ``RATIO``-fold layer by
    layer: only its size, measured against a constant, was large. The units are what stops
    learning (a saturated unit passes almost no gradient), so saturation is the cause an expert
    names; the exploding-gradients finding is its companion, not its cause.
    """
    fig = exploding.figures or {}
    if "step" in fig or not fig.get("large_gradient"):
        return False  # NaN/inf gradients, or no large per-weight gradient: not this pattern
    ratio, update, growth = (
        fig.get("first_over_last"),
        fig.get("median_max_update_ratio"),
        fig.get("norm_growth"),
    )
    return (
        isinstance(update, (int, float))
        and update <= ExplodingGradients.UPDATE
        and not (isinstance(ratio, (int, float)) and ratio > ExplodingGradients.RATIO)
        and not (isinstance(growth, (int, float)) and growth > ExplodingGradients.GROWTH)
        and _step(saturated) <= _step(exploding)
    )


def _nan(cause: Finding, effect: Finding) -> str | None:
    return "NaN/inf inputs turn every gradient they touch into NaN/inf" + (
        f" ({effect.kind} at {_when(effect)})"
    )


def _unscaled(cause: Finding, effect: Finding) -> str | None:
    fig = cause.figures or {}
    scale = fig.get("max_rms") or fig.get("median_rms")
    on = f" (feature RMS up to {scale:.3g})" if isinstance(scale, (int, float)) else ""
    return (
        f"inputs on large scales{on} give pre-activations of the same size, which saturate "
        f"or kill units and inflate the gradient: {effect.kind} follows"
    )


def _constant(cause: Finding, effect: Finding) -> str | None:
    if cause.severity != "error":
        return None  # some constant columns (always-zero pixels) explain nothing
    return "with every feature constant nothing can be learned"


def _imbalance(cause: Finding, effect: Finding) -> str | None:
    if effect.kind != "underfitting":
        return None
    return "a model that predicts the majority class scores well without learning the rest"


def _memory(cause: Finding, effect: Finding) -> str | None:
    if cause.severity != "error":
        return None
    return "the run stopped at an out-of-memory error, so it could not train"


def _exploding(cause: Finding, effect: Finding) -> str | None:
    if effect.kind == "saturated_activations" and _large_weights(effect, cause):
        return None  # the saturation is named first (see _saturated)
    if not _explodes_first(cause):
        if effect.kind in ("diverging_loss", "oscillating_loss"):
            # a gradient that was normal at the initialisation grew from the steps: the step
            # size is the cause of both, and the loss shows it first (see _diverging)
            return None
        if not _large(cause):
            # Grown from a vanishing start and still small (set B's 8 tanh layers at std 0.01,
            # seed 27: 2,900-fold, to a per-weight RMS of 4e-4, with steps of 5e-4 of the
            # weights): nothing was pushed anywhere, so it explains nothing.
            return None
        return (
            f"gradients or steps far larger than the weights ({_when(cause)}) push units into "
            f"their dead or flat region and wreck what was learned: {effect.kind} follows"
        )
    fig = cause.figures or {}
    ratio = fig.get("first_over_last")
    growth = (
        f"the first layer's gradient is {ratio:.3g}x the output layer's"
        if isinstance(ratio, (int, float)) and ratio > 100
        else "the gradient was already huge"
    )
    return (
        f"{growth} from the first steps ({_when(cause)}), before {effect.kind} "
        f"({_when(effect)}): a too-large initial weight scale grows it layer by layer"
    )


def _bounced(oscillation: Finding, diverging: Finding) -> bool:
    """A diverging-loss warning that is one of the oscillation's swings: the loss gave back
    its progress (no NaN, not 10x its start: an ``error`` is a divergence whatever came before)
    in a run where it had already jumped up and come back down at least once (two separate
    episodes of swings, ``OscillatingLoss``'s ``episodes``), or a transient blow-up that came
    back down (``blown_steps``) in a run found oscillating. A loss that bounces is
    oscillating; one that climbs one way is diverging."""
    if diverging.severity != "warning":
        return False
    if "blown_steps" in (diverging.figures or {}):
        # A transient blow-up (DivergingLoss._blow_up) went up and came back down by
        # definition: in a run whose loss keeps jumping back, it is the largest swing (SGD at
        # lr 3 on Huber, zoo seeds 198, 216, 223, 242: the blow-up ranked first before).
        return True
    episodes = (oscillation.figures or {}).get("episodes")
    return isinstance(episodes, int) and episodes >= 2


def _diverging(cause: Finding, effect: Finding) -> str | None:
    if effect.kind == "overfitting":
        return None
    if effect.kind == "exploding_gradients" and _explodes_first(effect):
        return None  # the initialisation exploded first: the reverse link holds
    if effect.kind == "oscillating_loss" and _bounced(effect, cause):
        return None  # the rise is the latest of several swings: the reverse link holds
    order = "before" if _step(cause) <= _step(effect) else "while"
    return (
        f"the loss rose ({_when(cause)}) {order} {effect.kind} appeared ({_when(effect)}): "
        "steps that overshoot push ReLU biases negative and blow up gradients"
    )


def _oscillating(cause: Finding, effect: Finding) -> str | None:
    if effect.kind == "diverging_loss":
        if not _bounced(cause, effect):
            return None
        if "blown_steps" in (effect.figures or {}):
            return (
                f"the loss blew up and came back down ({_when(effect)}) in a run whose loss "
                "keeps jumping back: the blow-up is the largest swing of steps too large, not "
                "a one-way divergence"
            )
        episodes = (cause.figures or {}).get("episodes")
        return (
            f"the loss jumped back up in {episodes} separate episodes, coming back down in "
            f"between, before it rose ({_when(effect)}): the rise is the latest swing of steps "
            "too large, not a one-way divergence"
        )
    if effect.kind == "overfitting":
        # Only the validation-loss rule's finding (no train/val gap beyond its noise among its
        # reasons): a validation loss that climbs while the training loss keeps being thrown
        # back is the steps' instability showing on unseen rows, not memorisation; lowering
        # the rate treats both (Adam at lr 0.03 on digits: val loss 141% above its epoch-1
        # best while the loss swung back 72% of its progress).
        if (effect.figures or {}).get("evidence_from") != ["val_loss_rise"]:
            return None
        # What came first: an overfitting the validation-loss rule had established (the loss
        # RISE above its best for PATIENCE epochs, and so to the end) before the loss first
        # swung is not the swings' doing, and both are causes (set B's noisy-label circles at
        # fresh seed 117: overfitting from epoch ~50, swings only in the last epochs of 300).
        established = (effect.figures or {}).get("val_loss_rise_established_epoch")
        swung = (cause.figures or {}).get("swings_from_epoch")
        if established is not None and swung is not None and established < swung:
            return None
        return (
            f"the loss keeps jumping back up: a validation loss that rises while the training "
            f"loss swings ({_when(effect)}) is the steps' instability, not memorisation"
        )
    if effect.kind not in (
        "dead_relu",
        "exploding_gradients",
        "underfitting",
        "slow_convergence",
        "saturated_activations",
    ):
        return None
    if effect.kind == "saturated_activations" and (effect.first_seen or {}).get("epoch") == 1:
        # saturated at the first epoch's end: the initialisation or the inputs did it, not
        # swings that are judged only after the first 30% of training
        return None
    return (
        f"the loss keeps jumping back up: steps too large for this model; they also explain "
        f"{effect.kind} ({_when(effect)})"
    )


def _saturated(cause: Finding, effect: Finding) -> str | None:
    if effect.kind == "exploding_gradients":
        if not _large_weights(cause, effect):
            return None
        update = (effect.figures or {}).get("median_max_update_ratio")
        return (
            f"the units were saturated from {_when(cause)} while each step moved the weights "
            f"by only {update:.2g} of their size: the gradient is large because the initial "
            "weights are, and the same large scale saturates the tanh/sigmoid units"
        )
    if effect.kind == "overfitting":
        if not (cause.figures or {}).get("from_initialisation"):
            return None
        # Set D: tanh under U(-1, 1) weights on 64 inputs (pre-activations of std ~4.6):
        # training rows fitted to 0.999, validation at 0.69-0.74 against a linear model's 0.97.
        return (
            "the units sat at their extremes from the first epoch: the hidden layers act as a "
            "fixed random code that the output layer fits to the training rows, and it does not "
            "carry to new rows"
        )
    if effect.kind not in ("vanishing_gradients", "slow_convergence", "underfitting"):
        return None
    return "saturated tanh/sigmoid units pass almost no gradient, so learning stalls"


def _vanishing(cause: Finding, effect: Finding) -> str | None:
    zero = (cause.figures or {}).get("zero_weight_layers")
    if zero and effect.kind == "dead_relu":
        return (
            f"the weights of {', '.join(zero)} are all zero, so every unit after them outputs "
            "the same constant: ReLU units sit at zero from the start"
        )
    if effect.kind not in ("slow_convergence", "underfitting"):
        return None
    return "the early layers receive almost no gradient, so the loss cannot fall"


def _epoch(f: Finding) -> float:
    seen = f.first_seen or {}
    return float(seen["epoch"]) if seen.get("epoch") else 0.0


def _blocked(dead: Finding, vanishing: Finding) -> bool:
    """Vanishing gradients that the dead units explain: a layer at least
    ``DeadRelu.ERROR`` dead (it passes next to no gradient back: a ReLU's derivative is zero
    where it is off, so every layer before it receives nothing through those units), dead
    from the epoch the vanishing gradient was first seen or earlier (units are counted once an
    epoch, so an epoch is the resolution). A gradient that vanishes through saturated or
    deep squashing layers while a few ReLUs idle is not this pattern, nor are units that died
    after the gradient had already vanished."""
    if (vanishing.figures or {}).get("zero_weight_layers"):
        return False  # all-zero weights block the gradient themselves (and kill the units)
    worst = max(((dead.figures or {}).get("dead_fraction_by_layer") or {}).values(), default=0.0)
    return worst >= DeadRelu.ERROR and _epoch(dead) <= max(_epoch(vanishing), 1.0)


def _dead_at_init_under_tiny_steps(dead: Finding, slow: Finding) -> bool:
    """Units dead from the initialisation, not killed by training, in a run whose steps are
    tiny: the tiny steps are why nothing learns, and the dead units their companion.

    The worst layer's dead share at its first counted epoch is within two binomial standard
    errors (over its units) of its latest share, no layer is all but dead (the live units would
    learn with steps of a healthy size), and slow convergence measured a median update/weight
    ratio below ``TINY_UPDATE``. Session 18's held-out set D: a separable CNN whose 10,000-step
    warm-up kept the rate at 4% of its target for the whole 400-step run had 42-50% of one
    layer's units off from the first epoch to the last; dead units were named the cause.
    """
    fig, slow_fig = dead.figures or {}, slow.figures or {}
    latest = (fig.get("dead_fraction_by_layer") or {}).get(fig.get("worst_layer"))
    first, units = fig.get("worst_layer_first_share"), fig.get("worst_layer_units")
    update = slow_fig.get("median_update_ratio")
    if not all(isinstance(v, (int, float)) for v in (latest, first, units, update)):
        return False
    noise = 2 * math.sqrt(max(latest * (1 - latest), 1e-12) / max(units, 1))
    return latest < DeadRelu.ERROR and latest - first <= noise and 0 < update < TINY_UPDATE


def _dead(cause: Finding, effect: Finding) -> str | None:
    if effect.kind == "slow_convergence" and _dead_at_init_under_tiny_steps(cause, effect):
        return None  # the tiny steps explain the units (see _slow)
    if effect.kind == "vanishing_gradients":
        if not _blocked(cause, effect):
            return None
        return (
            f"a ReLU layer's units were dead from {_when(cause)}: a unit that never fires passes "
            "no gradient back, so the layers before it receive (next to) none"
        )
    if effect.kind not in ("slow_convergence", "underfitting"):
        return None
    return "dead units pass no gradient, so the layers before them stop learning"


def _slow(cause: Finding, effect: Finding) -> str | None:
    if effect.kind == "dead_relu":
        if not _dead_at_init_under_tiny_steps(effect, cause):
            return None
        return (
            "the units were off from the initialisation and the steps are too small to move "
            "the biases that would turn them on; the live units barely learn either"
        )
    if effect.kind != "underfitting":
        return None
    return "the steps are tiny next to the weights: the model is under-optimised, not too small"


RULES: dict[str, Rule] = {
    "nan_or_inf_data": _nan,
    "unscaled_inputs": _unscaled,
    "constant_features": _constant,
    "class_imbalance": _imbalance,
    "memory_pressure": _memory,
    "exploding_gradients": _exploding,
    "diverging_loss": _diverging,
    "oscillating_loss": _oscillating,
    "saturated_activations": _saturated,
    "vanishing_gradients": _vanishing,
    "dead_relu": _dead,
    "slow_convergence": _slow,
}


def _order(kind: str) -> int:
    return CAUSAL_ORDER.index(kind) if kind in CAUSAL_ORDER else len(CAUSAL_ORDER)


def _may_explain(cause: Finding, effect: Finding) -> bool:
    if effect.kind in DATA_KINDS or cause.kind == effect.kind:
        return False
    if effect.kind not in _TRAINING_EFFECTS:
        return False
    if cause.kind == "diverging_loss" and effect.kind == "exploding_gradients":
        return True  # a pair decided by the evidence (see the rules)
    if cause.kind == "oscillating_loss" and effect.kind == "diverging_loss":
        return True  # the other such pair (see _bounced)
    if cause.kind == "saturated_activations" and effect.kind == "exploding_gradients":
        return True  # and a third (see _large_weights)
    if cause.kind == "dead_relu" and effect.kind == "vanishing_gradients":
        return True  # and a fourth (see _blocked)
    if cause.kind == "slow_convergence" and effect.kind == "dead_relu":
        return True  # and a fifth (see _dead_at_init_under_tiny_steps)
    return _order(cause.kind) < _order(effect.kind)


def _reaches(findings: list[Finding], start: str, goal: str) -> bool:
    """Whether ``goal`` is explained, directly or through a chain, by the finding ``start``."""
    explains = {f.kind: f.explains for f in findings}
    seen, todo = set(), [start]
    while todo:
        kind = todo.pop()
        if kind == goal:
            return True
        if kind not in seen:
            seen.add(kind)
            todo.extend(explains.get(kind, []))
    return False


def _break_cycles(findings: list[Finding]) -> None:
    """Drop the links against :data:`CAUSAL_ORDER` that close a cycle.

    Links along the fixed order cannot form a cycle; only the evidence-decided pairs run
    against it. Should the evidence link a chain back onto itself, no finding would be left as
    the root cause, so the order decides: each link against it that lies on a cycle goes.
    Removing links only removes paths, so the result has no cycle.
    """
    for cause in findings:
        for kind in list(cause.explains):
            if _order(kind) < _order(cause.kind) and _reaches(findings, kind, cause.kind):
                cause.explains.remove(kind)
                cause.link_evidence.pop(kind, None)


def link_findings(findings: list[Finding]) -> list[Finding]:
    """Fill each problem's ``explains`` and ``link_evidence`` (info findings explain nothing);
    the links form no cycle, so a faulty run always has a root cause."""
    problems = [f for f in findings if f.is_problem]
    for f in findings:
        f.explains, f.link_evidence = [], {}
    for cause in problems:
        rule = RULES.get(cause.kind)
        if rule is None:
            continue
        for effect in problems:
            if not _may_explain(cause, effect):
                continue
            why = rule(cause, effect)
            if why:
                cause.explains.append(effect.kind)
                cause.link_evidence[effect.kind] = why
    _break_cycles(problems)
    return findings


def rank_key(f: Finding, explained: set[str]) -> tuple:
    """Problems before info; root causes before consequences; then severity, causal order."""
    return (
        not f.is_problem,
        f.kind in explained,
        -severity_rank(f.severity),
        _order(f.kind),
        f.kind,
    )
