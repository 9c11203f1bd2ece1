"""Advisory locks kept as objects in the store, so gc never runs under a writer's feet.

Writers take a shared lock for a write session; gc takes an exclusive one. Each side writes its
lock first and then looks for conflicting ones, so two racing parties cannot both proceed (at
worst both back off). Locks older than `stale_after` belong to dead processes and are ignored.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from kaos.errors import ObjectNotFound, StoreBusy
from kaos.store.backends.base import Backend

LOCK_PREFIX = "locks/"
STALE_AFTER_S = 6 * 3600


class StoreLocks:
    def __init__(self, backend: Backend, stale_after: float = STALE_AFTER_S) -> None:
        self._backend = backend
        self._stale_after = stale_after

    @contextmanager
    def hold(self, exclusive: bool) -> Iterator[None]:
        key = self._acquire(exclusive)
        try:
            yield
        finally:
            self._backend.delete(key)

    def _acquire(self, exclusive: bool) -> str:
        key = f"{LOCK_PREFIX}{uuid.uuid4().hex}"
        body = {"exclusive": exclusive, "host": socket.gethostname(), "pid": os.getpid()}
        self._backend.put(key, json.dumps(body).encode())
        for other_key, other_exclusive in self._live_locks():
            if other_key != key and (exclusive or other_exclusive):
                self._backend.delete(key)
                what = "a garbage collection" if other_exclusive else "a write"
                raise StoreBusy(f"the store is busy with {what}", "try again in a moment")
        return key

    def _live_locks(self) -> Iterator[tuple[str, bool]]:
        now = time.time()
        for info in self._backend.list(LOCK_PREFIX):
            if now - info.modified > self._stale_after:
                continue
            try:
                body = json.loads(self._backend.get(info.key))
            except (ObjectNotFound, ValueError):
                continue
            yield info.key, bool(body.get("exclusive"))
