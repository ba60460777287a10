"""Cleaning that needs no statistics: labels, dtypes, missing-value rows, duplicates.

These steps look at one row or one value at a time, so doing them before the split leaks nothing
(removing duplicate rows first is what keeps the same row out of both train and test). Steps that
learn from the data — filling values, outlier bounds, categories, scaling — are fitted later, on
the training split only, by ``Preprocessing``. Every row removed here becomes a
:class:`CleaningAction`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..config import DataConfig
from ._columns import NUMERIC_KINDS, Kind, category_strings, infer_kind, is_missing, to_numeric
from ._profile import CleaningAction
from ._raw import RawImages, RawTable, data_error, short, where

MAX_AUTO_CLASSES = 50


@dataclass
class Tidy:
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


@dataclass
class TidyTable(Tidy):
    """Converted feature columns: numeric kinds as float64 with NaN, categories as strings."""

    frame: pd.DataFrame = field(default_factory=pd.DataFrame)
    kinds: dict[str, Kind] = field(default_factory=dict)
    coerce: dict[str, bool] = field(default_factory=dict)
    missing: dict[str, int] = field(default_factory=dict)

    def rows(self, positions: np.ndarray) -> pd.DataFrame:
        return self.frame.iloc[positions]


@dataclass
class TidyImages(Tidy):
    """Images ``(n, C, H, W)`` as loaded (uint8 or float32)."""

    images: np.ndarray = field(default_factory=lambda: np.zeros((0, 1, 1, 1), np.uint8))
    items: list[str] | None = None
    mode: str | None = None
    resize_to: tuple[int, int] | None = None

    def rows(self, positions: np.ndarray) -> np.ndarray:
        return self.images[positions]


def tidy(raw: RawTable | RawImages, cfg: DataConfig, *, seed: int) -> TidyTable | TidyImages:
    if isinstance(raw, RawImages):
        return tidy_images(raw, cfg, seed=seed)
    return tidy_table(raw, cfg, seed=seed)


# ---- tables ----------------------------------------------------------------------------------


def tidy_table(raw: RawTable, cfg: DataConfig, *, seed: int) -> TidyTable:
    clean = cfg.clean
    frame, labels = raw.frame, raw.labels
    actions: list[CleaningAction] = []
    rows_loaded = len(frame)
    keep = _subsample(rows_loaded, cfg.max_rows, seed, actions)
    if keep is not None:
        frame, labels = frame.iloc[keep], _take(labels, keep)
    labels_series = _label_series(labels, frame.index, raw.label_name)
    if labels_series is not None:
        absent = is_missing(labels_series)
        if absent.all():
            raise data_error(where(raw.origin, column=raw.label_name), "every label is missing")
        if absent.any():
            actions.append(
                CleaningAction(
                    "labels",
                    "dropped rows without a label",
                    raw.label_name,
                    rows_dropped=int(absent.sum()),
                )
            )
            frame, labels_series = frame[~absent], labels_series[~absent]
        labels = labels_series
    else:
        bad = ~np.isfinite(np.asarray(labels, dtype=np.float64)).all(axis=1)
        if bad.any():
            row = frame.index[int(np.flatnonzero(bad)[0])]
            raise data_error(where(raw.origin, row=row), "the target holds NaN or inf")
    y, task, classes = encode_labels(labels, cfg=cfg, raw=raw, index=frame.index)

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
    for column in frame.columns:
        series = frame[column]
        declared = clean.dtypes.get(column)
        kind: Kind = declared or infer_kind(
            series,
            categorical=clean.categorical,
            max_categories=clean.max_categories,
            origin=raw.origin,
            line_offset=raw.line_offset,
        )
        kinds[column] = kind
        coerce[column] = declared in ("float", "int")
        if kind in NUMERIC_KINDS:
            values, coerced = to_numeric(
                series,
                kind,
                coerce=coerce[column],
                origin=raw.origin,
                line_offset=raw.line_offset,
            )
            converted[column] = values
            if coerced:
                actions.append(
                    CleaningAction(
                        "dtype",
                        f"{coerced} non-numeric value(s) became missing",
                        column,
                        values_changed=coerced,
                    )
                )
        else:
            converted[column] = category_strings(series)
        if declared:
            actions.append(
                CleaningAction("dtype", f"read as {declared} (data.clean.dtypes)", column)
            )
    frame = pd.DataFrame(converted, index=frame.index)
    missing = {c: int(frame[c].isna().sum()) for c in frame.columns}
    for column, count in missing.items():
        if count == len(frame):
            raise data_error(
                where(raw.origin, column=column),
                f"the column is entirely missing ({count} rows); leave it out of data.features",
            )
    if clean.missing == "error" and any(missing.values()):
        column = next(c for c, n in missing.items() if n)
        row = frame.index[int(np.flatnonzero(frame[column].isna().to_numpy())[0])]
        value = raw.frame[column].loc[row]
        raise data_error(
            where(raw.origin, column=column, row=row, line_offset=raw.line_offset),
            f"{'inf' if _is_inf(value) else 'missing value'} and data.clean.missing is 'error'",
        )
    if clean.missing == "drop" and any(missing.values()):
        absent = frame.isna().to_numpy().any(axis=1)
        columns = [c for c, n in missing.items() if n]
        actions.append(
            CleaningAction(
                "missing",
                f"dropped rows with a missing value (in {_names(columns)})",
                rows_dropped=int(absent.sum()),
            )
        )
        frame, y = frame[~absent], y[~absent]
    if len(frame) == 0:
        raise data_error(raw.origin, "no rows left after cleaning")
    row_hash = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    tidied = TidyTable(
        origin=raw.origin,
        y=y,
        task=task,
        classes=classes,
        label_name=raw.label_name,
        rows_loaded=rows_loaded,
        actions=actions,
        notes=list(raw.notes),
        line_offset=raw.line_offset,
        frame=frame,
        kinds=kinds,
        coerce=coerce,
        missing=missing,
        source_index=frame.index.to_numpy(dtype=np.int64),
    )
    _duplicates(tidied, row_hash, cfg)
    return tidied


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


def _is_inf(value: Any) -> bool:
    try:
        return bool(np.isinf(float(value)))
    except (TypeError, ValueError):
        return False


def _names(columns: list[str], limit: int = 6) -> str:
    shown = ", ".join(columns[:limit])
    return shown + (f" and {len(columns) - limit} more" if len(columns) > limit else "")


# ---- labels ----------------------------------------------------------------------------------


def encode_labels(
    labels: pd.Series | np.ndarray, *, cfg: DataConfig, raw: RawTable | RawImages, index: Any
) -> tuple[np.ndarray, str, list[str]]:
    """Labels as int64 class indices (classification) or float32 targets (regression)."""
    place = where(raw.origin, column=raw.label_name)
    if not isinstance(labels, pd.Series):
        array = np.asarray(labels)
        if array.ndim == 2 and array.shape[1] > 1:
            if cfg.task == "classification":
                raise data_error(place, "a 2-D target can only be used for regression")
            return array.astype(np.float32), "regression", []
        labels = pd.Series(array.ravel(), index=index)
    numeric = pd.api.types.is_numeric_dtype(labels.dtype) and not pd.api.types.is_bool_dtype(
        labels.dtype
    )
    task = cfg.task if cfg.task != "auto" else raw.task
    if task is None:
        task = _infer_task(labels, numeric)
    if task == "regression":
        values = pd.to_numeric(labels, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~np.isfinite(values)
        if bad.any():
            row = labels.index[int(np.flatnonzero(bad)[0])]
            raise data_error(
                where(raw.origin, column=raw.label_name, row=row, line_offset=raw.line_offset),
                f"label {short(labels.loc[row])} is not a number (task is regression)",
            )
        return values.astype(np.float32), "regression", []
    names = list(cfg.classes) if cfg.classes else raw.classes
    if names:
        y = _labels_by_name(labels, names, numeric, raw)
        classes = names
    else:
        text = category_strings(labels)
        uniques = pd.unique(text.to_numpy())
        try:
            ordered = sorted(uniques, key=float)
        except (TypeError, ValueError):
            ordered = sorted(map(str, uniques))
        classes = [str(u) for u in ordered]
        lookup = {c: i for i, c in enumerate(classes)}
        y = text.map(lookup).to_numpy(dtype=np.int64)
    if len(np.unique(y)) < 2:
        raise data_error(
            place, f"only one class ({classes[int(y[0])]!r}); classification needs two or more"
        )
    return y, "classification", classes


def _infer_task(labels: pd.Series, numeric: bool) -> str:
    if not numeric:
        return "classification"
    values = labels.to_numpy(dtype=np.float64, na_value=np.nan)
    integral = bool(np.all(values == np.round(values)))
    if integral and labels.nunique() <= MAX_AUTO_CLASSES:
        return "classification"
    return "regression"


def _labels_by_name(
    labels: pd.Series, names: list[str], numeric: bool, raw: RawTable | RawImages
) -> np.ndarray:
    """Labels that are class names, or integer indices into ``names``; else out of range."""
    count = len(names)
    if numeric:
        values = labels.to_numpy(dtype=np.float64, na_value=np.nan)
        ok = (values == np.round(values)) & (values >= 0) & (values < count)
        y = np.where(ok, values, -1).astype(np.int64)
    else:
        lookup = {n: i for i, n in enumerate(names)}
        text = category_strings(labels)
        mapped = text.map(lookup)
        digits = pd.to_numeric(text.where(mapped.isna()), errors="coerce")
        mapped = mapped.fillna(digits.where((digits >= 0) & (digits < count)))
        y = mapped.fillna(-1).to_numpy(dtype=np.int64)
    bad = np.flatnonzero(y < 0)
    if len(bad):
        row = labels.index[int(bad[0])]
        item = raw.items[int(row)] if isinstance(raw, RawImages) and raw.items else None
        raise data_error(
            where(
                raw.origin, column=raw.label_name, row=row, line_offset=raw.line_offset, item=item
            ),
            f"label {short(labels.loc[row])} is out of range: expected 0..{count - 1} or one "
            f"of {_names(names)}",
        )
    return y


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


def _duplicates(tidied: TidyTable | TidyImages, feature_hash: np.ndarray, cfg: DataConfig) -> None:
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
        tidied.y = tidied.y[keep]
        tidied.row_hash = feature_hash[keep]
        tidied.source_index = tidied.source_index[keep]
        if isinstance(tidied, TidyTable):
            tidied.frame = tidied.frame[keep]
        else:
            tidied.images = tidied.images[keep]
            if tidied.items:
                tidied.items = [n for n, k in zip(tidied.items, keep, strict=True) if k]
