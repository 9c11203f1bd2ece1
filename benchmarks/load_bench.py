"""Load and crash figures for a kaos server on this machine.

    python benchmarks/load_bench.py [--requests 50] [--rounds 20] [--crash-runs 100]
                                    [--lease 5] [--takeovers 3]

Prints: list_p50_ms, list_p99_ms (50 concurrent `train list` requests, repeated over rounds;
target p99 <= 200 ms), and crash_runs, crash_losses from the crash harness (SIGKILL of the
server at random points of upload, build and train, then restart and checks; target 0 losses).

With two replicas on one PostgreSQL catalog (started here with initdb/pg_ctl) and one S3 store
(moto): pg_list_p50_ms, pg_list_p99_ms (the same 50 concurrent lists, spread over both;
target p99 <= 200 ms), and takeover_s, takeover_lease_ratio (SIGKILL of the replica running a
train until the train runs again on the other; median of --takeovers; target <= 2x the lease).
"""

from __future__ import annotations

import argparse
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))
from _common import figure, free_port, local_s3

from tests.cli import Cli
from tests.conftest import KaosServer
from tests.crash_harness import run_crashes
from tests.fixtures.bundles import write_data, write_source
from tests.postgres import PostgresServer, postgres_bin
from tests.test_replicas import COUNTER


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
        return concurrent_lists([server.url], requests, rounds)
    finally:
        server.stop()


def concurrent_lists(urls: list[str], requests: int, rounds: int) -> list[float]:
    """Milliseconds of each of `requests` concurrent job listings, spread over `urls`."""
    latencies: list[float] = []
    with httpx.Client(limits=httpx.Limits(max_connections=requests)) as http:

        def one(i: int) -> float:
            start = time.perf_counter()
            http.get(f"{urls[i % len(urls)]}/workspaces/load/jobs").raise_for_status()
            return (time.perf_counter() - start) * 1000

        with ThreadPoolExecutor(max_workers=requests) as pool:
            for _ in range(rounds):
                latencies += list(pool.map(one, range(requests)))
    return latencies


@contextmanager
def team(root: Path, lease: float) -> Iterator[tuple[Callable[[str], KaosServer], Path, Path]]:
    """Replicas on a fresh PostgreSQL catalog and a moto S3 store (a function starting one by
    name, again after a kill); a counting train script (see tests/test_replicas.py) in
    root/src, held until root/release exists."""
    bin_dir = postgres_bin()
    if bin_dir is None:
        raise SystemExit("PostgreSQL is not installed (Debian package postgresql)")
    runs, release = root / "runs.txt", root / "release"
    model = root / "src" / "counter" / "model"
    model.mkdir(parents=True)
    (model.parent / "Dockerfile").write_text("FROM scratch\n")
    (model / "train").write_text(COUNTER.format(runs=str(runs), release=str(release)))
    (model / "train").chmod(0o755)
    (root / "data" / "rows").mkdir(parents=True)
    (root / "data" / "rows" / "a.csv").write_text("1\n")
    postgres = PostgresServer(bin_dir, free_port())
    started: list[KaosServer] = []
    try:
        with local_s3() as s3:
            import boto3

            boto3.client("s3", endpoint_url=s3).create_bucket(Bucket="team")
            env = {
                "KAOS_CATALOG": postgres.new_database(),
                "KAOS_LEASE_S": str(lease),
                "KAOS_HEARTBEAT_S": str(min(1.0, lease / 4)),
            }
            args = ["--store", "s3://team/kaos", "--s3-endpoint-url", s3, "--no-sandbox"]

            def replica(name: str) -> KaosServer:
                (root / name).mkdir(exist_ok=True)
                started.append(KaosServer(root / name, args, env))
                return started[-1]

            yield replica, runs, release
    finally:
        for server in started:
            if server.proc.poll() is None:
                server.stop()
        postgres.stop()


def starts(runs: Path) -> list[tuple[int, int]]:
    """(pid, parent pid) of every run of the counting script."""
    lines = runs.read_text().splitlines() if runs.exists() else []
    return [(int(f[1]), int(f[2])) for f in (line.split() for line in lines) if f[0] == "start"]


def wait_until(check: Callable[[], bool], timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while not check():
        if time.time() > deadline:
            raise SystemExit("timed out")
        time.sleep(0.02)


def team_figures(root: Path, requests: int, rounds: int, lease: float, takeovers: int) -> None:
    with team(root, lease) as (replica, runs, release):
        servers = {"a": replica("a"), "b": replica("b")}
        cli = Cli(root / "client", root, servers["a"].url)
        cli.ok("workspace", "create", "-n", "load")
        release.touch()
        cli.ok("train", "deploy", "-s", "src", "-d", "data", "--wait")
        for _ in range(4):  # a few jobs, so the list has something to render
            cli.ok("train", "deploy", "--force", "--wait")
        urls = [s.url for s in servers.values()]
        latencies = sorted(concurrent_lists(urls, requests, rounds))
        figure("pg_list_p50_ms", statistics.median(latencies), "ms")
        figure("pg_list_p99_ms", latencies[int(len(latencies) * 0.99) - 1], "ms")
        took = []
        for _ in range(takeovers):
            release.unlink()
            before = len(starts(runs))
            cli.ok("train", "deploy", "--force")
            wait_until(lambda: len(starts(runs)) == before + 1)  # noqa: B023
            runner = starts(runs)[-1][1]
            name = next(n for n, s in servers.items() if s.proc.pid == runner)
            servers[name].proc.send_signal(signal.SIGKILL)
            killed = time.perf_counter()
            servers[name].proc.wait()
            wait_until(lambda: len(starts(runs)) == before + 2)  # noqa: B023
            took.append(time.perf_counter() - killed)
            release.touch()
            other = next(s for n, s in servers.items() if n != name)
            cli = Cli(root / "client", root, other.url)
            wait_until(lambda: not active_jobs(cli))  # noqa: B023
            servers[name] = replica(name)  # back, for the next round
        figure("takeover_s", statistics.median(took), "s")
        figure("takeover_lease_ratio", statistics.median(took) / lease)


def active_jobs(cli: Cli) -> list[str]:
    listing = cli.ok("train", "list", "--json").json()
    return [
        j["id"]
        for j in listing["building"] + listing["training"]
        if j["state"] in ("JOB_STARTING", "JOB_RUNNING")
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--crash-runs", type=int, default=100)
    parser.add_argument("--lease", type=float, default=5.0, help="replicas' KAOS_LEASE_S")
    parser.add_argument("--takeovers", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kaos-load-") as tmp:
        team_figures(Path(tmp) / "team", args.requests, args.rounds, args.lease, args.takeovers)
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
