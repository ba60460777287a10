"""What a caller may send a table preprocessing, turned into one DataFrame of named columns.

Kept apart from the transform itself: this is the serving edge (dicts from JSON, lists of
rows, arrays), where a wrong shape or a missing column must be a one-line error naming what was
expected.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ._columns import FLOAT32_MAX
from ._raw import data_error


def rows_as_frame(raw: Any, columns: list[str]) -> pd.DataFrame:
    """Raw rows (DataFrame, Series, dict of values or of columns, list of dicts, 1-D or 2-D
    array) as a DataFrame holding ``columns``; a missing column is a one-line error."""
    if isinstance(raw, pd.DataFrame):
        frame = raw.reset_index(drop=True)
    elif isinstance(raw, pd.Series):
        frame = raw.to_frame().T.reset_index(drop=True)
    elif isinstance(raw, dict):
        scalar = not any(isinstance(v, (list, tuple, np.ndarray, pd.Series)) for v in raw.values())
        frame = pd.DataFrame([raw]) if scalar else pd.DataFrame(raw)
    elif isinstance(raw, (list, tuple)) and raw and all(isinstance(r, dict) for r in raw):
        frame = pd.DataFrame(list(raw))
    else:
        array = np.asarray(raw, dtype=object if _has_text(raw) else None)
        if array.ndim == 1:
            array = array[None]
        if array.ndim != 2 or array.shape[1] != len(columns):
            raise data_error(
                "input",
                f"expected rows of {len(columns)} values ({', '.join(columns)}), "
                f"got shape {tuple(array.shape)}",
            )
        frame = pd.DataFrame(array, columns=columns)
    frame.columns = [str(c) for c in frame.columns]
    absent = [c for c in columns if c not in frame.columns]
    if absent:
        raise data_error(
            "input",
            f"no column {absent[0]!r}; expected columns: {', '.join(columns)}",
        )
    return frame


def numeric_arrays(raw: Any, columns: list[str], kinds: dict[str, str]) -> np.ndarray | None:
    """The fast path for what the server sends: ``{column: float64 array}`` of finite numbers
    for a table of float/int columns only, as feature-major ``(columns, n)`` float64.

    Building a DataFrame and parsing each column costs milliseconds per request, most of a
    single-row prediction; anything else (categories, bools, missing values, lists) returns
    ``None`` and takes the general path, which fills, parses and names the row of a bad value.
    """
    if not isinstance(raw, dict) or any(kinds[c] not in ("float", "int") for c in columns):
        return None
    arrays = [raw.get(c) for c in columns]
    if not all(isinstance(a, np.ndarray) and a.dtype == np.float64 and a.ndim == 1 for a in arrays):
        return None
    if len({len(a) for a in arrays}) != 1 or len(arrays[0]) == 0:
        return None
    values = np.stack(arrays)  # feature-major, as TablePreprocessing._features builds it
    if not (np.abs(values) <= FLOAT32_MAX).all():  # NaN, inf, beyond float32: the general path
        return None
    return values


def _has_text(raw: Any) -> bool:
    if isinstance(raw, np.ndarray):
        return raw.dtype == object
    try:
        return any(
            isinstance(v, str)
            for row in raw
            for v in (row if isinstance(row, (list, tuple)) else [row])
        )
    except TypeError:
        return False
