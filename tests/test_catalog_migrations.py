"""The catalog's schema is numbered migrations applied at start-up: a SQLite catalog made before
migrations began is adopted with its rows intact; on both databases reopening applies nothing,
servers starting together apply each migration once, a failed migration changes nothing, and a
catalog newer than this kaos is refused."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from kaos.errors import ConfigError
from kaos.pipeline import migrations
from kaos.pipeline.catalog import PostgresCatalog, SqliteCatalog
from kaos.pipeline.inputs import TrainingInputs
from kaos.pipeline.migrations import Migration, migrate, schema_version
from kaos.pipeline.states import JobState

BEFORE = Path(__file__).parent / "fixtures" / "catalog-before-migrations.sql"
S, D = "a" * 32, "b" * 32


def unversioned(path: Path, without_lock_columns: bool = False) -> Path:
    """A catalog file as the code before migrations made it (a dump of a real one)."""
    dump = BEFORE.read_text()
    if without_lock_columns:  # older still: made before images and jobs had a lock
        dump = dump.replace(", lock TEXT", "")
        dump = re.sub(r",'d{32}'\);", ");", dump)
    with sqlite3.connect(path) as db:
        db.executescript(dump)
    return path


def test_a_catalog_made_before_migrations_keeps_its_rows(tmp_path):
    catalog = SqliteCatalog(unversioned(tmp_path / "catalog.db"))
    assert schema_version(catalog.db) == len(migrations.migrations())
    (job,) = catalog.jobs("ws")
    assert job.state is JobState.SUCCESS and job.lock == "d" * 32
    assert catalog.models(job.id)[0].metrics == {"accuracy": 0.9}
    assert catalog.bundle_name(S) == "src" and catalog.image(S, "local").lock == "d" * 32
    deploy = catalog.record_deploy("ws", "bo", TrainingInputs(S, D), {}, False)
    assert deploy.id == 2 and [d.id for d in catalog.deploys("ws")] == [1, 2]
    assert catalog.check_integrity() == []


def test_an_older_catalog_gains_the_columns_added_in_place(tmp_path):
    path = unversioned(tmp_path / "catalog.db", without_lock_columns=True)
    catalog = SqliteCatalog(path)
    (job,) = catalog.jobs("ws")
    assert job.lock is None and catalog.image(S, "local").lock is None
    catalog.update_job(job.id, lock="e" * 32)
    assert catalog.job(job.id).lock == "e" * 32


def has_table(catalog, name: str) -> bool:
    try:
        with catalog.transaction() as tx:
            tx.value(f"SELECT COUNT(*) FROM {name}")
    except Exception:
        return False
    return True


def test_reopening_applies_nothing_and_a_new_migration_applies_once(catalog_place, monkeypatch):
    catalog = catalog_place.open()
    assert migrate(catalog.db) == []
    shipped = migrations.migrations()
    added = Migration(
        len(shipped) + 1,
        "leases",
        "ALTER TABLE jobs ADD COLUMN lease REAL;\nCREATE TABLE leases (id TEXT PRIMARY KEY);",
    )
    monkeypatch.setattr(migrations, "migrations", lambda: [*shipped, added])
    assert migrate(catalog.db) == [added.version]
    assert migrate(catalog_place.open().db) == []
    with catalog.transaction() as tx:
        tx.execute("UPDATE jobs SET lease = ?", (1.5,))
    assert has_table(catalog, "leases") and schema_version(catalog.db) == added.version


def test_servers_starting_together_apply_each_migration_once(catalog_place):
    errors: list[Exception] = []

    def start() -> None:
        try:
            catalog_place.open()  # migrates the fresh catalog
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with catalog_place.open().transaction() as tx:
        counts = tx.rows(
            "SELECT version, COUNT(*) FROM schema_migrations GROUP BY version ORDER BY version"
        )
    assert [tuple(r) for r in counts] == [(m.version, 1) for m in migrations.migrations()]


@pytest.mark.parametrize("through_a_link", [False, True])
def test_a_fresh_sqlite_file_is_switched_to_wal_by_one_opener_at_a_time(tmp_path, through_a_link):
    """Two openers switching a fresh file to WAL at once deadlock inside SQLite, which fails
    one of them at once with 'database is locked' (1 start in ~1,500 under load, before). An
    opener waits for another process that is setting the file up, then opens it; also when
    one of them reaches the catalog through a symlink (its locks were beside the link)."""
    path = tmp_path / "catalog.db"
    opened_as = path
    if through_a_link:
        (tmp_path / "link").mkdir()
        opened_as = tmp_path / "link" / "catalog.db"
        opened_as.symlink_to(path)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys; from kaos.pipeline.db import SqliteDatabase\n"
         f"with SqliteDatabase({str(path)!r}).lock('connect'):\n"
         "    print('held', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    opened: list[SqliteCatalog] = []
    opener = threading.Thread(target=lambda: opened.append(SqliteCatalog(opened_as)))
    opener.start()
    opener.join(1.0)
    assert opener.is_alive() and not opened  # waits its turn
    holder.communicate("")  # the other process is done with it
    opener.join(30)
    assert opened and schema_version(opened[0].db) == len(migrations.migrations())
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_catalog_whose_lock_folder_cannot_be_made_names_that_folder(tmp_path):
    path = tmp_path / "catalog.db"
    (tmp_path / "catalog.db.locks").write_text("not a folder")
    with pytest.raises(ConfigError) as refused:
        SqliteCatalog(path)
    assert f"cannot open the SQLite catalog {path}: {path}.locks: File exists" in str(refused.value)


def test_a_failing_migration_changes_nothing(catalog_place, monkeypatch):
    catalog = catalog_place.open()
    catalog.create_workspace("ws")
    shipped = migrations.migrations()
    broken = Migration(
        len(shipped) + 1, "broken", "CREATE TABLE leases (id TEXT); ALTER TABLE nowhere ADD x;"
    )
    monkeypatch.setattr(migrations, "migrations", lambda: [*shipped, broken])
    with pytest.raises(Exception, match="nowhere"):
        migrate(catalog.db)
    assert not has_table(catalog, "leases")
    assert schema_version(catalog.db) == len(shipped)
    assert [w.name for w in catalog.workspaces()] == ["ws"]


def test_a_catalog_newer_than_this_kaos_is_refused(catalog_place):
    with catalog_place.open().transaction() as tx:
        tx.execute("INSERT INTO schema_migrations VALUES (99, 'future', 0)")
    with pytest.raises(ConfigError, match="version 99, newer than this kaos"):
        catalog_place.open()


def test_shipped_migrations_are_numbered_without_gaps():
    found = migrations.migrations()
    assert [m.version for m in found] == list(range(1, len(found) + 1))
    assert found[0].name == "initial" and all(m.statements() for m in found)


def test_a_postgresql_user_who_may_not_create_tables_is_one_clear_error(postgres):
    """PostgreSQL 15 lets only a database's owner create tables in it: a catalog URL naming
    another user is refused at start-up with what to do, and nothing is made."""
    import psycopg

    url = postgres.new_database()
    member = f"m_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {member} LOGIN")
    with pytest.raises(ConfigError) as refused:
        PostgresCatalog(url.replace(f"//{postgres.user}@", f"//{member}@"))
    assert str(refused.value) == (
        "the PostgreSQL catalog's user cannot set it up: permission denied for schema public "
        f"(give it a database it owns: CREATE DATABASE kaos OWNER {member})"
    )
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT to_regclass('schema_migrations')").fetchone() == (None,)
