"""The engine end to end (no server): real uv environments, real scikit-learn training."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from kaos.errors import BundleError, JobFinished
from kaos.executors.local import LocalExecutor
from kaos.pipeline.catalog import SqliteCatalog
from kaos.pipeline.engine import Pipeline
from kaos.pipeline.ids import MODEL_ID
from kaos.pipeline.inputs import Grid, InputsChange, train_seed
from kaos.pipeline.leases import process_alive
from kaos.pipeline.logs import JobLogs
from kaos.pipeline.states import JobState
from kaos.store import ContentStore, scan_folder
from kaos.store.backends import LocalBackend
from tests.fixtures.bundles import write_data, write_source
from tests.processes import parent_pid, sleepers, unique_nap

pytestmark = pytest.mark.slow


class Engine:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.store = ContentStore(LocalBackend(root / "store"), root / "home")
        self.catalog = SqliteCatalog(root / "catalog.db")
        self.executor = LocalExecutor(self.store, root / "home")
        self.pipeline = Pipeline(
            self.catalog, self.store, self.executor, JobLogs(root / "logs"), max_parallel=2
        )
        self.catalog.create_workspace("mnist")

    def put(self, folder: Path) -> str:
        return self.store.push(scan_folder(folder)).tree.digest

    def deploy(self, source: Path | None = None, data: Path | None = None, **kwargs):
        change = InputsChange(
            self.put(source) if source else None,
            self.put(data) if data else None,
            kwargs.pop("grid", None),
        )
        result = self.pipeline.deploy("mnist", change, "tester", **kwargs)
        self.pipeline.wait_all(timeout=300)
        return result

    def jobs(self, kind: str):
        return self.catalog.jobs("mnist", kind)


@pytest.fixture(scope="module")
def engine(tmp_path_factory) -> Engine:
    return Engine(tmp_path_factory.mktemp("engine"))


def latest_model(engine: Engine):
    (model,) = engine.catalog.models(engine.jobs("train")[0].id)
    return model


def test_seed_walkthrough_reruns_exactly_what_changed(engine, tmp_path):
    src = write_source(tmp_path / "src", kernel="poly")
    data = write_data(tmp_path / "data", train_rows=300)

    first = engine.deploy(src, data)
    assert first.build_job is not None and first.train_job is None  # the train waits for the image
    assert [len(engine.jobs("build")), len(engine.jobs("train"))] == [1, 1]
    assert engine.jobs("build")[0].state == JobState.SUCCESS
    poly = latest_model(engine)
    assert poly.state == JobState.SUCCESS, engine.pipeline.logs.read(poly.job_id)[0]
    assert MODEL_ID.match(poly.model_id)
    assert set(poly.metrics) == {"accuracy_train", "accuracy_test"}

    write_source(src, kernel="linear")  # step 2: a changed kernel
    engine.deploy(src)
    assert [len(engine.jobs("build")), len(engine.jobs("train"))] == [2, 2]
    linear = latest_model(engine)
    assert linear.model_id.split("_")[0] != poly.model_id.split("_")[0]
    assert "reusing environment" in engine.pipeline.logs.read(engine.jobs("build")[0].id)[0]

    write_data(data, train_rows=1200)  # step 3: more training data
    engine.deploy(data=data)
    assert [len(engine.jobs("build")), len(engine.jobs("train"))] == [2, 3]
    more = latest_model(engine)
    assert more.model_id.split("_")[1][:5] != linear.model_id.split("_")[1][:5]
    assert more.metrics["accuracy_test"] > linear.metrics["accuracy_test"]

    again = engine.deploy(src, data)  # the same inputs again: nothing runs
    assert [len(engine.jobs("build")), len(engine.jobs("train"))] == [2, 3]
    assert again.build_job is None and again.train_job is None
    assert [m for _, m in again.plan.reused] == [more.model_id]

    stored = engine.store.get_tree(more.output_tree)
    assert stored.get("metrics/metrics.json") and stored.get("model/model.pkl")
    deploys = engine.catalog.deploys("mnist")
    assert [d.author for d in deploys] == ["tester"] * 4
    assert deploys[-1].inputs.data == deploys[-2].inputs.data


def test_broken_requirements_fail_the_build_with_the_installer_error(engine, tmp_path):
    src = write_source(tmp_path / "src", requirements="scikit-learnnnn-no-such-package==0.0.1\n")
    data = write_data(tmp_path / "data")
    trains_before = len(engine.jobs("train"))
    result = engine.deploy(src, data)
    build = engine.catalog.job(result.build_job.id)
    assert build.state == JobState.FAILURE
    log = engine.pipeline.logs.read(build.id)[0]
    assert "scikit-learnnnn-no-such-package" in log
    assert len(engine.jobs("train")) == trains_before  # no train
    retry = engine.deploy(src, data)  # a failed build is not cached
    assert retry.build_job is not None and retry.build_job.id != build.id


def test_a_raising_train_script_fails_with_its_traceback_in_the_logs(engine, tmp_path):
    src = write_source(tmp_path / "src", kernel="rbf", fail=True)
    result = engine.deploy(src, write_data(tmp_path / "data"))
    job = engine.jobs("train")[0]
    assert job.deploy_id == result.deploy.id
    assert job.state == JobState.FAILURE
    log = engine.pipeline.logs.read(job.id)[0]
    assert "Traceback" in log and "RuntimeError: deliberate failure" in log
    assert "exited with code 1" in job.reason


def test_kill_stops_a_running_train_and_its_processes(engine, tmp_path):
    nap = unique_nap()
    src = write_source(tmp_path / "src", kernel="rbf", sleep=nap)
    change = InputsChange(engine.put(src), engine.put(write_data(tmp_path / "data")))
    engine.pipeline.deploy("mnist", change, "tester")
    deadline = time.time() + 120
    while not sleepers(nap) and time.time() < deadline:
        time.sleep(0.2)
    assert sleepers(nap), "the train script never started"
    pids = [*sleepers(nap), parent_pid(sleepers(nap)[0])]  # the child and the train script
    job = engine.jobs("train")[0]
    engine.pipeline.kill(job.id[:8])
    engine.pipeline.wait_all(timeout=60)
    assert engine.catalog.job(job.id).state == JobState.KILLED
    time.sleep(0.5)
    for pid in pids:
        assert not process_alive(pid), f"process {pid} survived the kill"
    with pytest.raises(JobFinished, match="already finished"):
        engine.pipeline.kill(job.id)


def test_grid_trains_each_combination_and_extending_it_trains_only_new_ones(engine, tmp_path):
    src = write_source(tmp_path / "src", kernel="rbf")
    data = write_data(tmp_path / "data", train_rows=200, offset=50)
    engine.deploy(src, data, grid=Grid.from_json({"kernel": ["linear", "poly"]}), parallelism=2)
    job = engine.jobs("train")[0]
    assert job.hyperopt and len(engine.catalog.models(job.id)) == 2
    engine.deploy(grid=Grid.from_json({"kernel": ["linear", "poly", "rbf"]}), parallelism=2)
    newest = engine.jobs("train")[0]
    assert [m.params for m in engine.catalog.models(newest.id)] == [{"kernel": "rbf"}]


def test_bundles_without_a_train_script_are_refused(engine, tmp_path):
    src = write_source(tmp_path / "src")
    (src / "digits" / "model" / "train").unlink()
    with pytest.raises(BundleError, match="model/train"):
        engine.deploy(src)
    assert engine.catalog.workspace("mnist").inputs.source != engine.put(src)


def test_restart_marks_jobs_left_running_as_failed(tmp_path):
    first = Engine(tmp_path)
    from kaos.pipeline.records import Job

    first.catalog.add_job(Job("f" * 32, "train", "mnist", None, JobState.RUNNING, time.time()))
    second = Engine(tmp_path)
    assert second.pipeline.recover() == 1
    job = second.catalog.job("f" * 32)
    assert job.state == JobState.FAILURE and "server stopped" in job.reason


def test_train_scripts_get_a_seed_from_the_train_key_and_a_fixed_hash_seed(tmp_path):
    engine = Engine(tmp_path / "engine")
    src = write_source(tmp_path / "src", requirements="")
    (src / "digits" / "model" / "train").write_text(
        "#!/usr/bin/env python3\nimport json, os, sys\n"
        "os.makedirs(sys.argv[1] + '/metrics')\n"
        "seen = {k: os.environ.get(k) for k in ('KAOS_SEED', 'PYTHONHASHSEED')}\n"
        "json.dump(seen, open(sys.argv[1] + '/metrics/metrics.json', 'w'))\n"
    )
    engine.deploy(src, write_data(tmp_path / "data", train_rows=10))
    model = latest_model(engine)
    assert model.state == JobState.SUCCESS, engine.pipeline.logs.read(model.job_id)[0]
    assert model.metrics == {"KAOS_SEED": str(train_seed(model.train_key)), "PYTHONHASHSEED": "0"}


def test_the_engine_forgets_jobs_once_they_end(engine):
    """A long-lived server holds only running jobs (the module's jobs have all ended)."""
    engine.pipeline.wait_all(timeout=60)
    assert engine.pipeline._threads == {} and engine.pipeline._cancels == {}
