"""Means, medians and extremes of short Python lists, as numpy computes them, without numpy.

A detector pass runs right after a training epoch, when numpy's code is cold in the CPU caches:
measured in the Trainer's 5-epoch digits MLP fit (AMD Zen 5), the first ``np.median`` of a pass
took ~140 us against ~16 us for a second one, and the pass's handful of numpy calls on lists of
a few dozen values cost more than all of its arithmetic. The rules read short series (epochs,
sampled steps, features), so these helpers do the same arithmetic in plain Python for lists of
up to ``SHORT`` finite values and hand anything longer or non-finite to numpy itself.

The numbers are numpy's to the last bit: ``mean`` repeats numpy's pairwise summation (eight
partial sums per block of 128, halves above that), and ``median`` takes the middle value, or
the mean of the middle two, as ``np.median`` does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

# Longer lists go to numpy: its cold start is then a small part of the work.
SHORT = 1024
# numpy's pairwise summation: blocks of up to this many values are summed with 8 accumulators.
_BLOCK = 128


def _finite(values: Sequence[float]) -> bool:
    return all(map(math.isfinite, values))


def _no_nan(values: Sequence[float]) -> bool:
    return not any(v != v for v in values)  # NaN is the one value unequal to itself


def _pairwise_sum(values: Sequence[float], first: int, n: int) -> float:
    """numpy's ``pairwise_sum`` (numpy/_core/src/umath/loops_utils.h.src), step for step."""
    if n < 8:
        total = 0.0
        for i in range(first, first + n):
            total += values[i]
        return total
    if n <= _BLOCK:
        acc = [float(v) for v in values[first : first + 8]]
        i, end = 8, n - n % 8
        while i < end:
            base = first + i
            for j in range(8):
                acc[j] += values[base + j]
            i += 8
        total = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))
        for k in range(first + i, first + n):
            total += values[k]
        return total
    half = n // 2
    half -= half % 8
    return _pairwise_sum(values, first, half) + _pairwise_sum(values, first + half, n - half)


def _short_and_finite(values: Sequence[float]) -> bool:
    return len(values) <= SHORT and _finite(values)


def total(values: Sequence[float]) -> float:
    """``float(np.sum(values))``."""
    if _short_and_finite(values):
        return _pairwise_sum(values, 0, len(values))
    return float(np.sum(np.asarray(values, dtype=float)))


def mean(values: Sequence[float]) -> float:
    """``float(np.mean(values))`` (NaN for an empty list, as numpy, without its warning)."""
    if len(values) == 0:
        return math.nan
    if _short_and_finite(values):
        return _pairwise_sum(values, 0, len(values)) / len(values)
    return float(np.mean(np.asarray(values, dtype=float)))


def median(values: Sequence[float]) -> float:
    """``float(np.median(values))`` (NaN for an empty list)."""
    if len(values) == 0:
        return math.nan
    if not _short_and_finite(values):
        return float(np.median(np.asarray(values, dtype=float)))
    ordered = sorted(values)
    mid = len(ordered) // 2
    return float(ordered[mid]) if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def argmax(values: Sequence[float]) -> int:
    """``int(np.argmax(values))``: the first largest value's index (a NaN, if any, wins)."""
    if len(values) <= SHORT and _no_nan(values):
        return max(range(len(values)), key=values.__getitem__)
    return int(np.argmax(np.asarray(values, dtype=float)))


def argmin(values: Sequence[float]) -> int:
    """``int(np.argmin(values))``: the first smallest value's index (a NaN, if any, wins)."""
    if len(values) <= SHORT and _no_nan(values):
        return min(range(len(values)), key=values.__getitem__)
    return int(np.argmin(np.asarray(values, dtype=float)))
