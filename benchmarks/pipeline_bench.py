"""Pipeline benchmark: deploy-to-train latency, grid parallelism, environment build times.

    python benchmarks/pipeline_bench.py [--runs 3]

Prints (medians):
  env_build_uv_s           a new environment (scikit-learn, numpy) with uv, packages in its cache
  env_build_pip_s          the same environment with python -m venv + pip (the peer)
  env_build_uv_vs_pip      ratio of the two
  env_reuse_s              a code-only change: the environment is found by its lock
  lock_resolve_s           new requirements resolved into a lock (uv pip compile --generate-hashes,
                           uv's cache warm), stored, and its ref written
  lock_reuse_s             the same requirements again: the stored lock found by their hash
  env_from_lock_s          a new environment made from a stored lock (uv venv + uv pip sync from
                           uv's cache), as a fresh server or a Ray node does
  deploy_to_train_start_s  deploy of new data (environment built) until the train script runs
  grid12_p2_vs_sequential  wall time of a 12-combination grid at -p 2 divided by -p 1
  sandbox_overhead_s       a no-op train in the bubblewrap sandbox minus the same train without
                           (target <= 0.05 s)
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))
from _common import figure, median_of, timed

from kaos.executors.local import LocalExecutor
from kaos.pipeline.catalog import SqliteCatalog
from kaos.pipeline.engine import Pipeline
from kaos.pipeline.executor import BuildRequest, Cancel, TrainRequest
from kaos.pipeline.inputs import Grid, InputsChange
from kaos.pipeline.logs import JobLogs
from kaos.store import ContentStore, Tree, scan_folder
from kaos.store.backends import LocalBackend
from tests.fixtures.bundles import write_data, write_source

REQUIREMENTS = "scikit-learn\nnumpy\n"


def make_engine(root: Path, parallel: int) -> tuple[Pipeline, ContentStore]:
    store = ContentStore(LocalBackend(root / "store"), root / "home")
    catalog = SqliteCatalog(root / f"catalog-{time.monotonic_ns()}.db")
    pipeline = Pipeline(
        catalog, store, LocalExecutor(store, root / "home"), JobLogs(root / "logs"), parallel
    )
    catalog.create_workspace("bench")
    return pipeline, store


def bench_env_builds(work: Path, runs: int) -> None:
    store = ContentStore(LocalBackend(work / "envstore"), work / "envhome")
    executor = LocalExecutor(store, work / "envhome")
    log = JobLogs(work / "envlogs").writer("bench")
    counter = iter(range(10**6))

    def uv_build() -> float:
        src = write_source(
            work / f"envsrc-{next(counter)}", requirements=REQUIREMENTS + f"# {time.time_ns()}\n"
        )
        digest = store.push(scan_folder(src)).tree.digest
        return timed(lambda: executor.build(BuildRequest("bench", digest, "digits"), log, Cancel()))

    uv_build()  # warm uv's cache, as on any machine that built once
    uv = median_of(runs, uv_build)

    def pip_build() -> float:
        env = work / f"pipenv-{next(counter)}"
        req = work / "req.txt"
        req.write_text(REQUIREMENTS)

        def run() -> None:
            quiet = {"check": True, "capture_output": True}
            subprocess.run([sys.executable, "-m", "venv", str(env)], **quiet)
            subprocess.run([str(env / "bin/pip"), "install", "-q", "-r", str(req)], **quiet)

        seconds = timed(run)
        shutil.rmtree(env)
        return seconds

    pip_build()
    pip = median_of(runs, pip_build)

    def reuse() -> float:
        src = write_source(
            work / f"envsrc-{next(counter)}", kernel=f"k{time.time_ns()}", requirements=REQUIREMENTS
        )
        digest = store.push(scan_folder(src)).tree.digest
        return timed(lambda: executor.build(BuildRequest("bench", digest, "digits"), log, Cancel()))

    reuse()
    figure("env_build_uv_s", uv, "s")
    figure("env_build_pip_s", pip, "s")
    figure("env_build_uv_vs_pip", uv / pip)
    figure("env_reuse_s", median_of(runs, reuse), "s")


def bench_locks(work: Path, runs: int) -> None:
    store = ContentStore(LocalBackend(work / "lockstore"), work / "lockhome")
    executor = LocalExecutor(store, work / "lockhome")
    log = JobLogs(work / "locklogs").writer("bench")
    counter = iter(range(10**6))

    def source(requirements: str) -> Tree:
        src = write_source(work / f"locksrc-{next(counter)}", requirements=requirements)
        return store.get_tree(store.push(scan_folder(src)).tree.digest)

    def resolve() -> float:
        tree = source(REQUIREMENTS + f"# {time.time_ns()}\n")  # new requirements: a new lock
        return timed(lambda: executor.locker.lock(tree, "digits", log, Cancel()))

    resolve()
    figure("lock_resolve_s", median_of(runs, resolve), "s")
    fixed = source(REQUIREMENTS)
    lock = executor.locker.lock(fixed, "digits", log, Cancel())
    assert lock is not None
    reuse = median_of(
        runs, lambda: timed(lambda: executor.locker.lock(fixed, "digits", log, Cancel()))
    )
    figure("lock_reuse_s", reuse, "s")

    def from_lock() -> float:
        fresh = LocalExecutor(store, work / f"lockhome-{next(counter)}")  # no environments yet
        request = BuildRequest("bench", fixed.digest, "digits", lock=lock.digest)
        return timed(lambda: fresh.build(request, log, Cancel()))

    from_lock()
    figure("env_from_lock_s", median_of(runs, from_lock), "s")


def bench_deploy_latency(work: Path, runs: int) -> None:
    pipeline, store = make_engine(work / "latency", 2)
    src = write_source(work / "lat-src", kernel="linear")
    data = write_data(work / "lat-data", train_rows=100)
    pipeline.deploy(
        "bench",
        InputsChange(
            store.push(scan_folder(src)).tree.digest, store.push(scan_folder(data)).tree.digest
        ),
        "bench",
    )
    pipeline.wait_all()
    offsets = iter(range(1, 10**6))

    def once() -> float:
        write_data(data, train_rows=100, offset=next(offsets))
        start = time.time()
        digest = store.push(scan_folder(data)).tree.digest
        result = pipeline.deploy("bench", InputsChange(data=digest), "bench")
        job = result.train_job
        assert job is not None
        while (models := pipeline.catalog.models(job.id)) and models[0].started is None:
            time.sleep(0.002)
        started = models[0].started or 0
        pipeline.wait_all()
        return started - start

    once()
    figure("deploy_to_train_start_s", median_of(runs, once), "s")


def bench_grid(work: Path, runs: int) -> None:
    src = write_source(work / "grid-src", kernel="rbf")
    data = write_data(work / "grid-data", train_rows=1000)
    grid = Grid.from_json({"gamma": [0.0005, 0.001, 0.002, 0.004], "C": [0.5, 1.0, 2.0]})

    def run(parallel: int) -> float:
        pipeline, store = make_engine(work / f"grid-{parallel}", parallel)
        change = InputsChange(
            store.push(scan_folder(src)).tree.digest, store.push(scan_folder(data)).tree.digest
        )
        pipeline.deploy("bench", InputsChange(source=change.source, data=change.data), "bench")
        pipeline.wait_all()  # the build, and the one default model
        start = time.perf_counter()
        pipeline.deploy("bench", InputsChange(grid=grid), "bench", parallelism=parallel)
        pipeline.wait_all()
        return time.perf_counter() - start

    sequential = median_of(runs, lambda: run(1))
    parallel = median_of(runs, lambda: run(2))
    figure("grid12_sequential_s", sequential, "s")
    figure("grid12_p2_s", parallel, "s")
    figure("grid12_p2_vs_sequential", parallel / sequential)


NOOP_TRAIN = """#!/bin/sh
mkdir -p "$1/metrics" && echo '{"ok": 1}' > "$1/metrics/metrics.json"
"""


def bench_sandbox(work: Path, runs: int) -> None:
    """The same no-op train (a shell script) with and without the sandbox around it."""
    store = ContentStore(LocalBackend(work / "sbstore"), work / "sbhome")
    model = work / "sbsrc" / "noop" / "model"
    model.mkdir(parents=True)
    (model.parent / "Dockerfile").write_text("FROM scratch\n")
    (model / "train").write_text(NOOP_TRAIN)
    (model / "train").chmod(0o755)
    data = work / "sbdata" / "features"
    data.mkdir(parents=True)
    (data / "rows.csv").write_text("1\n")
    source = store.push(scan_folder(work / "sbsrc")).tree.digest
    data_digest = store.push(scan_folder(work / "sbdata")).tree.digest
    log = JobLogs(work / "sblogs").writer("bench")
    plain = LocalExecutor(store, work / "sbhome", sandbox=False)
    boxed = LocalExecutor(store, work / "sbhome", sandbox=True)
    if not boxed.sandbox.usable:
        print(f"sandbox_overhead_s=skipped ({boxed.sandbox.problem})", flush=True)
        return
    env = plain.build(BuildRequest("bench", source, "noop"), log, Cancel()).ref
    request = TrainRequest("bench", 0, source, data_digest, "noop", env, None)

    def train(executor: LocalExecutor) -> float:
        return timed(lambda: executor.train(request, log, Cancel()))

    samples = max(runs, 21)  # a few tens of milliseconds: more samples against the noise
    train(plain), train(boxed)
    without = median_of(samples, lambda: train(plain))
    within = median_of(samples, lambda: train(boxed))
    figure("train_noop_s", without, "s")
    figure("train_noop_sandboxed_s", within, "s")
    figure("sandbox_overhead_s", within - without, "s")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--only", choices=["env", "locks", "latency", "grid", "sandbox"], default=None
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kaos-pipeline-bench-"))
    parts = {
        "env": bench_env_builds,
        "locks": bench_locks,
        "latency": bench_deploy_latency,
        "grid": bench_grid,
        "sandbox": bench_sandbox,
    }
    try:
        for name, part in parts.items():
            if args.only in (None, name):
                part(work, args.runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
