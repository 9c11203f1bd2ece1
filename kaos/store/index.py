"""Which objects the store holds, and where: the union of all pack indexes.

Indexes are small and immutable, so a remote store's indexes are cached locally by pack id and
only new ones are fetched on refresh (one LIST per refresh), as restic does.
"""

from __future__ import annotations

import os
import struct
import tempfile
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from kaos.errors import IntegrityError, ObjectNotFound
from kaos.store.backends.base import Backend
from kaos.store.pack import ENTRY, Location, index_table

INDEX_PREFIX = "index/"
PACK_PREFIX = "packs/"


_DIGESTS = struct.Struct(f"<16s{ENTRY.size - 16}x")  # each ENTRY record's digest, the rest skipped
_KIND_SIZE = struct.Struct("<16xB17xI")  # each ENTRY record's kind and size
assert _KIND_SIZE.size == ENTRY.size
_SLOT = 32  # a location is (pack number << _SLOT) | entry number


class PackIndex:
    """The indexes of every pack, kept compact: each pack's entry table as the bytes it was
    stored as, and one map from raw digest to (pack number, entry number). A `Location` is
    decoded only when asked for, so a million objects cost about 160 bytes each, not 450."""

    def __init__(self, backend: Backend, cache_dir: Path | None) -> None:
        self._backend = backend
        self._cache_dir = cache_dir
        self._lock = threading.Lock()
        self._where: dict[bytes, int] = {}  # raw digest -> (pack number << _SLOT) | entry
        self._tables: dict[str, bytes] = {}  # pack id -> its entry table
        self._numbers: dict[str, int] = {}  # pack id -> pack number
        self._ids: list[str | None] = []  # pack number -> pack id (None once forgotten)
        self._bad: set[tuple[str, str]] = set()  # (pack id, digest) copies found corrupt
        # told when a refresh finds packs deleted by someone else (another replica's gc)
        self.on_gone: Callable[[], None] | None = None
        self.refresh()

    def refresh(self) -> None:
        """Load indexes written since the last refresh; forget packs that were deleted. Only a
        pack known before the listing began can be gone: one stored (and remembered) by another
        thread while the backend was listed is simply not in the listing yet."""
        with self._lock:
            before = set(self._tables)
        listed = {
            info.key[len(INDEX_PREFIX) :]
            for info in self._backend.list(INDEX_PREFIX)
            if not info.key.endswith(".tmp")
        }
        with self._lock:
            known = set(self._tables)
        for pack_id in listed - known:
            self._load(pack_id)
        gone = before - listed
        if gone:
            with self._lock:
                for pack_id in gone:
                    self._forget(pack_id)
            if self.on_gone is not None:
                self.on_gone()

    def _load(self, pack_id: str) -> None:
        data = self._read_cached(pack_id)
        if data is None:
            try:
                data = self._backend.get(INDEX_PREFIX + pack_id)
            except ObjectNotFound:
                return  # deleted between list and get
            self._write_cached(pack_id, data)
        try:
            table = index_table(pack_id, data)
        except IntegrityError:
            self._drop_cached(pack_id)
            raise
        self._add(pack_id, table)

    def remember(self, pack_id: str, index: bytes) -> None:
        """Record an index this process just wrote, without re-reading it from the backend;
        its objects are served from this pack from now on."""
        self._write_cached(pack_id, index)
        self._add(pack_id, index_table(pack_id, index), newest=True)

    def _add(self, pack_id: str, table: bytes, newest: bool = False) -> None:
        digests = [d for (d,) in _DIGESTS.iter_unpack(table)]
        with self._lock:
            if pack_id in self._tables:
                return
            number = len(self._ids)
            self._ids.append(pack_id)
            self._numbers[pack_id] = number
            self._tables[pack_id] = table
            base = number << _SLOT
            slots = dict(zip(digests, range(base, base + len(digests)), strict=True))
            if self._bad:
                for bad_pack, digest in self._bad:
                    if bad_pack == pack_id:
                        slots.pop(bytes.fromhex(digest), None)
            if newest:
                self._where.update(slots)
            else:
                for digest, slot in slots.items():
                    self._where.setdefault(digest, slot)

    def _location(self, slot: int) -> Location | None:
        pack_id = self._ids[slot >> _SLOT]
        table = self._tables.get(pack_id) if pack_id is not None else None
        if pack_id is None or table is None:
            return None  # forgotten meanwhile (a gc on another thread)
        _d, kind, comp, off, flen, inner, size = ENTRY.unpack_from(
            table, (slot & _MASK) * ENTRY.size
        )
        return Location(pack_id, kind, comp, off, flen, inner, size)

    def _forget(self, pack_id: str) -> None:
        table = self._tables.pop(pack_id, None)
        number = self._numbers.pop(pack_id, None)
        if table is None or number is None:
            return
        self._ids[number] = None
        orphans = set()
        for (digest,) in _DIGESTS.iter_unpack(table):
            slot = self._where.get(digest)
            if slot is not None and slot >> _SLOT == number:
                del self._where[digest]
                orphans.add(digest)
        if orphans:  # another pack may hold a copy: point at it instead
            for other in self._tables:
                self._repoint(other, orphans)
        self._drop_cached(pack_id)

    def _repoint(self, pack_id: str, digests: set[bytes]) -> None:
        """Point the `digests` that have no location at their copies in `pack_id`, if any."""
        base = self._numbers[pack_id] << _SLOT
        for i, (digest,) in enumerate(_DIGESTS.iter_unpack(self._tables[pack_id])):
            if digest in digests and (pack_id, digest.hex()) not in self._bad:
                self._where.setdefault(digest, base + i)

    def discard(self, digest: str, pack_id: str) -> None:
        """Stop serving the copy of `digest` in `pack_id` (found corrupt on read): another
        intact copy is used if one is indexed, else the store no longer claims the object."""
        with self._lock:
            self._bad.add((pack_id, digest))
            raw = _raw(digest)
            slot = self._where.get(raw) if raw is not None else None
            if raw is None or slot is None or self._ids[slot >> _SLOT] != pack_id:
                return
            del self._where[raw]
            for other in self._tables:
                self._repoint(other, {raw})
                if raw in self._where:
                    return

    def was_discarded(self, digest: str) -> bool:
        """Whether the store stopped claiming `digest` because it was found corrupt."""
        with self._lock:
            return digest not in self and any(d == digest for _p, d in self._bad)

    def forget(self, pack_id: str) -> None:
        with self._lock:
            self._forget(pack_id)

    def locate(self, digest: str) -> Location | None:
        raw = _raw(digest)
        slot = self._where.get(raw) if raw is not None else None
        return None if slot is None else self._location(slot)

    def absent(self, digests: Iterable[str]) -> set[str]:
        """The hex digests not held (a batch of 2,000 asked at once: no call per digest)."""
        where, fromhex = self._where, bytes.fromhex
        absent = set()
        for digest in digests:
            try:
                if len(digest) != 32 or fromhex(digest) not in where:
                    absent.add(digest)
            except ValueError:  # not hex: no digest at all
                absent.add(digest)
        return absent

    def lacking(self, digests: Iterable[bytes]) -> list[bytes]:
        """The raw digests not held, in the order given (a batch of 2,000 asked at once)."""
        where = self._where
        return [digest for digest in digests if digest not in where]

    def held(self, digests: Iterable[bytes]) -> list[tuple[int, int] | None]:
        """(kind, size in the index) of each raw digest, None for one not held: a tree's
        entries are checked a block at a time, without a `Location` each (a chunk list's size
        is that of its list; its content's is in the list). A tree's files sit in few packs,
        mostly one after another, so a pack's table is looked up once per run of them."""
        ids, tables = self._ids, self._tables
        found: list[tuple[int, int] | None] = []
        number, table = -1, None
        unpack, size = _KIND_SIZE.unpack_from, ENTRY.size
        for slot in map(self._where.get, digests):
            if slot is None:
                found.append(None)  # not held
                continue
            if slot >> _SLOT != number:
                number = slot >> _SLOT
                pack_id = ids[number]
                table = tables.get(pack_id) if pack_id is not None else None
            if table is None:
                found.append(None)  # forgotten meanwhile (a gc on another thread)
            else:
                found.append(unpack(table, (slot & _MASK) * size))
        return found

    def __contains__(self, digest: str) -> bool:
        raw = _raw(digest)
        return raw is not None and raw in self._where

    def packs(self) -> dict[str, list[str]]:
        with self._lock:
            return {
                pack_id: [d.hex() for (d,) in _DIGESTS.iter_unpack(table)]
                for pack_id, table in self._tables.items()
            }

    def digests(self) -> set[str]:
        with self._lock:
            return {d.hex() for d in self._where}

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


_MASK = (1 << _SLOT) - 1


def _raw(digest: str) -> bytes | None:
    """A hex digest as the 16 bytes the index is keyed by (None for anything else)."""
    if len(digest) != 32:
        return None
    try:
        return bytes.fromhex(digest)
    except ValueError:
        return None
