"""Reproducible models through the real CLI and server: `kaos train diff`, locks, reproduce."""

from __future__ import annotations

import uuid

import pytest

from tests.cli import Cli
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
