"""Refs: mutable names pointing at digests, as git's refs, kept on the store's backend so every
server sharing the store reads the same ones (blobs and trees stay immutable; only refs move)."""

from __future__ import annotations

import re

from kaos.errors import IntegrityError, ObjectNotFound
from kaos.store.backends.base import Backend
from kaos.store.hashing import is_digest

REF_PREFIX = "refs/"
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*(/[a-z0-9][a-z0-9._-]*)*$")


class Refs:
    def __init__(self, backend: Backend) -> None:
        self._backend = backend

    def get(self, name: str) -> str | None:
        """The digest `name` points at, or None when it points nowhere yet."""
        try:
            raw = self._backend.get(_key(name))
        except ObjectNotFound:
            return None
        value = raw.decode("ascii", errors="replace").strip()
        if not is_digest(value):
            raise IntegrityError(f"ref {REF_PREFIX}{name} in the store is corrupt: {value[:40]!r}")
        return value

    def targets(self) -> set[str]:
        """Every digest a ref points at (what gc keeps besides the catalog's trees)."""
        found = set()
        for info in self._backend.list(REF_PREFIX):
            try:
                value = self._backend.get(info.key).decode("ascii", errors="replace").strip()
            except ObjectNotFound:
                continue
            if is_digest(value):
                found.add(value)
        return found

    def set(self, name: str, digest: str) -> None:
        """Point `name` at `digest` (one atomic put; the last writer wins)."""
        if not is_digest(digest):
            raise ValueError(f"not a digest: {digest!r}")
        self._backend.put(_key(name), digest.encode("ascii") + b"\n")


def _key(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"bad ref name: {name!r}")
    return REF_PREFIX + name
