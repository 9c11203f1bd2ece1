"""The training workflow through the real CLI and server: grids, automatic retraining, watch,
remote data manifests, getting runs back, provenance, logs and kills."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from kaos.store import scan_folder
from tests.cli import Cli
from tests.fixtures.bundles import write_data, write_source

pytestmark = pytest.mark.slow


@pytest.fixture
def cli(kaos_server, tmp_path) -> Cli:
    cli = Cli(tmp_path / "client-home", tmp_path, kaos_server.url)
    cli.ok("workspace", "create", "-n", f"wf-{uuid.uuid4().hex[:8]}")
    return cli


def jobs(cli: Cli) -> dict:
    return cli.ok("train", "list", "--json").json()


def max_overlap(models: list[dict]) -> int:
    events = sorted([(m["started"], 1) for m in models] + [(m["finished"], -1) for m in models])
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    return peak


def test_a_grid_trains_every_combination_at_most_p_at_once(cli, tmp_path):
    write_source(tmp_path / "src", kernel="rbf", tag=uuid.uuid4().hex)
    write_data(tmp_path / "data", train_rows=300)
    grid = {"C": [0.1, 1.0, 10.0, 100.0], "gamma": [0.0001, 0.001, 0.01]}
    (tmp_path / "grid.json").write_text(json.dumps(grid))
    out = cli.ok(
        "train", "deploy", "-s", "src", "-d", "data", "-h", "grid.json", "-p", "2", "--wait"
    ).out
    assert "CURRENT HYPERPARAMETERS" in out and "|  11 |" in out
    info = cli.ok(
        "train", "info", "-i", "0", "-s", "accuracy_test", "--page-size", "5", "--json"
    ).json()
    assert info["page_count"] == 3 and len(info["models"]) == 5
    everything = cli.ok("train", "info", "-i", "0", "--json").json()["models"]
    assert len(everything) == 12 and all(m["state"] == "JOB_SUCCESS" for m in everything)
    assert max_overlap(everything) <= 2
    best = max(m["metrics"]["accuracy_test"] for m in everything)
    assert info["models"][0]["metrics"]["accuracy_test"] == best
    last_page = cli.ok(
        "train", "info", "-i", "0", "-s", "accuracy_test", "--page-size", "5", "-p", "2", "--json"
    )
    assert len(last_page.json()["models"]) == 2
    table = cli.ok("train", "info", "-i", "0", "-s", "accuracy_test", "--page-size", "5").out
    assert "Page count: 3" in table and "C: " in table and "gamma: " in table

    grid["C"].append(1000.0)  # one more value: only its 3 combinations train
    (tmp_path / "grid.json").write_text(json.dumps(grid))
    cli.ok("train", "deploy", "-h", "grid.json", "-p", "2", "--wait")
    newest = cli.ok("train", "info", "-i", "0", "--json").json()["models"]
    assert sorted(m["params"]["gamma"] for m in newest) == [0.0001, 0.001, 0.01]
    assert all(m["params"]["C"] == 1000.0 for m in newest)
    assert len(jobs(cli)["building"]) == 1


def test_a_source_change_rebuilds_then_retrains_on_current_data(cli, tmp_path):
    src = write_source(tmp_path / "src", kernel="linear", tag=uuid.uuid4().hex)
    write_data(tmp_path / "data", train_rows=200)
    cli.ok("train", "deploy", "-s", "src", "-d", "data", "--wait")
    write_source(src, kernel="poly", tag=uuid.uuid4().hex)
    cli.ok("train", "deploy", "-s", "src", "--wait")
    listing = jobs(cli)
    assert len(listing["building"]) == 2 and len(listing["training"]) == 2
    assert listing["training"][0]["data"] == listing["training"][1]["data"]


def test_watch_deploys_one_data_edit_as_one_train_and_exits_cleanly(cli, tmp_path):
    write_source(tmp_path / "src", kernel="linear", tag=uuid.uuid4().hex)
    data = write_data(tmp_path / "data", train_rows=150)
    cli.ok("train", "deploy", "-s", "src", "-d", "data", "--wait")
    before = jobs(cli)
    watch = ["train", "watch", "-s", "src", "-d", "data", "--settle-ms", "300"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "kaos", *watch],
        cwd=tmp_path,
        env=cli.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    head = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # the first round (identical inputs) ends before any edit
            head.append(line)
            if line.startswith("Watching "):
                break
        csv = data / "features" / "training" / "train.csv"
        csv.write_text(csv.read_text() + "1," + ",".join(["3"] * 64) + "\n")
        time.sleep(0.1)
        csv.write_text(csv.read_text() + "2," + ",".join(["5"] * 64) + "\n")  # a quick second save
        (data / "features" / ".train.csv.swp").write_text("editor noise")
        _wait_for(lambda: len(jobs(cli)["training"]) == len(before["training"]) + 1, 120)
        _wait_for(lambda: jobs(cli)["training"][0]["state"] == "JOB_SUCCESS", 120)
        time.sleep(2)
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
        out = "".join(head) + out
    after = jobs(cli)
    assert len(after["training"]) == len(before["training"]) + 1, out
    assert len(after["building"]) == len(before["building"])
    assert proc.returncode == 0, out
    assert "Deployed data /features:" in out and "Stopped watching" in out
    assert "Traceback" not in out


class _Files:
    """A static HTTP server on 127.0.0.1 for manifest tests."""

    def __init__(self, root: Path) -> None:
        handler = partial(_QuietHandler, directory=str(root))
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def test_a_manifest_trains_once_per_remote_change(cli, tmp_path):
    served = write_data(tmp_path / "served", train_rows=200)
    files = _Files(served)
    write_source(tmp_path / "src", kernel="linear", tag=uuid.uuid4().hex)
    lines = [
        {"url": f"{files.url}/features/training/train.csv", "path": "features/training/train.csv"},
        {"url": f"{files.url}/features/test/test.csv", "path": "features/test/test.csv"},
    ]
    (tmp_path / "data.mf").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    first = cli.ok("train", "deploy", "-s", "src", "-m", "data.mf", "--wait")
    assert (
        "Submitting data manifest: data.mf" in first.out
        and " ✔ Setting data bundle: /features:" in first.out
    )
    trains = len(jobs(cli)["training"])
    again = cli.ok("train", "deploy", "-m", "data.mf", "--json").json()
    assert again["train_job"] is None and again["reused"]
    write_data(served, train_rows=260)
    cli.ok("train", "deploy", "-m", "data.mf", "--wait")
    assert len(jobs(cli)["training"]) == trains + 1

    inputs = cli.ok("workspace", "info", "--json").json()["inputs"]
    lines.append({"url": f"{files.url}/missing.csv", "path": "features/extra.csv"})
    (tmp_path / "bad.mf").write_text("\n".join(json.dumps(x) for x in lines))
    failed = cli.fails("train", "deploy", "-m", "bad.mf")
    assert "manifest line 3" in failed.err and "404" in failed.err
    (tmp_path / "escape.mf").write_text(json.dumps({"url": files.url, "path": "../../etc/x"}))
    assert "manifest line 1" in cli.fails("train", "deploy", "-m", "escape.mf").err
    (tmp_path / "junk.mf").write_text('{"url": 1}\nnot json\n')
    assert "manifest line 1" in cli.fails("train", "deploy", "-m", "junk.mf").err
    assert cli.ok("workspace", "info", "--json").json()["inputs"] == inputs
    assert len(jobs(cli)["training"]) == trains + 1


def test_get_then_redeploy_gives_the_same_ids_and_provenance_tells_the_lineage(cli, tmp_path):
    src = write_source(tmp_path / "src", kernel="linear", tag=uuid.uuid4().hex)
    os.chmod(src / "digits" / "params.json", 0o600)
    write_data(tmp_path / "data", train_rows=120)
    cli.ok("train", "deploy", "-s", "src", "-d", "data", "--wait")
    info = cli.ok("train", "info", "-i", "0", "--json").json()
    job, (model,) = info["job"], info["models"]
    cli.ok("train", "get", "-j", job["id"][:10], "-o", "got")
    root = tmp_path / "got" / job["workspace"] / f"train-{job['id']}"
    assert scan_folder(root / "model-train").tree == scan_folder(src).tree
    again = cli.ok(
        "train", "deploy", "-s", str(root / "model-train"), "-d", str(root / "data"), "--json"
    ).json()
    assert again["inputs"]["source"] == job["source"] and again["inputs"]["data"] == job["data"]
    assert again["build_job"] is None and again["reused"] == [model["model_id"]]

    lineage = cli.ok("train", "provenance", "-m", model["model_id"][:9]).out
    assert f"Model {model['model_id']}" in lineage
    assert job["source"] in lineage and job["data"] in lineage and job["image"] in lineage
    assert "Deployed by " in lineage
    logs = cli.ok("train", "logs", "-j", job["id"], "--follow").out
    assert "trained on 120 rows" in logs


def test_kill_works_for_a_build_job(cli, tmp_path):
    write_source(
        tmp_path / "src",
        kernel="linear",
        requirements=f"scikit-learn\nnumpy\nsix\n# {uuid.uuid4().hex}\n",
    )
    write_data(tmp_path / "data", train_rows=50)
    deployed = cli.ok("train", "deploy", "-s", "src", "-d", "data", "--json").json()
    build = deployed["build_job"]["id"]
    result = cli.run("train", "kill", "-j", build)
    state = cli.ok("train", "list", "--json").json()["building"][0]["state"]
    if result.code == 0:
        _wait_for(
            lambda: (
                cli.ok("train", "list", "--json").json()["building"][0]["state"] == "JOB_KILLED"
            ),
            60,
        )
    else:  # the environment was ready before the kill arrived
        assert "already finished" in result.err and state == "JOB_SUCCESS"
    unknown = cli.fails("train", "kill", "-j", "ffffffffffff")
    assert "no job matches" in unknown.err


def _wait_for(condition, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        time.sleep(0.3)
    raise AssertionError("condition not met in time")
