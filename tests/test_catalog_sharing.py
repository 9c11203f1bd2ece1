"""The catalog's part of ownership: owners recorded at creation (and guessed for catalogs made
before), shares by role, and which workspaces name a tree (what reading by hash checks)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from kaos.pipeline.catalog import SqliteCatalog

BEFORE = Path(__file__).parent / "fixtures" / "catalog-before-migrations.sql"
S, D, LOCK, OUT = "a" * 32, "b" * 32, "d" * 32, "c" * 32


def test_an_older_catalogs_workspace_belongs_to_its_first_deployer_or_to_no_one(tmp_path):
    path = tmp_path / "catalog.db"
    with sqlite3.connect(path) as db:
        db.executescript(BEFORE.read_text())
        db.execute("INSERT INTO workspaces VALUES ('empty', 1.0, '{}')")  # never deployed to
    catalog = SqliteCatalog(path)
    assert catalog.workspace("ws").owner == "ana"
    assert catalog.workspace("empty").owner is None
    assert catalog.create_workspace("ws", owner="mallory").owner == "ana"  # taken: unchanged
    assert catalog.create_workspace("new", owner="bo").owner == "bo"


def test_shares_are_replaced_taken_back_and_forgotten_with_their_workspace(tmp_path):
    catalog = SqliteCatalog(tmp_path / "catalog.db")
    catalog.create_workspace("x", owner="alice")
    catalog.create_workspace("y", owner="bob")
    catalog.share("x", "bob", "reader")
    catalog.share("x", "bob", "writer")
    catalog.share("x", "carol", "reader")
    catalog.share("y", "alice", "reader")
    assert catalog.shares("x") == {"x": {"bob": "writer", "carol": "reader"}}
    assert catalog.shares() == {
        "x": {"bob": "writer", "carol": "reader"},
        "y": {"alice": "reader"},
    }
    assert catalog.unshare("x", "carol") is True
    assert catalog.unshare("x", "carol") is False
    catalog.delete_workspace("x")
    catalog.create_workspace("x", owner="dave")
    assert catalog.shares("x") == {}  # a new workspace of the same name starts unshared


def test_a_tree_is_named_by_the_workspaces_whose_jobs_models_or_inputs_use_it(tmp_path):
    path = tmp_path / "catalog.db"
    with sqlite3.connect(path) as db:
        db.executescript(BEFORE.read_text())
    catalog = SqliteCatalog(path)
    for digest in (S, D, LOCK, OUT):
        assert catalog.workspaces_referencing(digest) == {"ws"}
    assert catalog.workspaces_referencing("e" * 32) == set()
