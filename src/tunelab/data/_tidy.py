"""Cleaning that needs no statistics: labels, dtypes, missing-value rows, duplicates.

These steps look at one row or one value at a time, so doing them before the split leaks nothing
(removing duplicate rows first is what keeps the same row out of both train and test). Steps that
learn from the data — filling values, outlier bounds, categories, scaling — are fitted later, on
the training split only, by ``Preprocessing``. Every row removed here becomes a
:class:`CleaningAction`.

``tidy_table`` runs its steps in order — subsample, drop unlabelled rows, encode labels, convert
columns to their kinds, check missing values, drop rows with missing values (if asked),
duplicates — each a small function below; ``tidy_images`` does the image equivalent.
"""

from __future__ import annotations

import abc
import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..config import CleanConfig, DataConfig
from ._columns import (
    NON_FINITE_TEXT,
    NUMERIC_KINDS,
    Kind,
    category_strings,
    infer_kind,
    is_missing,
    non_finite,
    non_finite_values,
    parse_numeric,
)
from ._labels import MAX_AUTO_CLASSES, encode_labels, names_list
from ._profile import CleaningAction
from ._raw import RawImages, RawTable, data_error, where

__all__ = ["MAX_AUTO_CLASSES", "Tidy", "TidyImages", "TidyTable", "tidy_images", "tidy_table"]


@dataclass
class Tidy(abc.ABC):
    """Data after the stateless steps; ``positions`` index into it for the splits."""

    origin: str
    y: np.ndarray
    task: str
    classes: list[str]
    label_name: str
    rows_loaded: int
    duplicate_rows: int = 0
    row_hash: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    actions: list[CleaningAction] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    line_offset: int | None = None
    source_index: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.y)

    @abc.abstractmethod
    def rows(self, positions: np.ndarray) -> Any:
        """The features of the rows at ``positions``."""

    def keep_rows(self, keep: np.ndarray) -> None:
        """Keep only the rows where the boolean mask ``keep`` is true (features, labels and
        the per-row bookkeeping together)."""
        self.y = self.y[keep]
        self.row_hash = self.row_hash[keep]
        self.source_index = self.source_index[keep]


@dataclass
class TidyTable(Tidy):
    """Converted feature columns: numeric kinds as float64 with NaN, categories as strings.

    ``missing`` counts the values missing per column (empty, NaN, None, and words a declared
    float/int column turned missing); ``non_finite`` the inf/-inf/beyond-float32 values, which
    are NaN in ``frame`` too (filled like missing values) but reported as their own thing.
    """

    frame: pd.DataFrame = field(default_factory=pd.DataFrame)
    kinds: dict[str, Kind] = field(default_factory=dict)
    coerce: dict[str, bool] = field(default_factory=dict)
    missing: dict[str, int] = field(default_factory=dict)
    non_finite: dict[str, int] = field(default_factory=dict)

    def rows(self, positions: np.ndarray) -> pd.DataFrame:
        return self.frame.iloc[positions]

    def keep_rows(self, keep: np.ndarray) -> None:
        super().keep_rows(keep)
        self.frame = self.frame[keep]


@dataclass
class TidyImages(Tidy):
    """Images ``(n, C, H, W)`` as loaded (uint8 or float32)."""

    images: np.ndarray = field(default_factory=lambda: np.zeros((0, 1, 1, 1), np.uint8))
    items: list[str] | None = None
    mode: str | None = None
    resize_to: tuple[int, int] | None = None

    def rows(self, positions: np.ndarray) -> np.ndarray:
        return self.images[positions]

    def keep_rows(self, keep: np.ndarray) -> None:
        super().keep_rows(keep)
        self.images = self.images[keep]
        if self.items:
            self.items = [n for n, k in zip(self.items, keep, strict=True) if k]


# ---- tables ----------------------------------------------------------------------------------


def tidy_table(raw: RawTable, cfg: DataConfig, *, seed: int) -> TidyTable:
    """The stateless cleaning of a table, step by step; every removal is a cleaning action."""
    actions: list[CleaningAction] = []
    frame, labels = _subsample_table(raw, cfg, seed, actions)
    frame, labels = _drop_unlabelled(raw, frame, labels, actions)
    y, task, classes = encode_labels(labels, cfg=cfg, raw=raw, index=frame.index)
    frame, kinds, coerce, bad_numbers = _convert_columns(raw, frame, cfg.clean, actions)
    missing = _check_missing(raw, frame, cfg.clean, bad_numbers)
    frame, y = _drop_missing_rows(frame, y, missing, cfg.clean, actions)
    if len(frame) == 0:
        raise data_error(raw.origin, "no rows left after cleaning")
    tidied = TidyTable(
        origin=raw.origin,
        y=y,
        task=task,
        classes=classes,
        label_name=raw.label_name,
        rows_loaded=len(raw.frame),
        actions=actions,
        notes=list(raw.notes),
        line_offset=raw.line_offset,
        frame=frame,
        kinds=kinds,
        coerce=coerce,
        missing={c: n - bad_numbers.get(c, 0) for c, n in missing.items()},
        non_finite={c: n for c, n in bad_numbers.items() if n},
        source_index=frame.index.to_numpy(dtype=np.int64),
    )
    _duplicates(tidied, pd.util.hash_pandas_object(frame, index=False).to_numpy(), cfg)
    return tidied


def _subsample_table(
    raw: RawTable, cfg: DataConfig, seed: int, actions: list[CleaningAction]
) -> tuple[pd.DataFrame, Any]:
    """``data.max_rows``: the features and labels of a seeded random subset."""
    keep = _subsample(len(raw.frame), cfg.max_rows, seed, actions)
    if keep is None:
        return raw.frame, raw.labels
    return raw.frame.iloc[keep], _take(raw.labels, keep)


def _drop_unlabelled(
    raw: RawTable, frame: pd.DataFrame, labels: Any, actions: list[CleaningAction]
) -> tuple[pd.DataFrame, Any]:
    """Drop (and count) rows without a label, and rows whose numeric label is non-finite
    (``inf``, ``1e400``, beyond float32); a 2-D target must be finite everywhere."""
    series = _label_series(labels, frame.index, raw.label_name)
    if series is None:
        target = np.asarray(labels, dtype=np.float64)
        bad = (np.isnan(target) | non_finite(target)).any(axis=1)
        if bad.any():
            row = frame.index[int(np.flatnonzero(bad)[0])]
            raise data_error(
                where(raw.origin, row=row),
                f"the target holds NaN or a non-finite value ({NON_FINITE_TEXT})",
            )
        return frame, labels
    absent = is_missing(series)
    if absent.all():
        raise data_error(
            where(raw.origin, column=raw.label_name), "every label is missing or non-finite"
        )
    if absent.any():
        infinite = non_finite_values(series)
        for mask, detail in (
            (absent & ~infinite, "dropped rows without a label"),
            (infinite, f"dropped rows whose label is non-finite ({NON_FINITE_TEXT})"),
        ):
            if mask.any():
                actions.append(
                    CleaningAction("labels", detail, raw.label_name, rows_dropped=int(mask.sum()))
                )
        frame, series = frame[~absent], series[~absent]
    return frame, series


def _convert_columns(
    raw: RawTable, frame: pd.DataFrame, clean: CleanConfig, actions: list[CleaningAction]
) -> tuple[pd.DataFrame, dict[str, Kind], dict[str, bool], dict[str, int]]:
    """Each feature column as its kind (declared in ``data.clean.dtypes`` or inferred):
    numeric kinds as float64 with NaN, the rest as strings; also the count of non-finite
    values per numeric column (now NaN, each column's count an action)."""
    unknown = [c for c in clean.dtypes if c not in frame.columns]
    if unknown:
        raise data_error(
            raw.origin,
            f"data.clean.dtypes names column {unknown[0]!r}, which is not a feature; "
            f"features: {', '.join(map(str, frame.columns))}",
        )
    converted: dict[str, Any] = {}
    kinds: dict[str, Kind] = {}
    coerce: dict[str, bool] = {}
    bad_numbers: dict[str, int] = {}
    for column in frame.columns:
        declared = clean.dtypes.get(column)
        kinds[column] = declared or infer_kind(
            frame[column],
            categorical=clean.categorical,
            max_categories=clean.max_categories,
            origin=raw.origin,
            line_offset=raw.line_offset,
        )
        # Only a declared numeric kind may turn words into missing values; an inferred one
        # stops at the first word so a typo is never silently filled.
        coerce[column] = declared in ("float", "int")
        converted[column], bad_numbers[column] = _convert_column(
            raw, frame[column], column, kinds[column], coerce[column], actions
        )
        if declared:
            actions.append(
                CleaningAction("dtype", f"read as {declared} (data.clean.dtypes)", column)
            )
    return pd.DataFrame(converted, index=frame.index), kinds, coerce, bad_numbers


def _convert_column(
    raw: RawTable,
    series: pd.Series,
    column: str,
    kind: Kind,
    coerce: bool,
    actions: list[CleaningAction],
) -> tuple[Any, int]:
    """The column as its kind, and how many of its values were non-finite."""
    if kind not in NUMERIC_KINDS:
        return category_strings(series), 0
    values, coerced, infinite = parse_numeric(
        series, kind, coerce=coerce, origin=raw.origin, line_offset=raw.line_offset
    )
    if infinite:
        actions.append(
            CleaningAction(
                "non-finite",
                f"{infinite} non-finite value(s) ({NON_FINITE_TEXT}) treated as missing",
                column,
                values_changed=infinite,
            )
        )
    if coerced:
        actions.append(
            CleaningAction(
                "dtype",
                f"{coerced} non-numeric value(s) became missing",
                column,
                values_changed=coerced,
            )
        )
    return values, infinite


def _check_missing(
    raw: RawTable, frame: pd.DataFrame, clean: CleanConfig, bad_numbers: dict[str, int]
) -> dict[str, int]:
    """Missing values per column (non-finite ones included); an entirely missing column, or
    any missing value under ``data.clean.missing: error``, stops with the place named."""
    missing = {c: int(frame[c].isna().sum()) for c in frame.columns}
    for column, count in missing.items():
        if count == len(frame):
            infinite = bad_numbers.get(column, 0)
            what = f", {infinite} of them non-finite ({NON_FINITE_TEXT})" if infinite else ""
            raise data_error(
                where(raw.origin, column=column),
                f"the column is entirely missing ({count} rows{what}); leave it out of "
                "data.features",
            )
    if clean.missing == "error" and any(missing.values()):
        column = next(c for c, n in missing.items() if n)
        row = frame.index[int(np.flatnonzero(frame[column].isna().to_numpy())[0])]
        value = raw.frame[column].loc[row]
        raise data_error(
            where(raw.origin, column=column, row=row, line_offset=raw.line_offset),
            f"{_missing_word(value)} and data.clean.missing is 'error'",
        )
    return missing


def _drop_missing_rows(
    frame: pd.DataFrame,
    y: np.ndarray,
    missing: dict[str, int],
    clean: CleanConfig,
    actions: list[CleaningAction],
) -> tuple[pd.DataFrame, np.ndarray]:
    """``data.clean.missing: drop`` removes rows with a missing value before the split."""
    if clean.missing != "drop" or not any(missing.values()):
        return frame, y
    absent = frame.isna().to_numpy().any(axis=1)
    columns = [c for c, n in missing.items() if n]
    actions.append(
        CleaningAction(
            "missing",
            f"dropped rows with a missing or non-finite value (in {names_list(columns)})",
            rows_dropped=int(absent.sum()),
        )
    )
    return frame[~absent], y[~absent]


def _label_series(labels: Any, index: pd.Index, name: str) -> pd.Series | None:
    """1-D labels as a Series on the frame's index; ``None`` for a 2-D regression target."""
    if isinstance(labels, pd.Series):
        return pd.Series(labels.array, index=index, name=name)
    array = np.asarray(labels)
    if array.ndim == 2 and array.shape[1] > 1:
        return None
    return pd.Series(array.ravel(), index=index, name=name)


def _take(labels: Any, positions: np.ndarray) -> Any:
    return (
        labels.iloc[positions] if isinstance(labels, pd.Series) else np.asarray(labels)[positions]
    )


def _missing_word(value: Any) -> str:
    """``inf`` / ``non-finite value 1e+308 ...`` / ``missing value``, for the error line."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "missing value"
    if np.isinf(number):
        return "inf"
    if non_finite(np.array([number]))[0]:
        return f"non-finite value {number:g} (beyond float32's +-3.4e38)"
    return "missing value"


# ---- images ----------------------------------------------------------------------------------


def tidy_images(raw: RawImages, cfg: DataConfig, *, seed: int) -> TidyImages:
    actions: list[CleaningAction] = []
    images, labels, items = raw.images, np.asarray(raw.labels), raw.items
    rows_loaded = len(images)
    keep = _subsample(rows_loaded, cfg.max_rows, seed, actions)
    if keep is not None:
        images, labels = images[keep], labels[keep]
        items = [items[i] for i in keep] if items else None
    source_index = keep if keep is not None else np.arange(rows_loaded)
    if cfg.image_size and raw.resize_to is None and list(images.shape[2:]) != cfg.image_size:
        h, w = images.shape[2:]
        raise data_error(
            raw.origin,
            f"images are {h}x{w} but data.image_size is {cfg.image_size}; image_size resizes "
            "image folders only",
        )
    sub = RawImages(
        origin=raw.origin,
        label_name=raw.label_name,
        classes=raw.classes,
        task=raw.task,
        items=items,
    )
    y, task, classes = encode_labels(labels, cfg=cfg, raw=sub, index=pd.RangeIndex(len(labels)))
    flat = images.reshape(len(images), -1)
    row_hash = np.fromiter(
        (
            int.from_bytes(hashlib.blake2b(r.tobytes(), digest_size=8).digest(), "little")
            for r in flat
        ),
        dtype=np.uint64,
        count=len(flat),
    )
    tidied = TidyImages(
        origin=raw.origin,
        y=y,
        task=task,
        classes=classes,
        label_name=raw.label_name,
        rows_loaded=rows_loaded,
        actions=actions,
        notes=list(raw.notes),
        images=images,
        items=items,
        mode=raw.mode,
        resize_to=raw.resize_to,
        source_index=source_index,
    )
    if raw.ignored:
        actions.append(CleaningAction("files", f"ignored {raw.ignored} non-image file(s)"))
    _duplicates(tidied, row_hash, cfg)
    return tidied


# ---- shared steps ----------------------------------------------------------------------------


def _subsample(
    rows: int, max_rows: int | None, seed: int, actions: list[CleaningAction]
) -> np.ndarray | None:
    """A seeded random subset (not the first rows: files are often sorted by class)."""
    if max_rows is None or rows <= max_rows:
        return None
    keep = np.sort(np.random.default_rng(seed).choice(rows, size=max_rows, replace=False))
    actions.append(
        CleaningAction(
            "max_rows",
            f"kept a random {max_rows} of {rows} rows (data.max_rows)",
            rows_dropped=rows - max_rows,
        )
    )
    return keep


def _duplicates(tidied: Tidy, feature_hash: np.ndarray, cfg: DataConfig) -> None:
    """Count rows identical in features and label; drop all but the first if asked."""
    label_hash = pd.util.hash_array(np.asarray(tidied.y).reshape(len(tidied.y), -1)[:, 0])
    full = feature_hash ^ (label_hash * np.uint64(0x9E3779B97F4A7C15))
    repeated = pd.Series(full).duplicated().to_numpy()
    tidied.duplicate_rows = int(repeated.sum())
    tidied.row_hash = feature_hash
    if cfg.clean.duplicates == "drop" and repeated.any():
        keep = ~repeated
        tidied.actions.append(
            CleaningAction(
                "duplicates",
                "dropped repeated rows (same features and label)",
                rows_dropped=int(repeated.sum()),
            )
        )
        tidied.keep_rows(keep)
