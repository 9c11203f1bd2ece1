"""`kaos workspace`: create, list, set, current, info, kill, share, unshare."""

from __future__ import annotations

from typing import Any

import typer

from kaos.cli.common import JsonOpt

app = typer.Typer(no_args_is_help=True)  # its help line: kaos.cli.main.GROUPS


@app.command()
def create(name: str = typer.Option(..., "-n", "--name"), as_json: JsonOpt = False) -> None:
    """Create a workspace and make it the current one."""
    from kaos.cli import context
    from kaos.cli.render import echo, print_json

    created = context.api().create_workspace(name)
    if as_json:
        print_json(created)
    else:
        echo(f"Successfully set {name} workspace")


@app.command("list")
def list_(as_json: JsonOpt = False) -> None:
    """List workspaces."""
    from kaos.cli import context
    from kaos.cli.render import ascii_table, echo, print_json
    from kaos.config import ClientConfig

    spaces = context.api().workspaces()
    if as_json:
        print_json(spaces)
        return
    current = ClientConfig.load().workspace
    rows = [
        [i, ("* " if w["name"] == current else "") + w["name"], w["jobs"], w.get("owner") or "-"]
        for i, w in enumerate(spaces)
    ]
    echo(ascii_table(["ind", "name", "jobs", "owner"], rows, title="WORKSPACES"))


@app.command("set")
def set_(
    name: str | None = typer.Option(None, "-n", "--name"),
    index: int | None = typer.Option(None, "-i", "--ind", help="index in 'kaos workspace list'"),
) -> None:
    """Make a workspace the current one."""
    from kaos.cli import context
    from kaos.cli.render import echo

    name = context.api().use_workspace(name, index)
    echo(f"Successfully set {name} workspace")


@app.command()
def current(as_json: JsonOpt = False) -> None:
    """Show the current workspace."""
    from kaos.cli import context
    from kaos.cli.render import echo, print_json

    name = context.workspace()
    if as_json:
        print_json({"workspace": name})
    else:
        echo(f"Current workspace: {name}")


@app.command()
def info(as_json: JsonOpt = False) -> None:
    """Show the current workspace's training inputs."""
    from kaos.cli import context
    from kaos.cli.render import echo, print_json
    from kaos.cli.train import inputs_table

    space = context.api().workspace()
    if as_json:
        print_json(space)
        return
    echo(f"Workspace: {space['name']} ({space['jobs']} jobs)")
    echo(sharing_line(space) + "\n")
    echo("CURRENT TRAINING INPUTS\n")
    echo(inputs_table(space["inputs"]))


@app.command()
def kill(
    name: str = typer.Option(..., "-n", "--name"),
    yes: bool = typer.Option(False, "--yes", "-y", help="do not ask for confirmation"),
) -> None:
    """Delete a workspace and its job history (stored bundles and models stay until gc)."""
    from kaos.cli import context
    from kaos.cli.render import echo

    if not yes:
        typer.confirm(f"Delete workspace {name} and its job history?", abort=True)
    context.api().delete_workspace(name)
    echo(f"Successfully killed {name} workspace")


@app.command()
def share(
    user: str = typer.Option(..., "-u", "--user", help="the user to share with"),
    role: str = typer.Option("reader", "--role", help="reader (sees it) or writer (deploys too)"),
    name: str | None = typer.Option(None, "-n", "--name", help="default: the current one"),
    as_json: JsonOpt = False,
) -> None:
    """Let another user read (reader) or also change (writer) a workspace you own."""
    from kaos.cli import context
    from kaos.cli.render import echo, print_json

    space = context.api().share(user, role, name)
    if as_json:
        print_json(space)
    else:
        echo(f"Shared {space['name']} with {user} as {role}")
        echo(sharing_line(space))


@app.command()
def unshare(
    user: str = typer.Option(..., "-u", "--user", help="the user to take the role from"),
    name: str | None = typer.Option(None, "-n", "--name", help="default: the current one"),
    as_json: JsonOpt = False,
) -> None:
    """Take a user's role on a workspace you own away."""
    from kaos.cli import context
    from kaos.cli.render import echo, print_json

    space = context.api().unshare(user, name)
    if as_json:
        print_json(space)
    else:
        echo(f"{user} no longer has a role on {space['name']}")
        echo(sharing_line(space))


def sharing_line(space: dict[str, Any]) -> str:
    """'Owner: alice; shared with bob (writer), carol (reader)'."""
    shares = ", ".join(f"{member} ({role})" for member, role in space.get("shares", {}).items())
    owner = space.get("owner") or "none (admins only)"
    return f"Owner: {owner}" + (f"; shared with {shares}" if shares else "")
