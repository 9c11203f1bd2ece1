"""Auth, concurrency and integrity tools against real kaos server processes."""

from __future__ import annotations

import json
import secrets
import stat
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from kaos.client import KaosClient
from kaos.store import scan_folder
from kaos.store.index import PACK_PREFIX
from tests.cli import Cli
from tests.conftest import KaosServer
from tests.fixtures.bundles import write_data, write_script_source, write_source

ALICE = secrets.token_hex(20)
BOB = secrets.token_hex(20)
CAROL = secrets.token_hex(20)  # an admin by the tokens file
AWS_SECRET = secrets.token_hex(20)  # the store's credentials, as an operator would export them


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    root = tmp_path_factory.mktemp("secured")
    (root / "tokens").write_text(f"# user token [admin]\nbob {BOB}\ncarol {CAROL} admin\n")
    (root / "home").mkdir()
    server = KaosServer(
        root / "home",
        ["--tokens-file", str(root / "tokens")],
        env={  # secrets in the server's environment, where user code must never see them
            "KAOS_TOKEN": f"alice:{ALICE}",
            "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
            "AWS_ACCESS_KEY_ID": "AKIA" + AWS_SECRET[:16],
        },
    )
    yield server
    server.stop()


def test_every_route_but_health_needs_a_valid_token(secured):
    assert httpx.get(secured.url + "/health").json()["auth"] is True
    missing = httpx.get(secured.url + "/workspaces")
    assert missing.status_code == 401 and "kaos init -e URL -t TOKEN" in missing.json()["fix"]
    wrong = httpx.get(secured.url + "/workspaces", headers={"Authorization": "Bearer " + "0" * 40})
    assert wrong.status_code == 401 and wrong.json()["detail"] == "the token was refused"
    for token in (ALICE, BOB):
        ok = httpx.get(secured.url + "/workspaces", headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200
    assert httpx.post(secured.url + "/objects/missing", json={"digests": []}).status_code == 401
    inbox = httpx.post(secured.url + "/objects/packs/inbox", json={"name": "x"})
    assert inbox.status_code == 401


def test_the_token_names_the_author_whatever_the_client_claims(secured, tmp_path):
    api = KaosClient(secured.url, token=BOB, author="mallory")
    name = f"auth-{uuid.uuid4().hex[:6]}"
    api.create_workspace(name)
    src = write_source(tmp_path / "src", kernel="linear", tag=uuid.uuid4().hex)
    digest = api.push(scan_folder(src)).tree.digest
    api.deploy(name, source=digest)
    (build,) = api.jobs(name)
    assert build["author"] == "bob"


def test_init_stores_the_token_readable_by_its_owner_only(secured, tmp_path):
    cli = Cli(tmp_path / "home", tmp_path)
    refused = cli.fails("init", "-e", secured.url, "-t", "0" * 40)
    assert "the token was refused" in refused.err
    cli.ok("init", "-e", secured.url, "-t", ALICE)
    config = tmp_path / "home" / "config.json"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert json.loads(config.read_text())["token"] == ALICE
    cli.ok("workspace", "create", "-n", f"cli-{uuid.uuid4().hex[:6]}")


def test_tokens_never_reach_the_server_log(secured):
    httpx.get(secured.url + "/workspaces", headers={"Authorization": f"Bearer {ALICE}"})
    httpx.get(
        secured.url + "/workspaces", headers={"Authorization": "Bearer wrong-token-value-123456"}
    )
    log = (secured.home.parent / f"server-{secured.port}.log").read_text()
    assert ALICE not in log and BOB not in log and "wrong-token-value" not in log


def test_the_embedded_server_listens_on_loopback_only(tmp_path):
    cli = Cli(tmp_path / "home", tmp_path)
    port = str(_free_port())
    cli.env["KAOS_PORT"] = port
    try:
        cli.ok("workspace", "create", "-n", "local")
        bound = _listening(int(port))
        assert bound == {"127.0.0.1"}, bound
    finally:
        cli.run("server", "stop")


def test_twenty_concurrent_deploys_are_all_recorded_with_no_lost_update(kaos_server, tmp_path):
    api = KaosClient(kaos_server.url)
    name = f"busy-{uuid.uuid4().hex[:6]}"
    api.create_workspace(name)
    digests = []
    for i in range(20):  # data alone: recorded, nothing trains
        digests.append(
            api.push(scan_folder(write_data(tmp_path / f"d{i}", train_rows=5 + i))).tree.digest
        )

    def deploy(digest: str) -> dict:
        return KaosClient(kaos_server.url).deploy(name, data=digest)

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(deploy, digests))
    assert len({r["deploy_id"] for r in results}) == 20
    last = max(results, key=lambda r: r["deploy_id"])
    assert api.workspace(name)["inputs"]["data"] == last["inputs"]["data"]

    with ThreadPoolExecutor(max_workers=50) as pool:
        listings = list(
            pool.map(lambda _: httpx.get(f"{kaos_server.url}/workspaces/{name}/jobs"), range(50))
        )
    assert {r.status_code for r in listings} == {200}
    assert len({r.text for r in listings}) == 1


def test_verify_reports_a_corrupt_object_which_is_never_served(tmp_path):
    (tmp_path / "home").mkdir()
    server = KaosServer(tmp_path / "home")
    try:
        cli = Cli(tmp_path / "client", tmp_path, server.url)
        cli.ok("workspace", "create", "-n", "v")
        write_source(tmp_path / "src", kernel="linear")
        write_data(tmp_path / "data", train_rows=60)
        cli.ok("train", "deploy", "-s", "src", "-d", "data", "--wait")
        healthy = cli.ok("store", "verify")
        assert "Store is healthy" in healthy.out
        packs = sorted(
            (tmp_path / "home" / "store" / PACK_PREFIX).iterdir(), key=lambda p: p.stat().st_size
        )
        victim = packs[-1]
        data = bytearray(victim.read_bytes())
        data[len(data) // 3] ^= 0xFF
        victim.write_bytes(bytes(data))
        damaged = cli.run("store", "verify")
        assert damaged.code == 1 and f"corrupt: {victim.name}" in damaged.out
        got = cli.run("train", "get", "-i", "0", "-o", "out")
        assert got.code != 0 and "corrupt" in got.err and "Traceback" not in got.err
    finally:
        server.stop()


def _free_port() -> int:
    from tests.conftest import free_port

    return free_port()


def _listening(port: int) -> set[str]:
    """Addresses listening on `port`, from /proc/net/tcp (IPv4)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:
            found.add(".".join(str(b) for b in reversed(bytes.fromhex(address))))
    return found


ENV_PRINTER = """#!/bin/sh
env
mkdir -p "$1/model" && echo done > "$1/model/out.txt"
"""


def test_no_server_secret_reaches_a_train_script(secured, tmp_path):
    cli = Cli(tmp_path / "home", tmp_path)
    cli.ok("init", "-e", secured.url, "-t", ALICE)
    cli.ok("workspace", "create", "-n", f"env-{uuid.uuid4().hex[:6]}")
    write_script_source(tmp_path / "src", ENV_PRINTER)
    write_data(tmp_path / "data", train_rows=10, test_rows=10)
    cli.ok("train", "deploy", "-s", "src", "-d", "data", "--wait")
    logs = cli.ok("train", "logs", "-i", "0").out
    assert "KAOS_DATA_DIR=" in logs and "KAOS_OUTPUT_DIR=" in logs  # the contract is there
    for secret in (ALICE, BOB, AWS_SECRET, "AWS_", "KAOS_TOKEN", "KAOS_HOME"):
        assert secret not in logs
    build = cli.ok("train", "build-logs", "-i", "0").out
    assert ALICE not in build and AWS_SECRET not in build


def test_store_maintenance_is_for_admins_only(secured, tmp_path):
    bob = Cli(tmp_path / "bob", tmp_path)
    bob.ok("init", "-e", secured.url, "-t", BOB)
    for args in (("store", "gc", "--dry-run"), ("store", "verify", "--repair")):
        refused = bob.fails(*args)
        assert "bob is not an admin of this server" in refused.err
    for user, token in (("carol", CAROL), ("alice", ALICE)):
        admin = Cli(tmp_path / user, tmp_path)
        admin.ok("init", "-e", secured.url, "-t", token)
        assert admin.ok("store", "gc", "--dry-run", "--json").json()["dry_run"] is True
