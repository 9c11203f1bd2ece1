"""Entry point of the `kaos` command: command groups, and errors turned into one red line."""

from __future__ import annotations

import atexit
import os
import sys
import threading
from importlib import import_module
from typing import TYPE_CHECKING

import typer

from kaos import __version__
from kaos.cli import ui
from kaos.cli.common import JsonOpt
from kaos.errors import KaosError

if TYPE_CHECKING:
    from typer.models import CommandInfo

app = typer.Typer(
    name="kaos",
    help="kaos: incremental, content-addressed model training.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: importing rich for it costs more than the rest of --help
    context_settings={"help_option_names": ["--help"]},
)
app.command("ui")(ui.ui)

# Command groups (each a module of kaos.cli) and the line `kaos --help` shows for each. Only the
# group a command line names is imported and built: typer builds every command's parameters up
# front, which for all groups was half of each start-up.
GROUPS = {
    "workspace": "Create, choose and share workspaces.",
    "template": "Ready-made source and data bundles.",
    "train": "Deploy training inputs and follow what they train.",
    "server": "Run a kaos server.",
    "store": "Check the content store.",
    "serve": "Serve trained models over HTTP.",
}


def add_groups(argv: list[str]) -> None:
    """The named group for real; the others as stand-ins that only list themselves. In the
    named group, only the named command is built when there is one (`kaos train deploy`:
    building all eleven of `train`'s commands took 8 ms of the 3 that one takes)."""
    for name, summary in GROUPS.items():
        if name in argv[1:2]:
            group = import_module(f"kaos.cli.{name}").app
            named = [c for c in group.registered_commands if _command_name(c) in argv[2:3]]
            if named:
                group.registered_commands = named
        else:
            group = typer.Typer(no_args_is_help=True)
        app.add_typer(group, name=name, help=summary)


def _command_name(command: CommandInfo) -> str | None:
    """The name typer gives a registered command: its own, else its function's, dashed."""
    if command.name or command.callback is None:
        return command.name
    return command.callback.__name__.lower().replace("_", "-")


@app.command()
def init(
    endpoint: str = typer.Option(..., "-e", "--endpoint", help="URL of a running kaos server"),
    token: str | None = typer.Option(None, "-t", "--token", help="bearer token for that server"),
    as_json: JsonOpt = False,
) -> None:
    """Point kaos at a running server (saved, readable by you only)."""
    from kaos.cli.render import echo, print_json, warn
    from kaos.client import Client

    if token is not None and token != token.strip():
        raise KaosError(
            "the token has leading or trailing whitespace", "pass it exactly, without spaces"
        )
    if token and not _private(endpoint):
        warn(f"the token is sent in clear text to {endpoint}: anyone on the way can read it")
    saved = Client.init(endpoint, token)
    if as_json:
        print_json(saved)
    else:
        echo(f"Successfully initialized kaos with endpoint {saved['endpoint']}")


def _private(endpoint: str) -> bool:
    """Whether a token sent to `endpoint` stays private: https, or this machine."""
    from urllib.parse import urlparse

    url = urlparse(endpoint)
    return url.scheme == "https" or url.hostname in ("127.0.0.1", "localhost", "::1")


@app.command()
def version() -> None:
    """Print the kaos version."""
    typer.echo(f"kaos {__version__}")


def main() -> None:
    try:
        _main()
    except SystemExit as done:
        if done.code == 130:  # interrupted: the prompt back at once
            _exit_at_once(130)
        _finish()
        _exit_without_teardown(done.code)
        raise
    _finish()
    _exit_without_teardown(0)


def _finish() -> None:
    """What a command leaves running or open, finished and closed: the stat cache's writes,
    then the command's clients (the stat cache's database with them)."""
    _wait_for_background_writes()
    context = sys.modules.get("kaos.cli.context")  # not imported: no client made
    if context is None:
        return
    try:
        context.close_clients()
    except KeyboardInterrupt:  # as while waiting for the writes: the prompt back at once
        _exit_at_once(130)


def _exit_without_teardown(code: object) -> None:
    """End the command without the interpreter's teardown, which frees every module and object
    one at a time: 30 ms of a 0.6 s unchanged deploy of 100,000 files, 20 ms of `train list`.
    The OS takes the memory back at once. What an exit must do is still done: the clients
    are closed before (`_finish`), atexit handlers run and output is flushed. Only a plain
    exit code ends here, and only while no other thread runs (the interpreter would wait for
    one); otherwise the normal exit follows."""
    code = 0 if code is None else code
    if not isinstance(code, int) or threading.active_count() != 1:
        return
    atexit._run_exitfuncs()
    if not _flush_output():  # a broken pipe or a full disk: the normal exit reports it
        return
    os._exit(code)


def _flush_output() -> bool:
    """Flush stdout and stderr; False if one of them could not take its output. A stream the
    command was started without (`kaos version >&-`) is None: nothing to flush."""
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except (OSError, ValueError):
        return False
    return True


def _wait_for_background_writes() -> None:
    """The stat cache writes its last rows on a thread the interpreter would wait for as it
    exits, where a Ctrl-C prints a traceback (and a lock held by another process on the
    cache keeps it waiting): wait here, where a Ctrl-C ends the process at once. Rows cut
    short are only a cache's: SQLite keeps its database whole."""
    state = sys.modules.get("kaos.store.state")  # not imported: no stat cache, no writes
    if state is None:
        return
    try:
        state.wait_for_writes()
    except KeyboardInterrupt:
        _exit_at_once(130)


def _exit_at_once(code: int) -> None:
    """Exit without waiting for background writes (everything else has unwound by now)."""
    _flush_output()
    os._exit(code)


def _main() -> None:
    try:
        add_groups(sys.argv)
        app()
    except KaosError as exc:
        from kaos.cli.render import error

        error(str(exc))
        sys.exit(exc.exit_code)
    except OSError as exc:  # a path given on the command line that cannot be read or written
        from kaos.cli.render import error

        where = f": {exc.filename}" if exc.filename else ""
        error(f"{exc.strerror or exc}{where} (check the path and its permissions)")
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
