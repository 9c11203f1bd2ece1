"""How a command reaches the Python API: a `Client` that draws its progress on this terminal."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kaos.client import Client, KaosClient


_made: list[Client] = []  # this command's clients, closed as it ends


def api(quiet: bool = False) -> Client:
    """The client for the configured server (or the local one, started if need be, which is
    said in one line); `quiet` (for --json) draws no bars or narration."""
    from kaos.cli.render import TerminalReporter
    from kaos.client import Client

    client = Client(reporter=TerminalReporter(narrate=not quiet))
    _made.append(client)
    return client


def close_clients() -> None:
    """Close every client this command made: the command ends without the interpreter's
    teardown, which used to close them (and with them the stat cache's database)."""
    while _made:
        _made.pop().close()


def uploader(quiet: bool = False) -> Client:
    """The client for a command that sends folders: this process (the CLI's own) keeps the
    memory it frees for the next file or pack it reads instead of faulting in fresh pages."""
    from kaos.allocator import reuse_freed_memory

    reuse_freed_memory()
    return api(quiet)


def client() -> KaosClient:
    """The plain HTTP API, for commands that only fetch and show a resource."""
    return api(quiet=True).http


def workspace(explicit: str | None = None) -> str:
    from kaos.client.api import current_workspace

    return current_workspace(explicit)
