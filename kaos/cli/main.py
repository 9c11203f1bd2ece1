"""Entry point of the `kaos` command."""

from __future__ import annotations

import typer

from kaos import __version__

app = typer.Typer(
    name="kaos",
    help="kaos: incremental, content-addressed model training.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def _root() -> None:
    """kaos: incremental, content-addressed model training."""


@app.command()
def version() -> None:
    """Print the kaos version."""
    typer.echo(f"kaos {__version__}")


def main() -> None:
    app()
