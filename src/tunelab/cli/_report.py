"""``tunelab report RUN_DIR`` and ``tunelab demo``: the last stage and the whole walk."""

from __future__ import annotations

from pathlib import Path

import typer

from ._app import app


@app.command()
def report(
    run_dir: Path = typer.Argument(..., help="A run directory (runs/<name>) or a training dir."),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Where to write the HTML (default RUN_DIR/report.html)."
    ),
) -> None:
    """Write one self-contained report.html (opens from disk, no server, no network)."""
    from ..report import build_report

    built = build_report(run_dir)
    target = built.write(output)
    shown = [s.title for s in built.sections if not s.missing]
    typer.echo(f"report: {target}  ({len(built.plots)} plots; sections: {', '.join(shown)})")
    for section in built.sections:
        if section.missing:
            typer.echo(f"  missing {section.title}: {section.missing}")


@app.command()
def demo(
    quick: bool = typer.Option(
        False, "--quick", help="A small budget (8 trials, 3 epochs): about a minute."
    ),
    dataset: str = typer.Option(
        "digits", "--dataset", help="digits (8x8 images, CNN) or breast_cancer (table, MLP)."
    ),
    run_root: Path = typer.Option(
        Path("runs"), "--run-root", help="Where demo-<dataset>/ is written (replaced if there)."
    ),
) -> None:
    """The whole workflow on bundled data: profile, doctor + fix, tune, test, compress, export,
    report."""
    from ..report import run_demo

    run_demo(dataset, quick=quick, run_root=run_root)
