"""The Python API (`from kaos import Client`) against a real server, and the CLI's import rule."""

from __future__ import annotations

import ast
import uuid
from pathlib import Path

import pytest

import kaos
from kaos import Client
from kaos.errors import BundleError, KaosError
from tests.fixtures.bundles import write_data, write_source

QUICK_TRAIN = (
    "#!/usr/bin/env python3\nimport json, os, sys\n"
    "params = json.load(open(os.environ['KAOS_HYPERPARAMS']))\n"
    "os.makedirs(sys.argv[1] + '/metrics')\n"
    "json.dump({'score': params['C'] * 10}, open(sys.argv[1] + '/metrics/metrics.json', 'w'))\n"
)


class Recorder:
    """A reporter that keeps what it is told."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def server_started(self, endpoint, store):
        self.events.append(("server_started", endpoint))

    def bar(self, label):
        self.events.append(("bar", label))
        return kaos.client.Silent().bar(label)

    def uploading(self, kind, folder):
        self.events.append(("uploading", kind))

    def uploaded(self, bundle):
        self.events.append(("uploaded", bundle.label))

    def sending_manifest(self, path):
        self.events.append(("manifest", str(path)))

    def job_changed(self, job):
        self.events.append(("job", f"{job['kind']} {job['state']}"))

    def model_trained(self, model):
        self.events.append(("model", model["model_id"]))


def quick_source(root: Path) -> Path:
    """A source bundle whose train script needs no packages: it scores C."""
    write_source(root, requirements="", tag=uuid.uuid4().hex)
    (root / "digits" / "model" / "train").write_text(QUICK_TRAIN)
    return root


@pytest.fixture
def client(kaos_server) -> Client:
    name = f"py-{uuid.uuid4().hex[:8]}"
    client = Client(kaos_server.url, workspace=name, reporter=Recorder())
    client.create_workspace(name)
    return client


def test_deploy_waits_for_the_models_and_an_identical_redeploy_gives_the_same_ids(client, tmp_path):
    src, data = quick_source(tmp_path / "src"), write_data(tmp_path / "data", train_rows=10)
    first = client.deploy(src, data, grid={"C": [1, 2]}, wait=True)
    assert first.ok and {j["kind"] for j in first.jobs} == {"build", "train"}
    assert sorted(m["metrics"]["score"] for m in first.models) == [10, 20]
    assert all(m["state"] == "JOB_SUCCESS" and m["model_id"] for m in first.models)
    ids = sorted(m["model_id"] for m in first.models)
    told = client.reporter.events
    assert ("uploading", "source") in told and ("uploading", "data") in told
    assert ("bar", "Compressing source bundle") in told
    assert sorted(v for k, v in told if k == "model") == ids
    assert ("job", "train JOB_SUCCESS") in told

    again = client.deploy(src, data, wait=True)  # same folders, the workspace keeps its grid
    assert again.trains_nothing and again.jobs == []
    assert sorted(m["model_id"] for m in again.models) == ids
    assert sorted(again.reused) == ids


def test_a_bundle_of_the_wrong_shape_is_refused_before_anything_is_sent(client, tmp_path):
    src = quick_source(tmp_path / "src")
    (src / "digits" / "Dockerfile").unlink()
    with pytest.raises(BundleError, match="no Dockerfile"):
        client.deploy(source=src)
    assert client.workspace()["inputs"]["source"] is None
    assert ("uploaded", "source") not in client.reporter.events


def test_a_parallelism_below_one_is_refused_before_anything_is_sent(client, tmp_path):
    src = quick_source(tmp_path / "src")
    with pytest.raises(KaosError, match="parallelism"):
        client.deploy(source=src, parallelism=0)
    assert client.workspace()["inputs"]["source"] is None
    assert ("uploading", "source") not in client.reporter.events


def test_a_grid_that_cannot_be_read_is_a_kaos_error_naming_it(client, tmp_path):
    with pytest.raises(KaosError, match="cannot read grid"):
        client.deploy(grid=tmp_path)  # a folder, not a JSON file


def test_the_cli_imports_no_store_pipeline_or_executors():
    """The CLI parses, calls the Python API and renders; nothing under it reaches lower."""
    cli = Path(kaos.__file__).parent / "cli"
    offenders = []
    for path in sorted(cli.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                if name.split(".")[:2] in (["kaos", p] for p in ("store", "pipeline", "executors")):
                    offenders.append(f"{path.name}:{node.lineno} imports {name}")
    assert offenders == []
