"""The catalog's schema as numbered migrations (`NNNN_what.sql` beside this file), applied in
order at start-up, each in the same transaction as its row in `schema_migrations`.

A migration is written once, in SQLite's spelling; `Dialect.ddl` adapts the few types that
differ (`INTEGER PRIMARY KEY AUTOINCREMENT`, `REAL`) for PostgreSQL. To change the schema,
add the next file (e.g. `0002_job_leases.sql` with `ALTER TABLE jobs ADD COLUMN ...;`) and
never edit one that has shipped.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from importlib import resources

from kaos.errors import ConfigError
from kaos.pipeline.db import Database, Tx

_NAME = re.compile(r"^(\d{4})_(\w+)\.sql$")
# Added to catalogs in place before migrations began: an unversioned catalog may lack them.
_UNVERSIONED_COLUMNS = (("images", "lock"), ("jobs", "lock"))


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    def statements(self) -> list[str]:
        """The file's statements (split at `;`; no migration has one inside a literal)."""
        text = "\n".join(line for line in self.sql.splitlines() if not line.startswith("--"))
        return [s.strip() for s in text.split(";") if s.strip()]


def migrations() -> list[Migration]:
    """Every migration shipped with kaos, in order; numbered 1, 2, 3... with no gap."""
    found = []
    for entry in resources.files(__package__).iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migrations are not numbered 1..n: {[m.version for m in found]}")
    return found


def migrate(db: Database) -> list[int]:
    """Bring the catalog to the newest schema; the versions applied now. Concurrent servers
    starting on one catalog apply each migration once (the transaction holds a lock)."""
    known = migrations()
    with db.transaction() as tx:
        if db.dialect.name == "postgresql":
            tx.execute("SELECT pg_advisory_xact_lock(hashtextextended('kaos-migrate', 0))")
        tx.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied REAL NOT NULL)"
        )
        done = {int(r[0]) for r in tx.rows("SELECT version FROM schema_migrations")}
        newest = max(done, default=0)
        if newest > len(known):
            raise ConfigError(
                f"the catalog's schema is version {newest}, newer than this kaos "
                f"(which knows {len(known)})",
                "upgrade kaos on this server to the version the others run",
            )
        applied = []
        for migration in known:
            if migration.version in done:
                continue
            for statement in migration.statements():
                tx.execute(db.dialect.ddl(statement))
            if migration.version == 1 and db.dialect.name == "sqlite":
                _add_unversioned_columns(tx)
            tx.execute(
                "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                (migration.version, migration.name, time.time()),
            )
            applied.append(migration.version)
    return applied


def schema_version(db: Database) -> int:
    with db.reading() as tx:
        return int(tx.value("SELECT MAX(version) FROM schema_migrations") or 0)


def _add_unversioned_columns(tx: Tx) -> None:
    """A catalog made before migrations began may predate a column 0001 declares."""
    for table, column in _UNVERSIONED_COLUMNS:
        if column not in {r["name"] for r in tx.rows(f"PRAGMA table_info({table})")}:
            tx.execute(f"ALTER TABLE {table} ADD COLUMN {column} TEXT")
