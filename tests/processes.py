"""Find a test's processes on the host by what they run: inside a sandbox their pids differ
(their own PID namespace), so a pid a script writes down means nothing outside."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def unique_nap() -> str:
    """A `sleep` duration no other process on the machine uses: names a test's sleeper."""
    return f"{900 + secrets.randbelow(10**6) / 10**6:.6f}"


def sleepers(nap: str) -> list[int]:
    """Host pids of `sleep NAP` processes."""
    wanted = f"sleep\0{nap}\0".encode()
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if Path(f"/proc/{entry}/cmdline").read_bytes() == wanted:
                    found.append(int(entry))
            except OSError:
                continue
    return found


def parent_pid(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])
