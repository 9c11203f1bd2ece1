"""Crash safety: 20 SIGKILLs of the server at random points of upload, build and train; and a
train script a killed server left running is ended by the next server before it serves."""

import signal
import time

import pytest

from kaos.pipeline.leases import process_alive
from kaos.store.hashing import hash_bytes
from tests.cli import Cli
from tests.conftest import KaosServer
from tests.crash_harness import run_crashes
from tests.docker_env import BASE_IMAGE, requires_docker

pytestmark = pytest.mark.slow

SLEEPER = """#!/usr/bin/env python3
import os, time
open({pgid!r}, "w").write(str(os.getpgid(0)))
while True:
    with open({ticks!r}, "a") as f:
        f.write("tick\\n")
    time.sleep(0.1)
"""


@pytest.mark.timeout(1800)  # 20 restarts, builds and trains: ~35 s each on a busy 2-core box
def test_twenty_random_kills_lose_nothing(tmp_path):
    report = run_crashes(tmp_path, runs=20, seed=20261127)
    assert report.runs == 20
    assert report.losses == []


def test_a_restarted_server_ends_the_train_script_the_killed_one_left_running(tmp_path):
    """Without the sandbox nothing ties the script to the server: the restart must end it."""
    pgid_file, ticks = tmp_path / "pgid", tmp_path / "ticks"
    model = tmp_path / "src" / "sleeper" / "model"
    model.mkdir(parents=True)
    (model.parent / "Dockerfile").write_text("FROM scratch\n")
    (model / "train").write_text(SLEEPER.format(pgid=str(pgid_file), ticks=str(ticks)))
    (model / "train").chmod(0o755)
    (tmp_path / "data" / "rows").mkdir(parents=True)
    (tmp_path / "data" / "rows" / "a.csv").write_text("1\n")
    home = tmp_path / "home"
    home.mkdir()
    server = KaosServer(home, ["--no-sandbox"])
    cli = Cli(tmp_path / "client", tmp_path, server.url)
    cli.ok("workspace", "create", "-n", "crash")
    cli.ok("train", "deploy", "-s", "src", "-d", "data")
    deadline = time.time() + 300
    while not (pgid_file.exists() and pgid_file.read_text()) and time.time() < deadline:
        time.sleep(0.2)
    pgid = int(pgid_file.read_text())
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait()
    server.log.close()
    time.sleep(0.5)
    assert process_alive(pgid), "the script should outlive the killed server until a restart"

    server = KaosServer(home, ["--no-sandbox"])
    try:
        deadline = time.time() + 5
        while process_alive(pgid) and time.time() < deadline:
            time.sleep(0.1)
        assert not process_alive(pgid)
        written = ticks.stat().st_size
        time.sleep(1)
        assert ticks.stat().st_size == written
        cli = Cli(tmp_path / "client", tmp_path, server.url)
        job = cli.ok("train", "info", "-i", "0", "--json").json()
        assert job["job"]["state"] == "JOB_FAILURE" and "server stopped" in job["job"]["reason"]
    finally:
        server.stop()


@requires_docker
def test_a_restarted_docker_server_removes_the_container_the_killed_one_left_running(tmp_path):
    import docker

    model = tmp_path / "src" / "sleeper" / "model"
    model.mkdir(parents=True)
    (model.parent / "Dockerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n")
    (model / "train").write_text("#!/usr/bin/env python3\nimport time\ntime.sleep(600)\n")
    (model / "train").chmod(0o755)
    (tmp_path / "data" / "rows").mkdir(parents=True)
    (tmp_path / "data" / "rows" / "a.csv").write_text("1\n")
    home = tmp_path / "home"
    home.mkdir()
    args = ["--executor", "docker", "--base-image", BASE_IMAGE]
    server = KaosServer(home, args)
    cli = Cli(tmp_path / "client", tmp_path, server.url)
    cli.ok("workspace", "create", "-n", "crash")
    cli.ok("train", "deploy", "-s", "src", "-d", "data")
    client = docker.from_env()
    mine = {"label": f"kaos.owner={hash_bytes(str(home.resolve()).encode())[:16]}"}
    deadline = time.time() + 300
    while not client.containers.list(filters=mine) and time.time() < deadline:
        time.sleep(0.5)
    (container,) = client.containers.list(filters=mine)
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait()
    server.log.close()
    container.reload()
    assert container.status == "running", "the container should outlive the killed server"

    server = KaosServer(home, args)
    try:
        assert client.containers.list(all=True, filters=mine) == []
    finally:
        server.stop()
