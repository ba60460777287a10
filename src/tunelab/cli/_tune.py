"""``tunelab tune CONFIG``: search the config's hyperparameters (see docs/tune.md)."""

from __future__ import annotations

from pathlib import Path

import typer

from ._app import app


@app.command()
def tune(
    config: Path = typer.Argument(..., help="Experiment YAML file with search spaces."),
    trials: int | None = typer.Option(None, "--trials", "-n", help="Trials in the whole study."),
    timeout: str | None = typer.Option(
        None, "--timeout", help="Wall-clock budget of this run: 90s, 10m, 1.5h."
    ),
    workers: int | None = typer.Option(
        None, "--workers", "-j", help="Processes sharing the study on this machine."
    ),
    sampler: str | None = typer.Option(
        None, "--sampler", help="auto, grid, random, tpe, gp, cmaes, qmc or nsga2."
    ),
    pruner: str | None = typer.Option(
        None, "--pruner", help="none, median, percentile, asha or hyperband."
    ),
    storage: str | None = typer.Option(
        None, "--storage", help="SQLAlchemy URL (default: sqlite runs/<name>/study.db)."
    ),
    max_total_epochs: int | None = typer.Option(
        None, "--max-total-epochs", help="Budget in training epochs over all trials."
    ),
    progress: str | None = typer.Option(
        None, "--progress", help="auto (table on a terminal), rich, plain or none."
    ),
    backend: str | None = typer.Option(
        None, "--backend", help="local (this machine) or ray (a Ray cluster: docs/scale.md)."
    ),
    address: str | None = typer.Option(
        None,
        "--address",
        help="Ray cluster to join: auto, HOST:PORT or ray://HOST:10001 (default: start one).",
    ),
) -> None:
    """Tune CONFIG; running it again on the same run directory continues the study."""
    # Only the light config module so far: with several workers the helper processes start
    # now, and their ~7 s of imports and warm-up overlap this process's own.
    from ..config import load_config
    from ..tune._standby import release_standby, start_standby

    overrides = {
        "trials": trials,
        "timeout": timeout,
        "workers": workers,
        "sampler": sampler,
        "pruner": pruner,
        "storage": storage,
        "max_total_epochs": max_total_epochs,
        "progress": progress,
        "backend": backend,
        "address": address,
    }
    loaded = load_config(config)
    helpers = (workers if workers is not None else loaded.tune.workers) - 1
    from ..rundir import RunDir

    workers_dir = RunDir.for_config(loaded).workers_dir
    standby = start_standby(workers_dir, helpers) if helpers > 0 else []
    from .._console import make_console
    from ..errors import FatalError
    from ..tune import resolve_config, run_study
    from ..tune._loop import fatal_message, is_fatal
    from ..tune._summary import print_summary

    try:
        # The config is loaded once and the flags applied once; run_study takes it as it is.
        cfg = resolve_config(loaded, overrides)
    except BaseException:
        release_standby(standby)
        raise
    try:
        result = run_study(cfg, standby=standby)
    except Exception as exc:
        # A fatal error that is not a FatalError (a builder's ImportError) is one line too.
        if is_fatal(exc) and not isinstance(exc, FatalError):
            raise FatalError(fatal_message(exc)) from None
        raise
    print_summary(result, make_console())
    summary = RunDir(result.run_dir).tune_summary if result.run_dir else None
    typer.echo(f"study: {result.storage}  summary: {summary}")
