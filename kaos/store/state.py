"""The stat cache: (device, inode, size, mtime_ns, ctime_ns) -> content hash, as DVC's state
database (with git's ctime: a rewrite whose mtime was put back still changes the ctime).

Rescanning an unchanged folder then reads no file contents. A folder scanned before is answered
by its snapshot (`kaos.store.snapshot`, one file per folder, compared as arrays); the database
answers for the rest (moved folders, new paths), by primary key in inode ranges, so even a
100k-file lookup costs a few range scans, not 100k probes.
"""

from __future__ import annotations

import contextlib
import itertools
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Protocol

from kaos.store.snapshot import Snapshot, SnapshotDir

_MAX_GAP = 64  # inodes between two files before a new range starts
StatKey = tuple[int, int, int, int, int]  # (device, inode, size, mtime_ns, ctime_ns)
_SCHEMA = 2  # the database's user_version; 1 (or none) had no ctime column


class HashCache(Protocol):
    def lookup(self, keys: Iterable[StatKey]) -> dict[StatKey, str]: ...

    def record(self, items: Iterable[tuple[StatKey, str]]) -> None:
        """Remember these digests. `items` may be read on another thread after the call
        returns: it must read only what nothing changes, and reading it must not fail."""

    def last_scan(self, root: str) -> Snapshot | None: ...

    def remember_scan(self, root: str, snapshot: Snapshot) -> None: ...

    def close(self) -> None:
        """Finish the writes and let the storage go (a database closed leaves no log behind)."""


def _inode_runs(inodes: list[int]) -> Iterator[tuple[int, int]]:
    """Split sorted inodes into ranges without big gaps: files made together sit together, so
    a folder usually needs one range scan instead of one probe per file."""
    if not inodes:
        return
    low = prev = inodes[0]
    for ino in inodes[1:]:
        if ino - prev > _MAX_GAP:
            yield low, prev
            low = ino
        prev = ino
    yield low, prev


class NullStatCache:
    """Caches nothing: every scan hashes every file."""

    def lookup(self, keys: Iterable[StatKey]) -> dict[StatKey, str]:
        return {}

    def record(self, items: Iterable[tuple[StatKey, str]]) -> None:
        return None

    def last_scan(self, root: str) -> Snapshot | None:
        return None

    def remember_scan(self, root: str, snapshot: Snapshot) -> None:
        return None

    def close(self) -> None:
        return None


WRITER_THREAD = "kaos-stat-cache"  # the name of the thread writing a batch of rows
# How long the writer waits for another process's lock on the database before it drops its
# rows (they are only a cache's; the command would otherwise wait with nothing left to do).
WRITE_WAIT_S = 5.0


class StatCache:
    """SQLite-backed stat cache under the kaos home folder, with folder snapshots beside it
    (`scans/` next to the database)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._snapshots = SnapshotDir(path.parent / "scans")
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._create()
        self._path = path
        self._writer: sqlite3.Connection | None = None  # its own, so lookups never wait for it
        self._writing: threading.Thread | None = None
        self._failed: BaseException | None = None

    def _create(self) -> None:
        """Make the table, or remake it when an older kaos made it with other columns (it is a
        cache: its rows are dropped, not migrated)."""
        db = self._db
        if db.execute("PRAGMA user_version").fetchone()[0] == _SCHEMA:
            return
        db.execute("BEGIN IMMEDIATE")  # one process remakes it; the others then see it made
        try:
            if db.execute("PRAGMA user_version").fetchone()[0] != _SCHEMA:
                db.execute("DROP TABLE IF EXISTS state")
                db.execute(
                    "CREATE TABLE state ("
                    " dev INTEGER, ino INTEGER, size INTEGER, mtime_ns INTEGER,"
                    " ctime_ns INTEGER, digest TEXT, PRIMARY KEY (dev, ino)) WITHOUT ROWID"
                )
                db.execute(f"PRAGMA user_version = {_SCHEMA}")
            db.commit()
        except BaseException:
            db.rollback()
            raise

    def lookup(self, keys: Iterable[StatKey]) -> dict[StatKey, str]:
        by_dev: dict[int, dict[int, StatKey]] = {}
        for key in keys:
            by_dev.setdefault(key[0], {})[key[1]] = key
        found: dict[StatKey, str] = {}
        with self._lock:
            for dev, wanted in by_dev.items():
                for low, high in _inode_runs(sorted(wanted)):
                    rows = self._db.execute(
                        "SELECT ino, size, mtime_ns, ctime_ns, digest FROM state"
                        " WHERE dev = ? AND ino BETWEEN ? AND ?",
                        (dev, low, high),
                    ).fetchall()
                    for ino, size, mtime_ns, ctime_ns, digest in rows:
                        asked = wanted.get(ino)
                        if asked is not None and asked[2:] == (size, mtime_ns, ctime_ns):
                            found[asked] = digest
        return found

    def record(self, items: Iterable[tuple[StatKey, str]]) -> None:
        """Write in the background, on a connection of its own: a first scan's 100k rows cost
        0.15-0.3 s on a quiet machine (the insert and SQLite's checkpoints), which then overlap
        what follows (the scan records them after its reads: the push of the tree, the
        server's answer) instead of stalling it. The rows are made from `items` on that
        thread, as they are written. A lookup meanwhile may miss rows still being written;
        the file is then read again (the cache only saves work). The thread is not a daemon,
        so the process ends once the rows are written; a failed write is raised by the next
        `record` or `close` (where a best-effort cache gives up). `items` is read on the
        writer's thread from its second row on (see `HashCache.record`)."""
        pending = iter(items)
        first = next(pending, None)
        if first is None:
            return
        rows = ((*k, d) for k, d in itertools.chain((first,), pending))
        self._settle()
        if self._writer is None:
            self._writer = sqlite3.connect(
                self._path, check_same_thread=False, timeout=WRITE_WAIT_S
            )
            self._writer.execute("PRAGMA synchronous=NORMAL")
        self._writing = threading.Thread(
            target=self._write, args=(self._writer, rows), name=WRITER_THREAD
        )
        self._writing.start()

    def _write(self, db: sqlite3.Connection, rows: Iterable[tuple[int | str, ...]]) -> None:
        try:
            with db:
                db.executemany("INSERT OR REPLACE INTO state VALUES (?,?,?,?,?,?)", rows)
        except BaseException as exc:  # handed to the caller's thread by _settle
            self._failed = exc

    def _settle(self) -> None:
        """Wait for the write in flight; raise what it failed with."""
        if self._writing is not None:
            self._writing.join()
            self._writing = None
        failed, self._failed = self._failed, None
        if failed is not None:
            raise failed

    def last_scan(self, root: str) -> Snapshot | None:
        """Asked as a scan begins: the previous scan's rows are written first, so no write
        thread is left running (the walk forks only while no other thread runs)."""
        self._settle()
        return self._snapshots.load(root)

    def remember_scan(self, root: str, snapshot: Snapshot) -> None:
        self._snapshots.save(root, snapshot)

    def close(self) -> None:
        """Wait for the rows being written, then close both connections: the last one closed
        folds SQLite's write-ahead log into the database and removes it. A process that ends
        without closing leaves the log (7 MB after 100,000 new rows, 72 MB after a million),
        which every later open reads back: 40-215 ms a command at a million rows."""
        try:
            self._settle()
        finally:
            self._db.close()
            if self._writer is not None:
                self._writer.close()


def wait_for_writes() -> None:
    """Wait for every stat cache's background write (a command about to exit: there, unlike
    in the interpreter's own wait at exit, a Ctrl-C raises KeyboardInterrupt as usual)."""
    for thread in threading.enumerate():
        if thread.name == WRITER_THREAD:
            thread.join()


def open_stat_cache(path: Path) -> HashCache:
    """The stat cache, or one that gives up quietly when its disk cannot be written (full,
    read-only): a scan then hashes every file instead of failing. A damaged database (not
    SQLite's any more) is removed and made again: it is only a cache."""
    try:
        return _BestEffort(StatCache(path))
    except sqlite3.OperationalError:  # locked, read-only, no room: left alone
        return NullStatCache()
    except sqlite3.DatabaseError:  # "file is not a database", "malformed"
        for damaged in (
            path,
            path.with_name(path.name + "-wal"),
            path.with_name(path.name + "-shm"),
        ):
            with contextlib.suppress(OSError):
                damaged.unlink()
    except (sqlite3.Error, OSError):
        return NullStatCache()
    try:
        return _BestEffort(StatCache(path))
    except (sqlite3.Error, OSError):
        return NullStatCache()


class _BestEffort:
    """A stat cache that turns into a NullStatCache at its first storage error."""

    def __init__(self, cache: HashCache) -> None:
        self._cache = cache

    def _give_up(self) -> None:
        self._cache = NullStatCache()

    def lookup(self, keys: Iterable[StatKey]) -> dict[StatKey, str]:
        try:
            return self._cache.lookup(keys)
        except (sqlite3.Error, OSError):
            self._give_up()
            return {}

    def record(self, items: Iterable[tuple[StatKey, str]]) -> None:
        try:
            self._cache.record(items)
        except (sqlite3.Error, OSError):
            self._give_up()

    def last_scan(self, root: str) -> Snapshot | None:
        try:
            return self._cache.last_scan(root)
        except (sqlite3.Error, OSError):
            self._give_up()
            return None

    def remember_scan(self, root: str, snapshot: Snapshot) -> None:
        try:
            self._cache.remember_scan(root, snapshot)
        except (sqlite3.Error, OSError):
            self._give_up()

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error, OSError):
            self._cache.close()
        self._give_up()  # closed: nothing more is cached
