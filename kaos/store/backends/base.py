"""The one small interface every object store implements."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    modified: float  # seconds since the epoch


class Backend(Protocol):
    """Keys are '/'-separated relative names; every put is atomic (all or nothing visible)."""

    #: identifies the store's location, e.g. for naming local caches of its indexes
    location: str

    def put(self, key: str, data: bytes | bytearray) -> None: ...

    def get(self, key: str, start: int = 0, length: int | None = None) -> bytes:
        """Return the object's bytes (a range when `length` is given); ObjectNotFound if absent."""
        ...

    def list(self, prefix: str) -> Iterator[ObjectInfo]: ...

    def delete(self, key: str) -> None: ...

    def exists(self, key: str) -> bool: ...
