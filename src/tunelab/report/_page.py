"""The report page: sections, small HTML helpers, and the one self-contained HTML file.

plotly.js is inlined exactly once in ``<head>``; every figure is a ``<div>`` plus a short
``Plotly.newPlot`` call, so the file opens from disk with no server and no network.
"""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass, field
from typing import Any

_CSS = """
:root { --fg:#1f2933; --muted:#5f6b7a; --line:#d9dee5; --bg:#f6f8fa; --accent:#2563eb;
        --ok:#15803d; --warn:#b45309; --err:#b91c1c; --info:#1d4ed8; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
       color:var(--fg); background:#fff; }
header { padding:20px 32px 8px; border-bottom:1px solid var(--line); background:var(--bg); }
header h1 { margin:0 0 4px; font-size:24px; }
header p { margin:0 0 8px; color:var(--muted); }
nav { position:sticky; top:0; z-index:10; background:#fff; border-bottom:1px solid var(--line);
      padding:8px 32px; display:flex; flex-wrap:wrap; gap:6px 18px; }
nav a { color:var(--accent); text-decoration:none; font-size:14px; }
nav a.missing { color:var(--muted); text-decoration:line-through; }
main { padding:8px 32px 48px; max-width:1400px; }
section { padding:12px 0 20px; border-bottom:1px solid var(--line); }
h2 { font-size:20px; margin:16px 0 8px; }
h3 { font-size:16px; margin:18px 0 6px; }
table { border-collapse:collapse; margin:8px 0 12px; font-size:13px; }
th, td { border:1px solid var(--line); padding:4px 8px; text-align:left; vertical-align:top; }
th { background:var(--bg); }
td.num { text-align:right; font-variant-numeric:tabular-nums; white-space:nowrap; }
td:last-child { min-width:220px; }
.table-wrap { max-width:100%; overflow-x:auto; }
.plot { width:100%; min-height:200px; margin:8px 0; }
.note { color:var(--muted); font-size:14px; }
.missing-box { border-left:4px solid var(--warn); background:#fffbeb; padding:8px 12px;
               margin:8px 0; font-size:14px; }
.missing-box ul { margin:4px 0 0 18px; padding:0; }
.grid { display:grid; grid-template-columns:repeat(auto-fit,minmax(190px,1fr)); gap:10px;
        margin:8px 0 12px; }
.card { border:1px solid var(--line); border-radius:6px; padding:8px 12px; background:var(--bg); }
.card .k { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.03em; }
.card .v { font-size:18px; font-weight:600; word-break:break-word; }
.sev-error { color:var(--err); font-weight:600; }
.sev-warning { color:var(--warn); font-weight:600; }
.sev-info { color:var(--info); }
.state-COMPLETE { color:var(--ok); } .state-PRUNED { color:var(--warn); }
.state-FAIL { color:var(--err); } .state-RUNNING { color:var(--info); }
pre, code { font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; font-size:13px; }
pre { background:var(--bg); border:1px solid var(--line); padding:8px 12px; overflow-x:auto; }
details summary { cursor:pointer; color:var(--accent); }
"""


@dataclass
class ReportSection:
    """One titled part of the report; ``missing`` says why it could not be shown at all."""

    key: str
    title: str
    parts: list[str] = field(default_factory=list)
    missing: str | None = None
    gaps: list[str] = field(default_factory=list)
    plots: list[str] = field(default_factory=list)

    def add(self, fragment: str) -> None:
        self.parts.append(fragment)

    def gap(self, what: str, why: str) -> None:
        """Record that one part of an otherwise present section is absent, and why."""
        self.gaps.append(f"{what}: {why}")

    def to_html(self) -> str:
        body = list(self.parts)
        if self.missing:
            body = [f'<div class="missing-box">Not available: {prose(self.missing)}</div>']
        elif self.gaps:
            items = "".join(f"<li>{prose(g)}</li>" for g in self.gaps)
            body.append(f'<div class="missing-box">Parts not shown:<ul>{items}</ul></div>')
        return (
            f'<section id="{self.key}" data-section="{self.key}">'
            f"<h2>{esc(self.title)}</h2>{''.join(body)}</section>"
        )


class FigureRegistry:
    """Turns plotly figures into ``<div>``s with unique ids; plotly.js is added once per page."""

    def __init__(self) -> None:
        self.count = 0

    def embed(self, fig: Any, name: str) -> str:
        self.count += 1
        div_id = f"plot-{self.count}"
        inner = fig.to_html(
            full_html=False,
            include_plotlyjs=False,
            div_id=div_id,
            config={"displaylogo": False, "responsive": True},
        )
        return f'<div class="plot" data-plot="{esc(name)}">{inner}</div>'


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def prose(text: str) -> str:
    """Escaped text with `backticked` spans as ``<code>`` (the missing-part reasons use them)."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", esc(text))


def fmt(value: Any, digits: int = 4) -> str:
    """Numbers compactly (ints as ints, floats to ``digits`` significant figures)."""
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e6):
            return f"{value:.{digits - 1}e}"
        return f"{value:.{digits}g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(fmt(v, digits) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={fmt(v, digits)}" for k, v in value.items())
    return str(value)


def table(
    headers: list[str],
    rows: list[list[Any]],
    *,
    raw_columns: frozenset[int] = frozenset(),
    row_classes: list[str] | None = None,
    table_id: str | None = None,
) -> str:
    """An HTML table; numbers right-aligned; columns in ``raw_columns`` are trusted HTML."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for r, row in enumerate(rows):
        cells = []
        for c, value in enumerate(row):
            if c in raw_columns:
                cells.append(f"<td>{value}</td>")
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                cells.append(f'<td class="num">{esc(fmt(value))}</td>')
            else:
                cells.append(f"<td>{esc(fmt(value))}</td>")
        cls = f' class="{esc(row_classes[r])}"' if row_classes and row_classes[r] else ""
        body.append(f"<tr{cls}>{''.join(cells)}</tr>")
    ident = f' id="{esc(table_id)}"' if table_id else ""
    return (
        f'<div class="table-wrap"><table{ident}><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def cards(items: list[tuple[str, Any]]) -> str:
    inner = "".join(
        f'<div class="card"><div class="k">{esc(k)}</div><div class="v">{esc(fmt(v))}</div></div>'
        for k, v in items
        if v not in (None, "")
    )
    return f'<div class="grid">{inner}</div>'


def page(title: str, subtitle: str, sections: list[ReportSection], plotly_js: str) -> str:
    """The whole document. ``plotly_js`` is inlined once (empty when the page has no plot)."""
    links = "".join(
        f'<a href="#{s.key}"{" class=missing" if s.missing else ""}>{esc(s.title)}</a>'
        for s in sections
    )
    missing = [s for s in sections if s.missing]
    overview = ""
    if missing:
        items = "".join(f"<li><b>{esc(s.title)}</b>: {prose(s.missing)}</li>" for s in missing)
        overview = (
            '<div class="missing-box" id="missing-sections">Sections missing from this run:'
            f"<ul>{items}</ul></div>"
        )
    # "</script" inside the inlined library would end the tag early; plotly.js has none today.
    safe_js = plotly_js.replace("</script", "<\\/script")
    script = f"<script>{safe_js}</script>" if plotly_js else ""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{_CSS}</style>{script}</head><body>"
        f"<header><h1>{esc(title)}</h1><p>{esc(subtitle)}</p>{overview}</header>"
        f"<nav>{links}</nav><main>{''.join(s.to_html() for s in sections)}</main>"
        "</body></html>\n"
    )
