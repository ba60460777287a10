"""``tunelab train CONFIG``: train one model and write ``runs/<name>/`` (see docs/train.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from ._app import app

# Statuses after which there is no usable model: the command exits with code 1.
FAILED = ("nan", "oom", "diverged")  # = tunelab.train._run.UNUSABLE


@app.command()
def train(
    config: Path = typer.Argument(..., help="Experiment YAML file."),
    resume: bool = typer.Option(
        False, "--resume", help="Continue from runs/<name>/checkpoint.pt if it exists."
    ),
    find_lr: bool = typer.Option(
        False, "--find-lr", help="Run the LR range test instead of training, and suggest an LR."
    ),
    write: bool = typer.Option(
        False, "--write", help="With --find-lr: write the suggested LR into CONFIG (train.lr)."
    ),
    nproc: int = typer.Option(
        1, "--nproc", min=1, help="Processes for distributed data parallel training (gloo)."
    ),
    epochs: int | None = typer.Option(None, "--epochs", min=1, help="Override train.epochs."),
    run_dir: Path | None = typer.Option(
        None, "--run-dir", help="Training directory (default: <run_root>/<name>)."
    ),
) -> None:
    """Train CONFIG's model; print the final metrics and the classification report."""
    from .._console import make_console
    from ..config import load_config

    cfg = load_config(config)
    if epochs is not None:
        cfg = cfg.with_values({"train.epochs": epochs})
    console = make_console()  # paths and reports stay on one line each
    if find_lr:
        _find_lr(cfg, config, write=write, run_dir=run_dir, console=console)
        return
    if write:
        raise typer.BadParameter("--write only goes with --find-lr")
    from ..train._distributed import torchrun_world

    if torchrun_world() > 1:  # launched by torchrun: this process is one rank of the run
        from ..train._distributed import run_under_torchrun

        if nproc > 1:
            raise typer.BadParameter("--nproc goes without torchrun (torchrun starts the ranks)")
        summary = run_under_torchrun(cfg, run_dir=run_dir, resume=resume)
        if summary is None:
            return
        where, note = run_dir or cfg.run_dir, ""
    elif nproc > 1:
        from ..train._distributed import run_distributed

        summary = run_distributed(cfg, nproc, run_dir=run_dir, resume=resume)
        where, note = run_dir or cfg.run_dir, ""
    else:
        from ..train import run_training

        run = run_training(cfg, run_dir=run_dir, resume=resume, callbacks=_callbacks(cfg))
        summary = run.summary()
        where, note = run.run_dir or run_dir or cfg.run_dir, run.note
    # The progress display already printed how training ended, unless it was off.
    shown = cfg.train.progress != "none"
    _print_summary(summary, console, Path(where), status_shown=shown)
    if note:
        console.print(note, markup=False, highlight=False)
    if summary["status"] in FAILED:
        raise typer.Exit(1)


def _callbacks(cfg: Any) -> list[Any]:
    """The doctor rides along when the config turns it on (``diagnose.enabled``)."""
    from ..diagnose import doctor_callbacks

    return doctor_callbacks(cfg)


def _print_summary(
    summary: dict[str, Any], console: Any, run_dir: Path, *, status_shown: bool
) -> None:
    from rich.table import Table

    table = Table(title=f"{summary['name']}: {summary['status']}", show_lines=False)
    table.add_column("metric")
    table.add_column("best epoch", justify="right")
    table.add_column("test", justify="right")
    best, test = summary.get("best_metrics") or {}, summary.get("test_metrics") or {}
    names = [k for k in best if k not in ("epoch", "epoch_time_s")]
    names += [
        k.replace("test_", "val_", 1) for k in test if k.replace("test_", "val_", 1) not in names
    ]
    for name in names:
        test_name = name.replace("val_", "test_", 1) if name.startswith("val_") else None
        table.add_row(name, _fmt(best.get(name)), _fmt(test.get(test_name) if test_name else None))
    console.print(table)
    if not status_shown:
        console.print(f"{summary['status']}: {summary['reason']}")
    if summary.get("best_epoch") is not None:
        console.print(f"best epoch: {summary['best_epoch']} of {summary['epochs_run']}")
    if summary.get("classification_report"):
        console.print("\nclassification report (test):")
        console.print(summary["classification_report"], markup=False, highlight=False)
    console.print(f"run directory: {run_dir}")


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _find_lr(
    cfg: Any, config_path: Path, *, write: bool, run_dir: Path | None, console: Any
) -> None:

    from ..data import prepare_data
    from ..models import build_from_config
    from ..train._lr_finder import find_lr, write_lr

    bundle = prepare_data(cfg.data, seed=cfg.seed)
    model, _ = build_from_config(cfg.model, bundle, seed=cfg.seed)
    result = find_lr(model, bundle, cfg.train, seed=cfg.seed)
    console.print("lr          smoothed loss")
    for lr, loss in result.rows(every=20):
        console.print(f"{lr:<11.3g} {loss:.4f}")
    folder = Path(run_dir) if run_dir is not None else cfg.run_dir
    plot = result.plot(folder / "lr_find.png")
    console.print(
        f"steps: {len(result.lrs)}{' (stopped: the loss exploded)' if result.stopped_early else ''}"
        f"  lowest loss at lr {result.min_loss_lr:.3g}"
    )
    console.print(f"suggested lr: {result.suggestion:.3g}  (plot: {plot})")
    if write:
        write_lr(config_path, result.suggestion)
        console.print(f"wrote train.lr = {result.suggestion:.3g} into {config_path}")
