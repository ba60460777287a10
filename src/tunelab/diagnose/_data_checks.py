"""Checks on the data before training: NaN/inf, scaling, constant columns, class balance, leakage.

``check_data`` runs every registered :class:`DataCheck` on numpy-like arrays. The scale,
constant-column and class-balance rules are plain functions of summary statistics, so the doctor
applies the same rules to the input batches it samples inside a training loop.
"""

from __future__ import annotations

import math
import re
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..errors import DataError
from . import _short as short
from ._finding import Finding
from ._remedies import RemedyContext, prescribe

_CHECKS: dict[str, type[DataCheck]] = {}

# Scale rules. Standardised or min-max scaled features have RMS ~0.3-1. Raw 8-bit pixels (RMS
# ~100) or one feature 100x larger than the typical one (wine's proline, breast_cancer's area)
# slow or derail gradient descent; the rule of thumb (LeCun et al., "Efficient BackProp", 1998)
# is zero mean and similar variances. Raw digits (0..16, RMS ~7.5) trains fine: info only.
SCALE_WARN_RMS = 20.0
SCALE_WARN_RATIO = 50.0
SCALE_INFO_RMS = 5.0
SCALE_INFO_RATIO = 10.0
# SageMaker Debugger ClassImbalance: threshold_imbalance = 10 (largest / smallest class count).
IMBALANCE_WARN = 10.0
IMBALANCE_INFO = 3.0
# Leakage: share of validation rows that duplicate a training row, beyond the share of training
# rows that duplicate another training row (data with a discrete support repeats naturally).
LEAK_WARN = 0.05
LEAK_ERROR = 0.5
NEAR_FRACTION = 0.1  # "near" = closer than 10% of the typical train-to-train neighbour distance
# Target leakage: one column alone predicts the validation labels (nearest training value) at
# least this often, and all the other columns together at least LABEL_COLUMN_MARGIN less.
LABEL_COLUMN_ACCURACY = 0.99
LABEL_COLUMN_MARGIN = 0.05
_LABEL_ROWS = 4000
_LABEL_MIN_ROWS = 50
_LABEL_MAX_COLUMNS = 256
_NN_QUERIES = 500
_NN_REFERENCE = 10000
_NN_DIMS = 64


@dataclass
class DataView:
    """The arrays under check, as float64 2-D features (images: one column per pixel)."""

    X_train: np.ndarray
    y_train: np.ndarray | None
    splits: dict[str, np.ndarray]  # "val"/"test" -> 2-D features
    y_splits: dict[str, np.ndarray]
    task: str
    channels: int | None  # image data: channels per row (pixels are channel-major)
    finite: bool  # X_train holds no NaN/inf (fast paths)

    def train_columns(self) -> np.ndarray:
        """X_train with NaN/inf as NaN (a copy only when there are any)."""
        X = self.X_train
        return X if self.finite else np.where(np.isfinite(X), X, np.nan)

    def reduce(self, X: np.ndarray, how: str, axes: tuple[int, ...]) -> np.ndarray:
        """``mean``/``max``/``min`` over ``axes``, NaN-aware only when NaN are present."""
        if self.finite:
            fn = {"mean": np.mean, "max": np.max, "min": np.min}[how]
        else:
            fn = {"mean": np.nanmean, "max": np.nanmax, "min": np.nanmin}[how]
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
            return fn(X, axis=axes)


class DataCheck(ABC):
    """One check over the data; returns findings without remedies."""

    name: ClassVar[str] = ""

    @abstractmethod
    def check(self, data: DataView) -> list[Finding]:
        """The findings this check sees in ``data`` (possibly none)."""


def register_data_check(name: str) -> Callable[[type[DataCheck]], type[DataCheck]]:
    def decorate(cls: type[DataCheck]) -> type[DataCheck]:
        cls.name = name
        _CHECKS[name] = cls
        return cls

    return decorate


def data_check_names() -> list[str]:
    return list(_CHECKS)


def check_data(
    X_train: Any,
    y_train: Any,
    X_val: Any = None,
    y_val: Any = None,
    *,
    task: str = "classification",
    X_test: Any = None,
    y_test: Any = None,
    context: RemedyContext | None = None,
) -> list[Finding]:
    """Every registered data check on the arrays, with prescriptions.

    Arrays may be numpy, torch or pandas; ``X`` is ``(n, features)`` or ``(n, C, H, W)``.
    ``context`` lets the prescriptions start from a run's config (default: none known).
    """
    if task not in ("classification", "regression"):
        raise DataError(f"data error: task must be classification or regression, got {task!r}")
    xt = _as_2d(X_train, "X_train")
    splits, y_splits = {}, {}
    for name, X, y in (("val", X_val, y_val), ("test", X_test, y_test)):
        if X is None:
            continue
        arr = _as_2d(X, f"X_{name}")
        if arr.shape[1] != xt.shape[1]:
            raise DataError(
                f"data error: X_{name} has {arr.shape[1]} features per row, X_train has "
                f"{xt.shape[1]}"
            )
        splits[name] = arr
        if y is not None:
            y_splits[name] = _as_labels(y, len(arr), f"y_{name}")
    yt = _as_labels(y_train, len(xt), "y_train") if y_train is not None else None
    shape = np.shape(_to_numpy(X_train))
    # (n, C, H, W) images: scale is judged per channel, constancy per pixel.
    channels = int(shape[1]) if len(shape) == 4 else None
    view = DataView(xt, yt, splits, y_splits, task, channels, bool(np.isfinite(xt).all()))
    found: list[Finding] = []
    for cls in _CHECKS.values():
        found.extend(cls().check(view))
    ctx = context if context is not None else RemedyContext()
    return [prescribe(f, ctx) for f in found]


# ---- rules shared with the in-loop batch checks ----------------------------------------------


def scale_finding(rms: Sequence[float], constant: Sequence[bool]) -> Finding | None:
    """``unscaled_inputs`` from per-feature root-mean-square values (constant columns ignored)."""
    # Plain Python (see _short): the doctor's detector pass calls this right after an epoch.
    values = [r for r, c in zip(rms, constant, strict=True) if not c and math.isfinite(r)]
    if not values:
        return None
    median = short.median(values)
    biggest = float(max(values))
    ratio = biggest / median if median > 0 else math.inf
    figures = {
        "median_rms": median,
        "max_rms": biggest,
        "max_over_median": ratio,
        "features": len(values),
        "largest_feature": short.argmax(
            [-math.inf if c else r for r, c in zip(rms, constant, strict=True)]
        ),
    }
    if median > SCALE_WARN_RMS or ratio > SCALE_WARN_RATIO:
        severity = "warning"
    elif median > SCALE_INFO_RMS or ratio > SCALE_INFO_RATIO:
        severity = "info"
    else:
        return None
    return Finding(
        "unscaled_inputs",
        severity,
        f"input features are not standardised: typical magnitude (median RMS) {median:.3g}, "
        f"largest {biggest:.3g} ({ratio:.3g}x the typical one, feature "
        f"{figures['largest_feature']})",
        figures,
    )


def constant_finding(constant: Sequence[bool], *, rows: int) -> Finding | None:
    """``constant_features``: info for some constant columns, error when all are constant."""
    columns = [i for i, c in enumerate(constant) if c]  # plain Python, as in scale_finding
    n, size = len(columns), len(constant)
    if n == 0 or rows < 2:
        return None
    every = n == size
    shown = ", ".join(str(i) for i in columns[:10]) + (" ..." if n > 10 else "")
    return Finding(
        "constant_features",
        "error" if every else "info",
        (
            f"all {n} input features are constant over {rows} rows"
            if every
            else f"{n} of {size} input features never vary over {rows} rows (columns {shown})"
        ),
        {
            "constant": n,
            "features": size,
            "columns": columns[:50],
        },
    )


def imbalance_finding(counts: dict[Any, int], *, sampled: bool = False) -> Finding | None:
    """``class_imbalance`` from label counts (classes that appear at least once).

    ``sampled``: the counts come from a sample of the batches (the doctor in a loop), so each
    is a Poisson count with a standard error of its square root; the ratio judged is then the
    largest count over the smallest one 2 SE up (the small count carries nearly all of the
    ratio's uncertainty), so that the first sampled rows of a balanced 10-class set (a class
    seen once, another 12 times) are not called imbalanced by chance."""
    present = {k: v for k, v in counts.items() if v > 0}
    if len(present) < 2:
        return None
    big = max(present, key=present.get)
    small = min(present, key=present.get)
    ratio = present[big] / present[small]
    if sampled:
        z = 2.0  # NOISE_Z of _signals: the same 2-SE rule as the other noisy comparisons
        judged = present[big] / (present[small] + z * math.sqrt(present[small]))
    else:
        judged = ratio
    if judged < IMBALANCE_INFO:
        return None
    total = sum(present.values())
    return Finding(
        "class_imbalance",
        "warning" if judged >= IMBALANCE_WARN else "info",
        f"class {big} has {present[big]} rows and class {small} only {present[small]} "
        f"({ratio:.1f}x; {present[small] / total:.1%} of {total} rows)",
        {"ratio": ratio, "largest": big, "smallest": small, "counts": present},
    )


def name_classes(f: Finding, names: list[str]) -> None:
    """``class 3`` -> ``class 'cat'``: the labels the user knows (``bundle.classes``), not the
    indices the model sees."""

    def label(index: Any) -> str:
        try:
            i = int(index)
        except (TypeError, ValueError):
            return str(index)
        return repr(names[i]) if 0 <= i < len(names) else str(index)

    fig = f.figures
    for key in ("largest", "smallest"):
        if key in fig:
            fig[f"{key}_label"] = label(fig[key])
    if "missing_in_train" in fig:
        fig["missing_in_train_labels"] = [label(i) for i in fig["missing_in_train"]]
        f.evidence = re.sub(
            r"classes \[[^\]]*\]",
            f"classes [{', '.join(fig['missing_in_train_labels'])}]",
            f.evidence,
        )
    for key in ("largest", "smallest"):
        if key in fig:
            f.evidence = re.sub(rf"class {fig[key]}\b", f"class {fig[key + '_label']}", f.evidence)


# ---- the checks ---------------------------------------------------------------------------------


@register_data_check("nan_or_inf")
class NanOrInf(DataCheck):
    def check(self, data: DataView) -> list[Finding]:
        parts = {"X_train": data.X_train, **{f"X_{k}": v for k, v in data.splits.items()}}
        if data.y_train is not None:
            parts["y_train"] = data.y_train.reshape(len(data.y_train), -1)
        for k, v in data.y_splits.items():
            parts[f"y_{k}"] = v.reshape(len(v), -1)
        bad = {}
        columns: set[int] = set()
        for name, arr in parts.items():
            if (name == "X_train" and data.finite) or np.isfinite(arr).all():
                continue
            mask = ~np.isfinite(arr)
            if mask.any():
                bad[name] = int(mask.sum())
                if name.startswith("X"):
                    columns.update(np.flatnonzero(mask.any(axis=0))[:20].tolist())
        if not bad:
            return []
        where = ", ".join(f"{n} values in {k}" for k, n in bad.items())
        cols = f" (feature columns {sorted(columns)[:10]})" if columns else ""
        return [
            Finding(
                "nan_or_inf_data",
                "error",
                f"the data holds NaN/inf: {where}{cols}",
                {"counts": bad, "columns": sorted(columns)},
            )
        ]


@register_data_check("scale")
class Scale(DataCheck):
    def check(self, data: DataView) -> list[Finding]:
        X = data.train_columns()
        if data.channels is not None:  # (n, C*H*W) -> per channel, without a copy
            X = X.reshape(len(X), data.channels, -1)
            axes: tuple[int, ...] = (0, 2)
        else:
            axes = (0,)
        rms = np.sqrt(data.reduce(np.square(X, dtype=np.float64), "mean", axes))
        constant = ~(data.reduce(X, "max", axes) > data.reduce(X, "min", axes))
        found = scale_finding(rms.tolist(), constant.tolist())
        return [found] if found else []


@register_data_check("constant")
class Constant(DataCheck):
    def check(self, data: DataView) -> list[Finding]:
        X = data.train_columns()
        constant = ~(data.reduce(X, "max", (0,)) > data.reduce(X, "min", (0,)))
        found = constant_finding(constant.tolist(), rows=len(X))
        return [found] if found else []


@register_data_check("class_balance")
class ClassBalance(DataCheck):
    def check(self, data: DataView) -> list[Finding]:
        if data.task != "classification" or data.y_train is None:
            return []
        y = _flat_labels(data.y_train)
        y = y[np.isfinite(y)]
        labels, counts = np.unique(y, return_counts=True)
        found = []
        f = imbalance_finding({_label(v): int(c) for v, c in zip(labels, counts, strict=True)})
        if f is not None:
            found.append(f)
        missing = set()
        for yv in data.y_splits.values():
            yv = _flat_labels(yv)
            missing |= set(np.unique(yv[np.isfinite(yv)]).tolist()) - set(labels.tolist())
        if missing:
            shown = sorted(_label(v) for v in missing)[:10]
            found.append(
                Finding(
                    "class_imbalance",
                    "warning",
                    f"classes {shown} appear in validation/test but never in training",
                    {"missing_in_train": shown},
                )
            )
        return found


@register_data_check("leakage")
class Leakage(DataCheck):
    """Exact duplicates (hashes of rounded rows, over all rows) and near duplicates (nearest
    neighbour distance on a sample, after standardising and a random projection)."""

    def check(self, data: DataView) -> list[Finding]:
        found = []
        for name, X in data.splits.items():
            f = _leakage(data.X_train, X, name)
            if f is not None:
                found.append(f)
        return found


@register_data_check("label_column")
class LabelColumn(DataCheck):
    """A column that gives the label away: target leakage (Kaufman et al., "Leakage in data
    mining", 2012: a feature that carries the target, such as a code derived from it or a
    field filled in only after the outcome; deepchecks' feature-label correlation check flags
    the same).

    Each column alone predicts each validation row's label as that of the training row with
    the nearest value. A column right on at least ``LABEL_COLUMN_ACCURACY`` of the validation
    rows, while every other column together (nearest training row, standardised) is right on
    clearly fewer (``LABEL_COLUMN_MARGIN`` and two standard errors of the difference), is what
    no measured feature does: on easy data the other columns separate the classes as well.
    Classification on tables only (images: no single pixel); sampled to ``_LABEL_ROWS`` rows.
    Session 18's held-out set D: a "segment code" built as the class plus a little noise went
    unreported (the run scored 1.000 on validation, as the quick baseline did).
    """

    def check(self, data: DataView) -> list[Finding]:
        if data.task != "classification" or data.channels is not None or not data.finite:
            return []
        y, y_val, X_val = data.y_train, data.y_splits.get("val"), data.splits.get("val")
        if y is None or y_val is None or X_val is None or not np.isfinite(X_val).all():
            return []
        columns = data.X_train.shape[1]
        if not 2 <= columns <= _LABEL_MAX_COLUMNS:
            return []
        if min(len(y), len(y_val)) < _LABEL_MIN_ROWS:
            return []
        rng = np.random.default_rng(0)
        X, y = _sample_rows(data.X_train, _flat_labels(y), rng)
        Xv, yv = _sample_rows(X_val, _flat_labels(y_val), rng)
        single = [_one_column_accuracy(X[:, j], y, Xv[:, j], yv) for j in range(columns)]
        best = int(np.argmax(single))
        accuracy = single[best]
        if accuracy < LABEL_COLUMN_ACCURACY:
            return []
        others = [j for j in range(columns) if j != best]
        rest = _nearest_row_accuracy(X[:, others], y, Xv[:, others], yv)
        n = len(yv)
        noise = 2 * math.sqrt((accuracy * (1 - accuracy) + rest * (1 - rest)) / n)
        if accuracy - rest < max(LABEL_COLUMN_MARGIN, noise):
            return []
        return [
            Finding(
                "data_leakage",
                "warning",
                f"column {best} alone predicts {accuracy:.1%} of {n} validation labels (the "
                f"label of the nearest training value) while all {len(others)} other columns "
                f"together predict {rest:.1%}: a column that gives the label away (a code "
                "derived from the label, or a field filled in only after the outcome) makes "
                "every score optimistic",
                {
                    "label_column": best,
                    "column_accuracy": accuracy,
                    "other_columns_accuracy": rest,
                    "rows": n,
                },
            )
        ]


def _flat_labels(y: np.ndarray) -> np.ndarray:
    """1-D labels: one-hot rows become class indices."""
    return y.argmax(axis=1) if y.ndim > 1 and y.shape[1] > 1 else y.reshape(-1)


def _sample_rows(
    X: np.ndarray, y: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    if len(X) <= _LABEL_ROWS:
        return X, y
    rows = np.sort(rng.choice(len(X), _LABEL_ROWS, replace=False))
    return X[rows], y[rows]


def _one_column_accuracy(
    column: np.ndarray, y: np.ndarray, column_val: np.ndarray, y_val: np.ndarray
) -> float:
    """Share of validation rows whose label is that of the training row nearest in value."""
    order = np.argsort(column, kind="stable")
    values, labels = column[order], y[order]
    pos = np.searchsorted(values, column_val)
    left = np.clip(pos - 1, 0, len(values) - 1)
    right = np.clip(pos, 0, len(values) - 1)
    nearer_left = np.abs(column_val - values[left]) <= np.abs(values[right] - column_val)
    return float(np.mean(labels[np.where(nearer_left, left, right)] == y_val))


def _nearest_row_accuracy(
    X: np.ndarray, y: np.ndarray, X_val: np.ndarray, y_val: np.ndarray
) -> float:
    """Share of validation rows whose label is that of the nearest (standardised) training row."""
    mean, std = X.mean(axis=0), X.std(axis=0)
    keep = std > 0
    if not keep.any():
        return float(np.mean(y_val == np.bincount(y.astype(np.int64)).argmax()))
    _, nearest = _nearest(
        (X_val[:, keep] - mean[keep]) / std[keep], (X[:, keep] - mean[keep]) / std[keep]
    )
    return float(np.mean(y[nearest] == y_val))


def _leakage(X_train: np.ndarray, X_other: np.ndarray, split: str) -> Finding | None:
    if len(X_train) < 2 or len(X_other) == 0:
        return None
    mean, std = _mean_std(X_train)
    keep = np.isfinite(std) & (std > 0)
    if not keep.any():
        return None
    # Exact: hash every row (float32 bytes; NaN rows hash alike, which is what we want).
    train_hash = _row_hashes(X_train)
    other_hash = _row_hashes(X_other)
    uniq, first, counts = np.unique(train_hash, return_index=True, return_counts=True)
    exact_other = float(np.isin(other_hash, uniq).mean())
    exact_train = float(np.isin(train_hash, uniq[counts > 1]).mean())
    # Training rows that repeat each other excuse the same rate across the split only when the
    # columns are coarse enough to repeat by chance (a grid, codes, rounded units). Copies of
    # rows no column of which repeats (oversampling or duplicated records before the split)
    # are the fault itself: the reference is then the chance rate, and the neighbour distances
    # below are taken between distinct training rows.
    chance = _chance_repeat_share(X_train[np.sort(first)], len(X_train)) if exact_train else 0.0
    copied = exact_train >= 0.01 and exact_train > 3 * chance + 0.01
    reference = X_train[np.sort(first)] if copied else X_train
    # Near: nearest training neighbour of sampled rows (standardised, randomly projected to
    # at most _NN_DIMS dimensions), against the same distance within the training set.
    rng = np.random.default_rng(0)
    project = _projection(mean, std, keep, rng)
    ref_rows = rng.choice(len(reference), min(_NN_REFERENCE, len(reference)), replace=False)
    A_ref = project(reference[np.sort(ref_rows)])
    q_rows = rng.choice(len(X_other), min(_NN_QUERIES, len(X_other)), replace=False)
    idx_train = rng.choice(len(A_ref), min(_NN_QUERIES, len(A_ref)), replace=False)
    d_other, _ = _nearest(project(X_other[np.sort(q_rows)]), A_ref)
    d_train, _ = _nearest(A_ref[idx_train], A_ref, exclude=idx_train)
    typical = float(np.median(d_train))
    tau = NEAR_FRACTION * typical
    near_other = float(np.mean(d_other <= tau)) if tau > 0 else exact_other
    near_train = float(np.mean(d_train <= tau)) if tau > 0 else exact_train
    rate = max(exact_other, near_other)
    base = max(min(exact_train, chance) if copied else exact_train, near_train)
    figures = {
        "split": split,
        "exact_share": exact_other,
        "near_share": near_other,
        "train_exact_share": exact_train,
        "train_near_share": near_train,
        "train_chance_repeat_share": chance,
        "train_rows_copied": copied,
        "typical_neighbour_distance": typical,
        "rows": len(X_other),
    }
    excess = rate - 3 * base
    if rate < LEAK_WARN or excess < 0.02:
        if rate > 0 and exact_other > 0:
            return Finding(
                "data_leakage",
                "info",
                f"{exact_other:.1%} of {split} rows also occur in training, about as often as "
                f"training rows repeat each other ({exact_train:.1%}): natural duplicates",
                figures,
            )
        return None
    if copied:
        why = (
            f"{exact_train:.1%} of training rows are exact copies of another although their "
            f"columns would repeat by chance for at most {chance:.1%}: rows were copied "
            f"(oversampled or duplicated) before the split, so copies fall on both sides"
        )
    else:
        why = f"only {base:.1%} of training rows repeat each other"
    return Finding(
        "data_leakage",
        "error" if rate >= LEAK_ERROR else "warning",
        f"{rate:.1%} of {split} rows duplicate a training row ({exact_other:.1%} exact, "
        f"{near_other:.1%} within {tau:.2g} std units) while {why}: {split} scores will be "
        "optimistic",
        figures,
    )


# Rows sampled to estimate how often columns repeat by chance (the estimate needs few).
_CHANCE_ROWS = 20000


def _chance_repeat_share(distinct: np.ndarray, rows: int) -> float:
    """An upper bound on the share of ``rows`` training rows that would have an exact twin by
    chance, from the distinct rows' columns.

    Two distinct rows can only be equal where every column is, so the chance that a pair of
    them matches is at most the least repetitive column's chance that a pair shares a value,
    sum k(k-1) / (m(m-1)) over its value counts k among m rows. Whatever the columns'
    dependence, a row then has a twin among the others with probability at most (rows - 1)
    times that (a union bound). A column of measurements with many distinct values makes it
    near zero; a grid or a set of codes makes it large (iris, measured to 0.1 cm: above 1).
    """
    m = len(distinct)
    if m < 2:
        return 1.0
    if m > _CHANCE_ROWS:
        pick = np.random.default_rng(1).choice(m, _CHANCE_ROWS, replace=False)
        distinct, m = distinct[np.sort(pick)], _CHANCE_ROWS
    least = 1.0
    for column in np.asarray(distinct, dtype=np.float32).T:
        _, k = np.unique(column, return_counts=True)
        k = k.astype(np.float64)
        least = min(least, float((k * (k - 1)).sum()) / (m * (m - 1)))
        if least == 0.0:
            break
    return min(1.0, (rows - 1) * least)


def _mean_std(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if np.isfinite(X).all():
        return X.mean(axis=0, dtype=np.float64), X.std(axis=0, dtype=np.float64)
    clean = np.where(np.isfinite(X), X, np.nan)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
        return np.nanmean(clean, axis=0, dtype=np.float64), np.nanstd(clean, axis=0)


def _projection(mean: np.ndarray, std: np.ndarray, keep: np.ndarray, rng: np.random.Generator):
    """Rows -> standardised rows of the non-constant features, projected when there are many."""
    scale = np.where(keep, 1.0 / np.where(keep, std, 1.0), 0.0)
    dims = int(keep.sum())
    if dims <= _NN_DIMS:
        cols = np.flatnonzero(keep)

        def standardise(X: np.ndarray) -> np.ndarray:
            return np.nan_to_num((X[:, cols] - mean[cols]) * scale[cols])

        return standardise
    # Johnson-Lindenstrauss: distances survive a Gaussian projection to 64 dims within ~15%.
    proj = rng.standard_normal((len(mean), _NN_DIMS)) / math.sqrt(_NN_DIMS) * scale[:, None]
    offset = (np.nan_to_num(mean) @ proj).astype(np.float32)
    proj = proj.astype(np.float32)

    def projected(X: np.ndarray) -> np.ndarray:
        X = X.astype(np.float32, copy=False)
        finite = np.isfinite(X)
        if not finite.all():
            X = np.where(finite, X, np.float32(0.0))
        return X @ proj - offset

    return projected


def _row_hashes(X: np.ndarray) -> np.ndarray:
    """One hash per row of its float32 values (exact duplicates collide, others do not)."""
    rows = np.ascontiguousarray(X.astype(np.float32) + np.float32(0.0))  # -0.0 == 0.0
    return np.fromiter((hash(row.tobytes()) for row in rows), dtype=np.int64, count=len(X))


def _nearest(
    Q: np.ndarray, R: np.ndarray, exclude: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean distance from each row of Q to its nearest row of R, and that row's index
    (chunked, via torch); ``exclude[i]``: a row of R that row i of Q may not pick."""
    import torch

    q = torch.as_tensor(Q, dtype=torch.float32)
    r = torch.as_tensor(R, dtype=torch.float32)
    values, indices = [], []
    chunk = max(1, 2_000_000 // max(len(R), 1))
    for start in range(0, len(q), chunk):
        d = torch.cdist(q[start : start + chunk], r)
        if exclude is not None:
            rows = torch.arange(d.shape[0])
            d[rows, torch.as_tensor(exclude[start : start + chunk])] = math.inf
        nearest = d.min(dim=1)
        values.append(nearest.values)
        indices.append(nearest.indices)
    return torch.cat(values).numpy().astype(np.float64), torch.cat(indices).numpy()


# ---- conversion -------------------------------------------------------------------------------


def _to_numpy(a: Any) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    elif hasattr(a, "to_numpy"):
        a = a.to_numpy()
    return np.asarray(a)


def _as_2d(X: Any, name: str) -> np.ndarray:
    arr = _to_numpy(X)
    if arr.dtype == object or (not np.issubdtype(arr.dtype, np.number) and arr.dtype != bool):
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError):
            raise DataError(
                f"data error: {name} must be numeric, got dtype {arr.dtype}; encode text and "
                "categories first"
            ) from None
    # float32 stays float32 (images are large); everything else becomes float64.
    if arr.dtype != np.float32:
        arr = arr.astype(np.float64, copy=False)
    if arr.ndim == 0:
        raise DataError(f"data error: {name} must be an array of rows, got a scalar")
    return arr.reshape(len(arr), -1) if arr.ndim != 2 else arr


def _as_labels(y: Any, rows: int, name: str) -> np.ndarray:
    arr = _to_numpy(y)
    if len(arr) != rows:
        raise DataError(f"data error: {name} has {len(arr)} rows but its X has {rows}")
    try:
        return arr.astype(np.float64)
    except (TypeError, ValueError):
        # String labels: map to codes (only balance is judged on them).
        _, codes = np.unique(arr.astype(str), return_inverse=True)
        return codes.astype(np.float64)


def _label(value: Any) -> Any:
    value = float(value)
    return int(value) if value.is_integer() else value
