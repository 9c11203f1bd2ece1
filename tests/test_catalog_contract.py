"""What the engine and the server rely on from the catalog, on SQLite and PostgreSQL alike:
lookups by prefix, newest-first listings, a workspace that cannot be deleted under a running job,
recovery after a restart, idempotent and replacing inserts, and the transaction primitives that
several servers build on (row claims that never hand one job to two claimers, a per-workspace
lock that holds across catalogs opened separately and, on PostgreSQL, across processes)."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest

from kaos.errors import Ambiguous, LockBusy, NotFound, WorkspaceBusy
from kaos.pipeline.catalog import open_catalog
from kaos.pipeline.inputs import TrainingInputs
from kaos.pipeline.records import Image, Job, Model
from kaos.pipeline.states import ImageState, JobKind, JobState
from kaos.serving.records import Endpoint, EndpointState, ServeOptions

S, D = "a" * 32, "b" * 32


def job(job_id: str, workspace: str = "ws", created: float = 1.0, **fields) -> Job:
    return replace(
        Job(job_id, JobKind.TRAIN, workspace, None, JobState.SUCCESS, created, author="ana"),
        **fields,
    )


@pytest.fixture
def catalog(catalog_place):
    catalog = catalog_place.open()
    catalog.create_workspace("ws")
    return catalog


def test_creating_a_workspace_twice_keeps_the_first(catalog):
    first = catalog.workspace("ws")
    assert catalog.create_workspace("ws") == first
    assert [w.name for w in catalog.workspaces()] == ["ws"]
    with pytest.raises(NotFound, match="no workspace named 'nope'"):
        catalog.workspace("nope")


def test_jobs_list_newest_first_and_ties_in_insertion_order(catalog):
    for job_id in ("b" * 32, "a" * 32, "c" * 32):
        catalog.add_job(job(job_id, created=5.0))
    catalog.add_job(job("d" * 32, created=9.0, kind=JobKind.BUILD))
    assert [j.id[0] for j in catalog.jobs("ws")] == ["d", "c", "a", "b"]
    assert [j.id[0] for j in catalog.jobs("ws", kind=JobKind.BUILD)] == ["d"]


def test_jobs_and_models_are_found_by_unique_prefix(catalog):
    catalog.add_job(job("abc1" + "0" * 28))
    catalog.add_job(job("abc2" + "0" * 28), [
        Model("abc2" + "0" * 28, 0, "k", None, JobState.SUCCESS, "aaaaa_bbbbb:123456"),
        Model("abc2" + "0" * 28, 1, "l", None, JobState.SUCCESS, "aaaaa_bbbbb:124456"),
    ])  # fmt: skip
    assert catalog.find_job("abc2").id == "abc2" + "0" * 28
    with pytest.raises(Ambiguous):
        catalog.find_job("abc")
    with pytest.raises(NotFound):
        catalog.find_job("ffff")
    assert catalog.find_model("aaaaa_bbbbb:123").index == 0
    with pytest.raises(Ambiguous):
        catalog.find_model("aaaaa_bbbbb:12")


def test_a_workspace_with_an_active_job_or_endpoint_is_not_deleted(catalog):
    deploy = catalog.record_deploy("ws", "ana", TrainingInputs(S, D), {}, False)
    catalog.add_job(job("j" * 32, state=JobState.RUNNING, deploy_id=deploy.id),
                    [Model("j" * 32, 0, "k", None, JobState.RUNNING)])  # fmt: skip
    with pytest.raises(WorkspaceBusy, match="1 running jobs"):
        catalog.delete_workspace("ws")
    catalog.update_job("j" * 32, state=JobState.KILLED)
    catalog.put_endpoint(Endpoint("ws", "api", EndpointState.RUNNING, None, None,
                                  ServeOptions(), 1.0))  # fmt: skip
    with pytest.raises(WorkspaceBusy, match="endpoint"):
        catalog.delete_workspace("ws")
    assert catalog.deploys("ws") and catalog.job("j" * 32)  # refused: nothing removed
    catalog.put_endpoint(Endpoint("ws", "api", EndpointState.KILLED, None, None,
                                  ServeOptions(), 1.0))  # fmt: skip
    catalog.delete_workspace("ws")
    assert catalog.workspaces() == [] and catalog.deploys("ws") == []
    with pytest.raises(NotFound):
        catalog.job("j" * 32)


def test_a_restart_fails_what_was_left_active(catalog):
    """Running without an owner: left by a server from before leases (a dead replica's are
    in tests/test_catalog_leases.py)."""
    catalog.add_job(job("r" * 32, state=JobState.RUNNING),
                    [Model("r" * 32, 0, "k", None, JobState.RUNNING)])  # fmt: skip
    catalog.add_job(job("s" * 32))
    catalog.set_image(Image(S, "local", ImageState.BUILDING, "r" * 32, None))
    assert catalog.fail_abandoned([], "server restarted") == 1
    assert catalog.job("r" * 32).state is JobState.FAILURE
    assert catalog.job("r" * 32).reason == "server restarted"
    assert catalog.models("r" * 32)[0].state is JobState.FAILURE
    assert catalog.job("s" * 32).state is JobState.SUCCESS
    assert catalog.image(S, "local") is None


def test_bundle_names_and_images_are_set_again_without_error(catalog):
    catalog.name_bundles({S: "src", D: "data"})
    catalog.name_bundles({S: "renamed"})  # a digest keeps the name it was first given
    assert catalog.bundle_name(S) == "src" and catalog.bundle_name("f" * 32) is None
    catalog.set_image(Image(S, "local", ImageState.BUILDING, "j" * 32, None))
    catalog.set_image(Image(S, "local", ImageState.READY, "j" * 32, "env", "l" * 32))
    assert catalog.image(S, "local") == Image(S, "local", ImageState.READY, "j" * 32, "env",
                                              "l" * 32)  # fmt: skip
    assert catalog.view("local", []).images == {S: ImageState.READY}


def test_the_view_knows_trained_and_training_keys(catalog):
    catalog.add_job(job("v" * 32), [
        Model("v" * 32, 0, "done", None, JobState.SUCCESS, "m1", finished=1.0),
        Model("v" * 32, 1, "busy", None, JobState.RUNNING),
        Model("v" * 32, 2, "lost", None, JobState.FAILURE),
    ])  # fmt: skip
    view = catalog.view("local", ["done", "busy", "lost", "new"])
    assert view.models == {"done": "m1"} and view.training == {"busy"}


def test_claims_in_transactions_never_hand_one_job_to_two_claimers(catalog):
    """The primitive replicas claim jobs with: SELECT ... FOR UPDATE SKIP LOCKED in a
    transaction (PostgreSQL locks the row; SQLite runs one writer at a time)."""
    for i in range(12):
        catalog.add_job(job(f"{i:032x}", state=JobState.STARTING, created=float(i)))

    def claim(worker: int) -> list[str]:
        mine = []
        while True:
            with catalog.transaction() as tx:
                row = tx.one(
                    "SELECT id FROM jobs WHERE state = ? ORDER BY created LIMIT 1"
                    " FOR UPDATE SKIP LOCKED",
                    (JobState.STARTING.value,),
                )
                if row is None:
                    return mine
                time.sleep(0.01)  # hold the claim a while: others must skip it, not take it
                tx.execute(
                    "UPDATE jobs SET state = ?, reason = ? WHERE id = ?",
                    (JobState.RUNNING.value, f"worker {worker}", row["id"]),
                )
                mine.append(row["id"])

    with ThreadPoolExecutor(4) as pool:
        claimed = [c for got in pool.map(claim, range(4)) for c in got]
    assert sorted(claimed) == [f"{i:032x}" for i in range(12)]  # each exactly once
    assert {j.state for j in catalog.jobs("ws")} == {JobState.RUNNING}


def test_a_workspace_lock_holds_across_separately_opened_catalogs(catalog_place):
    """Two servers on one catalog: one workspace's deploys never overlap, other workspaces'
    are not held up."""
    first, second = catalog_place.open(), catalog_place.open()
    inside: list[str] = []
    overlap = threading.Event()
    held = threading.Event()

    def deploy(catalog, who: str) -> None:
        with catalog.workspace_lock("ws"):
            held.set()
            inside.append(who)
            if len(inside) > 1:
                overlap.set()
            time.sleep(0.3)
            inside.remove(who)

    threads = [threading.Thread(target=deploy, args=(c, n))
               for c, n in ((first, "one"), (second, "two"))]  # fmt: skip
    threads[0].start()
    held.wait(5)
    threads[1].start()
    started = time.monotonic()
    with second.workspace_lock("other"):  # another workspace: no wait for the first
        assert time.monotonic() - started < 0.2
    for thread in threads:
        thread.join()
    assert not overlap.is_set()
    with first.workspace_lock("ws"), first.workspace_lock("ws"):  # reentrant in one thread
        pass


def test_a_request_waits_for_a_held_workspace_only_so_long_then_is_told_it_is_busy(
    catalog_place,
):
    """Held by another process (another replica, a stuck request) or by another thread of
    this one, a workspace's lock is waited for `wait_s` at most: the request then fails as
    busy, naming the workspace, rather than going on after its client has given up."""
    catalog = catalog_place.open()
    holder = hold_in_another_process(catalog_place.location, 30)
    try:
        started = time.monotonic()
        with (
            pytest.raises(LockBusy, match="workspace 'ws' is busy") as refused,
            catalog.workspace_lock("ws", wait_s=0.5),
        ):
            pytest.fail("entered a lock another process holds")
        assert refused.value.http_status == 409 and refused.value.fix == "try again in a moment"
        assert time.monotonic() - started >= 0.5  # it did wait
        with catalog.workspace_lock("other", wait_s=0.5):  # other workspaces are free
            pass
    finally:
        holder.kill()
        holder.wait()
    with catalog.workspace_lock("ws", wait_s=10):  # the holder gone, it is had
        refused_too = threading.Event()

        def another_thread() -> None:
            with pytest.raises(LockBusy, match="'ws' is busy"), catalog.workspace_lock("ws", 0.3):
                pass
            refused_too.set()

        thread = threading.Thread(target=another_thread)
        thread.start()
        thread.join(10)
        assert refused_too.is_set()  # this process's other threads wait so long too


def test_a_lock_wait_beyond_what_locks_take_is_refused_when_the_server_starts():
    """'inf' or days would pass `gt=0` and then fail every deploy (threading's timeouts and
    PostgreSQL's lock_timeout refuse them): the setting stops at an hour."""
    from pydantic import ValidationError

    from kaos.server.settings import Settings

    assert Settings(lock_wait_s=3600).lock_wait_s == 3600
    for bad in (float("inf"), 3601, 0, -1):
        with pytest.raises(ValidationError):
            Settings(lock_wait_s=bad)


HOLDER = """
import sys, time
from kaos.pipeline.catalog import open_catalog
catalog = open_catalog(sys.argv[1])
with catalog.workspace_lock("ws"):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def hold_in_another_process(url: str, seconds: float) -> subprocess.Popen:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, url, str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_on_postgresql_the_workspace_lock_holds_across_processes_and_dies_with_its_holder(
    postgres,
):
    url = postgres.new_database()
    catalog = open_catalog(url)
    try:
        holder = hold_in_another_process(url, 1.0)
        started = time.monotonic()
        with catalog.workspace_lock("ws"):
            waited = time.monotonic() - started
        assert holder.wait(10) == 0 and 0.5 < waited < 5
        holder = hold_in_another_process(url, 60)
        holder.send_signal(signal.SIGKILL)  # a server dies holding it: the lock goes with it
        holder.wait(10)
        started = time.monotonic()
        with catalog.workspace_lock("ws"):
            assert time.monotonic() - started < 5
    finally:
        catalog.close()
