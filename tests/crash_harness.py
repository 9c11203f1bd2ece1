"""Kill a kaos server with SIGKILL at random points of upload, build and train; restart it;
check that nothing was lost. Used by tests/test_crash.py (20 runs) and
benchmarks/load_bench.py (100+ runs)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from kaos.pipeline.leases import process_alive
from kaos.store import scan_folder
from tests.cli import Cli
from tests.conftest import KaosServer

TRAIN = """#!/usr/bin/env python3
import json, os, sys, time
out = sys.argv[1]
time.sleep(0.4)
rows = open(os.path.join(os.environ["KAOS_DATA_DIR"], "features", "rows.csv")).read().count("\\n")
os.makedirs(os.path.join(out, "model"), exist_ok=True)
os.makedirs(os.path.join(out, "metrics"), exist_ok=True)
open(os.path.join(out, "model", "weights.txt"), "w").write(str(rows * 7))
json.dump({"rows": rows}, open(os.path.join(out, "metrics", "metrics.json"), "w"))
"""


@dataclass
class CrashReport:
    runs: int = 0
    losses: list[str] = field(default_factory=list)


def write_source(root: Path, version: int) -> Path:
    model = root / "crash" / "model"
    model.mkdir(parents=True, exist_ok=True)
    (root / "crash" / "Dockerfile").write_text("FROM scratch\n")
    (root / "crash" / "requirements.txt").write_text(f"six\n# version {version}\n")
    (model / "train").write_text(TRAIN + f"# version {version}\n")
    os.chmod(model / "train", 0o755)
    return root


def write_data(root: Path, rng: random.Random, big: bool) -> Path:
    folder = root / "features"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "rows.csv").write_text(
        "".join(f"{rng.random()}\n" for _ in range(rng.randrange(5, 50)))
    )
    if big:  # several packs, so an upload can die between them
        (folder / "blob.bin").write_bytes(rng.randbytes(40 << 20))
    elif (folder / "blob.bin").exists():
        (folder / "blob.bin").unlink()
    return root


def run_crashes(root: Path, runs: int, seed: int = 0) -> CrashReport:
    rng = random.Random(seed)
    home = root / "server-home"
    home.mkdir(parents=True, exist_ok=True)
    report = CrashReport()
    server = KaosServer(home)
    cli = Cli(root / "client-home", root, server.url)
    cli.ok("workspace", "create", "-n", "crash")
    version = 0
    try:
        for run in range(runs):
            phase = rng.choice(["upload", "build", "train"])
            version += phase == "build"
            src = write_source(root / "src", version)
            data = write_data(root / "data", rng, big=phase == "upload")
            args = ["train", "deploy", "-s", "src", "-d", "data", "--wait"]
            proc = subprocess.Popen(
                [sys.executable, "-m", "kaos", *args], cwd=root, env=cli.env,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            time.sleep(rng.uniform(0.05, 1.5))
            server.proc.send_signal(signal.SIGKILL)
            server.proc.wait()
            server.log.close()
            proc.wait(timeout=120)
            server = KaosServer(home)
            cli = Cli(root / "client-home", root, server.url)
            problems = [f"left running: {p}" for p in leftovers(home)]
            problems += check(server, cli, src, data)
            report.runs += 1
            report.losses += [f"run {run} ({phase}): {p}" for p in problems]
    finally:
        server.stop()
    return report


def leftovers(home: Path, grace: float = 5.0) -> list[str]:
    """Processes of the killed server's jobs still alive once the new server serves: anything
    working under its home (a train's folder, an environment being made)."""
    deadline = time.time() + grace
    while True:
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or not process_alive(int(entry.name)):
                continue
            try:
                cwd = os.readlink(entry / "cwd")
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if cwd.startswith(str(home)) or str(home) in cmdline:
                found.append(f"{entry.name} {cmdline[:120]}")
        if not found or time.time() > deadline:
            return found
        time.sleep(0.2)


def check(server: KaosServer, cli: Cli, src: Path, data: Path) -> list[str]:
    problems = []
    verify = httpx.post(server.url + "/store/verify", timeout=600).json()
    if not verify["ok"]:
        problems.append(f"verify: {json.dumps(verify)[:300]}")
    listing = cli.ok("train", "list", "--json").json()
    running = [
        j["id"]
        for j in listing["building"] + listing["training"]
        if j["state"] in ("JOB_STARTING", "JOB_RUNNING")
    ]
    if running:
        problems.append(f"jobs left running: {running}")
    result = cli.run("train", "deploy", "-s", "src", "-d", "data", "--wait", "--json")
    if result.code != 0:
        problems.append(f"redeploy failed: {result.err.strip()[:300]}")
        return problems
    inputs = result.json()["inputs"]
    if (
        inputs["source"] != scan_folder(src).tree.digest
        or inputs["data"] != scan_folder(data).tree.digest
    ):
        problems.append("redeploy gave other bundle ids")
    latest = cli.ok("train", "info", "-i", "0", "--json").json()
    if latest["job"]["state"] != "JOB_SUCCESS":
        problems.append(f"train after restart: {latest['job']['state']} {latest['job']['reason']}")
    return problems


if __name__ == "__main__":  # python -m tests.crash_harness RUNS
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        outcome = run_crashes(
            Path(tmp), int(sys.argv[1]) if len(sys.argv) > 1 else 5, seed=uuid.uuid4().int
        )
        print(outcome)
