"""``tunelab doctor CONFIG [--epochs N] [--fix] [--rounds 3]``: diagnose (and repair) a training.

Prints a table of findings (kind, severity, evidence, remedy); with ``--fix``, applies the
prescribed config changes and re-runs, then prints the before/after table (findings and val
metric per round). See docs/diagnose.md.
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
        False, "--fix", help="Apply the prescribed config changes and re-run until healthy."
    ),
    rounds: int | None = typer.Option(
        None, "--rounds", min=1, max=10, help="Repair rounds at most (default 3)."
    ),
    show_info: bool = typer.Option(False, "--info", help="Also list info-level findings."),
) -> None:
    """Run a short diagnostic training plus data checks and print what is wrong and the fix."""
    from rich.console import Console

    from ..config import load_config
    from ..diagnose._repair import diagnose_config
    from ..rundir import DoctorDir

    cfg = load_config(config)
    console = Console()
    run = diagnose_config(cfg, epochs=epochs, fix=fix, rounds=rounds)
    first, last = run.rounds[0], run.final
    _findings_table(console, first, "Diagnosis" if len(run.rounds) == 1 else "Before", show_info)
    if len(run.rounds) > 1:
        _findings_table(console, last, f"After round {last.round}", show_info)
        _rounds_table(console, run.rounds)
    console.print(f"{run.stopped_because}; files in {run.directory}")
    if fix:
        console.print(f"repaired config: {DoctorDir(run.directory).repaired_config}")


def _findings_table(console: Any, rnd: Any, title: str, show_info: bool) -> None:
    from rich.table import Table

    shown = [f for f in rnd.findings if show_info or f.is_problem]
    value = f"{rnd.value:.4f}" if rnd.value is not None else "n/a"
    table = Table(
        title=f"{title}: {rnd.status}, best {rnd.metric} {value}",
        show_lines=True,
        expand=True,
    )
    table.add_column("kind", no_wrap=True)
    table.add_column("severity", no_wrap=True)
    table.add_column("evidence", ratio=3)
    table.add_column("remedy", ratio=2)
    if not shown:
        table.add_row("-", "-", "no warning or error: the run looks healthy", "-")
    for f in shown:
        change = ""
        if f.config_change:
            change = "\n" + ", ".join(f"{k}={v}" for k, v in f.config_change.items())
        table.add_row(
            f.kind,
            f"[{_STYLE[f.severity]}]{f.severity}[/]",
            f.evidence,
            f.remedy + change,
        )
    console.print(table)


def _rounds_table(console: Any, rounds: list[Any]) -> None:
    from rich.table import Table

    table = Table(title="Fix rounds", show_lines=True, expand=True)
    table.add_column("round", justify="right", no_wrap=True)
    table.add_column("changes applied", ratio=2)
    table.add_column("warnings / errors", ratio=2)
    table.add_column(rounds[0].metric, justify="right", no_wrap=True)
    table.add_column("status", no_wrap=True)
    for r in rounds:
        changes = ", ".join(f"{k}={v}" for k, v in r.changes.items()) or "(as given)"
        problems = ", ".join(f"{f.kind} ({f.severity})" for f in r.problems) or "none"
        value = f"{r.value:.4f}" if r.value is not None else "n/a"
        table.add_row(str(r.round), changes, problems, value, r.status)
    console.print(table)
