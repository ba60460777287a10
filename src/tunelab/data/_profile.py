"""``DataProfile``: what the data looks like and what cleaning did to it, as data and as tables.

The profile is the receipt of the data stage: every row removed and every value changed appears
as a :class:`CleaningAction`, so nothing disappears silently. ``tunelab data profile`` prints it,
a run directory keeps it as ``data_profile.json``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

MAX_COLUMNS_SHOWN = 40
MISSING_CAPTION = (
    "missing: empty, NaN or None values as loaded (and words a declared float/int column read "
    "as missing), before filling"
)
NON_FINITE_CAPTION = "; non-finite: inf, -inf or beyond float32's +-3.4e38, filled like missing"


@dataclass
class CleaningAction:
    """One thing cleaning did: ``step`` (missing, non-finite, outliers, duplicates, labels,
    dtype, onehot, constant, max_rows, files), the column if any, how many rows/values it
    touched, and a ``warning`` when it did more than such a step should (the profile lists it
    apart, see ``DataProfile.warnings``)."""

    step: str
    detail: str
    column: str | None = None
    rows_dropped: int = 0
    values_changed: int = 0
    warning: str = ""


@dataclass
class ColumnProfile:
    """One raw column (or image channel): kind, missing values (empty, NaN, None, and words a
    declared float/int column read as missing), non-finite values (inf, -inf, beyond float32;
    filled like missing ones), outliers found and train stats."""

    name: str
    kind: str
    missing: int = 0
    non_finite: int = 0
    outliers: int = 0
    distinct: int | None = None
    constant: bool = False
    min: float | None = None
    mean: float | None = None
    max: float | None = None


@dataclass
class DataProfile:
    """Rows per split, columns, missing values, outliers, class balance, constant columns,
    duplicates (within the data and between train and val/test) and the cleaning actions.

    >>> from tunelab.config import DataConfig
    >>> from tunelab.data import prepare_data
    >>> profile = prepare_data(DataConfig(dataset="iris"), seed=0).profile
    >>> sum(profile.rows.values()) == profile.rows_loaded - profile.rows_dropped
    True
    """

    name: str
    origin: str
    kind: str
    task: str
    rows_loaded: int
    rows: dict[str, int]
    input_shape: list[int]
    features: int
    columns: list[ColumnProfile] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)
    class_balance: dict[str, dict[str, int]] = field(default_factory=dict)
    target: dict[str, dict[str, float]] = field(default_factory=dict)
    constant_columns: list[str] = field(default_factory=list)
    duplicate_rows: int = 0
    cross_split_duplicates: dict[str, int] = field(default_factory=dict)
    actions: list[CleaningAction] = field(default_factory=list)
    stratified: bool = False
    outlier_rule: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def rows_dropped(self) -> int:
        """Rows removed by cleaning, summed over every action (the profile's ledger)."""
        return sum(a.rows_dropped for a in self.actions)

    @property
    def missing(self) -> dict[str, int]:
        """Missing values (empty, NaN, None; words a declared float/int column read as missing)
        per column as loaded, before any filling. Non-finite values are counted apart."""
        return {c.name: c.missing for c in self.columns if c.missing}

    @property
    def non_finite(self) -> dict[str, int]:
        """Non-finite values (inf, -inf, beyond float32's range) per column as loaded; they are
        filled (or dropped) like missing values, and each column's count is a cleaning action."""
        return {c.name: c.non_finite for c in self.columns if c.non_finite}

    @property
    def warnings(self) -> list[str]:
        """What cleaning did that a user should look at, one line each (``column: warning``)."""
        return [
            (f"column {a.column!r}: " if a.column else "") + a.warning
            for a in self.actions
            if a.warning
        ]

    @property
    def outliers(self) -> dict[str, int]:
        return {c.name: c.outliers for c in self.columns if c.outliers}

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["rows_dropped"] = self.rows_dropped
        data["warnings"] = self.warnings
        return data

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False, default=_jsonable)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json() + "\n", encoding="utf-8")
        return path

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DataProfile:
        values = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        values["columns"] = [ColumnProfile(**c) for c in data.get("columns", [])]
        values["actions"] = [CleaningAction(**a) for a in data.get("actions", [])]
        return cls(**values)

    # ---- rendering -----------------------------------------------------------------------

    def render(self) -> Any:
        """The profile as a group of rich tables (print with ``rich.print`` or a Console)."""
        from rich.console import Group
        from rich.table import Table

        summary = Table(title=f"Data: {self.name}", show_header=False, title_justify="left")
        summary.add_column("what", style="bold")
        summary.add_column("value")
        split_text = ", ".join(f"{k} {v}" for k, v in self.rows.items())
        rows = [
            ("source", self.origin),
            ("task", self.task + (f" ({len(self.classes)} classes)" if self.classes else "")),
            ("rows loaded", str(self.rows_loaded)),
            ("rows per split", split_text + (" (stratified)" if self.stratified else "")),
            ("rows dropped by cleaning", str(self.rows_dropped)),
            ("input shape", "x".join(map(str, self.input_shape)) or "-"),
            ("features", str(self.features)),
            (
                f"duplicate {'rows' if self.kind == 'table' else 'images'} in the data",
                str(self.duplicate_rows),
            ),
        ]
        unit = "rows" if self.kind == "table" else "images"
        for split, count in self.cross_split_duplicates.items():
            rows.append((f"{split} {unit} also in train", str(count)))
        if self.outlier_rule:
            rows.append(("outliers counted by", self.outlier_rule))
        if self.constant_columns:
            rows.append(("constant columns (train)", _cut(", ".join(self.constant_columns))))
        for what, value in rows:
            summary.add_row(what, value)
        parts: list[Any] = [summary]
        if self.columns:
            parts.append(self._columns_table(Table))
        if self.class_balance:
            parts.append(self._balance_table(Table))
        if self.target:
            parts.append(self._target_table(Table))
        cleaning = Table(title="Cleaning", title_justify="left")
        for name in ("step", "column", "what was done", "rows dropped", "values changed"):
            cleaning.add_column(name, justify="right" if name[0] in "rv" else "left")
        for a in self.actions:
            cleaning.add_row(
                a.step,
                a.column or "",
                a.detail + (" (see the warning below)" if a.warning else ""),
                str(a.rows_dropped),
                str(a.values_changed),
            )
        if not self.actions:
            cleaning.add_row("-", "", "nothing to clean", "0", "0")
        parts.append(cleaning)
        parts.extend(f"warning: {w}" for w in self.warnings)
        parts.extend(f"note: {n}" for n in self.notes)
        return Group(*parts)

    def __rich__(self) -> Any:
        return self.render()

    def to_text(self, width: int = 110) -> str:
        """The tables as plain text (no colour codes)."""
        from rich.console import Console

        console = Console(width=width, record=True, file=_Null(), color_system=None)
        console.print(self.render())
        return console.export_text()

    def __str__(self) -> str:
        return self.to_text()

    def _columns_table(self, Table: Any) -> Any:
        if self.kind == "image":
            return self._channels_table(Table)
        # The headers say what they count; the caption spells it out.
        infinite = any(c.non_finite for c in self.columns)
        table = Table(
            title="Columns (min, mean, max over train)",
            title_justify="left",
            caption=MISSING_CAPTION + (NON_FINITE_CAPTION if infinite else ""),
            caption_justify="left",
        )
        headers = ["column", "kind", "missing", *(["non-finite"] if infinite else [])]
        for name in (*headers, "outliers", "distinct", "min", "mean", "max"):
            table.add_column(name, justify="left" if name in ("column", "kind") else "right")
        for c in self.columns[:MAX_COLUMNS_SHOWN]:
            table.add_row(
                c.name + (" (constant)" if c.constant else ""),
                c.kind,
                str(c.missing),
                *([str(c.non_finite)] if infinite else []),
                str(c.outliers),
                "" if c.distinct is None else str(c.distinct),
                _num(c.min),
                _num(c.mean),
                _num(c.max),
            )
        hidden = self.columns[MAX_COLUMNS_SHOWN:]
        if hidden:
            table.add_row(
                f"... {len(hidden)} more",
                "",
                str(sum(c.missing for c in hidden)),
                *([str(sum(c.non_finite for c in hidden))] if infinite else []),
                str(sum(c.outliers for c in hidden)),
                "",
                "",
                "",
                "",
            )
        return table

    def _channels_table(self, Table: Any) -> Any:
        table = Table(title="Channels (train pixels)", title_justify="left")
        for name in ("channel", "min", "mean", "max"):
            table.add_column(name, justify="left" if name == "channel" else "right")
        for c in self.columns:
            table.add_row(c.name, _num(c.min), _num(c.mean), _num(c.max))
        return table

    def _balance_table(self, Table: Any) -> Any:
        table = Table(title="Class balance", title_justify="left")
        table.add_column("class")
        splits = list(self.class_balance)
        for split in splits:
            table.add_column(split, justify="right")
        totals = {s: max(1, sum(self.class_balance[s].values())) for s in splits}
        for name in self.classes:
            cells = []
            for s in splits:
                n = self.class_balance[s].get(name, 0)
                cells.append(f"{n} ({100 * n / totals[s]:.1f}%)")
            table.add_row(name, *cells)
        return table

    def _target_table(self, Table: Any) -> Any:
        table = Table(title="Target", title_justify="left")
        table.add_column("split")
        for name in ("mean", "std", "min", "max"):
            table.add_column(name, justify="right")
        for split, stats in self.target.items():
            table.add_row(split, *(_num(stats.get(k)) for k in ("mean", "std", "min", "max")))
        return table


def finite(value: float) -> float | None:
    """A statistic as the profile keeps it: a float, or ``None`` for NaN and inf (which JSON
    cannot hold)."""
    value = float(value)
    return value if math.isfinite(value) else None


def _num(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.4g}"


def _cut(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


class _Null:
    def write(self, _: str) -> int:
        return 0

    def flush(self) -> None:
        pass
