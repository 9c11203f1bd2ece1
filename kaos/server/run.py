"""Run a server in this process (`kaos server start`) and stop one started from this KAOS_HOME."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from kaos.config import server_pid_file
from kaos.errors import KaosError

STOP_GRACE_S = 20


def serve(overrides: dict[str, Any]) -> None:
    """Refuse an exposed server without tokens and an executor that cannot work here, record
    the pid, then serve until stopped."""
    import uvicorn

    from kaos.allocator import reuse_freed_memory
    from kaos.server.app import create_app
    from kaos.server.auth import check_exposure
    from kaos.server.service.parts import check_catalog, check_executor
    from kaos.server.settings import Settings

    settings = Settings(**overrides)
    reuse_freed_memory()
    check_exposure(settings)
    check_executor(settings)
    settings.home.mkdir(parents=True, exist_ok=True)
    check_catalog(settings)
    refuse_if_running()
    pid_file = server_pid_file()
    pid_file.write_text(
        json.dumps({"pid": os.getpid(), "url": f"http://{settings.host}:{settings.port}"})
    )
    print(
        f"kaos server on http://{settings.host}:{settings.port} (store: {settings.store_url},"
        f" catalog: {settings.catalog_shown})",
        flush=True,
    )
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        timeout_keep_alive=30,  # well past the client's 2 s idle expiry (kaos/client/http.py)
    )
    try:
        _server_class(_forget_pid)(config).run()
    finally:
        _forget_pid()


def _forget_pid() -> None:
    """Remove this server's pid file (not another's that took the home over)."""
    pid_file = server_pid_file()
    try:
        if json.loads(pid_file.read_text()).get("pid") == os.getpid():
            pid_file.unlink()
    except (FileNotFoundError, ValueError):
        pass


def _server_class(on_stop: Callable[[], None]) -> type:
    import uvicorn

    class KeepIgnoredSignals(uvicorn.Server):
        """uvicorn's server, except that SIGINT stays ignored when this process started
        ignoring it: a shell script's `kaos server start &` does (the shell sets background
        jobs up so), and a Ctrl-C meant for the script's foreground command then no longer
        stops the server as well. SIGTERM (`kaos server stop`) stops it either way. `on_stop`
        runs once serving ends, before uvicorn raises the stopping signal again (a SIGTERM
        then ends the process where it is, and no `finally` of the caller runs)."""

        @contextmanager
        def capture_signals(self) -> Iterator[None]:
            ignored = signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            with super().capture_signals():
                if ignored:
                    signal.signal(signal.SIGINT, signal.SIG_IGN)
                try:
                    yield
                finally:
                    on_stop()

    return KeepIgnoredSignals


def refuse_if_running() -> None:
    """One server per KAOS_HOME: a second one would take over the pid file (and, failing at
    start-up, remove it), leaving the first one out of `kaos server stop`'s reach."""
    from kaos.pipeline.leases import process_alive

    try:
        recorded = json.loads(server_pid_file().read_text())
        pid, url = int(recorded["pid"]), str(recorded.get("url", ""))
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return
    if pid != os.getpid() and process_alive(pid):
        raise KaosError(
            f"a kaos server already runs from this KAOS_HOME (pid {pid}, {url})",
            "stop it with 'kaos server stop', or give this server its own KAOS_HOME",
        )


def stop() -> int | None:
    """Stop the background server of this KAOS_HOME (SIGTERM, then SIGKILL after a grace);
    returns its pid, or None if it was not running."""
    from kaos.pipeline.leases import process_alive

    pid_file = server_pid_file()
    try:
        pid = int(json.loads(pid_file.read_text())["pid"])
    except (FileNotFoundError, ValueError, KeyError):
        raise KaosError("no kaos server is running from this KAOS_HOME") from None
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pid_file.unlink(missing_ok=True)
        return None
    deadline = time.time() + STOP_GRACE_S
    while time.time() < deadline and process_alive(pid):
        time.sleep(0.1)
    if process_alive(pid):
        os.kill(pid, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)
    return pid
