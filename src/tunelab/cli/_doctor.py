"""``tunelab doctor CONFIG [--epochs N] [--fix] [--rounds N]``: diagnose (and repair) a training.

Prints the diagnosis as causes with their consequences (kind, severity, evidence, remedy); with
``--fix``, treats one cause per round, keeps what helps and reverts what does not, then prints
the before/after table (change, verdict, findings and the monitored metric per round), which
round's config is returned and why it stopped. See docs/diagnose.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from ._app import app

_STYLE = {"error": "bold red", "warning": "yellow", "info": "dim"}


@app.command()
def doctor(
    config: Path = typer.Argument(..., help="Experiment YAML file."),
    epochs: int | None = typer.Option(
        None, "--epochs", min=1, help="Epochs of each diagnostic run (default: up to 10)."
    ),
    fix: bool = typer.Option(
        False, "--fix", help="Treat one cause per round; keep what helps, revert what does not."
    ),
    rounds: int | None = typer.Option(
        None,
        "--rounds",
        min=1,
        max=20,
        help="Repair rounds at most (default: diagnose.rounds when set, else 6).",
    ),
    show_info: bool = typer.Option(False, "--info", help="Also list info-level findings."),
) -> None:
    """Run a short diagnostic training plus data checks and print what is wrong and the fix."""
    from .._console import make_console
    from ..config import load_config
    from ..diagnose._repair import diagnose_config
    from ..rundir import DoctorDir

    cfg = load_config(config)
    console = make_console()  # full width when piped: a remedy is never cut
    run = diagnose_config(cfg, epochs=epochs, fix=fix, rounds=rounds)
    if run.previous is not None:
        console.print(f"previous doctor run kept as {run.previous}", markup=False)
    first, best = run.rounds[0], run.best
    if run.baseline is not None:
        b = run.baseline
        others = ", ".join(f"{k} {v:.4f}" for k, v in b.scores.items())
        console.print(f"reference on the same split: {others} ({b.metric}, {b.seconds:.1f}s)")
    _findings_table(console, first, "Diagnosis" if len(run.rounds) == 1 else "Before", show_info)
    if len(run.rounds) > 1:
        _rounds_table(console, run.rounds, run.best_round)
        if best.round != first.round:
            _findings_table(console, best, f"After (round {best.round})", show_info)
        start = f"{first.value:.4f}" if first.value is not None else "n/a"
        end = f"{best.value:.4f}" if best.value is not None else "n/a"
        console.print(
            f"returned config: round {best.round} ({best.metric} {end}; the config as given: "
            f"{start}); never worse than the starting config"
        )
        c = run.confirmation
        if c is not None:
            shown = {k: f"{c[k]:.4f}" if c[k] is not None else "n/a" for k in ("start", "returned")}
            verdict = "kept" if c["kept"] else "undone: the config as given is returned"
            console.print(
                f"trained in full ({c['epochs']} epochs, your early stopping): as given "
                f"{shown['start']}, repaired {shown['returned']}: the repair is {verdict}"
            )
    console.print(f"stopped: {run.stopped_because}; files in {run.directory}")
    if fix:
        console.print(f"repaired config: {DoctorDir(run.directory).repaired_config}")


def _findings_table(console: Any, rnd: Any, title: str, show_info: bool) -> None:
    from rich.table import Table

    from ..diagnose import DiagnosisReport

    report = DiagnosisReport(list(rnd.findings))
    value = f"{rnd.value:.4f}" if rnd.value is not None else "n/a"
    table = Table(
        title=f"{title}: {rnd.status}, best {rnd.metric} {value}",
        show_lines=True,
        expand=True,
    )
    table.add_column("role", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    table.add_column("severity", no_wrap=True)
    table.add_column("evidence", ratio=3)
    table.add_column("remedy", ratio=2, overflow="fold")  # folded, never cut with …
    if not report.problems:
        table.add_row("-", "-", "-", "no warning or error: the run looks healthy", "-")
    for cause in report.causes:
        change = ""
        if cause.config_change:
            change = "\n" + ", ".join(f"{k}={v}" for k, v in cause.config_change.items())
        table.add_row(
            "Cause",
            cause.kind,
            f"[{_STYLE[cause.severity]}]{cause.severity}[/]",
            cause.evidence,
            cause.remedy + change,
        )
        for g in report.consequences_of(cause):
            table.add_row(
                "  Consequence",
                g.kind,
                f"[{_STYLE[g.severity]}]{g.severity}[/]",
                f"{g.evidence}\n[dim]because: {cause.link_evidence.get(g.kind, '')}[/]",
                f"(treat {cause.kind} first)",
            )
    for f in report.findings:
        if show_info and not f.is_problem:
            table.add_row("info", f.kind, f"[{_STYLE[f.severity]}]{f.severity}[/]", f.evidence, "")
    console.print(table)


def _rounds_table(console: Any, rounds: list[Any], best_round: int) -> None:
    from rich.table import Table

    table = Table(title="Fix rounds (one cause per round)", show_lines=True, expand=True)
    table.add_column("round", justify="right", no_wrap=True)
    table.add_column("treated", no_wrap=True)
    table.add_column("change tried", ratio=2, overflow="fold")
    table.add_column("verdict", ratio=2)
    table.add_column("causes / other problems", ratio=2)
    table.add_column(rounds[0].metric, justify="right", no_wrap=True)
    table.add_column("status", no_wrap=True)
    for r in rounds:
        changes = ", ".join(f"{k}={v}" for k, v in r.changes.items()) or "(as given)"
        causes = set(getattr(r, "causes", []) or [])
        problems = (
            ", ".join(
                f"{'Cause ' if f.kind in causes else ''}{f.kind} ({f.severity})" for f in r.problems
            )
            or "none"
        )
        value = f"{r.value:.4f}" if r.value is not None else "n/a"
        mark = " (returned)" if r.round == best_round else ""
        table.add_row(
            f"{r.round}{mark}",
            r.treated or "-",
            changes,
            r.verdict or "start",
            problems,
            value,
            r.status,
        )
    console.print(table)
