"""Find the server to talk to: the one `kaos init` saved, or the local one (started if needed)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from kaos.client.http import KaosClient
from kaos.config import ClientConfig, default_endpoint, kaos_home
from kaos.errors import KaosError, ServerUnreachable


def connect(endpoint: str | None = None, token: str | None = None) -> tuple[KaosClient, bool]:
    """A client for `endpoint`, else the configured server, else the local one; and whether
    the local one had to be started (a caller may want to say so)."""
    if endpoint is None:
        config = ClientConfig.load()
        endpoint, token = config.endpoint, token or config.token
    if endpoint:
        return KaosClient(endpoint, token), False
    local = default_endpoint()
    http = KaosClient(local)
    try:
        http.health()
    except ServerUnreachable:
        start_background_server(local)
        return http, True
    return http, False


def start_background_server(
    endpoint: str, extra_args: list[str] | None = None, timeout: float = 60, host: str = "127.0.0.1"
) -> int:
    """Start `kaos server start` detached on `host` (this machine only by default), log to
    KAOS_HOME/server.log, wait until `endpoint` answers healthy."""
    home = kaos_home()
    home.mkdir(parents=True, exist_ok=True)
    port = endpoint.rsplit(":", 1)[-1].strip("/")
    log = open(home / "server.log", "ab")  # noqa: SIM115 (handed to the child)
    start = log.tell()
    proc = subprocess.Popen(
        [sys.executable, "-m", "kaos", "server", "start", "--host", host, "--port", port]
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
            reason = _error_line(home / "server.log", start)
            if reason:
                raise KaosError(
                    f"the local kaos server stopped at start-up: {reason}",
                    f"full log: {home / 'server.log'}",
                )
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


def _error_line(log: Path, start: int) -> str | None:
    """The one-line error (`Error: ...`) the server wrote to its log since `start`, if any: a
    bad setting's message names its fix, which the user should not have to dig out."""
    with open(log, "rb") as f:
        f.seek(start)
        lines = f.read().decode("utf-8", "replace").splitlines()
    found = [line.removeprefix("Error: ") for line in lines if line.startswith("Error: ")]
    return found[-1] if found else None
