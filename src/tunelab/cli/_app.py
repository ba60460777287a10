"""The Typer application every command module attaches to."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="tunelab",
    help="From data to a tuned, diagnosed, compressed and served deep-learning model.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # Plain click help: typer's rich panels print `<bool>` after flags that take no value
    # (and cut long help at 80 columns when piped).
    rich_markup_mode=None,
)


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
) -> None:
    """From data to a tuned, diagnosed, compressed and served deep-learning model."""
    if version:
        from .. import __version__

        typer.echo(f"tunelab {__version__}")
        raise typer.Exit()
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())
        raise typer.Exit()
