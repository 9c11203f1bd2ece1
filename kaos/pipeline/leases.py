"""Replicas and leases: several servers on one catalog, each job run by exactly one of them.

A job is recorded queued (no owner); a replica claims it by writing its id and a lease expiry
into the job's row in one transaction, renews the lease on every heartbeat while the job runs,
and ends it with a write only its owner may make (fenced by the owner column). A replica that
dies stops renewing: once the lease has expired another replica claims the job and runs it
again, which content addressing makes safe (same inputs, same model id). Kill requests travel
the same way: written into the row by whichever replica was asked, seen by the owner's next
heartbeat.

This module holds the values and the pure decisions; the catalog stores them, the engine acts.
"""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from dataclasses import dataclass

DEFAULT_LEASE_S = 15.0
DEFAULT_HEARTBEAT_S = 1.0


@dataclass(frozen=True)
class Leases:
    """How long a claim holds without a heartbeat, and how often the heartbeat comes (it also
    carries kill requests and log shipping, so it stays near a second)."""

    lease_s: float = DEFAULT_LEASE_S
    heartbeat_s: float = DEFAULT_HEARTBEAT_S

    def __post_init__(self) -> None:
        if self.heartbeat_s <= 0 or self.lease_s < 2 * self.heartbeat_s:
            raise ValueError(
                f"a lease ({self.lease_s} s) must last at least two heartbeats "
                f"({self.heartbeat_s} s each)"
            )


@dataclass(frozen=True)
class Replica:
    """One server process sharing the catalog: where it runs, to end what it left behind."""

    id: str
    host: str
    pid: int
    home: str
    started: float
    seen: float  # its last heartbeat

    @classmethod
    def here(cls, home: str, now: float) -> Replica:
        host, pid = socket.gethostname(), os.getpid()
        return cls(f"{host}-{pid}-{uuid.uuid4().hex[:6]}", host, pid, home, now, now)

    def same_place(self, other: Replica) -> bool:
        """Same machine and home: an earlier run of the same server."""
        return self.host == other.host and self.home == other.home

    def gone(self, now: float, lease_s: float) -> bool:
        """Certainly dead, as far as this machine can tell: on this host with its pid ended,
        or silent for longer than a lease (another machine's process cannot be looked at)."""
        if self.host == socket.gethostname() and not process_alive(self.pid):
            return True
        return now - self.seen > lease_s


@dataclass(frozen=True)
class Claim:
    """A job a replica has just claimed, and whose it was before (a takeover) if anyone's."""

    job_id: str
    previous_owner: str | None
    kill_requested: bool


@dataclass(frozen=True)
class Renewal:
    """What a heartbeat learned about the jobs a replica runs."""

    kill: frozenset[str]  # someone asked to kill these
    lost: frozenset[str]  # no longer this replica's: taken over, or ended by someone else


def process_alive(pid: int) -> bool:
    """Whether `pid` runs on this machine (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError), open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    return False  # gone between the signal and the read
    return True
