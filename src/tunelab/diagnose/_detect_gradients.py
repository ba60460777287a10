"""Gradient detectors: vanishing and exploding gradients from the sampled per-layer norms.

Layers are compared by the root-mean-square of their weight gradient (norm / sqrt(size)), so a
wide layer is not "larger" just because it has more weights. First layer = first weight matrix
in registration order, last = the output layer.
"""

from __future__ import annotations

import math

from ._detector import Detector, register_detector
from ._finding import Finding
from ._record import GradSample, TrainingRecord, median
from ._signals import progress


def _inner_peak(sample: GradSample) -> float:
    """The largest per-weight gradient RMS below the output layer (the only layer's when the
    net has one)."""
    rms = sample.grad_rms[:-1] if len(sample.grad_rms) >= 2 else sample.grad_rms
    return max(rms, default=0.0)


def _ratios(samples: list[GradSample]) -> list[float]:
    """First-layer over last-layer gradient RMS for each sample that has both."""
    out = []
    for s in samples:
        if len(s.grad_rms) >= 2 and s.grad_rms[-1] > 0 and math.isfinite(s.grad_rms[0]):
            out.append(s.grad_rms[0] / s.grad_rms[-1])
    return out


@register_detector("vanishing_gradients")
class VanishingGradients(Detector):
    """The gradient reaching the first layer is a tiny fraction of the output layer's.

    AUTOTRAINER (``utils/monitor.py``): first/last gradient-norm ratio < 1e-3 (beta_1) together
    with a first-layer norm < 1e-4 (beta_2). The absolute part depends on the loss scale, so we
    keep the ratio: warning below ``RATIO`` (median over the sampled steps; below
    ``RATIO_STRUGGLING`` when the loss has not halved), error below ``RATIO_ERROR``. Healthy
    networks in our zoo stay above 0.1; stuck runs that are not vanishing (too small a
    learning rate, too little capacity) stay above 0.2. SageMaker's VanishingGradient (mean
    |grad| < 1e-7) is the absolute analogue.
    """

    kinds = ("vanishing_gradients",)
    RATIO = 1e-3
    RATIO_STRUGGLING = 5e-2
    RATIO_ERROR = 1e-5

    def check(self, record: TrainingRecord) -> list[Finding]:
        samples = [s for s in record.grad_samples if s.finite]
        zeroed = self._zero_weights(record, samples)
        if zeroed:
            return zeroed
        ratios = _ratios(samples)
        if len(ratios) < 2:
            return []
        ratio = median(ratios)
        # Between RATIO and RATIO_STRUGGLING only when the loss is also stuck (AUTOTRAINER judges
        # gradient problems only for runs that do not converge).
        p = progress(record)
        struggling = p is not None and p.remaining > 0.5
        limit = self.RATIO_STRUGGLING if struggling else self.RATIO
        if ratio is None or ratio >= limit:
            return []
        last = samples[-1]
        first_low = next((s.step for s, r in zip(samples, ratios, strict=False) if r < limit), None)
        return [
            self.finding(
                "vanishing_gradients",
                "error" if ratio < self.RATIO_ERROR else "warning",
                f"the gradient reaching the first layer ({last.names[0]}) is {ratio:.1e} times "
                f"the output layer's ({last.names[-1]}) (median over {len(ratios)} sampled steps; "
                f"healthy networks stay within a few orders of magnitude)",
                {
                    "first_over_last": ratio,
                    "first_layer": last.names[0],
                    "last_layer": last.names[-1],
                    "grad_rms_by_layer": dict(zip(last.names, last.grad_rms, strict=True)),
                    "samples": len(ratios),
                },
                record.where(step=first_low) if first_low else None,
            )
        ]

    def _zero_weights(self, record: TrainingRecord, samples: list[GradSample]) -> list[Finding]:
        """All-zero weight matrices and no gradient below the output layer: a zero
        initialisation.

        ``W = 0`` sends nothing forward (every unit of the next layer outputs the same constant)
        and passes nothing back (the gradient reaching the layer below is ``W^T @ delta = 0``),
        so with zero biases too every weight gradient is exactly zero and nothing ever trains
        (CS231n, "Neural Networks Part 2": "a mistake: all zero initialization"). Neither ratio
        above can be read then (0 / 0), and it is not dead ReLU units: set D's tanh MLP
        initialised to zero was reported as dead units from its zero gradients. The rule:
        in at least half of the sampled steps every layer below the output has an exactly zero
        gradient, the latest sample has a layer whose weights are all exactly zero, and the
        loss has not halved.
        """
        if len(samples) < 2 or len(samples[-1].grad_rms) < 2:
            return []
        last = samples[-1]
        zero_weights = [n for n, w in zip(last.names, last.weight_rms, strict=True) if w == 0]
        if not zero_weights:
            return []
        silent = [s for s in samples if len(s.grad_rms) >= 2 and max(s.grad_rms[:-1]) == 0]
        p = progress(record)
        if 2 * len(silent) < len(samples) or p is None or p.remaining <= 0.5:
            return []
        first = silent[0]
        return [
            self.finding(
                "vanishing_gradients",
                "error",
                f"every layer below the output ({', '.join(last.names[:-1])}) had an exactly "
                f"zero weight gradient at {len(silent)} of {len(samples)} sampled steps, and the "
                f"weights of {', '.join(zero_weights)} are all zero: a zero initialisation "
                "passes no signal forward and no gradient back, so those layers never train",
                {
                    "zero_weight_layers": zero_weights,
                    "silent_samples": len(silent),
                    "samples": len(samples),
                    "grad_rms_by_layer": dict(zip(last.names, last.grad_rms, strict=True)),
                },
                record.where(step=first.step) if first.step else None,
            )
        ]


@register_detector("exploding_gradients")
class ExplodingGradients(Detector):
    """Gradients that are non-finite, grow layer by layer towards the input, or blow up in time.

    AUTOTRAINER: NaN/inf gradients or weights, or first/last gradient-norm ratio > 70 (beta_3);
    our ratio is of RMS values (healthy MLPs and CNNs in our zoo stay between 0.1 and 2).
    SageMaker's WeightUpdateRatio flags updates above 10x the weights; we warn once the median
    step moves a layer by more than its own size (``UPDATE``). Growth: the total gradient norm
    rising ``GROWTH``-fold over the run; size: a layer's per-weight gradient RMS above
    ``LARGE_RMS`` (healthy runs in our zoo, CE or standardised MSE, peak between 0.03 and 0.42;
    the first steps, where bad initialisations show, are always sampled).
    """

    kinds = ("exploding_gradients",)
    RATIO = 100.0
    UPDATE = 1.0
    GROWTH = 1e3
    LARGE_RMS = 5.0

    def check(self, record: TrainingRecord) -> list[Finding]:
        samples = record.grad_samples
        if not samples:
            return []
        broken = next((s for s in samples if not s.finite), None)
        data_bad = record.batches.nonfinite_batches > 0
        if broken is not None:
            finite_before = [s.total_norm for s in samples if s.step < broken.step and s.finite]
            trail = (
                f" (it was {finite_before[-1]:.3g} at the previous sampled step)"
                if finite_before
                else ""
            )
            return [
                self.finding(
                    "exploding_gradients",
                    "warning" if data_bad else "error",
                    f"gradients or weights became NaN/inf by step {broken.step}{trail}"
                    + (" (the input batches hold NaN/inf too)" if data_bad else ""),
                    {
                        "step": broken.step,
                        "previous_norm": finite_before[-1] if finite_before else None,
                        **self._initial_growth(samples, broken.step),
                    },
                    record.where(step=broken.step),
                )
            ]
        finite = [s for s in samples if s.finite]
        ratios = _ratios(finite)
        ratio = median(ratios) if len(ratios) >= 2 else None
        updates = [max(s.update_ratio) for s in finite if s.update_ratio]
        update = median(updates) if len(updates) >= 2 else None
        norms = [s.total_norm for s in finite if s.total_norm > 0]
        growth = None
        if len(norms) >= 6:
            k = max(2, len(norms) // 5)
            early, late = median(norms[:k]), median(norms[-k:])
            growth = late / early if early else None
        # The largest gradient below the output layer: a gradient large at the output layer
        # alone is the loss's size (outputs far from their targets), not a gradient that grows
        # on its way back; exploding gradients reach the layers below (set C, seed 1: sigmoid
        # units under N(0, 1) weights, an MSE of 355 at the start, the output layer's gradient
        # at 34 per weight and the layers below it at 1-2, falling to 0.004).
        peak = max(finite, key=_inner_peak, default=None)
        peak_rms = _inner_peak(peak) if peak is not None else None
        figures = {
            "first_over_last": ratio,
            "median_max_update_ratio": update,
            "norm_growth": growth,
            "largest_layer_grad_rms": peak_rms,
            "last_total_norm": finite[-1].total_norm if finite else None,
            "largest_grad_step": peak.step if peak is not None else None,
            "large_gradient": bool(peak_rms is not None and peak_rms > self.LARGE_RMS),
            # the gradient of the initial weights, before any update: huge there, the
            # initialisation is the cause; huge only after some steps, the step size is
            "large_at_first_step": bool(
                finite and finite[0].step <= 1 and _inner_peak(finite[0]) > self.LARGE_RMS
            ),
        }
        reasons = []
        if ratio is not None and ratio > self.RATIO:
            reasons.append(
                f"the first layer's gradient is {ratio:.3g}x the output layer's (median over "
                f"{len(ratios)} sampled steps)"
            )
        if update is not None and update > self.UPDATE:
            reasons.append(f"a typical step changes a layer by {update:.3g}x its own size")
        if growth is not None and growth > self.GROWTH:
            reasons.append(f"the total gradient norm grew {growth:.3g}-fold during training")
        if peak_rms is not None and peak_rms > self.LARGE_RMS:
            layer = peak.names[peak.grad_rms.index(peak_rms)]
            reasons.append(
                f"the gradient of {layer} reached {peak_rms:.3g} per weight (RMS) at step "
                f"{peak.step}; healthy runs stay below 0.5 (unscaled inputs or targets inflate it "
                "too)"
            )
        if not reasons:
            return []
        return [self.finding("exploding_gradients", "warning", "; ".join(reasons), figures)]

    def _initial_growth(self, samples: list[GradSample], before: int) -> dict:
        """What the finite samples before a NaN/inf say about the initialisation: the first
        sample's first/last layer ratio and the largest per-weight RMS (for the causal link)."""
        early = [s for s in samples if s.step < before and s.finite]
        if not early:
            return {}
        ratios = _ratios(early[:1])
        peak = max(early, key=lambda s: max(s.grad_rms, default=0.0))
        peak_rms = max(peak.grad_rms, default=0.0)
        return {
            "first_over_last": ratios[0] if ratios else None,
            "largest_layer_grad_rms": peak_rms,
            "largest_grad_step": peak.step,
            "large_gradient": peak_rms > self.LARGE_RMS,
            # as on the finite path: huge before any update is the initialisation's; a peak a
            # few steps in, before the NaN, is what a too-high learning rate does (held-out
            # seed 5: SGD at lr 8, the loss rising from step 3, the gradient peaking at step 5)
            "large_at_first_step": bool(
                early[0].step <= 1 and max(early[0].grad_rms, default=0.0) > self.LARGE_RMS
            ),
        }
