"""The statistics ``TablePreprocessing.fit`` learns per column: fill values and outlier bounds.

Pure functions of one column's training values and the ``data.clean`` settings, so each rule is
readable (and testable) on its own; the preprocessing stores what they return.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

MISSING_CATEGORY = "__missing__"


def numeric_fill(present: np.ndarray, missing: str, fill_value: float) -> float | None:
    """The value a numeric column's missing entries get; ``None`` (drop, error) fills nothing."""
    if missing == "mean":
        return float(present.mean())
    if missing == "median":
        return float(np.median(present))
    if missing == "most_frequent":
        values, counts = np.unique(present, return_counts=True)
        return float(values[int(np.argmax(counts))])
    if missing == "constant":
        return float(fill_value)
    return None  # drop / error: nothing is filled


def category_fill(text: pd.Series, missing: str) -> str | None:
    """The category a text column's missing entries get: the most frequent training one, or
    ``MISSING_CATEGORY`` for ``missing: constant``; ``None`` fills nothing."""
    if missing == "constant":
        return MISSING_CATEGORY
    if missing in ("drop", "error"):
        return None
    counts = text.value_counts()
    if counts.empty:
        return None
    # Ties go to the alphabetically first category so the fill never depends on row order.
    return min(str(v) for v in counts.index[counts.to_numpy() == counts.max()])


def outlier_bounds(
    values: np.ndarray, outliers: str, zscore_threshold: float, iqr_factor: float
) -> list[float] | None:
    """Outlier bounds; ``None`` when the column has no spread to measure against."""
    if values.size == 0:
        return None
    if outliers == "iqr":
        q1, q3 = np.percentile(values, [25, 75])
        if q3 <= q1:
            return None
        return [float(q1 - iqr_factor * (q3 - q1)), float(q3 + iqr_factor * (q3 - q1))]
    # z-score (also used to report outliers when no outlier handling is configured)
    mean, std = float(values.mean()), float(values.std())
    if std == 0:
        return None
    return [mean - zscore_threshold * std, mean + zscore_threshold * std]
