"""The seed walkthrough end to end: the real CLI against a real kaos server on 127.0.0.1."""

from __future__ import annotations

import re

import pytest

from kaos.pipeline.ids import MODEL_ID
from kaos.store import scan_folder
from tests.cli import Cli
from tests.conftest import KaosServer
from tests.docker_env import BASE_IMAGE, docker_unavailable

pytestmark = pytest.mark.slow


@pytest.fixture(params=["local-store", "s3-store-postgresql", "docker-executor"])
def seed_server(request, tmp_path_factory):
    """The same walkthrough on each way to run a server: nothing may assume a local store or
    a SQLite catalog (the team setup: S3 and PostgreSQL)."""
    if request.param == "local-store":
        yield request.getfixturevalue("kaos_server")
        return
    home = tmp_path_factory.mktemp(request.param) / "home"
    home.mkdir()
    if request.param == "s3-store-postgresql":
        endpoint = request.getfixturevalue("s3_endpoint")
        bucket = request.getfixturevalue("s3_bucket")
        catalog = request.getfixturevalue("postgres").new_database()
        args = ["--store", f"s3://{bucket}/kaos", "--s3-endpoint-url", endpoint]
        args += ["--catalog", catalog]
        home.joinpath("catalog-url").write_text(catalog)
    else:
        reason = docker_unavailable()
        if reason:
            pytest.skip(reason)
        args = ["--executor", "docker", "--base-image", BASE_IMAGE]
    server = KaosServer(home, args)
    yield server
    server.stop()


def counts(cli: Cli) -> tuple[int, int]:
    jobs = cli.ok("train", "list", "--json").json()
    return len(jobs["building"]), len(jobs["training"])


def newest_model(cli: Cli) -> dict:
    info = cli.ok("train", "info", "-i", "0", "--json").json()
    (model,) = info["models"]
    return model


def test_seed_walkthrough(seed_server, request, tmp_path):
    cli = Cli(tmp_path / "client-home", tmp_path, seed_server.url)
    assert (
        cli.ok("workspace", "create", "-n", "mnist").out.strip()
        == "Successfully set mnist workspace"
    )
    assert (
        cli.ok("template", "get", "--name", "mnist").out.strip()
        == "Successfully loaded mnist template"
    )
    source, data = "templates/mnist/model-train", "templates/mnist/data"

    # 1. the initial deploy: poly kernel
    first = cli.ok("train", "deploy", "-s", source, "-d", data, "--wait")
    assert f"Submitting source bundle: {source}" in first.out
    assert re.search(r" ✔ Setting source bundle: /mnist:[0-9a-f]{5}", first.out)
    assert re.search(r" ✔ Setting data bundle: /features:[0-9a-f]{5}", first.out)
    assert "Compressing source bundle: 100%|" in first.err
    assert "CURRENT TRAINING INPUTS" in first.out
    assert "| <building> | /features:" in first.out
    assert counts(cli) == (1, 1)
    poly = newest_model(cli)
    assert MODEL_ID.match(poly["model_id"]), poly

    # 2. a changed kernel: rebuild and retrain, with the exact same command
    train_script = tmp_path / source / "mnist" / "model" / "train"
    train_script.write_text(
        train_script.read_text().replace("KERNEL = 'poly'", "KERNEL = 'linear'")
    )
    cli.ok("train", "deploy", "-s", source, "--wait")
    assert counts(cli) == (2, 2)
    linear = newest_model(cli)
    assert linear["model_id"][:5] != poly["model_id"][:5]
    assert linear["metrics"]["accuracy_test"] > poly["metrics"]["accuracy_test"]

    # 3. more training data: retrain on the existing image
    extra = (tmp_path / "templates/mnist/more-data/training-extra.csv.gz").read_bytes()
    with open(tmp_path / data / "features/training/training.csv.gz", "ab") as f:
        f.write(extra)
    third = cli.ok("train", "deploy", "-d", data, "--wait")
    assert re.search(r"\| build-train-mnist:[0-9a-f]{5} \| /features:[0-9a-f]{5} \|", third.out), (
        third.out
    )
    assert counts(cli) == (2, 3)
    more = newest_model(cli)
    assert more["model_id"][6:11] != linear["model_id"][6:11]

    # the same inputs again: nothing runs, the same model answers
    again = cli.ok("train", "deploy", "-s", source, "-d", data, "--json").json()
    assert again["build_job"] is None and again["train_job"] is None
    assert again["reused"] == [more["model_id"]]
    assert counts(cli) == (2, 3)

    info = cli.ok("train", "info", "-i", "0", "-s", "accuracy_test").out
    assert "Available metrics: [" in info and "'accuracy_test'" in info
    assert more["model_id"] in info and str(more["metrics"]["accuracy_test"]) in info

    listing = cli.ok("train", "list").out
    assert "BUILDING" in listing and "TRAINING" in listing and listing.count("JOB_SUCCESS") == 5

    # get returns byte-identical code and data
    job = cli.ok("train", "info", "-i", "0", "--json").json()["job"]
    cli.ok("train", "get", "-i", "0", "-o", "got")
    root = tmp_path / "got" / "mnist" / f"train-{job['id']}"
    assert scan_folder(root / "model-train").tree.digest == job["source"]
    assert scan_folder(root / "data").tree.digest == job["data"]
    assert scan_folder(root / "model-train").tree == scan_folder(tmp_path / source).tree
    assert (root / "models" / more["model_id"] / "metrics" / "metrics.json").is_file()
    assert (root / "lock" / "requirements.lock").is_file()  # the environment, beside the source

    # the walkthrough's models are reproducible and their differences are named
    kernel = cli.ok("train", "diff", "2", "1").out
    assert "-KERNEL = 'poly'" in kernel and "+KERNEL = 'linear'" in kernel
    assert "Packages: unchanged" in kernel
    appended = cli.ok("train", "diff", "1", "0", "--json").json()["data"]["files"]
    assert [(f["path"], f["rows_appended"]) for f in appended] == [
        ("features/training/training.csv.gz", 2000)
    ]
    builds = cli.ok("train", "list", "--json").json()["building"]
    assert builds[0]["lock"] == builds[1]["lock"]  # the second build reused the stored lock
    assert "reusing lock" in cli.ok("train", "build-logs", "-i", "0").out
    prov = cli.ok("train", "provenance", "-m", more["model_id"]).out
    assert "Environment: Python 3." in prov and "scikit-learn==" in prov
    models = [poly["model_id"], linear["model_id"], more["model_id"]]
    if request.node.callspec.params["seed_server"] != "local-store":
        models = models[-1:]  # the other ways to run reproduce the newest model only (lean)
    runs = [cli.start("train", "reproduce", "-m", m) for m in models]  # two train at once
    for model, run in zip(models, runs, strict=True):
        result = run.finish()
        assert result.code == 0 and f"identical: {model}" in result.out, result.out + result.err
    url_file = seed_server.home / "catalog-url"
    if url_file.exists():  # the history went to PostgreSQL, none to a SQLite file
        from kaos.pipeline.catalog import open_catalog

        assert not (seed_server.home / "catalog.db").exists()
        catalog = open_catalog(url_file.read_text())
        try:
            assert len(catalog.deploys("mnist")) >= 3
            assert {j.kind for j in catalog.jobs("mnist")} == {"build", "train", "reproduce"}
        finally:
            catalog.close()
