"""Small, scale-free summaries of a training history that several detectors share.

Losses are compared with the run's own initial loss (``L0``), never with absolute values, so
the same rule holds for cross-entropy on 10 classes and MSE on unscaled targets.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from ..train import SickTrialPolicy
from ._record import GradSample, TrainingRecord
from ._short import SHORT, mean, median, total

_POLICY = SickTrialPolicy()


@dataclass
class Progress:
    """How far the training loss has come, as fractions of the initial loss."""

    initial: float
    recent: float
    best: float
    epochs: int

    @property
    def remaining(self) -> float:
        """Recent loss over initial loss (1.0: no progress; 0.0: solved)."""
        return self.recent / self.initial if self.initial > 0 else 1.0

    @property
    def gained(self) -> float:
        return 1.0 - self.remaining


def progress(record: TrainingRecord) -> Progress | None:
    """None until there is a finite initial and recent loss (cached per record state)."""
    return record.memo("progress", lambda: _progress(record))


def _progress(record: TrainingRecord) -> Progress | None:
    initial = record.initial_loss()
    recent = record.recent_loss()
    if initial is None or recent is None or not math.isfinite(initial) or not math.isfinite(recent):
        return None
    if record.finite_step_losses():
        best = min(smoothed_steps(record))
    else:
        losses = record.epoch_losses()
        best = min(smoothed(losses)) if losses else recent
    return Progress(initial, recent, best, len(record.all_epochs()))


def diverged(record: TrainingRecord) -> bool:
    """NaN/inf losses, or a recent loss 50% above the initial one: other judgements are moot.

    The 50% is the sick-trial policy's ``growth_warn``: the point the doctor calls it diverging.
    """
    return record.memo("diverged", lambda: _diverged(record))


def _diverged(record: TrainingRecord) -> bool:
    if record.first_nonfinite_step() is not None:
        return True
    # Both readings of the curve's end: the diverging-loss warning's (the smoothed curve's
    # last window, curve_ends) and the median of the last 20% of the steps (progress). Moot
    # only when the warning itself is given, so a run never falls between "diverged" and
    # "diverging" (a bouncing Huber/SGD run: 1.51x its start by the median, 1.33x by the
    # smoothed end, reported as neither); and not on the last window alone, which can hold a
    # single bounce of a loss that swings (read that way, the same case at two other seeds
    # became "diverged" and lost its oscillation finding). A run whose loss was thrown up in
    # its first steps (curve_ends then starts from the loss before the first update) can be
    # reported diverging without being moot here, since the median of its first steps holds
    # the blow-up: its swings and dead units are still judged (the zoo's SGD at lr 3 on a
    # Huber regression: thrown from 0.36 to 1.5-23 in steps 2-4, then swinging at ~0.7, is
    # both; read as moot, 8 of its 40 fresh-seed runs lost their oscillation finding).
    ends, p = curve_ends(record), progress(record)
    return (
        ends is not None
        and p is not None
        and ends.recent >= _POLICY.growth_warn * ends.initial
        and p.remaining >= _POLICY.growth_warn
        and not (ends.recent < _POLICY.growth_error * ends.initial and barely_moved(record))
    )


# The largest per-layer update/weight ratio of a step below which the steps are tiny: ~1e-3
# is the classic healthy value (Karpathy, "A Recipe for Training Neural Networks"; SageMaker's
# WeightUpdateRatio flags < 1e-8). The slow-convergence verdict's bar.
TINY_UPDATE = 1e-3


def barely_moved(record: TrainingRecord) -> bool:
    """The steps were tiny (median update ratio under ``TINY_UPDATE``, not zero) and the loss
    lies above its start by no more than its measurement noise (``rise_is_noise``): such steps
    cannot have moved the loss, so an apparent rise is the noise of where it was read."""
    update = update_scale(record)
    return update is not None and 0 < update < TINY_UPDATE and rise_is_noise(record)


def rise_is_noise(record: TrainingRecord) -> bool:
    """The recent loss lies above the initial one by no more than ``NOISE_Z`` standard errors
    of the difference of the two medians they are (``initial_loss``: of the first 5 step
    losses; ``recent_loss``: of the last 20%, at least 5). False without 10 step losses.

    A median of k batch losses has a standard error of about 1.2533 sigma / sqrt(k), sigma
    being the batch-to-batch spread of the loss (robust: MAD of consecutive differences /
    sqrt 2). On heavy-tailed batch losses five batches make a noisy start: a regression MLP
    whose steps were 2e-5 of its weights and whose epoch means fell from 1.094 to 1.093 read
    37% "above its start" (batches of 0.76-1.75; zoo seed 308), and one whose epoch means
    did not move read 1.5x, "diverging" (zoo seeds 129, 247).
    """
    return record.memo("rise_is_noise", lambda: _rise_is_noise(record))


def _rise_is_noise(record: TrainingRecord) -> bool:
    p = progress(record)
    losses = record.finite_step_losses()
    if p is None or len(losses) < 10:
        return False
    head, tail = min(5, len(losses)), max(5, int(len(losses) * 0.2))
    se = 1.2533 * step_spread(record) * math.sqrt(1 / head + 1 / tail)
    return p.recent - p.initial <= NOISE_Z * se


@dataclass
class CurveEnds:
    """The smoothed loss curve the sick-trial policy judges: its start, best and end."""

    initial: float
    best: float
    recent: float
    curve: list[float]


def curve_ends(record: TrainingRecord) -> CurveEnds | None:
    """The loss curve's ends as the diverging-loss verdict reads them (None: too short).

    The end is the last window of the smoothed curve (``smoothed``); ``diverged`` reads it
    too, so that it never calls a run diverged (other judgements moot) that the diverging-loss
    detector does not report.
    """
    return record.memo("curve_ends", lambda: _curve_ends(record))


def _curve_ends(record: TrainingRecord) -> CurveEnds | None:
    losses = record.step_losses or record.epoch_losses()
    curve = smoothed_steps(record) if record.step_losses else smoothed(losses)
    initial = record.initial_loss()
    if len(curve) < 4 or initial is None or initial <= 0:
        return None
    # Where the loss started is the loss before the first update (the first step's), unless
    # that batch merely read low: the median of the first steps guards against one odd batch.
    # But when the median already sits growth_warn (1.5x) above the first step, the updates
    # threw the loss up at once and the median holds the blow-up: judged from it, a run whose
    # loss never came back below its start reads as one that made progress (held-out SGD at
    # lr 8, fresh seed 384: 1.12 before the first update, 4.5-7.3 over the next four steps, the
    # last layer's units dead from epoch 2, then 1.7-1.8 to the end).
    first = record.step_losses[0] if record.step_losses else math.nan
    if math.isfinite(first) and first > 0 and initial >= _POLICY.growth_warn * first:
        initial = first
    return CurveEnds(initial, min(curve), curve[-1], curve)


def update_scale(record: TrainingRecord) -> float | None:
    """Median over sampled steps of the largest per-layer update/weight ratio (None: unknown)."""
    return record.memo("update_scale", lambda: _update_scale(record))


def _update_scale(record: TrainingRecord) -> float | None:
    kept = [
        (s.step, _resolved_update(s))
        for s in record.grad_samples
        if s.update_ratio and s.finite and all(math.isfinite(r) for r in s.update_ratio)
    ]
    if len(kept) < 2:
        return None
    # Each sample stands for the steps until the next one, so the median is over the run's
    # steps, not over the samples: the first steps are always sampled and the rest as the
    # doctor's cost budget allows, which a busy machine changes. Unweighted, a run whose rate
    # decays to nothing (ExponentialLR stepped per batch, set C seed 1) read "tiny steps" on
    # one run and "steps of a healthy size" on the next, when fewer late samples fitted.
    kept.sort()
    last = max(record.steps, kept[-1][0])
    weights = [max(1, b[0] - a[0]) for a, b in itertools.pairwise(kept)]
    weights.append(max(1, last + 1 - kept[-1][0]))
    return weighted_median([v for _, v in kept], weights)


# The relative change a float32 weight can show: an update below half its spacing rounds away.
_FLOAT32_RESOLUTION = 2.0**-24


def _resolved_update(sample: GradSample) -> float:
    """The sample's largest update/weight ratio; an update of exactly zero under a non-zero
    gradient was a step too small to change a float32 weight (a rate decayed to nothing:
    ExponentialLR(0.9) stepped per batch, set C seed 0, 0.9^130 of its rate by epoch 2), so
    it counts as that resolution, a tiny step, not as zero, which means no gradient (dead
    units)."""
    ratio = max(sample.update_ratio or [0.0])
    if ratio == 0.0 and max(sample.grad_rms, default=0.0) > 0.0:
        return _FLOAT32_RESOLUTION
    return ratio


def weighted_median(values: list[float], weights: list[float]) -> float:
    """The lower weighted median: the smallest value with at least half the weight at or
    below it (``values`` finite, ``weights`` positive)."""
    order = sorted(range(len(values)), key=values.__getitem__)
    half, below = 0.5 * sum(weights), 0.0
    for i in order:
        below += weights[i]
        if below >= half:
            return values[i]
    return values[order[-1]]


def step_spread(record: TrainingRecord) -> float:
    """The batch-to-batch spread of the finite step losses around their trend, robust: the MAD
    of consecutive differences / 0.6745 / sqrt 2 (derived once per pass)."""
    return record.memo(
        "step_spread",
        lambda: median_abs_diff(record.finite_step_losses()) / 0.6745 / math.sqrt(2),
    )


def median_abs_diff(values: list[float]) -> float:
    """``float(np.median(np.abs(np.diff(values))))``, the same number, in plain Python on the
    short series the detectors pass (see _short; long or non-finite ones go to numpy)."""
    return median([abs(b - a) for a, b in itertools.pairwise(values)])


def smoothed_steps(record: TrainingRecord) -> list[float]:
    """``smoothed`` of the step losses (a copy: derived once per pass)."""
    return list(record.memo("smoothed_steps", lambda: smoothed(record.step_losses)))


def smoothed(values: list[float], windows: int = 20) -> list[float]:
    """Medians of consecutive windows (about ``windows`` of them): noise-free trajectory."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return []
    w = max(1, len(finite) // windows)
    end = len(finite) // w * w
    if len(finite) > SHORT:  # numpy's cold start is a small part of a long series' work
        return np.median(np.asarray(finite[:end]).reshape(-1, w), axis=1).tolist()
    return [median(finite[i : i + w]) for i in range(0, end, w)]


def chunk_means(values: list[float], chunks: int) -> list[float]:
    """Means of ``chunks`` equal consecutive slices (fewer when there are fewer values)."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return []
    chunks = max(1, min(chunks, len(finite)))
    # Equal chunks (the first ``size % chunks`` values dropped).
    width = len(finite) // chunks
    start = len(finite) - width * chunks
    if len(finite) > SHORT:
        return np.asarray(finite[start:]).reshape(chunks, width).mean(axis=1).tolist()
    return [mean(finite[start + i * width : start + (i + 1) * width]) for i in range(chunks)]


def relative_improvements(losses: list[float], initial: float) -> list[float]:
    """Per-epoch drop of the loss as a share of the initial loss (positive = improving)."""
    if initial <= 0:
        return []
    return [(a - b) / initial for a, b in itertools.pairwise(losses)]


def metric_direction(record: TrainingRecord) -> str:
    """``max`` if the user's metric is higher-is-better, ``min`` if it is an error.

    ``auto`` mode reads it off the history: a metric that falls as the loss falls is an error
    metric. Without enough epochs, values inside [0, 1] are taken as scores (accuracy, R²).
    """
    mode = getattr(record, "metric_mode", "auto")
    if mode in ("max", "min"):
        return mode
    return record.memo("metric_direction", lambda: _metric_direction(record))


def _metric_direction(record: TrainingRecord) -> str:
    epochs = record.all_epochs()
    for metric, loss in (("train_metric", "loss"), ("val_metric", "val_loss")):
        pairs = [
            (getattr(e, metric), getattr(e, loss))
            for e in epochs
            if getattr(e, metric) is not None and getattr(e, loss) is not None
        ]
        pairs = [(m, v) for m, v in pairs if math.isfinite(m) and math.isfinite(v)]
        if len(pairs) >= 3:
            rho = _spearman([p[0] for p in pairs], [p[1] for p in pairs])
            if rho > 0.3:
                return "min"
            if rho < -0.3:
                return "max"
    values = record.series("val_metric") + record.series("train_metric")
    return "max" if all(0.0 <= v <= 1.0 for v in values) else "min"


def score_scale(record: TrainingRecord) -> float | None:
    """Divisor that puts a higher-is-better metric on [0, 1] (percentages: 100), else None."""
    return record.memo("score_scale", lambda: _score_scale(record))


def _score_scale(record: TrainingRecord) -> float | None:
    values = record.series("val_metric") + record.series("train_metric")
    if not values or metric_direction(record) != "max":
        return None
    top = max(values)
    if min(values) >= -1.0 and top <= 1.0:
        return 1.0
    if min(values) >= 0.0 and top <= 100.0:
        return 100.0
    return None


def _spearman(a: list[float], b: list[float]) -> float:
    ra = np.argsort(np.argsort(a)).astype(float)
    rb = np.argsort(np.argsort(b)).astype(float)
    if ra.std() == 0 or rb.std() == 0:
        return 0.0
    return float(np.corrcoef(ra, rb)[0, 1])


# ---- the noise of a measurement ---------------------------------------------------------------
# ../shared/DIAGNOSIS-HEURISTICS.md ("Noise of a measurement"): an accuracy p on n rows has a
# standard error of about sqrt(p(1-p)/n); a gap, plateau or zigzag smaller than a couple of
# standard errors is not evidence. NOISE_Z is that "couple".
NOISE_Z = 2.0


def binomial_se(p: float, n: int | None) -> float | None:
    """Standard error of a proportion ``p`` measured on ``n`` rows (None when n is unknown).

    ``p`` is kept away from 0 and 1 by half a row (a perfect score on 45 rows is not exact)."""
    if not n or n <= 0:
        return None
    p = min(max(p, 0.5 / n), 1 - 0.5 / n)
    return math.sqrt(p * (1 - p) / n)


def difference_noise(a: float, n_a: int | None, b: float, n_b: int | None) -> float | None:
    """``NOISE_Z`` standard errors of the difference of two scores, ``a`` on ``n_a`` rows and
    ``b`` on ``n_b`` (binomial, sqrt(se_a^2 + se_b^2)); None when either row count is
    unknown. Two scores differ beyond their noise when they are further apart than this."""
    se_a, se_b = binomial_se(a, n_a), binomial_se(b, n_b)
    if se_a is None or se_b is None:
        return None
    return NOISE_Z * math.hypot(se_a, se_b)


def expected_max_normal(k: int) -> float:
    """E[max of k independent standard normals]: how far the best of k noisy measurements of
    the same level lies above that level, in standard deviations (0 for k = 1; 0.56, 1.16,
    1.54 for k = 2, 5, 10). A "best so far" is such a maximum, so a fall from it is judged
    net of this selection bias (Tippett 1925; the integral E = k * int x phi(x) Phi(x)^(k-1)
    dx, evaluated by the trapezoid rule on [-8, 8])."""
    return _EXPECTED_MAX.get(k) or _EXPECTED_MAX.setdefault(k, _expected_max(k))


_EXPECTED_MAX: dict[int, float] = {}


def _expected_max(k: int) -> float:
    if k <= 1:
        return 0.0
    steps, low, high = 1600, -8.0, 8.0
    h = (high - low) / steps
    acc = 0.0
    for i in range(steps + 1):
        x = low + i * h
        phi = math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
        cdf = 0.5 * (1 + math.erf(x / math.sqrt(2)))
        weight = 0.5 if i in (0, steps) else 1.0
        acc += weight * x * k * phi * cdf ** (k - 1)
    return acc * h


def reaches_reference(record: TrainingRecord) -> bool:
    """The best validation score is at or above the quick baseline's, within ``NOISE_Z``
    standard errors of their difference on the validation rows (False when either is unknown):
    whatever happened on the way cost nothing measurable."""
    base = (record.baseline or {}).get("score")
    scale = score_scale(record)
    scores = record.series("val_metric")
    n = rows_behind(record, "val")
    if base is None or scale is None or not scores or not n:
        return False
    best, ref = max(scores) / scale, float(base)
    noise = difference_noise(best, n, ref, n)
    return noise is not None and best >= ref - noise


def rows_behind(record: TrainingRecord, name: str = "val") -> int | None:
    """Rows a ``val``/``train`` accuracy was measured on: given to ``end_epoch``, else read off
    the values themselves: an accuracy on n rows is a multiple of 1/n, so the smallest n that
    fits every value is a lower bound on the rows (a conservative, larger standard error)."""
    return record.memo(("rows_behind", name), lambda: _rows_behind(record, name))


def _rows_behind(record: TrainingRecord, name: str) -> int | None:
    attr = f"{name}_rows"
    given = [getattr(e, attr) for e in record.all_epochs() if getattr(e, attr)]
    if given:
        return int(given[-1])
    values = sorted({round(v, 7) for v in record.series(f"{name}_metric") if 0.0 < v < 1.0})
    found = None
    if values:
        ns = np.arange(2, 20001, dtype=np.float64)
        # A few values narrow the candidates in one pass; each candidate, smallest first, must
        # then fit every value: 60 training rows whose first eight distinct scores are all
        # multiples of 1/30 (0.5 ... 0.967) read as 30 rows until 0.983 = 59/60 is asked too,
        # which doubled the training score's error and hid a 0.119 train-val gap (zoo seed 331).
        counts = np.outer(np.asarray(values[:8]), ns)
        fits = np.all(np.abs(counts - np.round(counts)) < 2e-3, axis=0)
        every = np.asarray(values)
        for n in ns[np.flatnonzero(fits)]:
            scaled = every * n
            if np.all(np.abs(scaled - np.round(scaled)) < 2e-3):
                found = int(n)
                break
    return found


def mean_loss_se(record: TrainingRecord, rows: int | None, level: float) -> float | None:
    """Sampling error of a mean loss at ``level`` measured on ``rows`` rows (None: unknown).

    The doctor never sees per-row losses, but the training steps show their spread: a batch
    of ``b`` rows has a loss whose step-to-step standard deviation (around its trend, over the
    last third of the steps) is the per-row standard deviation over sqrt(b). As a share of the
    mean loss (the per-row coefficient of variation) it carries over to the validation loss at
    ``level``: SE = cv * level / sqrt(rows). The per-step spread is a plain standard deviation,
    not a robust one: a mean's error is driven by the rare large losses a skewed loss has.
    """
    if not rows:
        return None
    cv = record.memo("loss_cv", lambda: _loss_cv(record))
    return cv * level / math.sqrt(rows) if cv is not None else None


def _loss_cv(record: TrainingRecord) -> float | None:
    """``mean_loss_se``'s per-row coefficient of variation (None: unknown)."""
    batch = record.batches.rows / record.batches.batches if record.batches.batches else None
    if not batch or batch < 2:
        return None
    tail = [
        v for v in record.step_losses[-max(8, len(record.step_losses) // 3) :] if math.isfinite(v)
    ]
    level = mean(tail) if tail else math.nan
    if len(tail) < 8 or not level > 0:
        return None
    # Around the trend: residuals from a least-squares straight line through the tail.
    if len(tail) > SHORT:
        y = np.asarray(tail)
        x = np.arange(y.size)
        residuals = (y - np.polyval(np.polyfit(x, y, 1), x)).tolist()
    else:
        residuals = _line_residuals(tail)
    centre = mean(residuals)  # np.std(ddof=2)'s steps
    spread = math.sqrt(
        total([(r - centre) * (r - centre) for r in residuals]) / (len(residuals) - 2)
    )
    return spread * math.sqrt(batch) / level


def _line_residuals(y: list[float]) -> list[float]:
    """Residuals of ``y`` from its least-squares line over 0, 1, 2...: np.polyfit's line up to
    rounding, in plain Python (see _short on numpy's cold start)."""
    n = len(y)
    x_mean = (n - 1) / 2
    y_mean = mean(y)
    sxx = sum((i - x_mean) ** 2 for i in range(n))
    slope = sum((i - x_mean) * (v - y_mean) for i, v in enumerate(y)) / sxx
    return [v - (y_mean + slope * (i - x_mean)) for i, v in enumerate(y)]


def new_lows(values: list[float], start: int) -> tuple[int, float]:
    """Foster and Stuart's record test for a falling trend (Biometrika 1954), exact.

    Counts the values from index ``start`` on that lie below every earlier value (new lows)
    and returns the count with its one-sided p-value for a series without a trend: for
    exchangeable values the i-th (1-based) is a new low with probability 1/i, independently of
    the others (Renyi 1962), so the count is a sum of independent Bernoulli(1/i) variables; its
    exact distribution is built up one value at a time.
    """
    first = max(1, start)
    lows = sum(values[i] < min(values[:i]) for i in range(first, len(values)))
    # The same operations, element by element, as numpy's vectorised update: the same numbers.
    counts = [0.0] * (len(values) - first + 1)
    counts[0] = 1.0
    for i in range(first, len(values)):
        p = 1.0 / (i + 1)
        counts[1:] = [a * (1 - p) + b * p for a, b in zip(counts[1:], counts[:-1], strict=True)]
        counts[0] *= 1 - p
    return lows, total(counts[lows:])
