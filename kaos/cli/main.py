"""Entry point of the `kaos` command: command groups, and errors turned into one red line."""

from __future__ import annotations

import sys

import typer

from kaos import __version__
from kaos.cli import serve, server, store, template, train, ui, workspace
from kaos.cli.common import JsonOpt
from kaos.errors import KaosError

app = typer.Typer(
    name="kaos",
    help="kaos: incremental, content-addressed model training.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: importing rich for it costs more than the rest of --help
    context_settings={"help_option_names": ["--help"]},
)
app.add_typer(workspace.app, name="workspace")
app.add_typer(template.app, name="template")
app.add_typer(train.app, name="train")
app.add_typer(server.app, name="server")
app.add_typer(store.app, name="store")
app.add_typer(serve.app, name="serve")
app.command("ui")(ui.ui)


@app.command()
def init(
    endpoint: str = typer.Option(..., "-e", "--endpoint", help="URL of a running kaos server"),
    token: str | None = typer.Option(None, "-t", "--token", help="bearer token for that server"),
    as_json: JsonOpt = False,
) -> None:
    """Point kaos at a running server (saved, readable by you only)."""
    from kaos.cli.render import echo, print_json
    from kaos.client import KaosClient
    from kaos.config import ClientConfig

    api = KaosClient(endpoint, token)
    health = api.health()
    api.workspaces()  # proves the token too
    config = ClientConfig.load()
    config.endpoint, config.token = endpoint.rstrip("/"), token
    config.save()
    if as_json:
        print_json({"endpoint": config.endpoint, "server_version": health.get("version")})
    else:
        echo(f"Successfully initialized kaos with endpoint {config.endpoint}")


@app.command()
def version() -> None:
    """Print the kaos version."""
    typer.echo(f"kaos {__version__}")


def main() -> None:
    try:
        app()
    except KaosError as exc:
        from kaos.cli.render import error

        error(str(exc))
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
