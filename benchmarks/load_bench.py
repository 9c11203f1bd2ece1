"""Load and crash figures for a kaos server on this machine.

    python benchmarks/load_bench.py [--requests 50] [--rounds 20] [--crash-runs 100]

Prints: list_p50_ms, list_p99_ms (50 concurrent `train list` requests, repeated over rounds;
target p99 <= 200 ms), and crash_runs, crash_losses from the crash harness (SIGKILL of the
server at random points of upload, build and train, then restart and checks; target 0 losses).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))
from _common import figure

from tests.cli import Cli
from tests.conftest import KaosServer
from tests.crash_harness import run_crashes
from tests.fixtures.bundles import write_data, write_source


def list_latencies(root: Path, requests: int, rounds: int) -> list[float]:
    (root / "home").mkdir(parents=True)
    server = KaosServer(root / "home")
    try:
        cli = Cli(root / "client", root, server.url)
        cli.ok("workspace", "create", "-n", "load")
        write_source(root / "src", kernel="linear")
        for i in range(5):  # a few jobs, so the list has something to render
            write_data(root / "data", train_rows=50 + i)
            cli.ok("train", "deploy", "-s", "src", "-d", "data", "--wait")
        url = f"{server.url}/workspaces/load/jobs"
        latencies: list[float] = []
        with httpx.Client(limits=httpx.Limits(max_connections=requests)) as http:

            def one(_: int) -> float:
                start = time.perf_counter()
                http.get(url).raise_for_status()
                return (time.perf_counter() - start) * 1000

            with ThreadPoolExecutor(max_workers=requests) as pool:
                for _ in range(rounds):
                    latencies += list(pool.map(one, range(requests)))
        return latencies
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--crash-runs", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kaos-load-") as tmp:
        latencies = sorted(list_latencies(Path(tmp) / "load", args.requests, args.rounds))
        figure("list_p50_ms", statistics.median(latencies), "ms")
        figure("list_p99_ms", latencies[int(len(latencies) * 0.99) - 1], "ms")
        if args.crash_runs:
            report = run_crashes(Path(tmp) / "crash", args.crash_runs, seed=int(time.time()))
            figure("crash_runs", report.runs)
            figure("crash_losses", len(report.losses))
            for loss in report.losses:
                print(f"  {loss}")


if __name__ == "__main__":
    main()
