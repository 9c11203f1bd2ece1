"""Run a command with its output streamed into a job log, killable as a whole process group."""

from __future__ import annotations

import codecs
import contextlib
import functools
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from kaos.pipeline.executor import Cancel, JobLog

KILL_GRACE_S = 5.0
LINE_MAX = 64 << 10  # bytes of one log line held in memory at once


def run_logged(
    cmd: Sequence[str],
    log: JobLog,
    cancel: Cancel,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    pid_file: Path | None = None,
) -> int:
    """Run `cmd` in its own session; every line it prints goes to `log`. Returns the exit code.

    A kill sends SIGTERM to the whole process group, then SIGKILL after a grace period, so
    children the command started (data loaders, pip) die with it. When the command exits, what
    it left running in its group (a daemon it started) is ended the same way, so nothing writes
    to the job's log after the job ended. A child that left the group with `setsid` is out of
    reach here: the train sandbox's PID namespace (or the docker container) ends it.
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
        record_process(pid_file, proc.pid)
    cancel.on_kill(lambda: _kill_group(proc))
    done = threading.Event()
    pump = threading.Thread(target=_pump, args=(proc, log, done), daemon=True)
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
        _end_group(proc.pid)
        if pid_file is not None:
            pid_file.unlink(missing_ok=True)
        pump.join(timeout=5)
        done.set()  # whatever escaped the group may keep the pipe open: its output is dropped
    return proc.wait()


def _pump(proc: subprocess.Popen[bytes], log: JobLog, done: threading.Event) -> None:
    """Copy output to the log line by line; a line longer than LINE_MAX is cut into pieces,
    so one endless line costs bounded memory."""
    stdout = proc.stdout
    assert stdout is not None
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    with stdout:
        for raw in iter(functools.partial(stdout.readline, LINE_MAX), b""):
            if done.is_set():
                return
            log.write(decoder.decode(raw))


def start_time(pid: int) -> int | None:
    """When `pid` started (clock ticks since boot): with the pid, it names one process, even
    after the pid is reused."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def record_process(pid_file: Path, pid: int) -> None:
    """Write `pid start-time` where a restarted server looks for what a crash left running."""
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.write_text(f"{pid} {start_time(pid) or ''}".strip())


def kill_leftover(pid_file: Path) -> bool:
    """End the process group named in a pid file left by a crashed server, if it still runs;
    whether one was ended. With a start time recorded, a reused pid is never taken for it."""
    try:
        fields = pid_file.read_text().split()
        pid = int(fields[0])
        started = int(fields[1]) if len(fields) > 1 else None
    except (OSError, ValueError, IndexError):  # absent, not a regular file, or not ours
        return False
    if pid <= 1 or (started is not None and start_time(pid) != started):
        return False
    try:
        if os.getpgid(pid) != pid:  # no longer the leader of the group we started
            return False
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def end_recorded(folder: Path) -> int:
    """End every process group recorded in `folder` (one pid file each, or a folder of them)
    and forget them."""
    if not folder.is_dir():
        return 0
    ended = 0
    for entry in folder.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            ended += end_recorded(entry)
            with contextlib.suppress(OSError):
                entry.rmdir()
            continue
        ended += kill_leftover(entry)
        with contextlib.suppress(OSError):
            entry.unlink()
    return ended


def _end_group(pgid: int) -> None:
    """End what is left of a finished command's process group: SIGTERM, then SIGKILL."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + KILL_GRACE_S
    while time.monotonic() < deadline:
        if not _group_alive(pgid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _group_alive(pgid: int) -> bool:
    """Whether a process group has a member that is not a zombie (the ones it left are
    reaped by init whenever it gets to them: waiting for that would be waiting for nothing)."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:
        pids = [e.name for e in os.scandir("/proc") if e.name.isdigit()]
    except OSError:
        return True  # no /proc: the signal check above is all there is
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                state, _ppid, pgrp = f.read().rsplit(")", 1)[1].split()[:3]
        except (OSError, ValueError):
            continue
        if int(pgrp) == pgid and state != "Z":
            return True
    return False


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

    def __init__(self, log: JobLog, keep: int = 40) -> None:
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
