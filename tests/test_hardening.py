"""Hardening against what a train script may do, through real server processes and the CLI."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from kaos.executors.process import process_alive
from tests.cli import Cli
from tests.conftest import KaosServer
from tests.fixtures.bundles import write_script_source


def tiny_data(root: Path) -> Path:
    (root / "features").mkdir(parents=True, exist_ok=True)
    (root / "features" / "x.csv").write_text(f"{uuid.uuid4().hex}\n")
    return root


def deploy_script(cli: Cli, root: Path, script: str) -> None:
    src = write_script_source(root / f"src-{uuid.uuid4().hex[:6]}", script)
    cli.ok("workspace", "create", "-n", f"h-{uuid.uuid4().hex[:6]}")
    cli.ok("train", "deploy", "-s", str(src), "-d", str(tiny_data(root / "data")), "--wait")


@pytest.fixture
def cli(kaos_server, tmp_path) -> Cli:
    return Cli(tmp_path / "client-home", tmp_path, kaos_server.url)


def test_a_daemon_started_by_a_train_script_ends_with_its_job(cli, tmp_path):
    pidfile = tmp_path / "daemon.pid"
    deploy_script(
        cli,
        tmp_path,
        "#!/bin/sh\n"
        f"sleep 600 >/dev/null 2>&1 & echo $! > {pidfile}\n"
        "( while true; do echo tick; sleep 0.1; done ) &\n"
        'sleep 0.5; mkdir -p "$1/model" && echo ok > "$1/model/m"\n',
    )
    assert cli.ok("train", "list", "--json").json()["training"][0]["state"] == "JOB_SUCCESS"
    deadline = time.time() + 10
    while process_alive(int(pidfile.read_text())) and time.time() < deadline:
        time.sleep(0.1)
    assert not process_alive(int(pidfile.read_text())), "the daemon outlived its job"
    first = cli.ok("train", "logs", "-i", "0").out
    time.sleep(1)
    assert "tick" in first and cli.ok("train", "logs", "-i", "0").out == first


def test_what_a_train_script_leaves_next_to_its_folder_never_stops_the_server(tmp_path):
    home = tmp_path / "server-home"
    home.mkdir()
    server = KaosServer(home)
    try:
        cli = Cli(tmp_path / "client-home", tmp_path, server.url)
        deploy_script(
            cli,
            tmp_path,
            "#!/bin/sh\n"
            'echo escaped > "$1/../../escaped.txt"\n'
            'ln -s /nonexistent "$1/../../dangling"\n'
            'ln -s "$1/../../escaped.txt" "$1/../../to-a-file"\n'
            'mkdir -p "$1/model" && echo ok > "$1/model/m"\n',
        )
        assert (home / "jobs" / "escaped.txt").exists()
    finally:
        server.stop()
    server = KaosServer(home)  # raised NotADirectoryError at start-up before
    try:
        Cli(tmp_path / "client-home", tmp_path, server.url).ok("workspace", "list")
        assert not list((home / "jobs").iterdir())
    finally:
        server.stop()
