"""The docker executor against a real Docker engine (network none, a local base image)."""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from pathlib import Path

import pytest

from kaos.executors.docker import JOB_LABEL, DockerExecutor, DockerSettings
from kaos.pipeline.catalog import SqliteCatalog
from kaos.pipeline.engine import Pipeline
from kaos.pipeline.ids import MODEL_ID
from kaos.pipeline.inputs import InputsChange, Resources
from kaos.pipeline.logs import JobLogs
from kaos.pipeline.reproduce import reproduction
from kaos.pipeline.states import JobState
from kaos.store import ContentStore, scan_folder
from kaos.store.backends import LocalBackend
from tests.docker_env import BASE_IMAGE, requires_docker

pytestmark = [pytest.mark.slow, requires_docker]

TRAIN = r"""#!/usr/bin/env python3
import json, os, sys, time
out = sys.argv[1]
mode = open("../mode.txt").read().strip()
print("training in", os.getcwd(), "mode", mode, flush=True)
if mode == "hog":
    hog = [bytearray(1 << 20) for _ in range(1024)]  # 1 GiB
if mode == "sleep":
    time.sleep(600)
data = open(os.path.join(os.environ["KAOS_DATA_DIR"], "features", "rows.csv")).read()
os.makedirs(os.path.join(out, "model"), exist_ok=True)
os.makedirs(os.path.join(out, "metrics"), exist_ok=True)
open(os.path.join(out, "model", "model.txt"), "w").write(str(len(data)))
metrics = {"rows": data.count("\n"), "score": 0.75}
json.dump(metrics, open(os.path.join(out, "metrics", "metrics.json"), "w"))
"""


def write_bundle(root: Path, mode: str = "ok", requirements: str = "six\n") -> Path:
    model = root / "tiny" / "model"
    model.mkdir(parents=True, exist_ok=True)
    (root / "tiny" / "Dockerfile").write_text(
        "ARG BASE_IMAGE=python:3.11-slim\nFROM ${BASE_IMAGE}\n"
        "COPY requirements.txt /tmp/requirements.txt\n"
        "RUN pip install --no-cache-dir -r /tmp/requirements.txt\n"
    )
    (root / "tiny" / "requirements.txt").write_text(requirements)
    (root / "tiny" / "mode.txt").write_text(mode)
    (model / "train").write_text(TRAIN)
    os.chmod(model / "train", 0o755)
    return root


class CountingBuilds:
    """Counts the builds sent to the engine (the real call still happens)."""

    def __init__(self, api):
        self.calls = 0
        self._build = api.build
        api.build = self

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self._build(*args, **kwargs)


class DockerEngine:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.store = ContentStore(LocalBackend(root / "store"), root / "home")
        self.catalog = SqliteCatalog(root / "catalog.db")
        self.executor = DockerExecutor(
            self.store, root / "home", DockerSettings(base_image=BASE_IMAGE)
        )
        self.builds = CountingBuilds(self.executor.client.api)
        self.pipeline = Pipeline(self.catalog, self.store, self.executor, JobLogs(root / "logs"))
        self.catalog.create_workspace("w")

    def put(self, folder: Path) -> str:
        return self.store.push(scan_folder(folder)).tree.digest

    def data(self, rows: int) -> str:
        folder = self.root / f"data-{rows}" / "features"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "rows.csv").write_text("".join(f"{i},{i * i}\n" for i in range(rows)))
        return self.put(folder.parent)

    def deploy(self, source: Path | None, data: str | None, wait: bool = True, **kwargs):
        change = InputsChange(
            self.put(source) if source else None, data, None, kwargs.pop("resources", None)
        )
        result = self.pipeline.deploy("w", change, "tester", **kwargs)
        if wait:
            self.pipeline.wait_all(timeout=600)
        return result


@pytest.fixture
def engine(tmp_path) -> DockerEngine:
    return DockerEngine(tmp_path)


def test_build_and_train_in_a_container(engine, tmp_path):
    src = write_bundle(tmp_path / "src", mode=f"ok-{uuid.uuid4().hex[:6]}")
    result = engine.deploy(src, engine.data(10))
    build = engine.catalog.job(result.build_job.id)
    assert build.state == JobState.SUCCESS, engine.pipeline.logs.read(build.id)[0]
    assert build.image.startswith("build-train-tiny:")
    (train,) = engine.catalog.jobs("w", "train")
    (model,) = engine.catalog.models(train.id)
    assert model.state == JobState.SUCCESS, engine.pipeline.logs.read(train.id)[0]
    assert MODEL_ID.match(model.model_id)
    assert model.metrics == {"rows": 10, "score": 0.75}
    assert "training in /kaos/source/tiny/model" in engine.pipeline.logs.read(train.id)[0]
    assert engine.store.get_tree(model.output_tree).get("model/model.txt")


def test_the_image_is_made_from_the_lock_and_a_model_reproduces_in_it(engine, tmp_path):
    src = write_bundle(tmp_path / "src", mode=f"ok-{uuid.uuid4().hex[:6]}")
    result = engine.deploy(src, engine.data(4))
    build = engine.catalog.job(result.build_job.id)
    assert build.state == JobState.SUCCESS and build.lock is not None
    assert "the image installs lock" in engine.pipeline.logs.read(build.id)[0]
    (train,) = engine.catalog.jobs("w", "train")
    (model,) = engine.catalog.models(train.id)
    again = engine.pipeline.reproduce(model.model_id, "tester")
    engine.pipeline.wait_all(timeout=600)
    done = reproduction(engine.catalog, engine.store, again.id)
    assert done.identical, engine.pipeline.logs.read(again.id)[0]
    assert engine.builds.calls == 1  # the same source and lock: the image is reused


def test_an_unchanged_source_never_asks_the_engine_to_build(engine, tmp_path):
    src = write_bundle(tmp_path / "src", mode=f"ok-{uuid.uuid4().hex[:6]}")
    engine.deploy(src, engine.data(5))
    assert engine.builds.calls == 1
    engine.deploy(src, engine.data(6))  # new data: a train, no build
    assert engine.builds.calls == 1
    assert len(engine.catalog.jobs("w", "build")) == 1
    again = DockerEngine(
        tmp_path / "fresh-catalog"
    )  # the catalog forgot; the image is found by tag
    result = again.deploy(src, again.data(7))
    assert again.builds.calls == 0
    assert "reusing image" in again.pipeline.logs.read(result.build_job.id)[0]
    (train,) = again.catalog.jobs("w", "train")
    assert train.state == JobState.SUCCESS


def test_a_requirements_typo_fails_the_build_with_the_resolvers_error(engine, tmp_path):
    import docker

    client = docker.from_env()
    before = {c.id for c in client.containers.list(all=True)}
    src = write_bundle(tmp_path / "src", requirements="scikit-learnn-typo-no-such-pkg==99\n")
    result = engine.deploy(src, engine.data(3))
    build = engine.catalog.job(result.build_job.id)
    assert build.state == JobState.FAILURE
    log = engine.pipeline.logs.read(build.id)[0]
    assert "scikit-learnn-typo-no-such-pkg" in log
    assert "tiny/requirements.txt does not resolve" in build.reason
    assert engine.builds.calls == 0  # no image is attempted from requirements that do not lock
    assert engine.catalog.jobs("w", "train") == []
    assert {c.id for c in client.containers.list(all=True)} == before  # no container left behind


def test_exceeding_the_memory_limit_fails_saying_out_of_memory(engine, tmp_path):
    src = write_bundle(tmp_path / "src", mode="hog")
    engine.deploy(src, engine.data(3), resources=Resources(memory="64m"))
    (train,) = engine.catalog.jobs("w", "train")
    assert train.state == JobState.FAILURE
    assert "out of memory" in train.reason


def test_kill_stops_the_container_and_leaves_none(engine, tmp_path):
    import docker

    src = write_bundle(tmp_path / "src", mode="sleep")
    engine.deploy(src, engine.data(3), wait=False)
    client = docker.from_env()
    deadline = time.time() + 300
    train = None
    while time.time() < deadline:
        trains = engine.catalog.jobs("w", "train")
        if trains and client.containers.list(filters={"label": f"{JOB_LABEL}={trains[0].id}"}):
            train = trains[0]
            break
        time.sleep(0.2)
    assert train is not None, "the container never started"
    started = time.time()
    engine.pipeline.kill(train.id)
    engine.pipeline.wait_all(timeout=60)
    assert time.time() - started < 20  # the init process makes the kill immediate
    assert engine.catalog.job(train.id).state == JobState.KILLED
    assert client.containers.list(all=True, filters={"label": f"{JOB_LABEL}={train.id}"}) == []


def test_recovery_ends_only_this_servers_containers(engine):
    from kaos.executors.docker import OWNER_LABEL

    client = engine.executor.client
    owners = {"mine": engine.executor.owner, "theirs": "another-server"}
    started = {
        who: client.containers.run(
            BASE_IMAGE,
            ["sleep", "60"],
            detach=True,
            network_mode="none",
            labels={JOB_LABEL: f"recover-{who}", OWNER_LABEL: owner},
        )
        for who, owner in owners.items()
    }
    try:
        engine.executor.recover()  # what a restarted server does
        alive = {c.id for c in client.containers.list(all=True, filters={"label": JOB_LABEL})}
        assert started["theirs"].id in alive and started["mine"].id not in alive
    finally:
        for container in started.values():
            with contextlib.suppress(Exception):
                container.remove(force=True)
