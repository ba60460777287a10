"""``TablePreprocessing``: fitted cleaning, one-hot encoding and scaling for tabular rows.

Order, the same in ``fit`` and ``transform``: read each column as its kind -> fill missing
values -> clip outliers -> one-hot categories -> drop constant columns -> scale. ``fit`` learns
every statistic from the training rows it is given and nothing else.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

from ._columns import NUMERIC_KINDS, category_strings, to_numeric
from ._preprocessing import InputField, Preprocessing
from ._raw import data_error, where
from ._table_input import numeric_arrays, rows_as_frame
from ._table_stats import category_fill, numeric_fill, outlier_bounds


class TablePreprocessing(Preprocessing):
    """Raw table rows (DataFrame, list of dicts, dict, 2-D array) -> float32 ``(n, features)``.

    >>> import pandas as pd
    >>> pre = TablePreprocessing(columns=["a", "c"], kinds={"a": "float", "c": "category"})
    >>> train = pd.DataFrame({"a": [1.0, None, 3.0], "c": ["x", "y", "x"]})
    >>> pre.fit(train).feature_names_
    ['a', 'c=x', 'c=y']
    >>> pre.transform([{"a": 2.0, "c": "y"}]).astype(float).round(3).tolist()
    [[0.0, -1.414, 1.414]]
    """

    kind = "table"
    _params = (
        "columns",
        "kinds",
        "coerce",
        "missing",
        "fill_value",
        "outliers",
        "outlier_action",
        "zscore_threshold",
        "iqr_factor",
        "constant",
        "scale",
        "label",
        "task",
        "classes",
    )
    _fitted = (
        "fill_",
        "bounds_",
        "categories_",
        "feature_names_",
        "constant_features_",
        "keep_",
        "offset_",
        "scale_",
    )

    def __init__(
        self,
        *,
        columns: list[str],
        kinds: dict[str, str],
        coerce: dict[str, bool] | None = None,
        missing: str = "median",
        fill_value: float = 0.0,
        outliers: str = "none",
        outlier_action: str = "clip",
        zscore_threshold: float = 3.0,
        iqr_factor: float = 1.5,
        constant: str = "keep",
        scale: str = "standard",
        label: str | None = None,
        task: str = "classification",
        classes: list[str] | None = None,
    ) -> None:
        self.columns = columns
        self.kinds = kinds
        self.coerce = coerce or {}
        self.missing = missing
        self.fill_value = fill_value
        self.outliers = outliers
        self.outlier_action = outlier_action
        self.zscore_threshold = zscore_threshold
        self.iqr_factor = iqr_factor
        self.constant = constant
        self.scale = scale
        self.label = label
        self.task = task
        self.classes = classes or []

    @classmethod
    def standard_scaler(
        cls,
        columns: list[str],
        offset: Any,
        scale: Any,
        *,
        task: str = "classification",
        classes: list[str] | None = None,
    ) -> TablePreprocessing:
        """A fitted preprocessing of float columns that only subtracts ``offset`` and divides by
        ``scale`` (no filling: a missing value is an error), for models whose scaling was
        learned elsewhere, such as the ``tunelab.sklearn`` estimators."""
        pre = cls(
            columns=list(columns),
            kinds={c: "float" for c in columns},
            missing="error",
            scale="standard",
            task=task,
            classes=classes,
        )
        pre.fill_ = {c: None for c in columns}
        pre.bounds_ = {c: None for c in columns}
        pre.categories_ = {}
        pre.feature_names_ = list(columns)
        pre.constant_features_ = []
        pre.keep_ = [True] * len(columns)
        pre.offset_ = [float(v) for v in offset]
        pre.scale_ = [float(v) for v in scale]
        pre._restore()
        return pre

    # ---- fit -------------------------------------------------------------------------------

    def fit(self, frame: pd.DataFrame, *, origin: str = "train") -> TablePreprocessing:
        """Learn fill values, outlier bounds, categories, constant columns and the scaler.

        With ``outliers`` set and ``outlier_action='drop'``, the training rows outside the
        bounds are listed in ``outlier_rows_`` (index labels) and left out of everything learned
        after the bounds; the caller drops them from the training split.
        """
        self._fit(frame, origin=origin, line_offset=None, counts=None)
        return self

    def fit_transform(
        self,
        frame: pd.DataFrame,
        *,
        origin: str = "train",
        line_offset: int | None = None,
        counts: dict[str, Counter] | None = None,
    ) -> np.ndarray:
        """``fit``, then the transformed training rows that were kept (all but
        ``outlier_rows_``) — the same numbers ``transform`` gives, computed once."""
        return self._finish(self._fit(frame, origin=origin, line_offset=line_offset, counts=counts))

    def _fit(
        self,
        frame: pd.DataFrame,
        *,
        origin: str,
        line_offset: int | None,
        counts: dict[str, Counter] | None,
    ) -> np.ndarray:
        """The steps of ``fit`` in order; returns the unscaled features of the kept rows."""
        outside = self._fit_numeric(frame, origin=origin)
        dropping = self.outliers != "none" and self.outlier_action == "drop"
        self.outlier_rows_ = frame.index[outside] if dropping else frame.index[:0]
        kept = frame[~outside] if dropping and outside.any() else frame
        names = self._fit_categories(kept)
        features = self._features(kept, origin=origin, line_offset=line_offset, counts=counts)
        self._fit_constant_and_scale(features, names, origin=origin)
        self._restore()
        return features

    def _fit_numeric(self, frame: pd.DataFrame, *, origin: str) -> np.ndarray:
        """Fill values of every column and outlier bounds of the numeric ones (``fill_``,
        ``bounds_``, ``outlier_counts_``); returns the mask of rows outside any bound."""
        self.fill_: dict[str, Any] = {}
        self.bounds_: dict[str, list[float] | None] = {}
        self.outlier_counts_: dict[str, int] = {}
        outside = np.zeros(len(frame), dtype=bool)
        for column in self.columns:
            kind = self.kinds[column]
            if kind not in NUMERIC_KINDS:
                self.fill_[column] = category_fill(category_strings(frame[column]), self.missing)
                continue
            values, _ = to_numeric(frame[column], kind, coerce=True, origin=origin)
            absent = np.isnan(values)
            present = values[~absent]
            if present.size == 0:
                raise data_error(where(origin, column=column), "every training value is missing")
            fill = numeric_fill(present, self.missing, self.fill_value)
            self.fill_[column] = fill
            if fill is not None:
                # Bounds are measured after filling, as transform will see the column.
                values[absent] = fill
                present = values
            bounds = (
                None
                if kind == "bool"
                else outlier_bounds(present, self.outliers, self.zscore_threshold, self.iqr_factor)
            )
            self.bounds_[column] = bounds
            if bounds is not None:
                out = (values < bounds[0]) | (values > bounds[1])
                self.outlier_counts_[column] = int(out.sum())
                if self.outliers != "none":
                    outside |= out
        return outside

    def _fit_categories(self, kept: pd.DataFrame) -> list[str]:
        """Categories of each categorical column from the kept training rows (``categories_``);
        returns every output feature's name, before constant features are dropped."""
        self.categories_: dict[str, list[str]] = {}
        names: list[str] = []
        for column in self.columns:
            if self.kinds[column] in NUMERIC_KINDS:
                names.append(column)
                continue
            text = category_strings(kept[column])
            if self.fill_[column] is not None:
                text = text.fillna(self.fill_[column])
            self.categories_[column] = sorted(str(v) for v in text.dropna().unique())
            names += [f"{column}={c}" for c in self.categories_[column]]
        return names

    def _fit_constant_and_scale(
        self, features: np.ndarray, names: list[str], *, origin: str
    ) -> None:
        """Constant features (``constant_features_``, ``keep_``, ``feature_names_``) and the
        scaler (``offset_``, ``scale_``) of the features kept."""
        if features.shape[1]:
            constant = features.max(axis=1) == features.min(axis=1)
        else:
            constant = np.zeros(len(names), dtype=bool)
        self.constant_features_ = [n for n, c in zip(names, constant, strict=True) if c]
        keep = ~constant if self.constant == "drop" else np.ones(len(names), dtype=bool)
        if not keep.any():
            raise data_error(origin, "every feature is constant in the training split")
        self.keep_ = keep.tolist()
        self.feature_names_ = [n for n, k in zip(names, keep, strict=True) if k]
        used = features[keep]
        if self.scale == "standard":
            offset, spread = used.mean(axis=1), used.std(axis=1)
        elif self.scale == "minmax":
            offset, spread = used.min(axis=1), used.max(axis=1) - used.min(axis=1)
        else:
            offset, spread = np.zeros(len(used)), np.ones(len(used))
        # A constant column keeps its value instead of dividing by zero.
        spread = np.where(spread > 0, spread, 1.0)
        self.offset_ = offset.tolist()
        self.scale_ = spread.tolist()

    def _restore(self) -> None:
        self._keep = np.asarray(self.keep_, dtype=bool)
        self._offset = np.asarray(self.offset_, dtype=np.float64)
        self._scale = np.asarray(self.scale_, dtype=np.float64)

    # ---- transform -------------------------------------------------------------------------

    def transform(self, raw: Any) -> np.ndarray:
        """Raw rows -> float32 ``(n, len(feature_names_))``; extra columns are ignored."""
        if not self.is_fitted:
            raise ValueError("TablePreprocessing is not fitted; call fit() first")
        clean = self._clean_numeric_columns(raw)
        if clean is not None:
            return self._finish(clean)
        return self.transform_frame(rows_as_frame(raw, self.columns), origin="input")

    def _clean_numeric_columns(self, raw: Any) -> np.ndarray | None:
        """The fast path for what the server sends (see ``numeric_arrays``): the feature-major
        values, clipped like ``_features`` clips, or ``None`` for the general path."""
        values = numeric_arrays(raw, self.columns, self.kinds)
        if values is None:
            return None
        if self.outliers != "none" and self.outlier_action == "clip":
            for row, column in zip(values, self.columns, strict=True):
                bounds = self.bounds_[column]
                if bounds is not None:
                    np.clip(row, bounds[0], bounds[1], out=row)
        return values

    def transform_frame(
        self,
        frame: pd.DataFrame,
        *,
        origin: str,
        line_offset: int | None = None,
        counts: dict[str, Counter] | None = None,
    ) -> np.ndarray:
        """The fitted transform on a frame whose index names the rows in error messages;
        ``counts`` (filled, outliers, clipped, unseen per column) is added to when given."""
        features = self._features(frame, origin=origin, line_offset=line_offset, counts=counts)
        return self._finish(features)

    def _finish(self, features: np.ndarray) -> np.ndarray:
        """Unscaled ``(features, n)`` -> drop constant features, scale -> float32 ``(n, k)``."""
        if not self._keep.all():
            features = features[self._keep]
        if self.scale != "none":
            features -= self._offset[:, None]
            features /= self._scale[:, None]
        return np.ascontiguousarray(features.T, dtype=np.float32)

    def _features(
        self,
        frame: pd.DataFrame,
        *,
        origin: str,
        line_offset: int | None = None,
        counts: dict[str, Counter] | None = None,
    ) -> np.ndarray:
        """Filled, clipped and one-hot encoded values, one row per output feature (feature-
        major, so every step writes contiguous memory)."""
        widths = [
            1 if self.kinds[c] in NUMERIC_KINDS else len(self.categories_[c]) for c in self.columns
        ]
        out = np.zeros((sum(widths), len(frame)), dtype=np.float64)
        start = 0
        for column, width in zip(self.columns, widths, strict=True):
            place = {"origin": origin, "line_offset": line_offset, "counts": counts}
            if self.kinds[column] in NUMERIC_KINDS:
                out[start] = self._numeric_values(frame[column], column, **place)
            else:
                self._one_hot(out[start : start + width], frame[column], column, **place)
            start += width
        return out

    def _numeric_values(
        self,
        series: pd.Series,
        column: str,
        *,
        origin: str,
        line_offset: int | None,
        counts: dict[str, Counter] | None,
    ) -> np.ndarray:
        """One numeric column: parsed, filled, clipped (when configured), counted."""
        values, _ = to_numeric(
            series,
            self.kinds[column],
            coerce=self.coerce.get(column, False),
            origin=origin,
            line_offset=line_offset,
        )
        absent = np.isnan(values)
        if absent.any():
            fill = self.fill_[column]
            self._check_fillable(series, absent, fill, origin, line_offset)
            values[absent] = fill
            _add(counts, "filled", column, int(absent.sum()))
        bounds = self.bounds_[column]
        if bounds is not None:
            outside = (values < bounds[0]) | (values > bounds[1])
            _add(counts, "outliers", column, int(outside.sum()))
            if self.outliers != "none" and self.outlier_action == "clip":
                np.clip(values, bounds[0], bounds[1], out=values)
                _add(counts, "clipped", column, int(outside.sum()))
        return values

    def _one_hot(
        self,
        out: np.ndarray,
        series: pd.Series,
        column: str,
        *,
        origin: str,
        line_offset: int | None,
        counts: dict[str, Counter] | None,
    ) -> None:
        """One categorical column into ``out`` (its rows of the feature matrix, zeros); an
        unseen category stays all zeros and is counted."""
        text = category_strings(series)
        absent = text.isna().to_numpy()
        if absent.any():
            fill = self.fill_[column]
            self._check_fillable(series, absent, fill, origin, line_offset)
            text = text.fillna(fill)
            _add(counts, "filled", column, int(absent.sum()))
        codes = pd.Categorical(text, categories=self.categories_[column]).codes
        unseen = codes < 0
        _add(counts, "unseen", column, int(unseen.sum()))
        rows = np.flatnonzero(~unseen)
        out[codes[rows].astype(np.int64), rows] = 1.0

    def _check_fillable(
        self,
        series: pd.Series,
        absent: np.ndarray,
        fill: Any,
        origin: str,
        line_offset: int | None,
    ) -> None:
        if fill is not None:
            return
        row = series.index[int(np.flatnonzero(absent)[0])]
        raise data_error(
            where(origin, column=str(series.name), row=row, line_offset=line_offset),
            f"missing value (NaN/inf) and data.clean.missing is {self.missing!r}, so tunelab "
            "does not fill it",
        )

    # ---- schema ----------------------------------------------------------------------------

    def input_schema(self) -> list[InputField]:
        return [
            InputField(
                name=c,
                dtype=self.kinds[c],
                categories=None if self.kinds[c] in NUMERIC_KINDS else list(self.categories_[c]),
            )
            for c in self.columns
        ]

    @property
    def feature_names(self) -> list[str]:
        return list(self.feature_names_)


def _add(counts: dict[str, Counter] | None, what: str, column: str, n: int) -> None:
    if counts is not None and n:
        counts.setdefault(what, Counter())[column] += n
