"""Every train contained, and kaos 1.0 bundles running unchanged: the real CLI against a real
server on each executor (local, docker, ray), skipped only where an executor cannot run."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import pytest

from tests.cli import Cli
from tests.conftest import KaosServer
from tests.docker_env import BASE_IMAGE, docker_unavailable
from tests.processes import sleepers, unique_nap

pytestmark = pytest.mark.slow

ESCAPE = r'''#!/usr/bin/env python3
"""Tries to leave its sandbox; what worked is its metrics. Standard library only."""
import json, os, socket, subprocess, sys

out = sys.argv[1]
target = json.load(open("target.json"))


def attempt(action):
    try:
        action()
        return "ok"
    except OSError:
        return "denied"


def write_home():
    with open(os.path.join(target["home"], "escaped.txt"), "w") as f:
        f.write("escaped")


results = {
    "write_home": attempt(write_home),
    "read_other_job": attempt(lambda: open(target["other_job"]).read()),
    "write_root": attempt(lambda: open("/escaped.txt", "w").write("x")),
    "socket": attempt(lambda: socket.create_connection(("127.0.0.1", target["port"]), 3).close()),
}
# a daemon in its own session, meant to outlive the script
subprocess.Popen(["sleep", target["nap"]], start_new_session=True)
print("attempts:", results, flush=True)
os.makedirs(os.path.join(out, "metrics"))
with open(os.path.join(out, "metrics", "metrics.json"), "w") as f:
    json.dump(results, f)
'''


PFS_READER = """#!/usr/bin/env python3
import os
print(os.listdir("/pfs/data"))
"""


def executor_args(kind: str) -> list[str]:
    if kind == "docker":
        reason = docker_unavailable()
        if reason:
            pytest.skip(reason)
        return ["--executor", "docker", "--base-image", BASE_IMAGE]
    if kind == "ray":
        pytest.importorskip("ray", reason="Ray is not installed (pip install 'kaos[ray]')")
        return ["--executor", "ray"]
    return []


@pytest.fixture(scope="module", params=["local", "docker", "ray"])
def server(request, tmp_path_factory):
    """One server per executor for the module's tests (a Ray or docker start-up is costly)."""
    args = executor_args(request.param)
    root = tmp_path_factory.mktemp(f"sandbox-{request.param}")
    home = root / "home"
    home.mkdir()
    node_home = os.environ.get("KAOS_RAY_NODE_HOME")
    os.environ["KAOS_RAY_NODE_HOME"] = str(root / "ray-node")
    try:
        started = KaosServer(home, args)
    finally:
        if node_home is None:
            os.environ.pop("KAOS_RAY_NODE_HOME", None)
        else:
            os.environ["KAOS_RAY_NODE_HOME"] = node_home
    started.kind = request.param  # type: ignore[attr-defined]
    yield started
    started.stop()


def escape_source(root: Path, server: KaosServer, other_job: Path, nap: str) -> Path:
    """A kaos-1.0-layout source whose train tries to escape towards this server."""
    model = root / "escape" / "model"
    model.mkdir(parents=True)
    (root / "escape" / "Dockerfile").write_text("ARG BASE_IMAGE=kaos-python\nFROM ${BASE_IMAGE}\n")
    (model / "requirements.txt").write_text("")
    target = {"home": str(server.home), "other_job": str(other_job), "port": server.port}
    (model / "target.json").write_text(json.dumps({**target, "nap": nap}))
    (model / "train").write_text(ESCAPE)
    os.chmod(model / "train", 0o755)
    return root


def one_model(cli: Cli, index: int = 0) -> dict:
    info = cli.ok("train", "info", "-i", str(index), "--json").json()
    (model,) = info["models"]
    return model


def test_a_train_script_cannot_escape_its_sandbox(server, tmp_path):
    other_job = server.home / "jobs" / "planted-other-job" / "output" / "secret.txt"
    other_job.parent.mkdir(parents=True)
    other_job.write_text("another job's output")
    nap = unique_nap()  # names this test's daemon
    cli = Cli(tmp_path / "client-home", tmp_path, server.url)
    cli.ok("workspace", "create", "-n", "escape")
    src = escape_source(tmp_path / "src", server, other_job, nap)
    data = tmp_path / "data" / "features"
    data.mkdir(parents=True)
    (data / "rows.csv").write_text("a,b\n1,2\n")

    cli.ok("train", "deploy", "-s", str(src), "-d", str(tmp_path / "data"), "--wait")
    model = one_model(cli)
    assert model["state"] == "JOB_SUCCESS", cli.ok("train", "logs", "-i", "0").out
    assert model["metrics"] == {
        "write_home": "denied",
        "read_other_job": "denied",
        "write_root": "denied",
        "socket": "denied",
    }
    assert not (server.home / "escaped.txt").exists()
    deadline = time.time() + 15
    while sleepers(nap) and time.time() < deadline:
        time.sleep(0.2)
    assert not sleepers(nap), "the setsid daemon outlived its job"

    # --network lets the same train reach the server, and provenance records it
    cli.ok("train", "deploy", "--network", "--wait")
    model = one_model(cli)
    assert model["state"] == "JOB_SUCCESS"
    assert model["metrics"]["socket"] == "ok"
    assert model["metrics"]["write_home"] == "denied"
    provenance = cli.ok("train", "provenance", "-m", model["model_id"], "--json").json()
    assert provenance["network"] is True
    assert (
        "Network allowed (--network)" in cli.ok("train", "provenance", "-m", model["model_id"]).out
    )
    while sleepers(nap) and time.time() < deadline + 15:
        time.sleep(0.2)
    assert not sleepers(nap)


def test_a_kaos_1_bundle_reading_only_pfs_trains_and_grids(server, tmp_path):
    cli = Cli(tmp_path / "client-home", tmp_path, server.url)
    cli.ok("workspace", "create", "-n", "diabetes")
    cli.ok("template", "get", "--name", "diabetes")
    template = tmp_path / "templates" / "diabetes"
    grid = tmp_path / "grid.json"
    grid.write_text(json.dumps({"alpha": [1.0, 10.0], "degree": [2]}))
    cli.ok(
        "train", "deploy", "-s", str(template / "model-train"), "-d", str(template / "data"),
        "-h", str(grid), "-p", "2", "--wait",
    )  # fmt: skip
    info = cli.ok("train", "info", "-i", "0", "-s", "R2_vld", "--json").json()
    models = info["models"]
    assert [m["state"] for m in models] == ["JOB_SUCCESS", "JOB_SUCCESS"]
    assert sorted(m["params"]["alpha"] for m in models) == [1.0, 10.0]
    for m in models:
        assert 0.3 < m["metrics"]["R2_vld"] < 0.6 and m["metrics"]["RMSE_test"] > 0
    logs = cli.ok("train", "logs", "-i", "0").out
    assert "Setting alpha=10.0" in logs and "Training on 200 patients" in logs


def test_the_diabetes_walkthrough_has_the_seeds_incremental_shape(tmp_path, kaos_server):
    """deploy; change a hyperparameter (build + train); more data (train only); same (nothing)."""
    cli = Cli(tmp_path / "client-home", tmp_path, kaos_server.url)
    cli.ok("workspace", "create", "-n", "diabetes-walk")
    assert {"diabetes", "mnist"} <= set(cli.ok("template", "list", "--json").json())
    cli.ok("template", "get", "--name", "diabetes")
    template = tmp_path / "templates" / "diabetes"
    source, data = template / "model-train", template / "data"

    def counts() -> tuple[int, int]:
        jobs = cli.ok("train", "list", "--json").json()
        return len(jobs["building"]), len(jobs["training"])

    cli.ok("train", "deploy", "-s", str(source), "-d", str(data), "--wait")
    first = one_model(cli)
    assert counts() == (1, 1)

    params = source / "diabetes" / "model" / "params.json"
    params.write_text(params.read_text().replace('"alpha": 1.0', '"alpha": 10.0'))
    cli.ok("train", "deploy", "-s", str(source), "--wait")
    stronger = one_model(cli)
    assert counts() == (2, 2)
    assert stronger["metrics"]["R2_test"] > first["metrics"]["R2_test"]

    shutil.copy(template / "more-data" / "training-extra.csv", data / "features" / "training")
    cli.ok("train", "deploy", "-d", str(data), "--wait")
    more = one_model(cli)
    assert counts() == (2, 3)
    assert more["metrics"]["R2_test"] > stronger["metrics"]["R2_test"]
    assert "Training on 302 patients" in cli.ok("train", "logs", "-i", "0").out

    again = cli.ok("train", "deploy", "-s", str(source), "-d", str(data)).out
    assert "already trained" in again and counts() == (2, 3)


def test_where_bubblewrap_cannot_run_trains_are_refused_until_no_sandbox(tmp_path, monkeypatch):
    # a PATH without bwrap (this Python's folder, and `sleep` for the daemon): the server's
    # probe cannot find it
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "sleep").symlink_to(shutil.which("sleep") or "/usr/bin/sleep")
    monkeypatch.setenv("PATH", f"{os.path.dirname(sys.executable)}{os.pathsep}{tools}")
    nap = unique_nap()
    data = tmp_path / "data" / "features"
    data.mkdir(parents=True)
    (data / "rows.csv").write_text("a\n1\n")
    for flags in ([], ["--no-sandbox"]):
        home = tmp_path / f"home{len(flags)}"
        home.mkdir()
        server = KaosServer(home, flags)
        try:
            cli = Cli(tmp_path / f"client{len(flags)}", tmp_path, server.url)
            cli.ok("workspace", "create", "-n", "nobwrap")
            src = escape_source(tmp_path / f"src{len(flags)}", server, home / "none", nap)
            cli.run("train", "deploy", "-s", str(src), "-d", str(tmp_path / "data"), "--wait")
            model = one_model(cli)
            if flags:  # a kaos 1.0 script reading /pfs is told that /pfs needs the sandbox
                pfs = Path(escape_source(tmp_path / "pfs", server, home / "none", nap))
                (pfs / "escape" / "model" / "train").write_text(PFS_READER)
                cli.run("train", "deploy", "-s", str(pfs), "--wait")
                pfs_reason = one_model(cli)["reason"]
        finally:
            server.stop()
        told = (home.parent / f"server-{server.port}.log").read_text()
        if not flags:
            assert "bubblewrap cannot run here (bwrap is not installed" in told
            assert model["state"] == "JOB_FAILURE"
            assert "bubblewrap cannot run here" in model["reason"]
            assert not (home / "escaped.txt").exists()
        else:  # the operator's choice: the script runs with the server's rights, and can escape
            assert "sandbox off (--no-sandbox)" in told
            assert model["state"] == "JOB_SUCCESS", model["reason"]
            assert model["metrics"]["write_home"] == "ok" and (home / "escaped.txt").exists()
            assert "it reads /pfs, which only the sandbox shows" in pfs_reason, pfs_reason
    for pid in sleepers(nap):  # nothing contained the unsandboxed daemon: end it ourselves
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
