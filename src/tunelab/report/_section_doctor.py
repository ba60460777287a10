"""The doctor's section: the causal view (each root cause with the consequences it explains,
and the evidence for each link), findings with evidence and remedy, and ``--fix`` before and
after (one cause per round, kept or reverted, which round's config was returned).

Reads ``findings.json`` of the best model's training (``DiagnosisReport.save``), every trial's
findings, and ``doctor/fix_rounds.json`` with one training directory per repair round
(``doctor/round_<n>/``), whose learning curves give the before/after plot.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..rundir import TrainingDir
from . import _figures as figs
from ._artifacts import RunArtifacts, read_findings, read_jsonl
from ._page import FigureRegistry, ReportSection, esc, fmt, table
from ._sections_run import _try_plot

_SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}


def _finding_row(f: dict[str, Any]) -> list[Any]:
    evidence = f.get("evidence", "")
    figures = f.get("figures") or f.get("evidence_data") or f.get("data")
    if isinstance(evidence, dict):
        figures = figures or evidence.get("figures") or evidence.get("data")
        evidence = evidence.get("text") or evidence.get("summary") or fmt(evidence)
    severity = str(f.get("severity", ""))
    change = f.get("config_change")
    return [
        esc(f.get("kind", "")),
        f'<span class="sev-{esc(severity)}">{esc(severity)}</span>',
        esc(evidence) + (f'<br><span class="note">{esc(fmt(figures))}</span>' if figures else ""),
        esc(f.get("remedy", "")),
        esc(fmt(change)) if change else "",
        esc(fmt(f.get("first_seen"))),
    ]


def _roles(findings: list[dict[str, Any]]) -> dict[int, str]:
    """``{index: "cause" | "consequence of <kind>"}`` from the findings' ``explains`` lists
    (problems only; a findings.json written before the causal view has none: all causes)."""
    problems = [f for f in findings if f.get("severity") in ("warning", "error")]
    explained: dict[str, list[str]] = {}
    for f in problems:
        for kind in f.get("explains") or []:
            explained.setdefault(str(kind), []).append(str(f.get("kind")))
    roles = {}
    for i, f in enumerate(findings):
        if f.get("severity") not in ("warning", "error"):
            roles[i] = ""
        elif str(f.get("kind")) in explained:
            roles[i] = "consequence of " + ", ".join(explained[str(f.get("kind"))])
        else:
            roles[i] = "cause"
    return roles


def causal_summary(findings: list[dict[str, Any]]) -> str:
    """'Cause: X. Consequences: a, b.' per root cause, as HTML paragraphs ('' when healthy)."""
    roles = _roles(findings)
    by_kind = {str(f.get("kind")): f for f in findings}
    out = []
    for i, f in enumerate(findings):
        if roles.get(i) != "cause":
            continue
        line = f"<b>Cause: {esc(f.get('kind', ''))}</b> ({esc(f.get('severity', ''))})"
        consequences = [k for k in f.get("explains") or [] if k in by_kind]
        if consequences:
            links = f.get("link_evidence") or {}
            items = "; ".join(
                f'{esc(k)} <span class="note">({esc(links.get(k, ""))})</span>'
                for k in consequences
            )
            line += f". Consequences: {items}"
        out.append(f"<p>{line}.</p>")
    return "".join(out)


def findings_table(findings: list[dict[str, Any]]) -> str:
    roles = _roles(findings)
    indexed = list(enumerate(findings))
    # Problems first, causes before consequences, then by severity.
    indexed.sort(
        key=lambda p: (
            roles[p[0]] == "",
            roles[p[0]] != "cause",
            _SEVERITY_ORDER.get(str(p[1].get("severity")), 3),
        )
    )
    return table(
        ["role", "kind", "severity", "evidence", "remedy", "config change", "first seen"],
        [[esc(roles[i]), *_finding_row(f)] for i, f in indexed],
        raw_columns=frozenset(range(7)),
    )


def _trial_findings(art: RunArtifacts) -> list[list[Any]]:
    """Warnings and errors the doctor raised in any trial: which kinds, in which trials."""
    seen: dict[tuple[str, str], list[int]] = {}
    for number, path in sorted(art.trial_dirs.items()):
        try:
            items = read_findings(TrainingDir(path).findings) or []
        except ValueError:
            continue
        for f in items:
            if f.get("severity") in ("warning", "error"):
                seen.setdefault((str(f.get("kind")), str(f["severity"])), []).append(number)
    return [
        [kind, sev, len(nums), ", ".join(f"#{n}" for n in nums)]
        for (kind, sev), nums in seen.items()
    ]


def _rounds(fix_rounds: Any) -> list[dict[str, Any]]:
    if isinstance(fix_rounds, dict):
        fix_rounds = fix_rounds.get("rounds", [])
    return [r for r in fix_rounds if isinstance(r, dict)] if isinstance(fix_rounds, list) else []


def _problems(findings: Any) -> list[dict[str, Any]]:
    items = findings if isinstance(findings, list) else []
    return [f for f in items if isinstance(f, dict) and f.get("severity") in ("warning", "error")]


def _round_row(i: int, r: dict[str, Any], best: int | None = None) -> list[Any]:
    causes = set(r.get("causes") or [])
    kinds = ", ".join(
        f"{'Cause ' if f.get('kind') in causes else ''}{f.get('kind')} ({f.get('severity')})"
        for f in _problems(r.get("findings"))
    )
    value = r.get("value", r.get("val_metric"))
    name = r.get("metric") if isinstance(r.get("metric"), str) else r.get("metric_name", "")
    changes = r.get("changes") or {}
    number = r.get("round", i)
    mark = " (returned)" if best is not None and number == best else ""
    return [
        f"{number}{mark}",
        fmt(changes) if changes else ("(the config as given)" if i == 0 else "none"),
        esc(r.get("treated") or ""),
        esc(r.get("verdict") or ("start" if i == 0 else "")),
        r.get("status", ""),
        kinds or "none",
        f"{fmt(value)} {name}".strip() if value is not None else "",
    ]


def _round_curves(art: RunArtifacts, rounds: list[dict[str, Any]]) -> dict[str, list[dict]]:
    """``{"round 0": metrics rows, ...}`` from each round's training directory."""
    curves: dict[str, list[dict]] = {}
    doctor = art.run.doctor
    for i, r in enumerate(rounds):
        folder = Path(str(r.get("directory") or doctor.round(i).path))
        if not folder.is_absolute() and not folder.is_dir():
            folder = art.path / folder
        if not folder.is_dir():  # the run directory was moved: look next to fix_rounds.json
            folder = doctor.path / folder.name
        rows = read_jsonl(TrainingDir(folder).metrics)
        if rows:
            curves[f"round {r.get('round', i)}"] = rows
    return curves


def doctor_section(art: RunArtifacts, reg: FigureRegistry) -> ReportSection:
    sec = ReportSection("doctor", "Training doctor")
    findings = art.best.findings if art.best else None
    rounds = _rounds(art.fix_rounds)
    trial_rows = _trial_findings(art)
    if findings is None and not rounds and not trial_rows:
        sec.missing = art.notes.get("doctor") or (
            "no findings.json and no doctor/fix_rounds.json: the doctor was off "
            "(diagnose.enabled: false) and `tunelab doctor CONFIG --fix` was not run"
        )
        return sec
    if rounds:
        _fix_rounds(sec, reg, art, rounds)
    else:
        sec.gap("--fix rounds", "`tunelab doctor --fix` was not run for this run")
    sec.add("<h3>Findings on the best model's training</h3>")
    if findings:
        sec.add(causal_summary(findings))
        sec.add(findings_table(findings))
    elif findings is not None:
        sec.add('<p class="note">The doctor found nothing wrong.</p>')
    else:
        sec.gap("best-model findings", "the best model's directory has no findings.json")
    if trial_rows:
        sec.add("<h3>Problems seen across the search</h3>")
        sec.add(table(["kind", "severity", "trials", "which"], trial_rows))
    return sec


def _fix_rounds(
    sec: ReportSection, reg: FigureRegistry, art: RunArtifacts, rounds: list[dict[str, Any]]
) -> None:
    sec.add("<h3>Repair rounds (<code>tunelab doctor --fix</code>): before and after</h3>")
    meta = art.fix_rounds if isinstance(art.fix_rounds, dict) else {}
    if meta.get("stopped_because"):
        verdict = "repaired" if meta.get("repaired") else "not fully repaired"
        sec.add(
            f"<p>{esc(verdict.capitalize())}: stopped because {esc(meta['stopped_because'])}.</p>"
        )
    best = meta.get("best_round")
    if best is not None and meta.get("best_value") is not None:
        start = meta.get("start_value")
        sec.add(
            f"<p>Returned config: round {esc(best)} ({esc(meta.get('metric', ''))} "
            f"{esc(fmt(meta.get('best_value')))}; the config as given: {esc(fmt(start))}). "
            "A change that did not help was reverted; the returned config is never worse than "
            "the starting one.</p>"
        )
    baseline = meta.get("baseline")
    if isinstance(baseline, dict) and baseline.get("scores"):
        refs = ", ".join(f"{esc(k)} {esc(fmt(v))}" for k, v in baseline["scores"].items())
        sec.add(f"<p>Reference on the same split ({esc(baseline.get('metric', ''))}): {refs}.</p>")
    headers = [
        "round",
        "config change tried",
        "treated",
        "verdict",
        "status",
        "warnings and errors",
        "val metric",
    ]
    rows = [_round_row(i, r, best) for i, r in enumerate(rounds)]
    sec.add(table(headers, rows, table_id="fix-rounds"))
    curves = _round_curves(art, rounds)
    if curves:
        metric = next(
            (str(r["metric"]) for r in rounds if isinstance(r.get("metric"), str)), "val_loss"
        )
        _try_plot(sec, reg, "fix_rounds", "before/after curves", figs.round_curves, curves, metric)
    else:
        sec.gap("before/after curves", "the rounds' training directories are not in doctor/")
    first = _problems(rounds[0].get("findings"))
    if first:
        sec.add("<h4>What the doctor saw first, and what it prescribed</h4>")
        sec.add(causal_summary(rounds[0].get("findings") or []))
        sec.add(findings_table(rounds[0].get("findings") or first))
    if art.repaired_config:
        sec.add("<details><summary>Repaired config (doctor/config.yaml)</summary>")
        text = json.dumps(art.repaired_config, indent=2, default=str)
        sec.add(f"<pre>{esc(text)}</pre></details>")
