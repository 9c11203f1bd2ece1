"""Serving figures for a local kaos server on this machine (the pure-Python test model).

    python benchmarks/serve_bench.py [--requests 500] [--seconds 3]

Prints: serve_p50_ms, serve_p99_ms (one-row requests, one client, direct to the endpoint's
port) and route_p50_ms, route_p99_ms (the same through the kaos route); serve_overhead_p50_ms
(direct minus an in-process call of `predict`; target <= 3 ms); serve_rps_8_clients (direct);
swap_failed_requests (10 swaps under load through the route; must be 0); batching_rps_ratio
(requests per second with batching over without, 32 clients, a model with a 2 ms cost per
call); cold_start_s (deploy to first answer on a warm environment; target <= 2 s).
"""

from __future__ import annotations

import argparse
import http.client
import importlib.util
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))
from _common import figure

from tests.cli import Cli
from tests.conftest import KaosServer
from tests.fixtures.serving import write_serve_data, write_serve_source

ROW = json.dumps({"instances": [[1, 2]]}).encode()
HEADERS = {"content-type": "application/json"}


class Poster:
    """One keep-alive connection posting the one-row body: a client light enough that the
    figures measure the server (a general HTTP client adds milliseconds of its own here)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.path = parts.path
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)

    def post(self) -> int:
        self.conn.request("POST", self.path, body=ROW, headers=HEADERS)
        response = self.conn.getresponse()
        response.read()
        return response.status

    def close(self) -> None:
        self.conn.close()


def latencies_ms(urls: list[str], requests: int) -> list[list[float]]:
    """Sorted latencies per url, requests interleaved so a busy moment hits all alike."""
    posters = [Poster(url) for url in urls]
    for poster in posters * 20:  # warm the connections and the processes
        poster.post()
    out: list[list[float]] = [[] for _ in urls]
    for _ in range(requests):
        for poster, times in zip(posters, out, strict=True):
            start = time.perf_counter()
            assert poster.post() == 200
            times.append((time.perf_counter() - start) * 1000)
    for poster in posters:
        poster.close()
    return [sorted(times) for times in out]


def quantile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def in_process_predict_ms(source: Path, calls: int = 2000) -> float:
    """The floor: `predict` called in this process, as a notebook would."""
    code = source / "adder" / "model"
    spec = importlib.util.spec_from_file_location("bench_predict", code / "predict.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = {"scale": 3, "call_ms": 0}
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        module.predict(model, [[1, 2]])
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def throughput(url: str, clients: int, seconds: float) -> tuple[float, int]:
    """Requests per second from `clients` threads (each its own connection), and failures."""
    done = [0] * clients
    failed = [0] * clients
    stop = threading.Event()

    def run(i: int) -> None:
        poster = Poster(url)
        while not stop.is_set():
            try:
                ok = poster.post() == 200
            except (OSError, http.client.HTTPException):
                poster.close()
                poster, ok = Poster(url), False
            done[i] += ok
            failed[i] += not ok
        poster.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    return sum(done) / (time.perf_counter() - start), sum(failed)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kaos-serve-bench-") as tmp:
        root = Path(tmp)
        (root / "home").mkdir()
        server = KaosServer(root / "home")
        try:
            run(root, server, args.requests, args.seconds)
        finally:
            server.stop()


def run(root: Path, server: KaosServer, requests: int, seconds: float) -> None:
    cli = Cli(root / "client", root, server.url)
    cli.ok("workspace", "create", "-n", "bench")
    api = httpx.Client(base_url=server.url, timeout=180)
    models = []
    for rows in (3, 5):
        write_serve_data(root / "data", rows)
        write_serve_source(root / "src")
        cli.ok("train", "deploy", "-s", "src", "-d", "data", "--wait")
        models.append(cli.ok("train", "info", "-i", "0", "--json").json()["models"][0]["model_id"])
    write_serve_source(root / "slow", call_ms=2)
    cli.ok("train", "deploy", "-s", "slow", "--wait")
    slow = cli.ok("train", "info", "-i", "0", "--json").json()["models"][0]["model_id"]

    def deploy(name: str, model: str, **options: object) -> dict:
        answer = api.post(
            "/workspaces/bench/endpoints", json={"name": name, "model_id": model, **options}
        )
        answer.raise_for_status()
        return answer.json()

    # cold start: deploy to first answer, on an environment already built (median of 3)
    colds = []
    for i in range(3):
        start = time.perf_counter()
        deploy(f"cold{i}", models[0])
        httpx.post(
            f"{server.url}/serve/bench/cold{i}/invocations", content=ROW, headers=HEADERS
        ).raise_for_status()
        colds.append(time.perf_counter() - start)
        api.delete(f"/workspaces/bench/endpoints/cold{i}")

    endpoint = deploy("adder", models[0])
    direct = f"{endpoint['url']}/invocations"
    routed = f"{server.url}/serve/bench/adder/invocations"
    d, r = latencies_ms([direct, routed], requests)
    figure("serve_p50_ms", quantile(d, 0.5))
    figure("serve_p99_ms", quantile(d, 0.99))
    figure("route_p50_ms", quantile(r, 0.5))
    figure("route_p99_ms", quantile(r, 0.99))
    floor = in_process_predict_ms(root / "src")
    figure("serve_overhead_p50_ms", quantile(d, 0.5) - floor)
    rps, _ = throughput(direct, 8, seconds)
    figure("serve_rps_8_clients", rps)

    # 10 swaps (alternating models) while 4 clients keep sending through the route
    def swaps() -> None:
        for i in range(10):
            deploy("adder", models[(i + 1) % 2])

    figure("swap_failed_requests", _load_during(routed, threading.Thread(target=swaps)))

    plain = deploy("plain", slow)
    batched = deploy("batched", slow, max_batch_size=32, max_latency_ms=2)
    without, _ = throughput(f"{plain['url']}/invocations", 32, seconds)
    with_batching, _ = throughput(f"{batched['url']}/invocations", 32, seconds)
    figure("batching_rps_ratio", with_batching / without)
    figure("cold_start_s", statistics.median(colds))


def _load_during(url: str, work: threading.Thread, clients: int = 4) -> int:
    """Failures of `clients` looping requests while `work` runs."""
    failed = [0] * clients
    stop = threading.Event()

    def run(i: int) -> None:
        poster = Poster(url)
        while not stop.is_set():
            try:
                failed[i] += poster.post() != 200
            except (OSError, http.client.HTTPException):
                poster.close()
                poster, failed[i] = Poster(url), failed[i] + 1
        poster.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    work.start()
    work.join()
    stop.set()
    for t in threads:
        t.join()
    return sum(failed)


if __name__ == "__main__":
    main()
