"""Activation detectors: dead ReLU units and saturated tanh/sigmoid units (forward hooks)."""

from __future__ import annotations

from ._detector import Detector, register_detector
from ._finding import Finding
from ._record import ActivationStat, TrainingRecord

# Judging "active on fewer than 1% of inputs" needs at least this many sampled inputs.
_MIN_ROWS = 32


def _latest(record: TrainingRecord, family: str) -> tuple[int, list[ActivationStat]] | None:
    """The last epoch that measured activation layers of ``family``."""
    epochs = list(record.epochs)
    if not epochs and record.partial is not None:
        epochs = [record.partial]
    for e in reversed(epochs):
        stats = [a for a in e.activations if a.family == family and a.rows >= _MIN_ROWS]
        if stats:
            return e.epoch, stats
    return None


@register_detector("dead_relu")
class DeadRelu(Detector):
    """Most units of a ReLU-like layer are never active.

    SageMaker Debugger DeadRelu: a unit active on fewer than 1% of inputs is dead; the rule fires
    when more than 50% of a layer is dead. AUTOTRAINER's dying-ReLU signal (>= 70% exactly-zero
    gradients) is reported alongside. Error when ``ERROR`` of a layer is dead: it no longer learns.
    """

    kinds = ("dead_relu",)
    DEAD = 0.5
    ERROR = 0.9
    ZERO_GRADS = 0.7

    def check(self, record: TrainingRecord) -> list[Finding]:
        found = _latest(record, "relu")
        if found is None:
            return []
        epoch, stats = found
        worst = max(stats, key=lambda a: a.dead_fraction)
        if worst.dead_fraction < self.DEAD:
            return []
        recent = [s.zero_fraction for s in record.grad_samples[-6:] if s.zero_fraction is not None]
        zeros = sum(recent) / len(recent) if recent else None
        dead_layers = [a.name for a in stats if a.dead_fraction >= self.DEAD]
        extra = (
            f"; {zeros:.0%} of weight gradients are exactly zero"
            if zeros is not None and zeros >= self.ZERO_GRADS
            else ""
        )
        return [
            self.finding(
                "dead_relu",
                "error" if worst.dead_fraction >= self.ERROR else "warning",
                f"{worst.dead_fraction:.0%} of the {worst.units} units after {worst.name} were "
                f"active on fewer than 1% of {worst.rows} sampled inputs in epoch {epoch}"
                f"{extra}",
                {
                    "dead_fraction_by_layer": {a.name: a.dead_fraction for a in stats},
                    "dead_layers": dead_layers,
                    "zero_gradient_fraction": zeros,
                    "epoch": epoch,
                },
                record.where(epoch=epoch),
            )
        ]


@register_detector("saturated_activations")
class SaturatedActivations(Detector):
    """Tanh/sigmoid units stuck in their flat region, where almost no gradient passes.

    SageMaker Debugger SaturatedActivation: a unit is saturated when it is in the flat region on
    more than 99% of inputs, and the rule fires when more than 50% of a layer is saturated. We
    also fire when more than ``VALUES`` of all the layer's outputs are saturated (units that are
    flat on most, not quite all, inputs learn just as badly).
    """

    kinds = ("saturated_activations",)
    UNITS = 0.5
    VALUES = 0.6
    ERROR = 0.9

    def check(self, record: TrainingRecord) -> list[Finding]:
        found = _latest(record, "squash")
        if found is None:
            return []
        epoch, stats = found
        worst = max(stats, key=lambda a: max(a.saturated_fraction, a.saturated_values))
        if worst.saturated_fraction < self.UNITS and worst.saturated_values < self.VALUES:
            return []
        level = max(worst.saturated_fraction, worst.saturated_values)
        return [
            self.finding(
                "saturated_activations",
                "error" if level >= self.ERROR else "warning",
                f"after {worst.name}, {worst.saturated_fraction:.0%} of {worst.units} units were "
                f"saturated on more than 99% of sampled inputs and {worst.saturated_values:.0%} of "
                f"all outputs sat in the flat region (epoch {epoch})",
                {
                    "saturated_units_by_layer": {a.name: a.saturated_fraction for a in stats},
                    "saturated_values_by_layer": {a.name: a.saturated_values for a in stats},
                    "epoch": epoch,
                },
                record.where(epoch=epoch),
            )
        ]
