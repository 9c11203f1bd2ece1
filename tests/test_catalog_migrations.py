"""The catalog's schema is numbered migrations applied at start-up: a catalog made before
migrations began is adopted with its rows intact, reopening applies nothing, a failed migration
changes nothing, and a catalog newer than this kaos is refused."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from kaos.errors import ConfigError
from kaos.pipeline import migrations
from kaos.pipeline.catalog import SqliteCatalog
from kaos.pipeline.db import SqliteDatabase
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


def test_reopening_applies_nothing_and_a_new_migration_applies_once(tmp_path, monkeypatch):
    path = tmp_path / "catalog.db"
    SqliteCatalog(path)
    assert migrate(SqliteDatabase(path)) == []
    shipped = migrations.migrations()
    added = Migration(len(shipped) + 1, "leases", "ALTER TABLE jobs ADD COLUMN lease REAL;")
    monkeypatch.setattr(migrations, "migrations", lambda: [*shipped, added])
    assert migrate(SqliteDatabase(path)) == [added.version]
    assert migrate(SqliteDatabase(path)) == []
    with sqlite3.connect(path) as db:
        assert "lease" in {r[1] for r in db.execute("PRAGMA table_info(jobs)")}


def test_a_failing_migration_changes_nothing(tmp_path, monkeypatch):
    path = tmp_path / "catalog.db"
    SqliteCatalog(path).create_workspace("ws")
    shipped = migrations.migrations()
    broken = Migration(
        len(shipped) + 1, "broken", "CREATE TABLE leases (id TEXT); ALTER TABLE nowhere ADD x;"
    )
    monkeypatch.setattr(migrations, "migrations", lambda: [*shipped, broken])
    with pytest.raises(sqlite3.OperationalError):
        migrate(SqliteDatabase(path))
    with sqlite3.connect(path) as db:
        assert not db.execute("SELECT name FROM sqlite_master WHERE name = 'leases'").fetchall()
    assert schema_version(SqliteDatabase(path)) == len(shipped)


def test_a_catalog_newer_than_this_kaos_is_refused(tmp_path):
    path = tmp_path / "catalog.db"
    SqliteCatalog(path)
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO schema_migrations VALUES (99, 'future', 0)")
    with pytest.raises(ConfigError, match="version 99, newer than this kaos"):
        SqliteCatalog(path)


def test_shipped_migrations_are_numbered_without_gaps():
    found = migrations.migrations()
    assert [m.version for m in found] == list(range(1, len(found) + 1))
    assert found[0].name == "initial" and all(m.statements() for m in found)
