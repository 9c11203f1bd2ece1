"""Job logs: append-only files, readable from an offset while the job still writes them."""

from __future__ import annotations

import os
import threading
from pathlib import Path

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


class JobLogs:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def path(self, job_id: str) -> Path:
        return self.root / f"{job_id}.log"

    def writer(self, job_id: str) -> LogWriter:
        with self._guard:
            lock = self._locks.setdefault(job_id, threading.Lock())
        self.path(job_id).touch()
        return LogWriter(self.path(job_id), lock)

    def read(self, job_id: str, offset: int = 0, limit: int = 1 << 20) -> tuple[str, int]:
        """Text from byte `offset` (at most `limit` bytes) and the offset to continue from."""
        path = self.path(job_id)
        if not path.exists():
            raise NotFound(f"no logs for job {job_id}")
        with open(path, "rb") as f:
            offset = min(max(0, offset), os.fstat(f.fileno()).st_size)  # past the end: nothing
            f.seek(offset)
            data = f.read(limit)
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
