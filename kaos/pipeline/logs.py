"""Job logs: append-only files, readable from an offset while the job still writes them.

With a shared catalog, what a job writes is also shipped there in chunks (on every heartbeat,
and before the job records its end), so every replica serves every job's log and a job taken
over by another replica continues the same log. The replica running a job ships before it
reads, so its own answers are never behind.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from kaos.errors import NotFound


class LogWriter:
    """Thread-safe line writer; an optional prefix tells parallel models apart."""

    def __init__(self, path: Path, lock: threading.Lock, prefix: str = "") -> None:
        self._path = path
        self._lock = lock
        self._prefix = prefix

    @property
    def path(self) -> Path:
        return self._path

    @property
    def prefix(self) -> str:
        return self._prefix

    def with_prefix(self, prefix: str) -> LogWriter:
        return LogWriter(self._path, self._lock, prefix)

    def write(self, text: str) -> None:
        if not text:
            return
        lines = text.splitlines(keepends=True)
        if not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        payload = "".join(self._prefix + line for line in lines)
        with self._lock, open(self._path, "a", encoding="utf-8", errors="replace") as f:
            f.write(payload)


class SharedLogs(Protocol):
    """Where logs go for every replica to read (the catalog)."""

    def append_log(self, job_id: str, start: int, data: bytes) -> None: ...
    def read_log(self, job_id: str, start: int, limit: int) -> bytes: ...
    def log_size(self, job_id: str) -> int: ...


CHUNK = 256 << 10  # bytes shipped in one row at most


@dataclass
class _Shipping:
    """A log this replica writes: shipped from local byte `local`, to shared byte `shared`."""

    local: int
    shared: int
    lock: threading.Lock


class JobLogs:
    def __init__(self, root: Path, shared: SharedLogs | None = None) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.shared = shared
        self._locks: dict[str, threading.Lock] = {}
        self._shipping: dict[str, _Shipping] = {}
        self._guard = threading.Lock()

    def path(self, job_id: str) -> Path:
        return self.root / f"{job_id}.log"

    def writer(self, job_id: str) -> LogWriter:
        """The log a job run writes; with a shared store, shipped on from where it ends there
        (a job taken over continues the log of its earlier run)."""
        with self._guard:
            lock = self._locks.setdefault(job_id, threading.Lock())
        path = self.path(job_id)
        path.touch()
        if self.shared is not None:
            shipping = _Shipping(path.stat().st_size, self.shared.log_size(job_id), lock)
            with self._guard:
                self._shipping[job_id] = shipping
        return LogWriter(path, lock)

    def ship(self, job_id: str) -> None:
        """Send what the job wrote since the last time to the shared store."""
        with self._guard:
            shipping = self._shipping.get(job_id)
        if shipping is None or self.shared is None:
            return
        with shipping.lock, open(self.path(job_id), "rb") as f:
            f.seek(shipping.local)
            while data := f.read(CHUNK):
                self.shared.append_log(job_id, shipping.shared, data)
                shipping.local += len(data)
                shipping.shared += len(data)

    def ship_all(self) -> None:
        with self._guard:
            running = list(self._shipping)
        for job_id in running:
            self.ship(job_id)

    def close(self, job_id: str, ship: bool = True) -> None:
        """The run has ended (ship its last lines first), or lost its lease (ship nothing)."""
        if ship:
            self.ship(job_id)
        with self._guard:
            self._shipping.pop(job_id, None)
            self._locks.pop(job_id, None)

    def read(self, job_id: str, offset: int = 0, limit: int = 1 << 20) -> tuple[str, int]:
        """Text from byte `offset` (at most `limit` bytes) and the offset to continue from."""
        offset = max(0, offset)
        if self.shared is not None:
            self.ship(job_id)  # running here: nothing it wrote is held back
            data = self.shared.read_log(job_id, offset, limit)
            if data or not self.path(job_id).exists() or self.shared.log_size(job_id):
                return _text(data, offset, limit)
        path = self.path(job_id)  # not shared, or a log from before logs were shared
        if not path.exists():
            if self.shared is not None:
                return "", offset  # queued: nothing written yet
            raise NotFound(f"no logs for job {job_id}")
        with open(path, "rb") as f:
            offset = min(offset, os.fstat(f.fileno()).st_size)  # past the end: nothing
            f.seek(offset)
            data = f.read(limit)
        return _text(data, offset, limit)


def _text(data: bytes, offset: int, limit: int) -> tuple[str, int]:
    if len(data) == limit:  # end on a whole character; the rest comes with the next read
        data = data[: len(data) - _partial_tail(data)]
    return data.decode("utf-8", errors="replace"), offset + len(data)


def _partial_tail(data: bytes) -> int:
    """How many bytes at the end of `data` begin a UTF-8 character that is cut off."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 != 0x80:  # a lead byte (or ASCII): is its sequence complete?
            need = (
                2
                if byte >> 5 == 0b110
                else 3
                if byte >> 4 == 0b1110
                else 4
                if byte >> 3 == 0b11110
                else 1
            )
            return back if need > back else 0
    return 0
