"""The guard applies the access rules to what a request names, on a real catalog: ids typed as
prefixes resolve among what the caller can read, and nothing is checked without tokens."""

from __future__ import annotations

from dataclasses import replace

import pytest

from kaos.errors import Ambiguous, Forbidden, NotFound
from kaos.pipeline.catalog import SqliteCatalog
from kaos.pipeline.records import Job, Model
from kaos.pipeline.states import JobKind, JobState
from kaos.server.access import Action
from kaos.server.auth import TokenTable
from kaos.server.guard import Guard
from kaos.store import ContentStore

TOKENS = {f"{user}-token-0123456789": user for user in ("alice", "carol", "dave", "root")}
ALICE_JOB, DAVE_JOB = "abc1" + "0" * 28, "abc2" + "0" * 28


@pytest.fixture
def catalog(tmp_path):
    catalog = SqliteCatalog(tmp_path / "catalog.db")
    catalog.create_workspace("x", owner="alice")
    catalog.create_workspace("mine", owner="dave")
    catalog.share("x", "carol", "reader")
    for job_id, ws, model_id in (
        (ALICE_JOB, "x", "aaaaa_bbbbb:111111"),
        (DAVE_JOB, "mine", "aaaaa_bbbbb:122222"),
    ):
        job = Job(job_id, JobKind.TRAIN, ws, None, JobState.SUCCESS, 1.0, author="a")
        catalog.add_job(
            replace(job, source=ws * 8, data="d" * 32),
            [Model(job_id, 0, "k" + ws, None, JobState.SUCCESS, model_id, finished=1.0)],
        )
    return catalog


def guard(catalog, tmp_path, tokens=TOKENS) -> Guard:
    store = ContentStore.from_url(str(tmp_path / "store"), tmp_path)
    return Guard(catalog, store, TokenTable(tokens, {"root"}))


def test_a_prefix_others_share_resolves_among_what_the_caller_can_read(catalog, tmp_path):
    g = guard(catalog, tmp_path)
    assert g.job("dave", "abc", Action.READ).id == DAVE_JOB
    assert g.job("carol", "abc", Action.READ).id == ALICE_JOB
    assert g.model("dave", "aaaaa_bbbbb:1").model_id == "aaaaa_bbbbb:122222"
    with pytest.raises(Ambiguous):  # an admin reads both
        g.job("root", "abc", Action.READ)
    with pytest.raises(Forbidden, match="belongs to alice"):  # a full id is still refused
        g.job("dave", ALICE_JOB, Action.READ)
    with pytest.raises(Forbidden, match="carol may only read it"):
        g.job("carol", "abc", Action.WRITE)


def test_a_stranger_with_no_match_of_their_own_learns_no_ids(catalog, tmp_path):
    catalog.create_workspace("empty", owner="eve")
    g = guard(catalog, tmp_path, {**TOKENS, "eve-token-0123456789": "eve"})
    with pytest.raises(NotFound, match="no job matches 'abc'") as missing:
        g.job("eve", "abc", Action.READ)
    assert ALICE_JOB[:12] not in str(missing.value)


def test_without_tokens_everything_is_allowed_and_prefixes_stay_global(catalog, tmp_path):
    g = guard(catalog, tmp_path, {})
    assert g.job("anyone", ALICE_JOB[:5], Action.WRITE).id == ALICE_JOB
    with pytest.raises(Ambiguous):
        g.job("anyone", "abc", Action.READ)
    assert g.readable("anyone", catalog.workspaces()) == catalog.workspaces()
    g.tree("anyone", "f" * 32)  # not even looked up
