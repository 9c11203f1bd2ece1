"""Which objects the store holds, and where: the union of all pack indexes.

Indexes are small and immutable, so a remote store's indexes are cached locally by pack id and
only new ones are fetched on refresh (one LIST per refresh), as restic does.
"""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path

from kaos.errors import IntegrityError, ObjectNotFound
from kaos.store.backends.base import Backend
from kaos.store.pack import Location, decode_index

INDEX_PREFIX = "index/"
PACK_PREFIX = "packs/"


class PackIndex:
    def __init__(self, backend: Backend, cache_dir: Path | None) -> None:
        self._backend = backend
        self._cache_dir = cache_dir
        self._lock = threading.Lock()
        self._locations: dict[str, Location] = {}
        self._packs: dict[str, list[tuple[str, Location]]] = {}  # pack id -> what it holds
        self._bad: set[tuple[str, str]] = set()  # (pack id, digest) copies found corrupt
        self.refresh()

    def refresh(self) -> None:
        """Load indexes written since the last refresh; forget packs that were deleted."""
        listed = {
            info.key[len(INDEX_PREFIX) :]
            for info in self._backend.list(INDEX_PREFIX)
            if not info.key.endswith(".tmp")
        }
        with self._lock:
            known = set(self._packs)
        for pack_id in listed - known:
            self._load(pack_id)
        gone = known - listed
        if gone:
            with self._lock:
                for pack_id in gone:
                    self._forget(pack_id)

    def _load(self, pack_id: str) -> None:
        data = self._read_cached(pack_id)
        if data is None:
            try:
                data = self._backend.get(INDEX_PREFIX + pack_id)
            except ObjectNotFound:
                return  # deleted between list and get
            self._write_cached(pack_id, data)
        try:
            entries = decode_index(pack_id, data)
        except IntegrityError:
            self._drop_cached(pack_id)
            raise
        self.add(pack_id, entries)

    def add(self, pack_id: str, entries: list[tuple[str, Location]], newest: bool = False) -> None:
        """Record a pack's contents; `newest` makes it the preferred copy of its objects."""
        with self._lock:
            self._packs[pack_id] = entries
            for digest, loc in entries:
                if (pack_id, digest) in self._bad:
                    continue
                if newest:
                    self._locations[digest] = loc
                else:
                    self._locations.setdefault(digest, loc)

    def remember(self, pack_id: str, index: bytes) -> None:
        """Record an index this process just wrote, without re-reading it from the backend."""
        self._write_cached(pack_id, index)
        self.add(pack_id, decode_index(pack_id, index), newest=True)

    def _forget(self, pack_id: str) -> None:
        orphans = set()
        for digest, _loc in self._packs.pop(pack_id, []):
            loc = self._locations.get(digest)
            if loc is not None and loc.pack == pack_id:
                del self._locations[digest]
                orphans.add(digest)
        if orphans:  # another pack may hold a copy: point at it instead
            for entries in self._packs.values():
                for digest, loc in entries:
                    if digest in orphans:
                        self._locations.setdefault(digest, loc)
        self._drop_cached(pack_id)

    def discard(self, digest: str, pack_id: str) -> None:
        """Stop serving the copy of `digest` in `pack_id` (found corrupt on read): another
        intact copy is used if one is indexed, else the store no longer claims the object."""
        with self._lock:
            self._bad.add((pack_id, digest))
            loc = self._locations.get(digest)
            if loc is None or loc.pack != pack_id:
                return
            del self._locations[digest]
            for other, entries in self._packs.items():
                for d, other_loc in entries:
                    if d == digest and (other, d) not in self._bad:
                        self._locations[digest] = other_loc
                        return

    def was_discarded(self, digest: str) -> bool:
        """Whether the store stopped claiming `digest` because it was found corrupt."""
        with self._lock:
            return digest not in self._locations and any(d == digest for _p, d in self._bad)

    def forget(self, pack_id: str) -> None:
        with self._lock:
            self._forget(pack_id)

    def locate(self, digest: str) -> Location | None:
        return self._locations.get(digest)

    def __contains__(self, digest: str) -> bool:
        return digest in self._locations

    def packs(self) -> dict[str, list[str]]:
        with self._lock:
            return {k: [d for d, _ in v] for k, v in self._packs.items()}

    def digests(self) -> set[str]:
        with self._lock:
            return set(self._locations)

    def _cache_path(self, pack_id: str) -> Path | None:
        return self._cache_dir / pack_id if self._cache_dir else None

    def _read_cached(self, pack_id: str) -> bytes | None:
        path = self._cache_path(pack_id)
        if path is None:
            return None
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None

    def _write_cached(self, pack_id: str, data: bytes) -> None:
        path = self._cache_path(pack_id)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        # A temp name of its own: several processes (Ray tasks on one machine) may cache the
        # same index at once; each rename installs identical bytes.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{pack_id}.")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)

    def _drop_cached(self, pack_id: str) -> None:
        path = self._cache_path(pack_id)
        if path is not None:
            path.unlink(missing_ok=True)
