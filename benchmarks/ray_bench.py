"""Ray executor benchmark: a 12-combination grid on Ray vs the local executor, and per-task
overhead, on one machine (a local Ray instance).

    python benchmarks/ray_bench.py [--runs 3]

Prints (medians): grid12_local_s, grid12_ray_s, grid12_ray_vs_local, task_overhead_s (a model
whose train script does nothing, on Ray minus the same on the local executor).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))
from _common import figure, median_of

from kaos.executors.local import LocalExecutor
from kaos.executors.ray import RayExecutor, RaySettings
from kaos.pipeline.catalog import SqliteCatalog
from kaos.pipeline.engine import Pipeline
from kaos.pipeline.inputs import Grid, InputsChange
from kaos.pipeline.logs import JobLogs
from kaos.store import ContentStore, scan_folder
from kaos.store.backends import LocalBackend
from tests.fixtures.bundles import write_data, write_source

GRID = {"gamma": [0.0005, 0.001, 0.002, 0.004], "C": [0.5, 1.0, 2.0]}


def grid_time(
    work: Path, store: ContentStore, executor, src: Path, data: Path, grid: dict
) -> float:
    catalog = SqliteCatalog(work / f"catalog-{uuid.uuid4().hex[:6]}.db")
    catalog.create_workspace("b")
    pipeline = Pipeline(catalog, store, executor, JobLogs(work / "logs"), max_parallel=2)
    change = InputsChange(
        store.push(scan_folder(src)).tree.digest, store.push(scan_folder(data)).tree.digest
    )
    pipeline.deploy("b", change, "bench")
    pipeline.wait_all()  # the build and the default model, outside the timing
    start = time.perf_counter()
    pipeline.deploy("b", InputsChange(grid=Grid.from_json(grid)), "bench", parallelism=2)
    pipeline.wait_all()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kaos-ray-bench-"))
    try:
        store = ContentStore(LocalBackend(work / "store"), work / "home")
        local = LocalExecutor(store, work / "home")
        ray_ex = RayExecutor(
            store,
            work / "home",
            str(work / "store"),
            None,
            RaySettings(node_home=str(work / "node"), num_cpus=2),
        )
        data = write_data(work / "data", train_rows=1000)
        counter = iter(range(10**6))

        def run(executor, grid: dict) -> float:
            src = write_source(work / f"src-{next(counter)}", kernel="rbf", tag=uuid.uuid4().hex)
            return grid_time(work, store, executor, src, data, grid)

        run(ray_ex, {"C": [1.0]})  # warm the node's environment
        local_s = median_of(args.runs, lambda: run(local, GRID))
        ray_s = median_of(args.runs, lambda: run(ray_ex, GRID))
        figure("grid12_local_s", local_s, "s")
        figure("grid12_ray_s", ray_s, "s")
        figure("grid12_ray_vs_local", ray_s / local_s)
        noop = {"noop": [True]}  # the script raises nothing and trains on 10 rows: near-empty work
        tiny = write_data(work / "tiny", train_rows=20)

        def one(executor) -> float:
            src = write_source(work / f"src-{next(counter)}", kernel="linear", tag=uuid.uuid4().hex)
            return grid_time(work, store, executor, src, tiny, noop)

        figure(
            "task_overhead_s",
            median_of(args.runs, lambda: one(ray_ex)) - median_of(args.runs, lambda: one(local)),
            "s",
        )
        ray_ex.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
