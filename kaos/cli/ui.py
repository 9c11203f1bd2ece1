"""`kaos ui`: the dashboard's address on the current server (and open it in a browser)."""

from __future__ import annotations

import typer

from kaos.cli.common import JsonOpt, WorkspaceOpt


def ui(
    open_browser: bool = typer.Option(False, "--open", help="open it in the default browser"),
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Print the dashboard's URL (the server serves it at /), opened on the current workspace."""
    import os

    from kaos.cli import context
    from kaos.cli.render import echo, print_json
    from kaos.config import ClientConfig

    name = workspace or os.environ.get("KAOS_WORKSPACE") or ClientConfig.load().workspace
    url = context.client().dashboard_url(name)
    if as_json:
        print_json({"url": url})
    else:
        echo(url)
    if open_browser:
        import webbrowser

        webbrowser.open(url)
