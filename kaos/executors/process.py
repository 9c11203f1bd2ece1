"""Run a command with its output streamed into a job log, killable as a whole process group."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from kaos.executors.base import Cancel
from kaos.pipeline.logs import LogWriter

KILL_GRACE_S = 5.0


def run_logged(
    cmd: Sequence[str],
    log: LogWriter,
    cancel: Cancel,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    pid_file: Path | None = None,
) -> int:
    """Run `cmd` in its own session; every line it prints goes to `log`. Returns the exit code.

    A kill sends SIGTERM to the whole process group, then SIGKILL after a grace period, so
    children the command started (data loaders, pip) die with it.
    """
    proc = subprocess.Popen(
        list(cmd),
        cwd=cwd,
        env=dict(env) if env is not None else None,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    if pid_file is not None:  # lets a restarted server find and end what a crash left running
        pid_file.write_text(str(proc.pid))
    cancel.on_kill(lambda: _kill_group(proc))
    pump = threading.Thread(target=_pump, args=(proc, log), daemon=True)
    pump.start()
    try:
        # Wait in short steps rather than one blocking call, so an interruption delivered as a
        # Python exception (a Ray cancel) is seen at once and the whole group dies with it.
        while proc.poll() is None:
            time.sleep(0.05)
    except BaseException:
        _kill_group(proc)
        raise
    finally:
        pump.join(timeout=5)
    return proc.wait()


def _pump(proc: subprocess.Popen[bytes], log: LogWriter) -> None:
    assert proc.stdout is not None
    with proc.stdout:
        for raw in iter(proc.stdout.readline, b""):
            log.write(raw.decode("utf-8", errors="replace"))


def process_alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, dead but not yet reaped, counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def kill_leftover(pid_file: Path) -> None:
    """End the process group named in a pid file left by a crashed server, if it still runs."""
    try:
        pid = int(pid_file.read_text())
    except (FileNotFoundError, ValueError):
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(pid) == pid:  # still the leader of the group we started
            os.killpg(pid, signal.SIGKILL)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return

    def finish() -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=KILL_GRACE_S)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # stragglers of the group, even if the leader died

    threading.Thread(target=finish, daemon=True).start()


class LogTail:
    """A log that also keeps its last lines, to quote a failing command's own reason."""

    def __init__(self, log: LogWriter, keep: int = 40) -> None:
        self._log = log
        self._keep = keep
        self.lines: list[str] = []

    @property
    def path(self) -> Path:
        return self._log.path

    @property
    def prefix(self) -> str:
        return self._log.prefix

    def write(self, text: str) -> None:
        self._log.write(text)
        self.lines = (self.lines + [s for s in text.splitlines() if s.strip()])[-self._keep :]
