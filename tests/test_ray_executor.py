"""The Ray executor on a real local Ray instance, and on a two-node cluster with an S3 store."""

from __future__ import annotations

import signal
import time
import uuid
from pathlib import Path

import pytest

from kaos.executors.local import LocalExecutor
from kaos.pipeline.catalog import SqliteCatalog
from kaos.pipeline.engine import Pipeline
from kaos.pipeline.inputs import Grid, InputsChange
from kaos.pipeline.leases import process_alive
from kaos.pipeline.logs import JobLogs
from kaos.pipeline.reproduce import reproduction
from kaos.pipeline.states import JobState
from kaos.store import ContentStore, scan_folder
from kaos.store.backends import LocalBackend
from tests.fixtures.bundles import write_data, write_source
from tests.processes import parent_pid, sleepers, unique_nap

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'kaos[ray]')")
from kaos.executors.ray import RayExecutor, RaySettings  # noqa: E402

pytestmark = pytest.mark.slow
GRID = Grid.from_json({"kernel": ["linear", "rbf"], "C": [0.5, 2.0]})


def engine(root: Path, executor_factory, store: ContentStore | None = None) -> Pipeline:
    store = store or ContentStore(LocalBackend(root / "store"), root / "home")
    catalog = SqliteCatalog(root / f"catalog-{uuid.uuid4().hex[:6]}.db")
    catalog.create_workspace("w")
    return Pipeline(catalog, store, executor_factory(store), JobLogs(root / "logs"), max_parallel=4)


def deploy(
    pipeline: Pipeline, src: Path, data: Path, grid: Grid | None = GRID, parallelism: int = 2
):
    store = pipeline.store
    change = InputsChange(
        store.push(scan_folder(src)).tree.digest, store.push(scan_folder(data)).tree.digest, grid
    )
    result = pipeline.deploy("w", change, "tester", parallelism=parallelism)
    pipeline.wait_all(timeout=600)
    return result


def models(pipeline: Pipeline):
    (job,) = pipeline.catalog.jobs("w", "train")
    return job, pipeline.catalog.models(job.id)


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory):
    """Ray started with SIGINT ignored, as a script's `ray start --head &` starts a cluster:
    its processes and workers inherit that. How pytest itself was launched then makes no
    difference to what these tests cover."""
    root = tmp_path_factory.mktemp("ray-local")
    store = ContentStore(LocalBackend(root / "store"), root / "home")
    settings = RaySettings(node_home=str(root / "node"), num_cpus=2)
    handler = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        executor = RayExecutor(store, root / "home", str(root / "store"), None, settings)
    finally:
        signal.signal(signal.SIGINT, handler)
    yield root, store, executor
    executor.close()


def test_a_grid_on_ray_gives_the_same_model_ids_as_the_local_executor(local_ray, tmp_path):
    root, store, executor = local_ray
    src = write_source(tmp_path / "src", kernel="linear", tag=uuid.uuid4().hex)
    data = write_data(tmp_path / "data", train_rows=150)
    on_ray = engine(root, lambda s: executor, store)
    deploy(on_ray, src, data)
    job, ray_models = models(on_ray)
    assert job.state == JobState.SUCCESS, on_ray.logs.read(job.id)[0]
    assert all(m.node for m in ray_models)
    assert "trained on 150 rows" in on_ray.logs.read(job.id)[0]  # logs came back from the tasks
    local = engine(tmp_path / "local", lambda s: LocalExecutor(s, tmp_path / "local" / "home"))
    deploy(local, src, data)
    _job, local_models = models(local)
    assert sorted(m.model_id for m in ray_models) == sorted(m.model_id for m in local_models)
    assert job.lock is not None  # the server locked once; the nodes made the env from the lock

    again = on_ray.reproduce(ray_models[1].model_id, "tester")  # a model with a seed of its own
    on_ray.wait_all(timeout=600)
    result = reproduction(on_ray.catalog, store, again.id)
    assert result.job.state == JobState.SUCCESS, on_ray.logs.read(again.id)[0]
    assert result.identical and result.reproduced_id == ray_models[1].model_id


def test_a_failing_combination_fails_only_itself(local_ray, tmp_path):
    root, store, executor = local_ray
    src = write_source(tmp_path / "src", kernel="linear", tag=uuid.uuid4().hex)
    data = write_data(tmp_path / "data", train_rows=100)
    pipeline = engine(root, lambda s: executor, store)
    deploy(pipeline, src, data, Grid.from_json({"fail": [False, True]}))
    job, trained = models(pipeline)
    states = {m.params["fail"]: m.state for m in trained}
    assert states == {False: JobState.SUCCESS, True: JobState.FAILURE}
    failed = next(m for m in trained if m.params["fail"])
    assert "exited with code 1" in failed.reason
    assert job.state == JobState.FAILURE


def test_kill_cancels_the_ray_tasks_and_their_processes(local_ray, tmp_path):
    """Also when the workers inherited SIGINT ignored (the fixture): a cancel interrupts a
    task by a simulated SIGINT, which the task must take for the kill to land."""
    root, store, executor = local_ray
    nap = unique_nap()
    src = write_source(tmp_path / "src", kernel="linear", sleep=nap, tag=uuid.uuid4().hex)
    data = write_data(tmp_path / "data", train_rows=50)
    pipeline = engine(root, lambda s: executor, store)
    change = InputsChange(
        store.push(scan_folder(src)).tree.digest, store.push(scan_folder(data)).tree.digest
    )
    pipeline.deploy("w", change, "tester")
    deadline = time.time() + 180
    while not sleepers(nap) and time.time() < deadline:
        time.sleep(0.2)
    assert sleepers(nap), "the task never started the train script"
    pids = [*sleepers(nap), parent_pid(sleepers(nap)[0])]  # the child and the train script
    (job,) = pipeline.catalog.jobs("w", "train")
    pipeline.kill(job.id)
    pipeline.wait_all(timeout=60)
    assert pipeline.catalog.job(job.id).state == JobState.KILLED
    time.sleep(1)
    assert not any(process_alive(pid) for pid in pids)


def test_a_task_that_cannot_take_the_interrupt_is_killed_with_what_it_recorded(local_ray):
    """The kill's fallback: a task still running `force_after` seconds after the interrupt
    has its worker killed, and the process group it recorded (its own session, which outlives
    the worker) ended on its node."""
    import subprocess

    from kaos.executors.process import record_process
    from kaos.executors.ray import _running

    root, _store, executor = local_ray
    nap, task = unique_nap(), uuid.uuid4().hex
    running = _running(root / "node", executor.owner, task)

    def stubborn() -> None:  # its group's leader is its child, `sleep` a grandchild (a train's)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        group = subprocess.Popen(["sh", "-c", f"sleep {nap}; exit 0"], start_new_session=True)
        record_process(running / "group", group.pid)
        time.sleep(600)

    ref = ray.remote(max_retries=0)(stubborn).remote()
    deadline = time.time() + 60
    while not sleepers(nap) and time.time() < deadline:
        time.sleep(0.1)
    assert sleepers(nap), "the task never started its process"
    executor.cancel(ref, task, force_after=1)
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(ref, timeout=60)
    deadline = time.time() + 30
    while (sleepers(nap) or running.exists()) and time.time() < deadline:
        time.sleep(0.1)
    assert not sleepers(nap) and not running.exists()


def test_recover_ends_on_every_node_what_a_crashed_servers_tasks_left_running(local_ray):
    """A train process a Ray task started outlives a SIGKILLed driver (it runs in its own
    session); the next server's recover ends it through a task on each node."""
    import subprocess

    from kaos.executors.process import record_process
    from kaos.executors.ray import _running

    root, _store, executor = local_ray
    left = subprocess.Popen(["sleep", "600"], start_new_session=True)
    record_process(_running(root / "node", executor.owner, "a-task") / "left", left.pid)
    other = subprocess.Popen(["sleep", "600"], start_new_session=True)  # another server's
    record_process(_running(root / "node", "another-server") / "other", other.pid)
    try:
        executor.recover()
        assert left.wait(timeout=10) == -9
        assert other.poll() is None
    finally:
        other.kill()
        left.kill()
