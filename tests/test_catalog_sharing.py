"""The catalog's part of ownership, on SQLite and PostgreSQL: owners recorded at creation (and
guessed for catalogs made before), shares by role, and which workspaces name a tree (what
reading by hash checks)."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from kaos.errors import Ambiguous, NotFound
from kaos.pipeline.catalog import SqliteCatalog
from kaos.pipeline.inputs import TrainingInputs
from kaos.pipeline.records import Job, Model
from kaos.pipeline.states import JobKind, JobState
from kaos.serving.records import Endpoint, EndpointState, ServeOptions

BEFORE = Path(__file__).parent / "fixtures" / "catalog-before-migrations.sql"
S, D, LOCK, OUT, SERVE, ONLY = (c * 32 for c in "abcdef")


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


def test_shares_are_replaced_taken_back_and_forgotten_with_their_workspace(catalog_place):
    catalog = catalog_place.open()
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
    assert catalog.workspace("x").owner == "dave"
    assert catalog.shares("x") == {}  # a new workspace of the same name starts unshared


def test_a_tree_is_named_by_the_workspaces_whose_jobs_models_inputs_or_endpoints_use_it(
    catalog_place,
):
    catalog = catalog_place.open()
    for name in ("ws", "other", "data-only"):
        catalog.create_workspace(name, owner="ana")
    job = Job("j" * 32, JobKind.TRAIN, "ws", None, JobState.SUCCESS, 1.0, author="ana")
    catalog.add_job(
        replace(job, source=S, data=D, lock=LOCK),
        [Model(job.id, 0, "k", None, JobState.SUCCESS, "aaaaa_bbbbb:cccccc", output_tree=OUT)],
    )
    catalog.add_job(replace(job, id="i" * 32, workspace="other", source=S))
    catalog.record_deploy("data-only", "ana", TrainingInputs(None, ONLY), {"data": ONLY}, False)
    served = ServeOptions(serve_source=SERVE)
    catalog.put_endpoint(Endpoint("other", "e", EndpointState.KILLED, None, None, served, 1.0))
    assert catalog.workspaces_referencing(S) == {"ws", "other"}
    for digest in (D, LOCK, OUT):
        assert catalog.workspaces_referencing(digest) == {"ws"}
    assert catalog.workspaces_referencing(ONLY) == {"data-only"}
    assert catalog.workspaces_referencing(SERVE) == {"other"}
    assert catalog.workspaces_referencing("9" * 32) == set()


def test_ids_resolve_among_the_workspaces_given(catalog_place):
    catalog = catalog_place.open()
    for name in ("x", "y"):
        catalog.create_workspace(name)
    for job_id, ws, model_id in (("abc1" + "0" * 28, "x", "m:1"), ("abc2" + "0" * 28, "y", "m:2")):
        job = Job(job_id, JobKind.TRAIN, ws, None, JobState.SUCCESS, 1.0, author="ana")
        catalog.add_job(job, [Model(job_id, 0, "k" + ws, None, JobState.SUCCESS, model_id)])
    assert catalog.find_job("abc", among=["y"]).workspace == "y"
    assert catalog.find_model("m:", among=["x"]).model_id == "m:1"
    with pytest.raises(NotFound):
        catalog.find_job("abc", among=[])
    with pytest.raises(Ambiguous):
        catalog.find_job("abc", among=["x", "y"])
