"""The end-of-study summary: best parameters, parameter importances, the top trials.

Rendered as rich tables (``print_summary``) on the console of ``tunelab._console`` (the full
width when the output is not a terminal); the CLI prints it after ``tunelab tune``. The counts
are the study's (every trial it holds, over all runs) and this command's; importances rest on
the complete trials and are withheld below ``MIN_IMPORTANCE_TRIALS`` (docs/tune.md).
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from .._console import make_console
from ._progress import format_params
from ._result import MIN_IMPORTANCE_TRIALS, StudyResult


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def headline(result: StudyResult) -> str:
    """One line: what the study holds, what this command ran, why it stopped, sampler, pruner."""
    counts = ", ".join(
        f"{result.count(s)} {s}" for s in ("complete", "pruned", "failed") if result.count(s)
    )
    total = len(result.trials)
    held = f"{total} trial{'s' if total != 1 else ''} ({counts})" if total else "no trials"
    if result.ran is not None and result.ran != total:
        held += f", {result.ran} run by this command"
    reason = result.stop_reason
    return (
        f"study {result.study_name}: {held} — stopped: {reason}; "
        f"sampler {result.sampler}, pruner {result.pruner}"
    )


def best_table(result: StudyResult) -> Table:
    best = result.best
    title = "best trial" if best is None else f"best trial #{best.number}"
    table = Table(title=title, show_header=True)
    table.add_column("parameter / metric")
    table.add_column("value", justify="right")
    if best is None:
        table.add_row("(none)", "no trial completed")
        return table
    for name, value in best.params.items():
        table.add_row(name, _fmt(value))
    for metric, direction, value in zip(
        result.metrics, result.directions, best.values or [], strict=False
    ):
        table.add_row(f"{metric} ({direction})", _fmt(value))
    attrs = best.user_attrs
    if "cv_mean" in attrs:
        table.add_row("cv mean ± std", f"{attrs['cv_mean']:.6g} ± {attrs.get('cv_std', 0):.3g}")
    table.add_row("epochs", str(best.epochs))
    if result.best_dir is not None:
        table.add_row("weights", str(result.best_dir))
    return table


def importance_table(result: StudyResult) -> Table:
    n = result.complete_trials
    table = Table(
        title=f"parameter importance (Optuna, from {n} complete trial{'s' if n != 1 else ''})",
        show_header=True,
    )
    table.add_column("parameter")
    table.add_column("importance", justify="right")
    table.add_column("")
    if not result.importances_shown:
        why = (
            f"withheld: {n} complete trial{'s' if n != 1 else ''}; importances need at least "
            f"{MIN_IMPORTANCE_TRIALS} to mean anything"
            if n < MIN_IMPORTANCE_TRIALS
            else "(needs complete trials with varied parameters)"
        )
        table.add_row(why, "", "")
        return table
    for name, value in result.importances.items():
        table.add_row(name, f"{value:.3f}", "█" * round(20 * value))
    return table


def top_table(result: StudyResult, k: int = 5) -> Table:
    multi = len(result.directions) > 1
    rows = result.pareto if multi else result.top(k)
    table = Table(title="Pareto front" if multi else f"top {k} trials", show_header=True)
    table.add_column("#", justify="right")
    for metric in result.metrics:
        table.add_column(metric, justify="right")
    table.add_column("epochs", justify="right")
    table.add_column("params")
    for t in rows:
        values = [_fmt(v) for v in (t.values or [])]
        table.add_row(str(t.number), *values, str(t.epochs), format_params(t.params))
    return table


def print_summary(result: StudyResult, console: Console | None = None) -> None:
    """Print the headline, best-params table, importances and top-5 (or the Pareto front)."""
    console = console or make_console()
    console.print(headline(result))
    console.print(best_table(result))
    console.print(importance_table(result))
    console.print(top_table(result))
    failed = [t for t in result.trials if t.state == "failed" and t.error]
    for t in failed[:5]:
        console.print(f"trial {t.number} failed: {t.error}", markup=False)
    sick = [t for t in result.trials if t.user_attrs.get("sick")]
    for t in sick[:5]:
        console.print(f"trial {t.number} stopped sick: {t.reason}", markup=False)
    if result.previous is not None:
        console.print(f"previous run kept as {result.previous}", markup=False)
