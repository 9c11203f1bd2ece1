"""A two-node Ray cluster on 127.0.0.1 with the store on a real HTTP S3 endpoint, started
with SIGINT ignored (as a script's `ray start ... &` starts it)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from kaos.errors import ConfigError
from kaos.pipeline.catalog import SqliteCatalog
from kaos.pipeline.engine import Pipeline
from kaos.pipeline.inputs import Grid, InputsChange
from kaos.pipeline.leases import process_alive
from kaos.pipeline.logs import JobLogs
from kaos.pipeline.states import JobState
from kaos.store import ContentStore, scan_folder
from kaos.store.backends import LocalBackend
from kaos.store.backends.s3 import S3Backend
from tests.cli import Cli
from tests.conftest import KaosServer, free_port
from tests.fixtures.bundles import write_data, write_source
from tests.processes import parent_pid, sleepers, unique_nap
from tests.test_replicas import job_state, train_job, wait_for

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'kaos[ray]')")
from kaos.executors.ray import RayExecutor, RaySettings  # noqa: E402

pytestmark = pytest.mark.slow


def ray_cli(*args: str, env: dict[str, str]) -> None:
    """`ray ARGS` with SIGINT ignored, which the Ray processes it starts (and their workers)
    inherit, as when a script starts the cluster in the background."""
    exe = str(Path(sys.executable).parent / "ray")
    subprocess.run(
        [exe, *args],
        env=env,
        check=True,
        capture_output=True,
        timeout=180,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )


@pytest.fixture(scope="module")
def cluster(s3_endpoint, tmp_path_factory):
    """`ray start --head`, then a second `ray start --address` with its own resources."""
    port = free_port()
    env = dict(os.environ)  # with the shared RAY_AUTH_TOKEN that conftest sets
    common = [
        "--node-ip-address",
        "127.0.0.1",
        "--num-cpus",
        "1",
        "--object-store-memory",
        "100000000",
    ]
    ray_cli("start", "--head", "--port", str(port), "--include-dashboard=false", *common,
            "--resources", '{"head_node": 1}', env=env)  # fmt: skip
    try:
        ray_cli(
            "start",
            "--address",
            f"127.0.0.1:{port}",
            *common,
            "--resources",
            '{"second_node": 1}',
            env=env,
        )
        yield f"127.0.0.1:{port}"
    finally:
        if ray.is_initialized():
            ray.shutdown()
        ray_cli("stop", "--force", env=env)


def test_grid_tasks_run_on_both_nodes_and_every_output_lands_in_s3(
    cluster, s3_endpoint, s3_bucket, tmp_path
):
    store = ContentStore(S3Backend(s3_bucket, "kaos", endpoint_url=s3_endpoint), tmp_path / "home")
    settings = RaySettings(address=cluster, node_home=str(tmp_path / "nodes"))
    executor = RayExecutor(
        store, tmp_path / "home", f"s3://{s3_bucket}/kaos", s3_endpoint, settings
    )
    assert len([n for n in ray.nodes() if n["Alive"]]) == 2
    catalog = SqliteCatalog(tmp_path / "catalog.db")
    catalog.create_workspace("w")
    pipeline = Pipeline(catalog, store, executor, JobLogs(tmp_path / "logs"), max_parallel=4)
    src = write_source(tmp_path / "src", kernel="linear", tag=uuid.uuid4().hex)
    data = write_data(tmp_path / "data", train_rows=150)
    grid = Grid.from_json({"C": [0.25, 0.5, 1.0, 2.0]})
    change = InputsChange(
        store.push(scan_folder(src)).tree.digest, store.push(scan_folder(data)).tree.digest, grid
    )
    pipeline.deploy("w", change, "tester", parallelism=4)
    pipeline.wait_all(timeout=600)
    (job,) = catalog.jobs("w", "train")
    models = catalog.models(job.id)
    assert job.state == JobState.SUCCESS, pipeline.logs.read(job.id)[0]
    assert len({m.node for m in models}) == 2  # Ray placed tasks on both nodes
    fresh = ContentStore(S3Backend(s3_bucket, "kaos", endpoint_url=s3_endpoint))
    for m in models:
        tree = fresh.get_tree(m.output_tree)
        assert fresh.missing(tree.digests()) == set()
        assert tree.get("metrics/metrics.json")


def test_a_local_store_is_refused_for_a_multi_node_cluster(cluster, tmp_path):
    store = ContentStore(LocalBackend(tmp_path / "store"), tmp_path / "home")
    with pytest.raises(ConfigError, match="local store cannot serve a Ray cluster of 2 nodes"):
        RayExecutor(
            store, tmp_path / "home", str(tmp_path / "store"), None, RaySettings(address=cluster)
        )


def test_train_kill_through_the_cli_ends_the_task_and_its_train_process(
    cluster, s3_endpoint, s3_bucket, tmp_path
):
    """A server on the cluster: `kaos train kill` lands although the workers ignore SIGINT
    (a Ray cancel interrupts a task by a simulated SIGINT)."""
    (tmp_path / "home").mkdir()
    store = ["--store", f"s3://{s3_bucket}/kaos", "--s3-endpoint-url", s3_endpoint]
    server = KaosServer(
        tmp_path / "home",
        ["--executor", "ray", "--ray-address", cluster, *store],
        env={"KAOS_RAY_NODE_HOME": str(tmp_path / "nodes")},
    )
    try:
        cli = Cli(tmp_path / "client", tmp_path, server.url)
        cli.ok("workspace", "create", "-n", "w")
        nap = unique_nap()
        write_source(tmp_path / "src", kernel="linear", sleep=nap, tag=uuid.uuid4().hex)
        write_data(tmp_path / "data", train_rows=50)
        cli.ok("train", "deploy", "-s", "src", "-d", "data")
        wait_for(lambda: sleepers(nap), 180, "the task to start the train script")
        pids = [*sleepers(nap), parent_pid(sleepers(nap)[0])]  # the child and the train script
        job = train_job(cli)["id"]
        cli.ok("train", "kill", "-j", job)
        wait_for(lambda: job_state(cli, job) == "JOB_KILLED", 60, "the kill")
        wait_for(lambda: not any(process_alive(pid) for pid in pids), 10, "the train to end")
    finally:
        server.stop()
