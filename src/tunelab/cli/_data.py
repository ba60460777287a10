"""``tunelab data ...``: look at the data an experiment config prepares.

``tunelab data profile CONFIG`` loads, cleans, splits and scales the data exactly as a run
would, then prints the profile (rows per split, columns, missing values, outliers, class
balance, constant columns, duplicates between train and val/test, cleaning actions). Bad data is
one line on stderr and exit code 2.
"""

from __future__ import annotations

from pathlib import Path

import typer

from ..config import load_config
from ._app import app

data_app = typer.Typer(
    name="data",
    help="Prepare and inspect the data of an experiment.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # Plain click help: typer's rich panels print `<bool>` after flags that take no value
    # (and cut long help at 80 columns when piped).
    rich_markup_mode=None,
)
app.add_typer(data_app, name="data")


@data_app.command("profile")
def profile(
    config: Path = typer.Argument(..., help="Experiment YAML file."),
    as_json: bool = typer.Option(False, "--json", help="Print the profile as JSON."),
    save: Path | None = typer.Option(
        None, "--save", help="Also write the profile as JSON to this file."
    ),
    width: int = typer.Option(110, "--width", help="Table width in characters."),
) -> None:
    """Prepare the data of CONFIG and print its profile."""
    from ..data import prepare_data  # imported here so that `tunelab validate` starts fast

    cfg = load_config(config)
    bundle = prepare_data(cfg.data, seed=cfg.seed)
    if save is not None:
        bundle.profile.save(save)
    if as_json:
        typer.echo(bundle.profile.to_json())
    else:
        typer.echo(bundle.profile.to_text(width=width), nl=False)
