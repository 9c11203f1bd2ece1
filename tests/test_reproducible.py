"""Reproducible models through the real CLI and server: `kaos train diff`, locks, reproduce."""

from __future__ import annotations

import uuid

import pytest

from tests.cli import Cli
from tests.conftest import KaosServer
from tests.fixtures.bundles import write_data, write_source

pytestmark = pytest.mark.slow


@pytest.fixture
def cli(kaos_server, tmp_path) -> Cli:
    cli = Cli(tmp_path / "client-home", tmp_path, kaos_server.url)
    cli.ok("workspace", "create", "-n", f"rp-{uuid.uuid4().hex[:8]}")
    return cli


def model_of(cli: Cli, index: int) -> str:
    (model,) = cli.ok("train", "info", "-i", str(index), "--json").json()["models"]
    return model["model_id"]


def test_diff_names_the_changed_source_line_the_appended_rows_and_the_scores(cli, tmp_path):
    tag = uuid.uuid4().hex
    write_source(tmp_path / "src", kernel="poly", tag=tag)
    write_data(tmp_path / "data", train_rows=300)
    cli.ok("train", "deploy", "-s", "src", "-d", "data", "--wait")
    write_source(tmp_path / "src", kernel="linear", tag=tag)
    cli.ok("train", "deploy", "-s", "src", "--wait")
    with open(tmp_path / "data/features/training/train.csv", "a") as f:
        f.write("0," + ",".join(["1"] * 64) + "\n")
        f.write("1," + ",".join(["2"] * 64) + "\n")
    cli.ok("train", "deploy", "-d", "data", "--wait")
    poly, linear = model_of(cli, 2), model_of(cli, 1)

    kernel = cli.ok("train", "diff", poly, linear, "--json").json()
    assert kernel["a"]["model_id"] == poly and kernel["b"]["model_id"] == linear
    (changed,) = kernel["source"]["files"]
    assert changed["path"] == "digits/params.json" and changed["change"] == "changed"
    assert '-{"kernel": "poly"' in changed["diff"] and '+{"kernel": "linear"' in changed["diff"]
    assert kernel["data"]["same"] and kernel["data"]["files"] == []
    assert {m["name"] for m in kernel["metrics"]} == {"accuracy_train", "accuracy_test"}

    shown = cli.ok("train", "diff", "1", "0").out  # job indexes as in 'kaos train list'
    assert "Source: unchanged" in shown
    assert "changed  features/training/train.csv" in shown and "2 rows appended" in shown
    assert "METRICS" in shown and "accuracy_test" in shown

    missing = cli.fails("train", "diff", poly, "fffff_fffff:ffffff")
    assert missing.err.strip().count("\n") == 0 and "no model matches" in missing.err


def test_a_retrain_in_the_locked_environment_is_identical_and_unknown_models_are_refused(
    cli, tmp_path
):
    write_source(tmp_path / "src", kernel="rbf", tag=uuid.uuid4().hex)
    write_data(tmp_path / "data", train_rows=200)
    cli.ok("train", "deploy", "-s", "src", "-d", "data", "--wait")
    model = model_of(cli, 0)
    again = cli.ok("train", "reproduce", "-m", model, "--json").json()
    assert again["identical"] and again["reproduced_id"] == model and again["files"] == []
    assert again["job"]["kind"] == "reproduce"
    assert len(cli.ok("train", "list", "--json").json()["training"]) == 1  # not a workspace job
    unknown = cli.fails("train", "reproduce", "-m", "fffff_fffff:ffffff")
    assert unknown.err.strip().count("\n") == 0 and "no model matches" in unknown.err

    cli.ok("train", "deploy", "--refresh-env", "--wait")  # resolves again, rebuilds, retrains
    jobs = cli.ok("train", "list", "--json").json()
    assert len(jobs["building"]) == 2 and len(jobs["training"]) == 2
    assert "resolving digits/requirements.txt" in cli.ok("train", "build-logs", "-i", "0").out


def test_a_kaos_1_0_layout_builds_and_trains(cli, tmp_path):
    src = write_source(tmp_path / "src", kernel="linear", tag=uuid.uuid4().hex)
    bundle = src / "digits"
    (bundle / "requirements.txt").rename(bundle / "model" / "requirements.txt")
    (bundle / "params.json").rename(bundle / "model" / "params.json")
    train = bundle / "model" / "train"
    train.write_text(train.read_text().replace('open("../params.json")', 'open("params.json")'))
    write_data(tmp_path / "data", train_rows=200)
    cli.ok("train", "deploy", "-s", "src", "-d", "data", "--wait")
    (model,) = cli.ok("train", "info", "-i", "0", "--json").json()["models"]
    assert model["state"] == "JOB_SUCCESS" and model["metrics"]["accuracy_test"] > 0.5
    log = cli.ok("train", "build-logs", "-i", "0").out
    assert "digits/model/requirements.txt" in log
    tree = cli.ok("train", "provenance", "-m", model["model_id"]).out.splitlines()
    image = next(i for i, line in enumerate(tree) if "── Image " in line)
    assert tree[image + 1].startswith("│       └── Environment: Python 3."), tree
    assert tree[-1].startswith("└── Deployed by") and "/None" not in "".join(tree)


def test_without_requirements_the_env_is_the_base_interpreter_and_imports_get_a_hint(cli, tmp_path):
    src = write_source(tmp_path / "src", requirements="", tag=uuid.uuid4().hex)
    (src / "digits" / "requirements.txt").unlink()
    write_data(tmp_path / "data", train_rows=50)
    deploy = cli.run("train", "deploy", "-s", "src", "-d", "data", "--wait")
    assert "the environment has only the base interpreter" in deploy.out
    assert (
        "the environment has only the base interpreter"
        in cli.ok("train", "build-logs", "-i", "0").out
    )
    (job,) = cli.ok("train", "list", "--json").json()["training"]
    assert job["state"] == "JOB_FAILURE"
    assert "no module named 'numpy'" in job["reason"]
    assert "digits/requirements.txt or digits/model/requirements.txt" in job["reason"]
    assert "\n" not in job["reason"]


def test_a_corrupt_shipped_lock_fails_the_build_naming_it(cli, tmp_path):
    src = write_source(tmp_path / "src", tag=uuid.uuid4().hex)
    (src / "digits" / "pylock.toml").write_text("lock-version = [unclosed\n")
    write_data(tmp_path / "data", train_rows=50)
    cli.run("train", "deploy", "-s", "src", "-d", "data", "--wait")
    (build,) = cli.ok("train", "list", "--json").json()["building"]
    assert build["state"] == "JOB_FAILURE" and build["lock"] is None
    assert build["reason"].startswith("digits/pylock.toml is not a valid lock"), build["reason"]


def test_two_servers_sharing_an_s3_store_train_the_same_model(s3_endpoint, s3_bucket, tmp_path):
    store = ["--store", f"s3://{s3_bucket}/kaos", "--s3-endpoint-url", s3_endpoint]
    write_source(tmp_path / "src", kernel="poly", tag=uuid.uuid4().hex)
    write_data(tmp_path / "data", train_rows=200)
    ids, logs = [], []
    for name in ("one", "two"):
        home = tmp_path / f"server-{name}"
        home.mkdir()
        server = KaosServer(home, store)
        try:
            cli = Cli(tmp_path / f"client-{name}", tmp_path, server.url)
            cli.ok("workspace", "create", "-n", "shared")
            cli.ok("train", "deploy", "-s", "src", "-d", "data", "--wait")
            ids.append(model_of(cli, 0))
            logs.append(cli.ok("train", "build-logs", "-i", "0").out)
        finally:
            server.stop()
    assert ids[0] == ids[1]
    assert "resolving digits/requirements.txt" in logs[0] and "reusing lock" in logs[1]


def test_a_retrain_that_differs_exits_1_naming_the_output_files(cli, tmp_path):
    src = write_source(tmp_path / "src", requirements="", tag=uuid.uuid4().hex)
    (src / "digits" / "requirements.txt").unlink()
    (src / "digits" / "model" / "train").write_text(
        "#!/usr/bin/env python3\nimport os, sys, time\n"
        "os.makedirs(sys.argv[1] + '/model')\n"
        "open(sys.argv[1] + '/model/stamp.txt', 'w').write(str(time.time_ns()))\n"
        "open(sys.argv[1] + '/model/same.txt', 'w').write('same')\n"
    )
    write_data(tmp_path / "data", train_rows=10)
    cli.ok("train", "deploy", "-s", "src", "-d", "data", "--wait")
    model = model_of(cli, 0)
    again = cli.run("train", "reproduce", "-m", model)
    assert again.code == 1, again.out + again.err
    assert f"different: {model} retrained to " in again.out
    assert "model/stamp.txt" in again.out and "changed" in again.out
    assert "same.txt" not in again.out
