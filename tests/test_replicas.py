"""Several `kaos server` replicas on one catalog (PostgreSQL, or one SQLite file) and one S3
store (moto): any replica answers any request, each job runs exactly once, and a dead
replica's job is taken over once its lease expires. Real server processes, the real CLI, the
local executor (no sandbox, so nothing but the taking-over replica ends a dead one's train
script)."""

from __future__ import annotations

import json
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from kaos.client import Client
from kaos.client.inputs import DeployChange
from kaos.pipeline.catalog import SqlCatalog, open_catalog
from kaos.pipeline.inputs import TrainingInputs
from kaos.pipeline.leases import process_alive
from kaos.serving.records import Endpoint, EndpointState, ServeOptions
from tests.cli import Cli
from tests.conftest import KaosServer

pytestmark = pytest.mark.slow

LEASE_S = 3.0
HEARTBEAT_S = 0.5

# Counts its own runs (`start`, `end` lines with its pid and parent, the server running it),
# and waits for a release file, so a test can hold it running.
COUNTER = """#!/usr/bin/env python3
import json, os, sys, time
with open({runs!r}, "a") as f:
    f.write(f"start {{os.getpid()}} {{os.getppid()}}\\n")
print("training: waiting for the release file", flush=True)
while not os.path.exists({release!r}):
    time.sleep(0.05)
os.makedirs(sys.argv[1] + "/metrics", exist_ok=True)
json.dump({{"accuracy": 0.5}}, open(sys.argv[1] + "/metrics/metrics.json", "w"))
open(sys.argv[1] + "/weights.txt", "w").write("w = 42\\n")
print("training: done", flush=True)
with open({runs!r}, "a") as f:
    f.write(f"end {{os.getpid()}}\\n")
"""


@dataclass
class Team:
    """Two replicas of one service, and a CLI for each."""

    root: Path
    a: KaosServer
    b: KaosServer
    cli_a: Cli
    cli_b: Cli
    catalog: str  # a SQLite file or a PostgreSQL URL
    runs: Path
    release: Path

    def servers(self) -> list[KaosServer]:
        return [self.a, self.b]

    def open_catalog(self) -> SqlCatalog:
        return open_catalog(self.catalog)

    def starts(self) -> list[tuple[int, int]]:
        lines = self.runs.read_text().splitlines() if self.runs.exists() else []
        starts = [line.split()[1:] for line in lines if line.startswith("start")]
        return [(int(pid), int(parent)) for pid, parent in starts]

    def ends(self) -> int:
        lines = self.runs.read_text().splitlines() if self.runs.exists() else []
        return sum(1 for line in lines if line.startswith("end"))


def start_replica(root: Path, name: str, catalog: str, store: list[str]) -> KaosServer:
    home = root / name
    home.mkdir()
    env = {
        "KAOS_CATALOG": catalog,
        "KAOS_LEASE_S": str(LEASE_S),
        "KAOS_HEARTBEAT_S": str(HEARTBEAT_S),
    }
    return KaosServer(home, ["--no-sandbox", *store], env)


@pytest.fixture
def team(request, tmp_path, s3_endpoint, s3_bucket):
    """On PostgreSQL (the team setup), or on one SQLite file (servers on one machine):
    parametrized per test with `indirect`."""
    root = tmp_path
    if getattr(request, "param", "postgresql") == "postgresql":
        catalog = request.getfixturevalue("postgres").new_database()
    else:
        (root / "shared").mkdir()
        catalog = str(root / "shared" / "catalog.db")
    store = ["--store", f"s3://{s3_bucket}/kaos", "--s3-endpoint-url", s3_endpoint]
    a = start_replica(root, "replica-a", catalog, store)
    b = start_replica(root, "replica-b", catalog, store)
    runs, release = root / "runs.txt", root / "release"
    model = root / "src" / "counter" / "model"
    model.mkdir(parents=True)
    (model.parent / "Dockerfile").write_text("FROM scratch\n")
    (model / "train").write_text(COUNTER.format(runs=str(runs), release=str(release)))
    (model / "train").chmod(0o755)
    (root / "data" / "rows").mkdir(parents=True)
    (root / "data" / "rows" / "a.csv").write_text("1\n")
    team = Team(
        root, a, b, Cli(root / "client-a", root, a.url), Cli(root / "client-b", root, b.url),
        catalog, runs, release,
    )  # fmt: skip
    yield team
    for server in team.servers():
        if server.proc.poll() is None:
            server.stop()


def wait_for(what, timeout: float = 120, message: str = ""):
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = what()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {message or what}")


def train_job(cli: Cli) -> dict:
    jobs = cli.ok("train", "list", "--json").json()["training"]
    return jobs[0]


def job_state(cli: Cli, job_id: str) -> str:
    return cli.ok("train", "info", "-j", job_id, "--json").json()["job"]["state"]


@pytest.mark.parametrize("team", ["postgresql"], indirect=True)
def test_deploy_through_one_replica_follow_read_and_kill_through_the_other(team):
    team.cli_a.ok("workspace", "create", "-n", "shared")
    team.cli_b.ok("workspace", "set", "-n", "shared")
    team.cli_a.ok("train", "deploy", "-s", "src", "-d", "data")
    job = wait_for(lambda: team.cli_b.ok("train", "list", "--json").json()["training"])[0]
    assert job["state"] in ("JOB_STARTING", "JOB_RUNNING")
    follow = team.cli_b.start("train", "logs", "-j", job["id"], "--follow")
    wait_for(
        lambda: "waiting for the release" in team.cli_b.ok("train", "logs", "-j", job["id"]).out,
        message="the other replica's log through b",
    )
    team.release.touch()
    followed = follow.finish(timeout=120)
    assert followed.code == 0, followed.err
    assert "waiting for the release" in followed.out and "training: done" in followed.out
    assert job_state(team.cli_b, job["id"]) == "JOB_SUCCESS"
    assert len(team.starts()) == 1 and team.ends() == 1  # one run, by one replica

    team.release.unlink()
    team.cli_a.ok("train", "deploy", "--force")
    forced = wait_for(lambda: len(team.starts()) == 2 and train_job(team.cli_b))
    team.cli_b.ok("train", "kill", "-j", forced["id"])
    wait_for(lambda: job_state(team.cli_a, forced["id"]) == "JOB_KILLED", 10, "the kill")
    pid, _ = team.starts()[1]
    wait_for(lambda: not process_alive(pid), 10, "the killed script to end")
    assert team.ends() == 1


@pytest.mark.parametrize("team", ["sqlite"], indirect=True)
def test_an_endpoint_served_by_another_replica_is_refused_with_where_to_ask(team):
    """Endpoints live with the replica they were deployed through (not shared yet)."""
    team.cli_a.ok("workspace", "create", "-n", "serving")
    catalog = team.open_catalog()
    catalog.put_endpoint(
        Endpoint("serving", "ep", EndpointState.RUNNING, None, None, ServeOptions(), time.time())
    )
    answer = httpx.post(f"{team.b.url}/serve/serving/ep/invocations", json={"inputs": [[1]]})
    assert answer.status_code == 503
    assert "served by another kaos server replica" in answer.json()["detail"]


@pytest.mark.parametrize("team", ["sqlite", "postgresql"], indirect=True)
def test_twenty_concurrent_deploys_over_two_replicas_are_recorded_and_train_once(team):
    """Deploys to one workspace are serialized across replicas: each pair deploying the same
    data at the same moment (one through each replica) records two deploys and one train."""
    team.cli_a.ok("workspace", "create", "-n", "busy")
    team.release.touch()
    team.cli_a.ok("train", "deploy", "-s", "src", "-d", "data", "--wait")
    client = Client(team.a.url, workspace="busy")
    data = []
    for i in range(10):
        folder = team.root / f"data-{i}"
        (folder / "rows").mkdir(parents=True)
        (folder / "rows" / "a.csv").write_text(f"row {i}\n")  # none like the first data
        data.append(client.upload("data", folder).digest)
    clients = [Client(s.url, workspace="busy") for s in team.servers()]
    errors: list[BaseException] = []
    pairs = [threading.Barrier(2) for _ in data]  # the same data through a and b at once

    def deploy(i: int) -> None:
        try:
            pairs[i // 2].wait(30)
            clients[i % 2].submit(DeployChange(data=data[i // 2]))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=deploy, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    wait_for(lambda: not active_jobs(team.cli_a), message="the trains")
    catalog = team.open_catalog()
    deploys = catalog.deploys("busy")
    assert len(deploys) == 21
    previous = TrainingInputs()
    for deploy in deploys:  # each deploy's inputs: the previous ones with its change
        assert deploy.inputs.data == (deploy.changed.get("data") or previous.data)
        assert deploy.inputs.source == (deploy.changed.get("source") or previous.source)
        previous = deploy.inputs
    trains = catalog.jobs("busy", "train")
    assert sorted(j.data for j in trains) == sorted([*data, deploys[0].inputs.data])
    assert len(team.starts()) == 11 and team.ends() == 11  # each train key trained once


def active_jobs(cli: Cli) -> list[str]:
    listing = cli.ok("train", "list", "--json").json()
    return [
        j["id"]
        for j in listing["building"] + listing["training"]
        if j["state"] in ("JOB_STARTING", "JOB_RUNNING")
    ]


@pytest.mark.parametrize("team", ["postgresql"], indirect=True)
def test_a_killed_replicas_train_is_finished_by_the_other_after_the_lease(team):
    team.cli_a.ok("workspace", "create", "-n", "takeover")
    team.cli_b.ok("workspace", "set", "-n", "takeover")
    team.release.touch()
    team.cli_a.ok("train", "deploy", "-s", "src", "-d", "data", "--wait")
    first = team.cli_b.ok("train", "info", "-i", "0", "--json").json()
    (model,) = first["models"]
    assert len(team.starts()) == 1 and team.ends() == 1

    team.release.unlink()
    team.cli_a.ok("train", "deploy", "--force")
    wait_for(lambda: len(team.starts()) == 2, message="the forced train to start")
    job = train_job(team.cli_b)
    pid, runner = team.starts()[1]
    victim = next(s for s in team.servers() if s.proc.pid == runner)
    survivor = next(s for s in team.servers() if s is not victim)
    cli = team.cli_a if survivor is team.a else team.cli_b
    # Lines reach the catalog on the heartbeat: the dead run's lines are kept once shipped.
    wait_for(
        lambda: "waiting for the release" in cli.ok("train", "logs", "-j", job["id"]).out,
        message="the running train's first line to be shipped",
    )
    victim.proc.send_signal(signal.SIGKILL)
    victim.proc.wait()
    killed_at = time.time()
    assert process_alive(pid), "without the sandbox the script outlives its server"

    wait_for(lambda: len(team.starts()) == 3, 4 * LEASE_S + 30, "the takeover")
    took = time.time() - killed_at
    _, runner = team.starts()[2]
    assert runner == survivor.proc.pid
    assert not process_alive(pid), "the dead replica's script is ended before the rerun"
    assert took >= LEASE_S - HEARTBEAT_S  # not before the lease (renewed a beat ago) expired
    team.release.touch()
    wait_for(lambda: job_state(cli, job["id"]) == "JOB_SUCCESS", 120, "the rerun")
    (rerun,) = cli.ok("train", "info", "-j", job["id"], "--json").json()["models"]
    assert rerun["model_id"] == model["model_id"]  # same inputs, same model
    assert len(team.starts()) == 3 and team.ends() == 2  # the partial run, then one complete
    log = cli.ok("train", "logs", "-j", job["id"]).out
    assert "no longer holds this job" in log and "training: done" in log
    assert log.count("waiting for the release") == 2  # the dead run's lines are kept
    print(json.dumps({"takeover_s": round(took, 2)}))


@pytest.mark.parametrize("team", ["postgresql"], indirect=True)
def test_a_stopping_replica_hands_its_train_to_the_other(team):
    """A rolling restart: the stopped replica's train runs again on the other at once (no
    lease to wait for), and finishes there."""
    team.cli_a.ok("workspace", "create", "-n", "handover")
    team.cli_b.ok("workspace", "set", "-n", "handover")
    team.cli_a.ok("train", "deploy", "-s", "src", "-d", "data")
    wait_for(lambda: len(team.starts()) == 1, message="the train to start")
    job = train_job(team.cli_b)
    pid, runner = team.starts()[0]
    stopping = next(s for s in team.servers() if s.proc.pid == runner)
    staying = next(s for s in team.servers() if s is not stopping)
    cli = team.cli_a if staying is team.a else team.cli_b
    stopping.stop()  # SIGTERM: a graceful stop
    assert not process_alive(pid)
    wait_for(lambda: len(team.starts()) == 2, 60, "the rerun")
    assert team.starts()[1][1] == staying.proc.pid
    team.release.touch()
    wait_for(lambda: job_state(cli, job["id"]) == "JOB_SUCCESS", 120, "the rerun to finish")
    assert team.ends() == 1
    log = cli.ok("train", "logs", "-j", job["id"]).out
    assert "is stopping; another replica runs this job again" in log and "training: done" in log
