"""Column kinds and conversions shared by cleaning (at preparation) and by ``Preprocessing``
(at serving), so raw input is read exactly the way the training data was.

A column is one of five kinds: ``float``, ``int``, ``bool`` (all three become numbers) and
``category``, ``str`` (both become one-hot columns). Categories are compared as canonical
strings, so ``3``, ``3.0`` and ``"3"`` are the same category whether they came from a CSV, a
Parquet file or a JSON request.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from ._raw import data_error, short, where

Kind = Literal["float", "int", "bool", "category", "str"]
NUMERIC_KINDS = ("float", "int", "bool")
TRUE_WORDS = frozenset({"true", "t", "yes", "y", "1", "1.0"})
FALSE_WORDS = frozenset({"false", "f", "no", "n", "0", "0.0"})
# An otherwise-numeric column with a few words in it is a typo, not a category.
MOSTLY_NUMERIC = 0.9
SAMPLE = 1000
# Models see float32 tensors: a value beyond float32's range (``1e308``) would become inf there,
# so it is non-finite for tunelab just like ``inf`` or ``1e400`` (which parses as inf).
FLOAT32_MAX = float(np.finfo(np.float32).max)
NON_FINITE_TEXT = "inf, -inf or beyond float32's +-3.4e38"


def infer_kind(
    series: pd.Series,
    *,
    categorical: str,
    max_categories: int,
    origin: str,
    line_offset: int | None,
) -> Kind:
    """The kind of an undeclared column; one-line errors for columns tunelab cannot use."""
    column = str(series.name)
    if _is_temporal(series):
        raise data_error(
            where(origin, column=column),
            f"the column holds dates or times ({series.dtype}); tunelab does not encode them — "
            "derive numeric columns from it, or leave it out of data.features",
        )
    if pd.api.types.is_bool_dtype(series.dtype):
        return "bool"
    if pd.api.types.is_integer_dtype(series.dtype):
        return "int"
    if pd.api.types.is_numeric_dtype(series.dtype):
        return "float"
    present = series[series.notna()]
    # A look at the first rows settles the common case (a column of words) without parsing
    # a million strings as numbers.
    head = pd.to_numeric(present.iloc[:SAMPLE], errors="coerce")
    failed = head.isna().to_numpy()
    if not failed.all():
        failed = pd.to_numeric(present, errors="coerce").isna().to_numpy()
    if not failed.any():
        return "float"
    if failed.mean() <= 1 - MOSTLY_NUMERIC:
        row = present.index[int(np.flatnonzero(failed)[0])]
        raise data_error(
            where(origin, column=column, row=row, line_offset=line_offset),
            f"{short(present.loc[row])} is not a number in an otherwise numeric column; fix the "
            f"value, or set data.clean.dtypes.{column}: float (non-numbers become missing) "
            "or category",
        )
    if categorical == "error":
        row = present.index[0]
        raise data_error(
            where(origin, column=column, row=row, line_offset=line_offset),
            f"non-numeric value {short(present.loc[row])} and data.clean.categorical is "
            f"'error'; set data.clean.categorical: onehot, or drop the column from data.features",
        )
    distinct = int(category_strings(present).nunique())
    if distinct > max_categories:
        raise data_error(
            where(origin, column=column),
            f"non-numeric column with {distinct} distinct values, more than "
            f"data.clean.max_categories ({max_categories}); it cannot be one-hot encoded — "
            "leave it out of data.features, or raise max_categories",
        )
    return "category"


def _is_temporal(series: pd.Series) -> bool:
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        return True
    if pd.api.types.is_timedelta64_dtype(series.dtype):
        return True
    if series.dtype == object:
        sample = series.dropna().iloc[:SAMPLE]
        kind = pd.api.types.infer_dtype(sample, skipna=True)
        return kind in ("date", "datetime", "datetime64", "time", "timedelta", "timedelta64")
    return False


def to_numeric(
    series: pd.Series,
    kind: Kind,
    *,
    coerce: bool,
    origin: str,
    line_offset: int | None = None,
) -> tuple[np.ndarray, int]:
    """A numeric-kind column as float64 (missing and non-finite as NaN), plus how many values
    were coerced to missing because they were not numbers (only when ``coerce``)."""
    values, coerced, _ = parse_numeric(
        series, kind, coerce=coerce, origin=origin, line_offset=line_offset
    )
    return values, coerced


def parse_numeric(
    series: pd.Series,
    kind: Kind,
    *,
    coerce: bool,
    origin: str,
    line_offset: int | None = None,
) -> tuple[np.ndarray, int, int]:
    """``to_numeric`` plus how many values were non-finite (see ``non_finite``) and became
    NaN, so cleaning can report them apart from the values that were missing in the file."""
    column = str(series.name)
    if kind == "bool":
        return _bool_values(series, origin=origin, line_offset=line_offset), 0, 0
    if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan, copy=True)
        coerced = 0
    else:
        parsed = pd.to_numeric(series, errors="coerce")
        values = parsed.to_numpy(dtype=np.float64, na_value=np.nan, copy=True)
        bad = np.isnan(values) & series.notna().to_numpy()
        coerced = int(bad.sum())
        if coerced and not coerce:
            row = series.index[int(np.flatnonzero(bad)[0])]
            raise data_error(
                where(origin, column=column, row=row, line_offset=line_offset),
                f"{short(series.loc[row])} is not a number",
            )
    outside = non_finite(values)
    values[outside] = np.nan
    if kind == "int":
        finite = values[~np.isnan(values)]
        fractional = finite != np.round(finite)
        if fractional.any():
            positions = np.flatnonzero(~np.isnan(values))[np.flatnonzero(fractional)[0]]
            row = series.index[int(positions)]
            raise data_error(
                where(origin, column=column, row=row, line_offset=line_offset),
                f"{short(series.loc[row])} is not an integer (data.clean.dtypes says int)",
            )
    return values, coerced, int(outside.sum())


def non_finite(values: np.ndarray) -> np.ndarray:
    """The mask of values that are not NaN but cannot be used as numbers: ``inf``, ``-inf``
    and finite values beyond float32's range (``FLOAT32_MAX``)."""
    with np.errstate(invalid="ignore"):
        return ~np.isnan(values) & ~(np.abs(values) <= FLOAT32_MAX)


def _bool_values(series: pd.Series, *, origin: str, line_offset: int | None) -> np.ndarray:
    if pd.api.types.is_bool_dtype(series.dtype):
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    if pd.api.types.is_numeric_dtype(series.dtype):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan, copy=True)
        bad = ~np.isnan(values) & (values != 0) & (values != 1)
    else:
        words = series.astype("string").str.strip().str.lower()
        values = np.full(len(series), np.nan)
        values[words.isin(TRUE_WORDS).to_numpy(dtype=bool, na_value=False)] = 1.0
        values[words.isin(FALSE_WORDS).to_numpy(dtype=bool, na_value=False)] = 0.0
        bad = np.isnan(values) & series.notna().to_numpy()
    if bad.any():
        row = series.index[int(np.flatnonzero(bad)[0])]
        raise data_error(
            where(origin, column=str(series.name), row=row, line_offset=line_offset),
            f"{short(series.loc[row])} is not a boolean (true/false, yes/no, 1/0)",
        )
    return values


def category_strings(series: pd.Series) -> pd.Series:
    """Canonical strings (``3.0`` -> ``"3"``); missing stays missing (``None``)."""
    if pd.api.types.is_float_dtype(series.dtype):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        integral = np.isfinite(values) & (values == np.round(values))
        out = np.empty(len(values), dtype=object)
        out[:] = None
        out[integral] = values[integral].astype(np.int64).astype(str)
        other = np.isfinite(values) & ~integral
        out[other] = values[other].astype(str)
        return pd.Series(out, index=series.index, name=series.name, dtype=object)
    if pd.api.types.is_bool_dtype(series.dtype) or pd.api.types.is_integer_dtype(series.dtype):
        text = series.astype("string")
        return text.astype(object).where(series.notna(), None)
    if isinstance(series.dtype, pd.StringDtype):
        return series  # already text; NA stays missing
    if series.dtype == object:
        # Mixed objects from JSON (1, 1.0, "1"): canonicalise numbers one by one.
        return series.map(_canonical, na_action="ignore").astype(object).where(series.notna(), None)
    return series.astype("string").astype(object).where(series.notna(), None)


def _canonical(value: object) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)) and np.isfinite(value) and value == round(value):
        return str(int(value))
    return str(value)


def is_missing(series: pd.Series) -> np.ndarray:
    """NaN, None and non-finite numbers (``non_finite``) count as missing."""
    return series.isna().to_numpy() | non_finite_values(series)


def non_finite_values(series: pd.Series) -> np.ndarray:
    """The mask of a float column's non-finite values (all false for other columns)."""
    if not pd.api.types.is_float_dtype(series.dtype):
        return np.zeros(len(series), dtype=bool)
    return non_finite(series.to_numpy(dtype=np.float64, na_value=np.nan))
