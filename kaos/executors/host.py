"""What of this machine a sandbox shows, and whether bubblewrap runs here (the I/O half of
`kaos.executors.sandbox`).

The probe runs once per process (an executor's start-up; a Ray worker's first task): a
sandbox that cannot start is said at start-up, and trains are refused with the fix
(`--no-sandbox`) rather than run uncontained behind the user's back.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from kaos.executors.sandbox import (
    SECRET_FILES,
    SYSTEM_FOLDERS,
    TOP_LINKS,
    HostLayout,
    Sandbox,
    bwrap_argv,
)

PROBE_TIMEOUT_S = 20


def host_layout(root: Path = Path("/")) -> HostLayout:
    """/usr and /etc, and the top-level links (/bin -> usr/bin) recreated as on the host; where
    a host has a real /bin or /lib folder instead, it is shown read-only."""
    folders = [f for f in SYSTEM_FOLDERS if (root / f.lstrip("/")).is_dir()]
    links = []
    for name in TOP_LINKS:
        path = root / name.lstrip("/")
        if path.is_symlink():
            links.append((name, os.readlink(path)))
        elif path.is_dir():
            folders.append(name)
    hidden = [f for f in SECRET_FILES if (root / f.lstrip("/")).is_file()]
    return HostLayout(tuple(folders), tuple(links), tuple(hidden))


def python_folders(python: Path) -> list[str]:
    """The prefixes an interpreter needs: every `<prefix>/bin/python` its symlink chain passes
    through (an environment, then the base Python with its standard library)."""
    prefixes: list[str] = []
    path = Path(os.path.abspath(python))
    for _ in range(40):  # a loop of links ends here rather than hanging
        real = Path(os.path.realpath(path.parent)) / path.name  # folders resolved, not the file
        prefix = real.parent.parent
        if prefix != Path("/") and str(prefix) not in prefixes:
            prefixes.append(str(prefix))
        if not real.is_symlink():
            break
        path = Path(os.path.normpath(real.parent / os.readlink(real)))
    return prefixes


@dataclass(frozen=True)
class SandboxStatus:
    """Whether trains run sandboxed here: on, off by the operator, or impossible (and why)."""

    enabled: bool
    problem: str | None = None  # why bwrap cannot run on this machine

    @property
    def usable(self) -> bool:
        return self.enabled and self.problem is None

    def message(self) -> str:
        if not self.enabled:
            return "kaos: sandbox off (--no-sandbox): train scripts run with the server's rights"
        if self.problem:
            return (
                f"kaos: bubblewrap cannot run here ({self.problem}); trains are refused "
                "until the server is started with --no-sandbox"
            )
        return "kaos: trains run in a bubblewrap sandbox (no network unless deployed --network)"


def sandbox_status(enabled: bool) -> SandboxStatus:
    return SandboxStatus(enabled, probe() if enabled else None)


@functools.cache
def probe() -> str | None:
    """Run a no-op in the sandbox every train gets; None if it works, else the reason."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return "bwrap is not installed (apt-get install bubblewrap)"
    argv = bwrap_argv(Sandbox(host_layout(), (), "/"), ["true"], bwrap=bwrap)
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap did not start: {exc}"
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        return lines[-1] if lines else f"bwrap exited with code {done.returncode}"
    return None
