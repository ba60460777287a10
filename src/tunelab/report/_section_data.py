"""The data-profile section: splits, cleaning actions, class balance, per-column checks.

Reads ``data_profile.json`` as ``tunelab.data.DataProfile.to_dict()`` writes it; keys it does
not know are still shown, as generic tables, so a richer profile never loses information.
"""

from __future__ import annotations

import json
from typing import Any

from . import _figures as figs
from ._artifacts import RunArtifacts
from ._page import FigureRegistry, ReportSection, cards, esc, fmt, table
from ._sections_run import _try_plot, task_name

MAX_COLUMNS = 60

# Shown as headline cards, in this order, with these labels.
_CARDS = (
    ("name", "data set"),
    ("origin", "source"),
    ("task", "task"),
    ("kind", "kind"),
    ("rows_loaded", "rows loaded"),
    ("rows_dropped", "rows dropped by cleaning"),
    ("input_shape", "input shape"),
    ("features", "features"),
    ("duplicate_rows", "duplicate rows"),
    ("stratified", "stratified split"),
)


def data_section(art: RunArtifacts, reg: FigureRegistry) -> ReportSection:
    sec = ReportSection("data", "Data profile")
    profile = art.data_profile
    if not isinstance(profile, dict):
        sec.missing = art.notes.get("data") or (
            "no data_profile.json in the run directory (`tunelab demo` writes one; "
            "`tunelab data profile CONFIG` prints one)"
        )
        return sec
    used = {key for key, _ in _CARDS}
    items = [(label, profile.get(key)) for key, label in _CARDS]
    items = [(k, "x".join(map(str, v)) if isinstance(v, list) else v) for k, v in items]
    classes = profile.get("classes") or []
    if classes:
        items.insert(3, ("classes", len(classes)))
    sec.add(cards(items))

    rows = profile.get("rows")
    sec.add("<h3>Splits</h3>")
    if isinstance(rows, dict) and rows:
        total = max(1, sum(v for v in rows.values() if isinstance(v, (int, float))))
        body = [[k, v, f"{100 * v / total:.1f}%"] for k, v in rows.items()]
        sec.add(table(["split", "rows", "share"], body, table_id="splits-table"))
    else:
        sec.gap("splits", "the profile does not list rows per split")
    cross = profile.get("cross_split_duplicates") or {}
    if cross:
        body = [[f"{split} rows also in train", n] for split, n in cross.items()]
        sec.add(table(["leakage check", "rows"], body))
    used.update({"rows", "cross_split_duplicates", "classes"})

    sec.add("<h3>Cleaning actions</h3>")
    actions = profile.get("actions") or []
    if actions:
        headers = ["step", "column", "detail", "rows_dropped", "values_changed"]
        body = [[a.get(h) for h in headers] for a in actions if isinstance(a, dict)]
        sec.add(table(["step", "column", "what was done", "rows dropped", "values changed"], body))
    else:
        sec.add('<p class="note">Nothing needed cleaning: no row dropped, no value changed.</p>')
    used.add("actions")

    balance = profile.get("class_balance") or {}
    if balance:
        sec.add("<h3>Class balance</h3>")
        counts = {str(s): {str(c): float(n) for c, n in v.items()} for s, v in balance.items()}
        _try_plot(sec, reg, "class_balance", "class balance plot", figs.class_balance, counts)
        sec.add(_balance_table(counts, [str(c) for c in classes]))
    elif task_name(art) == "classification":
        sec.gap("class balance", "the profile has no class counts")
    used.add("class_balance")

    target = profile.get("target") or {}
    if target:
        sec.add("<h3>Target</h3>")
        stats = ("mean", "std", "min", "max")
        sec.add(
            table(["split", *stats], [[s, *(v.get(k) for k in stats)] for s, v in target.items()])
        )
    used.add("target")

    constant = profile.get("constant_columns") or []
    if constant:
        shown = ", ".join(map(str, constant[:40])) + (" ..." if len(constant) > 40 else "")
        sec.add(f"<p>Constant columns on the training split ({len(constant)}): {esc(shown)}</p>")
    used.add("constant_columns")

    columns = [c for c in profile.get("columns") or [] if isinstance(c, dict)]
    if columns:
        sec.add(f"<details><summary>Per-column checks ({len(columns)} columns)</summary>")
        headers = ["name", "kind", "missing", "outliers", "distinct", "min", "mean", "max"]
        body = [[c.get(h) for h in headers] for c in columns[:MAX_COLUMNS]]
        sec.add(table(headers, body))
        if len(columns) > MAX_COLUMNS:
            sec.add(f'<p class="note">... and {len(columns) - MAX_COLUMNS} more columns.</p>')
        sec.add("</details>")
    used.add("columns")

    notes = profile.get("notes") or []
    sec.add("".join(f'<p class="note">Note: {esc(n)}</p>' for n in notes))
    used.add("notes")
    rest = {k: v for k, v in profile.items() if k not in used and v not in (None, [], {})}
    if rest:
        sec.add("<h3>Other checks</h3>")
        sec.add(generic(rest))
    return sec


def _balance_table(counts: dict[str, dict[str, float]], classes: list[str]) -> str:
    splits = list(counts)
    names = classes or list(dict.fromkeys(c for v in counts.values() for c in v))
    totals = {s: max(1.0, sum(counts[s].values())) for s in splits}
    body = [
        [
            name,
            *(
                f"{int(counts[s].get(name, 0))} ({100 * counts[s].get(name, 0) / totals[s]:.1f}%)"
                for s in splits
            ),
        ]
        for name in names
    ]
    return table(["class", *splits], body, table_id="class-balance-table")


def generic(value: Any, depth: int = 0) -> str:
    """Any JSON value as readable HTML: dicts as key/value tables, lists of dicts as tables."""
    if isinstance(value, dict):
        if not value:
            return '<p class="note">none</p>'
        body = [
            [k, generic(v, depth + 1) if isinstance(v, (dict, list)) else esc(fmt(v))]
            for k, v in value.items()
        ]
        return table(["item", "value"], body, raw_columns=frozenset({1}))
    if isinstance(value, list):
        if not value:
            return '<p class="note">none</p>'
        if all(isinstance(v, dict) for v in value):
            headers = list(dict.fromkeys(k for v in value for k in v))
            body = [[_cell(v.get(h)) for h in headers] for v in value]
            return table(headers, body, raw_columns=frozenset(range(len(headers))))
        return esc(fmt(value))
    return esc(fmt(value))


def _cell(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return esc(json.dumps(value, default=str)[:300])
    return esc(fmt(value))
