"""``TablePreparer``: tables (CSV, Parquet, arrays, bundled and synthetic sets) to features.

Stateless cleaning is ``tidy_table``; the fitted step is :class:`TablePreprocessing`, fitted on
the training rows. Its cleaning actions (filled values, clipped or dropped outliers, one-hot
encodings, unseen categories, constant features, scaling) come from the per-split counts the
transform keeps, so the profile says how many values each step changed in every split.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from ._columns import NUMERIC_KINDS
from ._preparer import Preparer, register_preparer
from ._profile import CleaningAction, ColumnProfile, finite
from ._raw import RawTable
from ._split import SPLITS, SplitPositions
from ._table_pre import TablePreprocessing
from ._tidy import TidyTable, tidy_table

Counts = dict[str, dict[str, Counter]]  # split -> what (filled, outliers, ...) -> column -> n

# Outlier handling that clips (or drops) at least this share of a column's values (or of the
# training rows) is flagged as a warning: a rule that moves one value in twenty is no longer
# trimming rare extremes, it is reshaping the column (a skewed or heavy-tailed one, usually),
# and the user should choose the rule knowingly.
OUTLIER_WARNING_SHARE = 0.05


@register_preparer("table")
class TablePreparer(Preparer[RawTable, TidyTable]):
    """Prepares :class:`RawTable`; besides :class:`Preparer`'s learned attributes, ``counts_``
    holds what the transform changed per split and column."""

    kind = "table"

    def tidy(self, raw: RawTable, *, seed: int) -> TidyTable:
        return tidy_table(raw, self.cfg, seed=seed)

    def preprocessing(self, tidied: TidyTable) -> TablePreprocessing:
        """The unfitted preprocessing ``data.clean`` and ``data.scale`` ask for."""
        clean = self.cfg.clean
        return TablePreprocessing(
            columns=list(tidied.frame.columns),
            kinds=dict(tidied.kinds),
            coerce=dict(tidied.coerce),
            missing=clean.missing,
            fill_value=clean.fill_value,
            outliers=clean.outliers,
            outlier_action=clean.outlier_action,
            zscore_threshold=clean.zscore_threshold,
            iqr_factor=clean.iqr_factor,
            constant=clean.constant,
            scale=self.cfg.scale,
            label=tidied.label_name,
            task=tidied.task,
            classes=list(tidied.classes),
        )

    def fit(self, tidied: TidyTable, parts: SplitPositions) -> TablePreparer:
        pre = self.preprocessing(tidied)
        counts: Counts = {s: {} for s in SPLITS}
        where = {"origin": tidied.origin, "line_offset": tidied.line_offset}
        train_frame = tidied.rows(parts.train)
        X = {"train": pre.fit_transform(train_frame, counts=counts["train"], **where)}
        train = parts.train
        if len(pre.outlier_rows_):
            train = parts.train[~train_frame.index.isin(pre.outlier_rows_)]
        for split in ("val", "test"):
            rows = tidied.rows(getattr(parts, split))
            X[split] = pre.transform_frame(rows, counts=counts[split], **where)
        self.counts_ = counts
        rows = len(parts.train) + len(parts.val) + len(parts.test)
        actions = table_actions(
            pre,
            tidied,
            counts,
            dropped=len(parts.train) - len(train),
            rows=rows,
            train_rows=len(parts.train),
        )
        self._fitted(pre, X, replace(parts, train=train), actions)
        return self

    def profile_fields(self, tidied: TidyTable) -> dict[str, Any]:
        pre: TablePreprocessing = self.preprocessing_
        columns = table_columns(tidied, pre, self.counts_, tidied.rows(self.final_.train))
        return {
            "input_shape": [len(pre.feature_names_)],
            "features": len(pre.feature_names_),
            "columns": columns,
            "constant_columns": [c.name for c in columns if c.constant],
            "outlier_rule": outlier_rule(pre),
        }


# ---- cleaning actions ------------------------------------------------------------------------


def table_actions(
    pre: TablePreprocessing,
    tidied: TidyTable,
    counts: Counts,
    *,
    dropped: int,
    rows: int = 0,
    train_rows: int = 0,
) -> list[CleaningAction]:
    """The fitted steps' actions, in the order the transform runs them; ``dropped`` of the
    ``train_rows`` training rows were removed as outliers; ``rows`` is the rows of every split
    (for the share of a column that clipping changed)."""
    return [
        *_fill_actions(pre, counts),
        *_outlier_actions(pre, counts, dropped, rows, train_rows),
        *_onehot_actions(pre, tidied, counts),
        *_constant_and_scale_actions(pre),
    ]


def _fill_actions(pre: TablePreprocessing, counts: Counts) -> list[CleaningAction]:
    actions = []
    for column, n in merged(counts, "filled").items():
        fill = pre.fill_[column]
        shown = f"{fill:.6g}" if isinstance(fill, float) else repr(fill)
        if pre.missing == "constant":
            detail = f"filled with the constant {shown}"
        elif pre.kinds[column] not in NUMERIC_KINDS:
            # Text columns always get the most frequent category, whatever the numeric rule.
            detail = f"filled with the most frequent training category {shown}"
        elif pre.missing == "most_frequent":
            detail = f"filled with the most frequent training value {shown}"
        else:
            detail = f"filled with the training {pre.missing} {shown}"
        actions.append(CleaningAction("missing", detail, column, values_changed=n))
    return actions


def _outlier_actions(
    pre: TablePreprocessing, counts: Counts, dropped: int, rows: int = 0, train_rows: int = 0
) -> list[CleaningAction]:
    if pre.outliers == "none":
        return []
    rule = (
        f"|z-score| > {pre.zscore_threshold:g}"
        if pre.outliers == "zscore"
        else f"{pre.iqr_factor:g} x IQR"
    )
    if pre.outlier_action == "clip":
        actions = []
        for column, n in merged(counts, "clipped").items():
            lo, hi = pre.bounds_[column] or (0.0, 0.0)
            detail = f"clipped to [{lo:.4g}, {hi:.4g}] ({rule}, training bounds)"
            warning = _share_warning(n, rows, f"clipped {n} of its {rows} values", pre)
            actions.append(
                CleaningAction("outliers", detail, column, values_changed=n, warning=warning)
            )
        return actions
    if not dropped:
        return []
    return [
        CleaningAction(
            "outliers",
            f"dropped training rows outside the training bounds ({rule}); "
            "val/test rows are kept so evaluation sees real data",
            rows_dropped=dropped,
            warning=_share_warning(
                dropped, train_rows, f"dropped {dropped} of {train_rows} training rows", pre
            ),
        )
    ]


def _share_warning(n: int, total: int, what: str, pre: TablePreprocessing) -> str:
    """The warning for outlier handling that changed ``OUTLIER_WARNING_SHARE`` or more."""
    if total <= 0 or n / total < OUTLIER_WARNING_SHARE:
        return ""
    factor = (
        f"a larger data.clean.iqr_factor (now {pre.iqr_factor:g})"
        if pre.outliers == "iqr"
        else f"a larger data.clean.zscore_threshold (now {pre.zscore_threshold:g})"
    )
    return (
        f"outlier handling {what} ({n / total:.1%}, at least "
        f"{OUTLIER_WARNING_SHARE:.0%}); the column is probably skewed or heavy-tailed rather "
        f"than noisy — check it, or set {factor} or data.clean.outliers: none"
    )


def _onehot_actions(
    pre: TablePreprocessing, tidied: TidyTable, counts: Counts
) -> list[CleaningAction]:
    actions = [
        CleaningAction(
            "onehot", f"{len(pre.categories_[column])} categories from the training split", column
        )
        for column in tidied.frame.columns
        if tidied.kinds[column] not in NUMERIC_KINDS
    ]
    for column, n in merged(counts, "unseen").items():
        actions.append(
            CleaningAction(
                "onehot",
                "categories not seen in training encoded as all zeros",
                column,
                values_changed=n,
            )
        )
    return actions


def _constant_and_scale_actions(pre: TablePreprocessing) -> list[CleaningAction]:
    actions = []
    if pre.constant == "drop" and pre.constant_features_:
        actions.append(
            CleaningAction(
                "constant",
                f"dropped {len(pre.constant_features_)} feature(s) constant in training: "
                f"{', '.join(pre.constant_features_[:8])}",
            )
        )
    if pre.scale != "none":
        actions.append(
            CleaningAction(
                "scale",
                f"{pre.scale} scaling of {len(pre.feature_names_)} features fitted on the "
                "training split",
            )
        )
    return actions


def merged(counts: Counts, what: str, splits: tuple[str, ...] = SPLITS) -> Counter:
    """One count (``filled``, ``outliers``, ...) per column, summed over ``splits``."""
    total: Counter = Counter()
    for split in splits:
        total.update(counts[split].get(what, Counter()))
    return total


# ---- profile ---------------------------------------------------------------------------------


def outlier_rule(pre: TablePreprocessing) -> str:
    """How the profile's outlier counts were made, in words."""
    if pre.outliers == "iqr":
        return f"outside {pre.iqr_factor:g} x IQR of the training quartiles"
    rule = f"|z-score| > {pre.zscore_threshold:g} against training mean and std"
    return rule if pre.outliers == "zscore" else rule + " (reported only)"


def table_columns(
    tidied: TidyTable, pre: TablePreprocessing, counts: Counts, train: pd.DataFrame
) -> list[ColumnProfile]:
    """Per raw column; outliers are counted on the training rows as fitted (dropped ones
    included) plus val/test against the training bounds."""
    constant = set(pre.constant_features_)
    held_out = merged(counts, "outliers", ("val", "test"))
    columns = []
    for column in tidied.frame.columns:
        kind = tidied.kinds[column]
        entry = ColumnProfile(
            name=column,
            kind=kind,
            missing=tidied.missing.get(column, 0),
            non_finite=tidied.non_finite.get(column, 0),
            outliers=pre.outlier_counts_.get(column, 0) + held_out.get(column, 0),
        )
        if kind in NUMERIC_KINDS:
            values = train[column].to_numpy(dtype=np.float64)
            present = values[~np.isnan(values)]
            if present.size:
                entry.min = finite(present.min())
                entry.mean = finite(present.mean())
                entry.max = finite(present.max())
            entry.constant = column in constant
        else:
            categories = pre.categories_[column]
            entry.distinct = len(categories)
            entry.constant = all(f"{column}={c}" in constant for c in categories)
        columns.append(entry)
    return columns
