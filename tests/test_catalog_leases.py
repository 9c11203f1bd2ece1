"""The catalog's part in running each job once across replicas, on SQLite and PostgreSQL:
claims (never one job to two claimers, expired leases taken over), heartbeats (renewals, kill
requests, lost leases), writes fenced by the owner, recovery of a dead replica's jobs, logs in
chunks, and the workspace lock across processes. Each replica opens its own catalog."""

from __future__ import annotations

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest

from kaos.pipeline.leases import Replica
from kaos.pipeline.logs import JobLogs
from kaos.pipeline.records import Image, Job, Model
from kaos.pipeline.states import ImageState, JobKind, JobState

NOW = 1_000_000.0


def queued(i: int, created: float = 1.0) -> Job:
    return Job(f"{i:032x}", JobKind.TRAIN, "ws", None, JobState.STARTING, created + i)


@pytest.fixture
def two(catalog_place):
    """Two replicas' catalogs on one database."""
    a, b = catalog_place.open(), catalog_place.open()
    a.create_workspace("ws")
    return a, b


def test_concurrent_claimers_never_get_the_same_job(two):
    a, b = two
    for i in range(30):
        a.add_job(queued(i))

    def claim_all(catalog, name):
        got = []
        while (claim := catalog.claim_job(name, NOW, NOW + 10)) is not None:
            got.append(claim.job_id)
        return got

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(claim_all, c, f"r{n}") for n, c in enumerate([a, b, a, b])]
        claimed = [job for f in futures for job in f.result()]
    assert sorted(claimed) == sorted(queued(i).id for i in range(30))  # each exactly once
    assert a.claim_job("late", NOW + 5, NOW + 15) is None  # leases still live


def test_the_oldest_job_is_claimed_first_and_an_expired_lease_is_taken_over(two):
    a, b = two
    a.add_job(queued(2))
    a.add_job(queued(1))
    first = a.claim_job("ra", NOW, NOW + 10)
    assert first is not None and first.job_id == queued(1).id and first.previous_owner is None
    assert b.claim_job("rb", NOW, NOW + 10).job_id == queued(2).id
    assert b.claim_job("rb", NOW + 9, NOW + 19) is None
    taken = b.claim_job("rb", NOW + 11, NOW + 21)  # ra stopped renewing
    assert taken is not None and taken.job_id == queued(1).id and taken.previous_owner == "ra"


def test_a_job_running_without_an_owner_is_not_claimed(two):
    """Left by a server from before leases: start-up recovery fails it instead."""
    a, _ = two
    a.add_job(replace(queued(1), state=JobState.RUNNING))
    assert a.claim_job("ra", NOW, NOW + 10) is None
    assert a.fail_abandoned([], "the server stopped") == 1
    assert a.job(queued(1).id).state == JobState.FAILURE


def test_renewal_keeps_the_lease_and_passes_on_kill_requests_and_losses(two):
    a, b = two
    for i in range(3):
        a.add_job(queued(i))
        a.claim_job("ra", NOW, NOW + 10)
    renewal = a.renew_leases("ra", [queued(i).id for i in range(3)], NOW + 8, NOW + 18)
    assert renewal.kill == frozenset() and renewal.lost == frozenset()
    assert b.claim_job("rb", NOW + 12, NOW + 22) is None  # renewed: still held
    assert b.request_kill(queued(0).id, NOW + 12, "killed on request") is False  # asked only
    assert b.job(queued(0).id).state == JobState.STARTING
    b.claim_job("rb", NOW + 19, NOW + 29)  # ra's leases expired: rb takes the oldest
    renewal = a.renew_leases("ra", [queued(i).id for i in range(3)], NOW + 20, NOW + 30)
    assert renewal.lost == {queued(0).id}  # no longer ra's, whatever ra thinks
    assert queued(0).id in renewal.kill


def test_writes_of_a_replica_that_lost_the_lease_change_nothing(two):
    a, b = two
    a.add_job(queued(1), [Model(queued(1).id, 0, "k", None, JobState.STARTING)])
    a.claim_job("ra", NOW, NOW + 10)
    b.claim_job("rb", NOW + 11, NOW + 21)
    a.update_job(queued(1).id, fence="ra", state=JobState.FAILURE, reason="stale")
    a.update_model(queued(1).id, 0, fence="ra", state=JobState.FAILURE)
    assert a.job(queued(1).id).state == JobState.STARTING
    assert a.models(queued(1).id)[0].state == JobState.STARTING
    b.update_job(queued(1).id, fence="rb", state=JobState.SUCCESS)
    b.update_model(queued(1).id, 0, fence="rb", state=JobState.SUCCESS)
    assert a.job(queued(1).id).state == JobState.SUCCESS
    assert a.models(queued(1).id)[0].state == JobState.SUCCESS


def test_a_job_nobody_holds_is_killed_at_once_with_its_models_and_image(two):
    a, b = two
    job = replace(queued(1), kind=JobKind.BUILD, source="s" * 32)
    a.add_job(job)
    a.set_image(Image("s" * 32, "local", ImageState.BUILDING, job.id, None))
    assert b.request_kill(job.id, NOW, "killed on request") is True
    assert a.job(job.id).state == JobState.KILLED and a.image("s" * 32, "local") is None
    assert a.claim_job("ra", NOW, NOW + 10) is None


def test_recovery_fails_only_the_dead_replicas_jobs(two):
    a, b = two
    for i in range(3):
        a.add_job(queued(i))
    a.claim_job("dead", NOW, NOW + 10)
    b.claim_job("alive", NOW, NOW + 10)
    a.register_replica(Replica("dead", "host", 1, "/home", NOW, NOW))
    assert b.fail_abandoned(["dead"], "the server stopped") == 1
    states = {j.id: j.state for j in a.jobs("ws")}
    assert states == {
        queued(0).id: JobState.FAILURE,
        queued(1).id: JobState.STARTING,  # held by a live replica
        queued(2).id: JobState.STARTING,  # queued: to be claimed
    }
    assert a.replica("dead") is None  # forgotten


def test_logs_are_read_across_chunks_from_any_offset(two):
    a, b = two
    a.append_log("j", 0, b"hello ")
    a.append_log("j", 6, "wörld\n".encode())
    a.append_log("j", 6, b"ignored")  # a second writer at the same place
    assert b.read_log("j", 0, 1 << 20) == "hello wörld\n".encode()
    assert b.read_log("j", 3, 5) == b"lo w\xc3"
    assert b.log_size("j") == len("hello wörld\n".encode())
    a.append_log("j", 100, b"after a gap")
    assert b.read_log("j", 0, 1 << 20) == "hello wörld\n".encode()  # up to the gap


def test_a_job_log_continues_on_the_replica_that_takes_it_over(two, tmp_path):
    a, b = two
    first = JobLogs(tmp_path / "a", a)
    first.writer("j").write("line one\n")
    first.ship_all()  # a heartbeat; then replica a dies
    second = JobLogs(tmp_path / "b", b)
    second.writer("j").write("line two\n")
    assert second.read("j") == ("line one\nline two\n", 18)  # shipped before it is read
    assert first.read("j", 9) == ("line two\n", 18)  # and every replica reads it


def test_the_workspace_lock_holds_across_processes(catalog_place):
    catalog = catalog_place.open()
    holder = subprocess.Popen(
        [sys.executable, "-c", (
            "import sys, time\n"
            "from kaos.pipeline.catalog import open_catalog\n"
            f"c = open_catalog({catalog_place.location!r})\n"
            "with c.workspace_lock('ws'):\n"
            "    print('held', flush=True)\n"
            "    time.sleep(1.5)\n"
        )],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    started = time.monotonic()
    with catalog.workspace_lock("ws"):
        waited = time.monotonic() - started
    holder.wait(10)
    assert waited > 0.5  # it waited for the other process
