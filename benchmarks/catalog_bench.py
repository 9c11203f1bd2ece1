"""The catalog alone, on SQLite and on PostgreSQL (Debian's, started on a temp folder).

    python benchmarks/catalog_bench.py [--deploys 100] [--rounds 30]

Prints, for each database (sqlite_*, pg_*): deploy_ms (record a deploy and its train job with
10 models, one transaction each), jobs_list_ms (a workspace's jobs, newest first),
models_page_ms (a page of 50 of 1,000 models sorted by a metric, with the count),
columns_ms (the metric and parameter summary of 1,000 models), list_p99_ms (50 concurrent
job listings from 8 threads, p99 over rounds); then pg_over_sqlite_* ratios. The PostgreSQL
server runs with fsync off (as in the tests), so its write figures are a floor.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))
from _common import figure, free_port

from kaos.pipeline.browse import ModelQuery
from kaos.pipeline.catalog import SqlCatalog, open_catalog
from kaos.pipeline.inputs import TrainingInputs
from kaos.pipeline.records import Job, Model
from kaos.pipeline.states import JobKind, JobState
from tests.postgres import PostgresServer, postgres_bin


def deploy(catalog: SqlCatalog, n: int) -> None:
    source, data = f"{n:032x}", f"{n + 1:032x}"
    record = catalog.record_deploy("ws", "bench", TrainingInputs(source, data), {}, False)
    job_id = uuid.uuid4().hex
    models = [
        Model(job_id, i, uuid.uuid4().hex, {"C": i}, JobState.SUCCESS, f"m{n}-{i}", None,
              {"accuracy": (n * 10 + i) % 97 / 100}, float(n), float(n) + 1)
        for i in range(10)
    ]  # fmt: skip
    job = Job(job_id, JobKind.TRAIN, "ws", record.id, JobState.SUCCESS, float(n), source=source,
              data=data, author="bench")  # fmt: skip
    catalog.add_job(job, models)


def ms(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def measure(name: str, catalog: SqlCatalog, deploys: int, rounds: int) -> dict[str, float]:
    catalog.create_workspace("ws")
    figures = {"deploy_ms": statistics.median(ms(lambda n=n: deploy(catalog, n))
                                              for n in range(deploys))}  # fmt: skip
    page = ModelQuery.parse("-metrics.accuracy", 50, 0)
    figures["jobs_list_ms"] = statistics.median(
        ms(lambda: catalog.jobs("ws")) for _ in range(rounds)
    )
    figures["models_page_ms"] = statistics.median(
        ms(lambda: catalog.model_rows("ws", page)) for _ in range(rounds)
    )
    figures["columns_ms"] = statistics.median(
        ms(lambda: catalog.model_columns("ws")) for _ in range(rounds)
    )
    latencies: list[float] = []
    with ThreadPoolExecutor(8) as pool:
        for _ in range(rounds):
            latencies += pool.map(lambda _: ms(lambda: catalog.jobs("ws")), range(50))
    figures["list_p99_ms"] = statistics.quantiles(latencies, n=100)[98]
    for key, value in figures.items():
        figure(f"{name}_{key}", value)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deploys", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    bin_dir = postgres_bin()
    if bin_dir is None:
        sys.exit("PostgreSQL is not installed (Debian package postgresql)")
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = open_catalog(Path(tmp) / "catalog.db")
        lite = measure("sqlite", sqlite, args.deploys, args.rounds)
        sqlite.close()
    server = PostgresServer(bin_dir, free_port())
    try:
        pg_catalog = open_catalog(server.new_database())
        pg = measure("pg", pg_catalog, args.deploys, args.rounds)
        pg_catalog.close()
    finally:
        server.stop()
    for key in lite:
        figure(f"pg_over_sqlite_{key.removesuffix('_ms')}", pg[key] / lite[key])


if __name__ == "__main__":
    main()
