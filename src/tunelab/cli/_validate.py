"""``tunelab validate CONFIG``: print the resolved config or the one-line error."""

from __future__ import annotations

from pathlib import Path

import typer

from ..config import load_config
from ._app import app


@app.command()
def validate(config: Path = typer.Argument(..., help="Experiment YAML file.")) -> None:
    """Check an experiment config and print it with every default filled in."""
    from ..models import check_params

    cfg = load_config(config)
    if not cfg.model.checkpoint:  # a checkpoint brings its own builder and params
        check_params(cfg.model.builder, dict(cfg.model.params or {}), allow_spaces=True)
    typer.echo(cfg.to_yaml(), nl=False)
    spaces = cfg.search_spaces()
    if spaces:
        typer.echo(f"# {len(spaces)} tuned field(s): {', '.join(spaces)}")
