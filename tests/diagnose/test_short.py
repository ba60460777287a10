"""The detectors' numpy-free arithmetic gives numpy's numbers to the last bit."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from tunelab.diagnose import _short as short
from tunelab.diagnose._signals import chunk_means, new_lows, smoothed


def _series(rng: random.Random, n: int) -> list[float]:
    values = [rng.lognormvariate(0, 3) * rng.choice((1, -1)) for _ in range(n)]
    return [round(v, 2) for v in values] if rng.random() < 0.3 else values


@pytest.mark.parametrize("seed", range(3))
def test_mean_median_and_extremes_are_numpys(seed):
    rng = random.Random(seed)
    for _ in range(300):
        values = _series(rng, rng.randint(1, short.SHORT + 60))  # both paths
        array = np.asarray(values)
        assert short.mean(values) == float(np.mean(array))
        assert short.total(values) == float(np.sum(array))
        assert short.median(values) == float(np.median(array))
        assert short.argmax(values) == int(np.argmax(array))
        assert short.argmin(values) == int(np.argmin(array))


def test_non_finite_values_behave_as_in_numpy():
    values = [1.0, math.nan, 3.0]
    assert math.isnan(short.mean(values)) and math.isnan(short.median(values))
    assert short.argmax(values) == 1 and short.argmin(values) == 1  # NaN wins, as in numpy
    assert short.argmax([-math.inf, 2.0, 2.0]) == 1  # the first of equal largest values
    assert short.mean([1.0, math.inf]) == math.inf
    assert math.isnan(short.mean([])) and math.isnan(short.median([]))


def test_signals_match_their_numpy_forms():
    rng = random.Random(7)
    for n in (1, 7, 20, 133, 400, short.SHORT + 5):
        values = [abs(v) for v in _series(rng, n)]
        array = np.asarray(values)
        w = max(1, n // 20)
        expected = np.median(array[: n // w * w].reshape(-1, w), axis=1).tolist()
        assert smoothed(values) == expected
        chunks = min(5, n)
        width = n // chunks
        means = array[n - width * chunks :].reshape(chunks, width).mean(axis=1).tolist()
        assert chunk_means(values, 5) == means
    # new_lows' exact p-value: numpy's vectorised recursion, element by element.
    values = [5.0, 4.0, 6.0, 3.0, 3.5, 2.0, 2.5, 1.0]
    counts = np.zeros(len(values))
    counts[0] = 1.0
    for i in range(1, len(values)):
        p = 1.0 / (i + 1)
        counts[1:] = counts[1:] * (1 - p) + counts[:-1] * p
        counts[0] *= 1 - p
    lows, p_value = new_lows(values, 1)
    assert lows == 4 and p_value == float(counts[4:].sum())
