"""Data detectors inside the loop: the same rules as ``check_data``, on sampled input batches."""

from __future__ import annotations

import math

from ._data_checks import constant_finding, imbalance_finding, name_classes, scale_finding
from ._detector import Detector, register_detector
from ._finding import Finding
from ._record import TrainingRecord

# Fewer sampled rows than this and scale/constancy/balance estimates are too rough to report.
_MIN_ROWS = 64


@register_detector("batch_data")
class BatchData(Detector):
    """NaN/inf inputs, unscaled or constant features and class imbalance in ``watch``'s batches."""

    kinds = ("nan_or_inf_data", "unscaled_inputs", "constant_features", "class_imbalance")

    def check(self, record: TrainingRecord) -> list[Finding]:
        stats = record.batches
        found: list[Finding] = []
        if stats.nonfinite_batches:
            found.append(
                self.finding(
                    "nan_or_inf_data",
                    "error",
                    f"{stats.nonfinite_values} NaN/inf input values in {stats.nonfinite_batches} "
                    f"of {stats.batches} sampled batches (first at step "
                    f"{stats.first_nonfinite_step})",
                    {
                        "values": stats.nonfinite_values,
                        "batches": stats.nonfinite_batches,
                        "sampled_batches": stats.batches,
                    },
                    record.where(step=stats.first_nonfinite_step),
                )
            )
        if stats.rows >= _MIN_ROWS and stats.feature_sumsq is not None:
            n = stats.rows
            rms = [math.sqrt(max(s, 0.0) / n) for s in stats.feature_sumsq]
            constant = [
                not (hi > lo) for lo, hi in zip(stats.feature_min, stats.feature_max, strict=True)
            ]
            for f in (scale_finding(rms, constant), constant_finding(constant, rows=n)):
                if f is not None:
                    f.evidence += f" (in {stats.batches} sampled training batches)"
                    found.append(f)
        if sum(stats.label_counts.values()) >= _MIN_ROWS:
            f = imbalance_finding(stats.label_counts, sampled=True)
            if f is not None and record.class_names:
                name_classes(f, record.class_names)
            if f is not None:
                f.evidence += " (in sampled training batches)"
                found.append(f)
        return found
