"""Labels as a model wants them: class indices (classification) or float targets (regression).

``data.task: auto`` decides the task here (text labels, or at most ``MAX_AUTO_CLASSES``
integer values, are classes); declared ``data.classes`` accept names or indices, anything else
is "out of range" with the row named. Shared by tables and images.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..config import DataConfig
from ._columns import category_strings
from ._raw import RawImages, RawTable, data_error, short, where

MAX_AUTO_CLASSES = 50


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
        items = getattr(raw, "items", None)  # image files name the bad label better than a row
        item = items[int(row)] if items else None
        raise data_error(
            where(
                raw.origin, column=raw.label_name, row=row, line_offset=raw.line_offset, item=item
            ),
            f"label {short(labels.loc[row])} is out of range: expected 0..{count - 1} or one "
            f"of {names_list(names)}",
        )
    return y


def names_list(columns: list[str], limit: int = 6) -> str:
    """``a, b, c and 4 more``: a list short enough for a one-line message."""
    shown = ", ".join(columns[:limit])
    return shown + (f" and {len(columns) - limit} more" if len(columns) > limit else "")
