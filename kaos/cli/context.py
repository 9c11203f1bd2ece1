"""How a command finds its server and workspace: `kaos init` settings or the embedded default."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from kaos.config import ClientConfig, default_endpoint, kaos_home
from kaos.errors import KaosError


class NoWorkspace(KaosError):
    pass


def client(announce: bool = True):  # -> KaosClient, imported lazily to keep --help fast
    """A client for the configured server; with none configured, the local one (started if
    it is not running, which is said in one line)."""
    from kaos.client import KaosClient, ServerUnreachable

    config = ClientConfig.load()
    if config.endpoint:
        return KaosClient(config.endpoint, config.token)
    endpoint = default_endpoint()
    api = KaosClient(endpoint)
    try:
        api.health()
    except ServerUnreachable:
        start_background_server(endpoint)
        if announce:
            print(
                f"Started a local kaos server at {endpoint} (store: {kaos_home() / 'store'})",
                file=sys.stderr,
                flush=True,
            )
    return api


def workspace(explicit: str | None = None) -> str:
    name = explicit or os.environ.get("KAOS_WORKSPACE") or ClientConfig.load().workspace
    if not name:
        raise NoWorkspace("no workspace is set", "create one with 'kaos workspace create -n NAME'")
    return name


def start_background_server(
    endpoint: str, extra_args: list[str] | None = None, timeout: float = 60
) -> int:
    """Start `kaos server start` detached, log to KAOS_HOME/server.log, wait until healthy."""
    from kaos.client import KaosClient, ServerUnreachable

    home = kaos_home()
    home.mkdir(parents=True, exist_ok=True)
    port = endpoint.rsplit(":", 1)[-1].strip("/")
    log = open(home / "server.log", "ab")  # noqa: SIM115 (handed to the child)
    proc = subprocess.Popen(
        [sys.executable, "-m", "kaos", "server", "start", "--host", "127.0.0.1", "--port", port]
        + (extra_args or []),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    api = KaosClient(endpoint)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise KaosError(
                f"the local kaos server exited at start-up (code {proc.returncode})",
                f"see {home / 'server.log'}",
            )
        try:
            api.health()
            return proc.pid
        except ServerUnreachable:
            time.sleep(0.1)
    raise KaosError(
        f"the local kaos server did not answer within {timeout:.0f}s", f"see {home / 'server.log'}"
    )


def pid_file() -> Path:
    return kaos_home() / "server.pid"
