"""The catalog's two databases behind one small interface: SQLite, the embedded default, and
PostgreSQL, for a team (several servers on one catalog).

Queries are written once, in SQLite's spelling (`?` and `:name` placeholders); a `Dialect`
turns them into the other database's. `SELECT ... FOR UPDATE [SKIP LOCKED]` is written as
PostgreSQL needs it and dropped on SQLite, whose write transactions (BEGIN IMMEDIATE) already
exclude every other writer.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from kaos.errors import ConfigError, LockBusy

Args = Sequence[Any] | Mapping[str, Any]


class Row(Protocol):
    """A result row: values by position and by column name (sqlite3.Row's interface)."""

    def __getitem__(self, key: int | str, /) -> Any: ...
    def __iter__(self) -> Iterator[Any]: ...


@dataclass(frozen=True)
class Dialect:
    name: str  # "sqlite" or "postgresql"
    ddl_types: tuple[tuple[str, str], ...] = ()  # (SQLite's spelling, this database's)

    def ddl(self, text: str) -> str:
        """A migration statement in this database's types (see migrations/README)."""
        for pattern, replacement in self.ddl_types:
            text = re.sub(pattern, replacement, text)
        return text

    def sql(self, text: str) -> str:
        return _translate(self.name, text)


SQLITE = Dialect("sqlite", ((r"\s*/\*rowid\*/", ""),))
POSTGRESQL = Dialect(
    "postgresql",
    (
        (r"INTEGER PRIMARY KEY AUTOINCREMENT", "BIGSERIAL PRIMARY KEY"),
        (r"\bREAL\b", "DOUBLE PRECISION"),
        (r"\bBLOB\b", "BYTEA"),
        # SQLite numbers rows by itself (rowid, insertion order); PostgreSQL gets a column.
        (r"/\*rowid\*/", "rowid BIGSERIAL NOT NULL,"),
    ),
)

_TOKENS = re.compile(r"('(?:[^']|'')*')|(\?)|(?<![:\w]):([A-Za-z_]\w*)|(%)")
_FOR_UPDATE = re.compile(r"\s+FOR\s+UPDATE(\s+SKIP\s+LOCKED|\s+NOWAIT)?", re.IGNORECASE)


@functools.lru_cache(maxsize=1024)
def _translate(dialect: str, text: str) -> str:
    if dialect == "sqlite":
        return _FOR_UPDATE.sub("", text)

    def token(m: re.Match[str]) -> str:
        literal, _question, name, _percent = m.groups()
        if literal is not None:
            return literal.replace("%", "%%")
        if name is not None:
            return f"%({name})s"
        return "%s" if m.group(2) else "%%"

    return _TOKENS.sub(token, text)


class Tx:
    """One connection in use: inside a transaction (`Database.transaction`) or not
    (`Database.reading`). Every statement goes through the dialect."""

    def __init__(self, conn: Any, dialect: Dialect) -> None:
        self._conn = conn
        self.dialect = dialect

    def execute(self, sql: str, args: Args = ()) -> int:
        """Run one statement; how many rows it changed."""
        return int(self._conn.execute(self.dialect.sql(sql), args).rowcount)

    def executemany(self, sql: str, rows: Sequence[Args]) -> None:
        if rows:
            self._conn.cursor().executemany(self.dialect.sql(sql), rows)

    def rows(self, sql: str, args: Args = ()) -> list[Row]:
        return list(self._conn.execute(self.dialect.sql(sql), args).fetchall())

    def one(self, sql: str, args: Args = ()) -> Row | None:
        found = self.rows(sql, args)
        return found[0] if found else None

    def value(self, sql: str, args: Args = ()) -> Any:
        """The first column of the first row (a COUNT, an id)."""
        row = self.one(sql, args)
        return None if row is None else row[0]


class Database(Protocol):
    dialect: Dialect

    def transaction(self) -> Any:  # a context manager yielding a Tx
        ...

    def reading(self) -> Any:  # a context manager yielding a Tx, no transaction held
        ...

    def lock(self, key: str, wait_s: float | None = None) -> Any:
        """A context manager: one holder of `key` at a time; LockBusy after `wait_s` seconds
        of waiting (None: as long as it takes)."""
        ...

    def close(self) -> None: ...


_LOCKS: dict[tuple[str, str], threading.RLock] = {}  # (catalog, key): this process's locks
_LOCKS_GUARD = threading.Lock()


_DEPTH: dict[tuple[str, str], int] = {}  # how deep the holding thread is (only it changes it)


@contextmanager
def _process_lock(catalog: str, key: str, deadline: float | None) -> Iterator[bool]:
    """This process's lock on `key` (reentrant); True for the holder's outermost hold."""
    with _LOCKS_GUARD:
        lock = _LOCKS.setdefault((catalog, key), threading.RLock())
    if not acquire_by(lock, deadline):
        raise LockBusy(f"{key} is held elsewhere")
    try:
        depth = _DEPTH.get((catalog, key), 0)
        _DEPTH[catalog, key] = depth + 1
        try:
            yield depth == 0
        finally:
            _DEPTH[catalog, key] = depth
    finally:
        lock.release()


def deadline_after(wait_s: float | None) -> float | None:
    """When a wait of `wait_s` seconds ends (time.monotonic); None: it never does."""
    return None if wait_s is None else time.monotonic() + wait_s


def seconds_left(deadline: float | None) -> float | None:
    """What is left of a wait (never below 0); None for one without end."""
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def acquire_by(lock: threading.RLock | threading.Lock, deadline: float | None) -> bool:
    """Take a thread lock, waiting until `deadline` at most (None: as long as it takes)."""
    left = seconds_left(deadline)
    return lock.acquire(timeout=-1 if left is None else left)


def _flock_until(fd: int, key: str, deadline: float | None) -> None:
    """An exclusive flock; polled (10-100 ms apart) when bounded, flock has no timeout."""
    if deadline is None:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return
    pause = 0.01
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            left = deadline - time.monotonic()
            if left <= 0:
                raise LockBusy(f"{key} is held elsewhere") from None
            time.sleep(min(pause, left))
            pause = min(pause * 2, 0.1)


class SqliteDatabase:
    """One connection per thread, WAL, a generous busy timeout; writers queue on
    BEGIN IMMEDIATE. Named locks hold across the processes of this machine (several servers
    may share one SQLite file there): a thread lock, then a file lock beside the catalog."""

    dialect = SQLITE

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Locks live beside the real file: reached through a symlink, it takes the same ones.
        real = self.path.resolve()
        self._lock_key = str(real)
        self._lock_folder = real.with_name(real.name + ".locks")
        self._local = threading.local()

    def _conn(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            # Switching a fresh file to WAL wants it alone: two openers switching at once
            # deadlock, and SQLite then fails one at once ("database is locked") instead of
            # waiting. Openers on this machine take turns; once the file is WAL, it stays so.
            with self.lock("connect"):
                db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=30000")
            db.execute("PRAGMA foreign_keys=ON")
            db.row_factory = sqlite3.Row
            self._local.db = db
        return db

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        """A write transaction taken up front (BEGIN IMMEDIATE), so writers queue, not fail."""
        db = self._conn()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield Tx(db, self.dialect)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    @contextmanager
    def reading(self) -> Iterator[Tx]:
        yield Tx(self._conn(), self.dialect)

    @contextmanager
    def lock(self, key: str, wait_s: float | None = None) -> Iterator[None]:
        """This process's threads queue on a local lock; its holder takes a file lock beside
        the catalog, so servers on one machine sharing the file queue too (and a holder that
        dies lets go with its process). LockBusy after `wait_s` seconds, if given."""
        deadline = deadline_after(wait_s)
        with _process_lock(self._lock_key, key, deadline) as outermost:
            if not outermost:  # this thread holds it already
                yield
                return
            self._lock_folder.mkdir(exist_ok=True)
            name = hashlib.sha256(key.encode()).hexdigest()[:32]
            fd = os.open(self._lock_folder / name, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:  # flock needs no right to write: a lock file left read-only still works
                _flock_until(fd, key, deadline)
                yield
            finally:
                os.close(fd)

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None


class _PgRow(tuple[Any, ...]):
    """A PostgreSQL row with sqlite3.Row's interface: by position and by column name."""

    _names: dict[str, int]

    def __new__(cls, values: Sequence[Any], names: dict[str, int]) -> _PgRow:
        row = super().__new__(cls, values)
        row._names = names
        return row

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return super().__getitem__(self._names[key])
        return super().__getitem__(key)


def _pg_rows(cursor: Any) -> Any:
    names = {column.name: i for i, column in enumerate(cursor.description or ())}
    return lambda values: _PgRow(values, names)


class PostgresDatabase:
    """A psycopg 3 connection pool; every statement outside a transaction autocommits.
    Named locks are session advisory locks, so they hold across every server process."""

    dialect = POSTGRESQL

    def __init__(self, url: str, max_size: int = 10) -> None:
        try:
            import psycopg
            from psycopg_pool import ConnectionPool
        except ImportError:
            raise ConfigError(
                "a PostgreSQL catalog needs psycopg", "pip install 'kaos[postgres]'"
            ) from None
        self.url = url
        try:  # one connection first: its error says why (the pool would retry until a timeout)
            psycopg.connect(url, connect_timeout=10).close()
        except psycopg.Error as exc:
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ConfigError(
                f"cannot reach the PostgreSQL catalog: {reason}",
                "check KAOS_CATALOG (postgresql://USER:PASSWORD@HOST:PORT/DB)",
            ) from None
        self._pool: Any = ConnectionPool(
            url,
            min_size=1,
            max_size=max_size,
            kwargs={"autocommit": True, "row_factory": _pg_rows},
            open=True,
            # a connection PostgreSQL dropped (a restart) is replaced before it is used, and a
            # request waits at most this long for one while PostgreSQL is down
            check=ConnectionPool.check_connection,
            timeout=10,
        )

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        with self._pool.connection() as conn, conn.transaction():
            yield Tx(conn, self.dialect)

    @contextmanager
    def reading(self) -> Iterator[Tx]:
        with self._pool.connection() as conn:
            yield Tx(conn, self.dialect)

    @contextmanager
    def lock(self, key: str, wait_s: float | None = None) -> Iterator[None]:
        """This process's threads queue on a local lock; its holder takes the advisory lock
        on a connection of its own, so holders and waiters never drain the pool the work
        inside needs. A holder that dies loses its connection, and with it the lock.
        LockBusy after `wait_s` seconds, if given (the server's lock_timeout)."""
        import psycopg

        deadline = deadline_after(wait_s)
        with _process_lock(self.url, key, deadline) as outermost:
            if not outermost:  # this thread holds it already
                yield
                return
            with psycopg.connect(self.url, autocommit=True) as conn:
                # unbounded means unbounded, whatever lock_timeout the role or database sets
                left = seconds_left(deadline)
                conn.execute(
                    f"SET lock_timeout = {0 if left is None else max(1, int(left * 1000))}"
                )
                try:
                    conn.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (key,))
                except psycopg.errors.LockNotAvailable:
                    raise LockBusy(f"{key} is held elsewhere") from None
                yield

    def close(self) -> None:
        self._pool.close()
