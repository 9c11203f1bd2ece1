"""Ownership and sharing against one real server with a tokens file of five users: alice owns
a workspace that bob may write and carol may read; dave is a stranger; root is an admin.

Every route is asked by each of them (a matrix over the HTTP API, which the CLI, the Python API
and the dashboard all use), then the commands a user meets are run through the real CLI.
"""

from __future__ import annotations

import http.server
import json
import secrets
import threading
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from kaos.client import Client, KaosClient
from kaos.store import scan_folder
from kaos.store.chunking import TREE_CHUNKS
from kaos.store.tree import Tree, TreeEntry
from kaos.store.writer import StoreWriter
from tests.browser import browser_unavailable, chromium, wait_for
from tests.cli import Cli
from tests.conftest import KaosServer
from tests.fixtures.bundles import write_data, write_script_source

TOKENS = {user: secrets.token_hex(20) for user in ("alice", "bob", "carol", "dave", "root")}
ROLE = {"alice": "owner", "bob": "writer", "carol": "reader", "dave": None, "root": "admin"}
RANK = {None: 0, "reader": 1, "writer": 2, "owner": 3, "admin": 4}
TRAIN = """#!/bin/sh
mkdir -p "$1/model" "$1/metrics"
echo secret-weights > "$1/model/weights.txt"
echo '{"accuracy": 0.5}' > "$1/metrics/metrics.json"
echo trained
"""


@dataclass
class Team:
    server: KaosServer
    ws: str  # alice's workspace, shared with bob (writer) and carol (reader)
    job: str  # its train job
    build: str
    model: str
    deploy: int
    source: str  # tree digests
    data: str
    output: str
    blob: str  # one file of the data
    blob_size: int


def call(team: Team, user: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {TOKENS[user]}"}
    return httpx.request(method, team.server.url + path, headers=headers, timeout=60, **kwargs)


def client(team: Team, user: str) -> KaosClient:
    return KaosClient(team.server.url, token=TOKENS[user])


@pytest.fixture(scope="module")
def team(tmp_path_factory) -> Any:
    root = tmp_path_factory.mktemp("team")
    lines = [f"{u} {t}" + (" admin" if u == "root" else "") for u, t in TOKENS.items()]
    (root / "tokens").write_text("\n".join(lines) + "\n")
    (root / "home").mkdir()
    server = KaosServer(root / "home", ["--tokens-file", str(root / "tokens"), "--no-sandbox"])
    try:
        alice = KaosClient(server.url, token=TOKENS["alice"])
        ws = f"team-{uuid.uuid4().hex[:6]}"
        alice.create_workspace(ws)
        src = write_script_source(root / "src", TRAIN)
        data = write_data(root / "data", train_rows=20, test_rows=10)
        api = Client(server.url, TOKENS["alice"], ws, stat_cache=root / "stat-cache")
        deployed = api.deploy(source=src, data=data, wait=True)
        assert deployed.ok, deployed.jobs
        kinds = {job["kind"]: job for job in deployed.jobs}
        build, train = kinds["build"], kinds["train"]
        (model,) = deployed.models
        alice.share(ws, "bob", "writer")
        alice.share(ws, "carol", "reader")
        yield Team(
            server,
            ws,
            train["id"],
            build["id"],
            model["model_id"],
            deployed.deploy_id,
            scan_folder(src).digest,
            scan_folder(data).digest,
            model["output_tree"],
            scan_folder(data).tree.entries[0].digest,
            scan_folder(data).tree.entries[0].size,
        )
    finally:
        server.stop()


# (what, least role allowed, method, path, body); allowed requests must not be refused, and
# read ones answer 200. Writes are asked in a way that passes the check and then stops at a
# harmless error (a finished job, a model that cannot serve), so the matrix changes nothing.
ROUTES: list[tuple[str, str | None, str, str, dict[str, Any] | None]] = [
    ("workspace info", "reader", "GET", "/workspaces/{ws}", None),
    ("jobs", "reader", "GET", "/workspaces/{ws}/jobs", None),
    ("job", "reader", "GET", "/jobs/{job}", None),
    ("logs", "reader", "GET", "/jobs/{job}/logs", None),
    ("provenance", "reader", "GET", "/models/{model}", None),
    ("diff", "reader", "GET", "/models/{model}/diff?against={model}", None),
    ("model archive", "reader", "GET", "/models/{model}/archive/model", None),
    ("models page", "reader", "GET", "/workspaces/{ws}/models", None),
    ("progress", "reader", "GET", "/workspaces/{ws}/progress", None),
    ("timeline", "reader", "GET", "/workspaces/{ws}/deploys", None),
    ("deploy entry", "reader", "GET", "/deploys/{deploy}", None),
    ("endpoints", "reader", "GET", "/workspaces/{ws}/endpoints", None),
    ("endpoint", "reader", "GET", "/workspaces/{ws}/endpoints/nothing", None),
    ("endpoint logs", "reader", "GET", "/workspaces/{ws}/endpoints/nothing/logs", None),
    ("endpoint build logs", "reader", "GET", "/workspaces/{ws}/endpoints/nothing/build-logs", None),
    ("reproduction", "reader", "GET", "/reproductions/{job}", None),
    ("predict", "reader", "POST", "/serve/{ws}/nothing/invocations", {}),
    ("source tree", "reader", "GET", "/trees/{source}", None),
    ("output tree", "reader", "GET", "/trees/{output}", None),
    ("fetch", "reader", "POST", "/objects/fetch", {"digests": ["{blob}"], "tree": "{data}"}),
    ("deploy", "writer", "POST", "/workspaces/{ws}/deploy", {"grid": {"a": [1]}, "force": False}),
    ("kill", "writer", "POST", "/jobs/{job}/kill", None),
    ("reproduce", "writer", "POST", "/models/{model}/reproduce", None),
    ("serve deploy", "writer", "POST", "/workspaces/{ws}/endpoints", {"model_id": "f" * 6}),
    ("serve rollback", "writer", "POST", "/workspaces/{ws}/endpoints/nothing/rollback", None),
    ("serve kill", "writer", "DELETE", "/workspaces/{ws}/endpoints/nothing", None),
    ("share", "owner", "POST", "/workspaces/{ws}/shares", {"member": "carol", "role": "reader"}),
    ("unshare", "owner", "DELETE", "/workspaces/{ws}/shares/nobody", None),
    ("store gc", "admin", "POST", "/store/gc", {"dry_run": True}),
    ("store verify", "admin", "POST", "/store/verify", None),
    ("tree complete", None, "GET", "/trees/{data}/complete", None),  # uploads: anyone
    ("missing", None, "POST", "/objects/missing", {"digests": ["{blob}"]}),
]
ANSWERS_OTHERWISE = {"endpoint", "endpoint logs", "endpoint build logs", "reproduction"}


def _fill(team: Team, text: str) -> str:
    return text.format(**{k: v for k, v in vars(team).items() if k != "server"})


def _body(team: Team, body: Any) -> Any:
    if isinstance(body, dict):
        return {k: _body(team, v) for k, v in body.items()}
    if isinstance(body, list):
        return [_body(team, v) for v in body]
    return _fill(team, body) if isinstance(body, str) else body


@pytest.mark.parametrize("user", list(ROLE))
@pytest.mark.parametrize(
    ("what", "least", "method", "path", "body"), ROUTES, ids=[r[0] for r in ROUTES]
)
def test_each_route_lets_each_role_do_what_it_may_and_refuses_the_rest(
    team, user, what, least, method, path, body
):
    kwargs = {"json": _body(team, body)} if body is not None else {}
    answer = call(team, user, method, _fill(team, path), **kwargs)
    if RANK[ROLE[user]] >= RANK[least]:
        assert answer.status_code != 403, (what, user, answer.text)
        if method == "GET" and what not in ANSWERS_OTHERWISE:
            assert answer.status_code == 200, (what, user, answer.text)
        return
    assert answer.status_code == 403, (what, user, answer.text)
    detail = answer.json()["detail"]
    if least == "admin":
        assert detail == f"{user} is not an admin of this server"
    elif path.startswith(("/trees", "/objects")):
        assert detail.endswith("is not in a workspace you can read")
    else:
        assert detail.startswith(f"workspace '{team.ws}' belongs to alice"), detail
        assert "kaos workspace share" in answer.json()["fix"] or least == "owner"


def test_a_listing_shows_only_the_workspaces_a_user_can_read(team):
    def names(user: str) -> set[str]:
        return {w["name"] for w in client(team, user).workspaces()}

    for user in ("alice", "bob", "carol", "root"):
        assert team.ws in names(user)
    assert team.ws not in names("dave")
    mine = client(team, "dave").create_workspace(f"dave-{uuid.uuid4().hex[:4]}")
    assert mine["owner"] == "dave" and mine["name"] in names("dave")
    assert mine["name"] not in names("alice") and mine["name"] in names("root")
    shown = client(team, "carol").workspace(team.ws)
    assert shown["owner"] == "alice"
    assert shown["shares"] == {"bob": "writer", "carol": "reader"}


def test_creating_a_taken_name_is_refused_naming_its_owner(team):
    refused = call(team, "dave", "POST", "/workspaces", json={"name": team.ws})
    assert refused.status_code == 403
    assert refused.json()["detail"].startswith(f"workspace '{team.ws}' belongs to alice")
    for user in ("dave", "carol", "bob"):  # only alice (or an admin) deletes it
        gone = call(team, user, "DELETE", f"/workspaces/{team.ws}")
        assert gone.status_code == 403 and "belongs to alice" in gone.json()["detail"]
    again = call(team, "carol", "POST", "/workspaces", json={"name": team.ws})  # selects it
    assert again.status_code == 201 and again.json()["owner"] == "alice"


def test_a_strangers_hash_opens_nothing_even_through_a_tree_of_their_own(team, tmp_path):
    dave = client(team, "dave")
    for digest in (team.source, team.data, team.output, "0" * 32):  # stored or not: one answer
        refused = call(team, "dave", "GET", f"/trees/{digest}")
        assert refused.status_code == 403
        assert refused.json()["detail"] == f"{digest} is not in a workspace you can read"
    without_tree = call(team, "dave", "POST", "/objects/fetch", json={"digests": [team.blob]})
    assert without_tree.status_code == 403
    # a tree of dave's naming alice's file: stored, but no workspace of dave's names it
    forged = Tree.of([TreeEntry("features/x.csv", team.blob, team.blob_size)])
    with StoreWriter(dave) as writer:
        writer.put_bytes(forged.serialize(), TREE_CHUNKS)
        writer.flush()
    through = call(
        team, "dave", "POST", "/objects/fetch", json={"digests": [team.blob], "tree": forged.digest}
    )
    assert through.status_code == 403
    carol = call(
        team, "carol", "POST", "/objects/fetch", json={"digests": [team.blob], "tree": team.data}
    )
    assert carol.status_code == 200 and carol.content


def test_the_cli_refuses_a_stranger_naming_the_owner_and_serves_a_reader(team, tmp_path):
    dave = Cli(tmp_path / "dave", tmp_path)
    dave.ok("init", "-e", team.server.url, "-t", TOKENS["dave"])
    refused = dave.fails("workspace", "set", "-n", team.ws)
    assert f"workspace '{team.ws}' belongs to alice: it is not shared with dave" in refused.err
    assert f"kaos workspace share -n {team.ws} -u dave --role reader" in refused.err
    for args in (
        ("train", "list", "-w", team.ws),
        ("train", "logs", "-j", team.job),
        ("train", "provenance", "-m", team.model),
        ("train", "get", "-j", team.job, "-o", "got"),
    ):
        assert "belongs to alice" in dave.fails(*args).err, args
    assert not (tmp_path / "got").exists()

    carol = Cli(tmp_path / "carol", tmp_path)
    carol.ok("init", "-e", team.server.url, "-t", TOKENS["carol"])
    carol.ok("workspace", "set", "-n", team.ws)
    info = carol.ok("workspace", "info").out
    assert "Owner: alice; shared with bob (writer), carol (reader)" in info
    assert "trained" in carol.ok("train", "logs", "-j", team.job).out
    carol.ok("train", "get", "-j", team.job, "-o", "out")
    weights = tmp_path / "out" / team.ws / f"train-{team.job}" / "models" / team.model
    assert (weights / "model" / "weights.txt").read_text() == "secret-weights\n"
    write_data(tmp_path / "d2", train_rows=21, test_rows=10)
    denied = carol.fails("train", "deploy", "-d", "d2")
    assert f"carol may only read it (ask alice to share it: kaos workspace share -n {team.ws}" in (
        denied.err
    )
    assert "--role writer" in denied.err
    assert "only its owner or an admin" in carol.fails("workspace", "kill", "-n", team.ws, "-y").err


def test_the_owner_shares_and_unshares_through_the_cli(team, tmp_path):
    alice = Cli(tmp_path / "alice", tmp_path)
    alice.ok("init", "-e", team.server.url, "-t", TOKENS["alice"])
    own = f"own-{uuid.uuid4().hex[:6]}"
    alice.ok("workspace", "create", "-n", own)
    dave = KaosClient(team.server.url, token=TOKENS["dave"])
    assert call(team, "dave", "GET", f"/workspaces/{own}").status_code == 403
    shared = alice.ok("workspace", "share", "-n", own, "-u", "dave", "--json").json()
    assert shared["shares"] == {"dave": "reader"}
    assert dave.workspace(own)["owner"] == "alice"
    out = alice.ok("workspace", "share", "-u", "dave", "--role", "writer").out  # current one
    assert f"Shared {own} with dave as writer" in out
    assert "Owner: alice; shared with dave (writer)" in out
    bad = alice.fails("workspace", "share", "-u", "dave", "--role", "owner")
    assert "unknown role 'owner' (use --role reader or --role writer)" in bad.err
    unknown = alice.fails("workspace", "share", "-u", "mallory")
    assert "no user 'mallory' on this server" in unknown.err
    assert alice.ok("workspace", "unshare", "-u", "dave", "--json").json()["shares"] == {}
    assert call(team, "dave", "GET", f"/workspaces/{own}").status_code == 403
    assert "dave has no role on workspace" in alice.fails("workspace", "unshare", "-u", "dave").err
    owner = alice.fails("workspace", "unshare", "-u", "alice").err
    assert f"alice owns workspace '{own}': only the roles it was shared with" in owner
    alice.ok("workspace", "kill", "-n", own, "-y")


def test_store_maintenance_and_everything_else_stay_open_to_admins(team, tmp_path):
    root = Cli(tmp_path / "root", tmp_path)
    root.ok("init", "-e", team.server.url, "-t", TOKENS["root"])
    assert team.ws in {w["name"] for w in root.ok("workspace", "list", "--json").json()}
    assert root.ok("store", "gc", "--dry-run", "--json").json()["dry_run"] is True
    root.ok("train", "provenance", "-m", team.model)
    theirs = f"dave-{uuid.uuid4().hex[:6]}"
    client(team, "dave").create_workspace(theirs)
    assert call(team, "carol", "DELETE", f"/workspaces/{theirs}").status_code == 403
    root.ok("workspace", "kill", "-n", theirs, "-y")


def test_a_writer_deploys_and_kills_through_the_cli_but_cannot_share_or_delete(team, tmp_path):
    bob = Cli(tmp_path / "bob", tmp_path)
    bob.ok("init", "-e", team.server.url, "-t", TOKENS["bob"])
    bob.ok("workspace", "set", "-n", team.ws)
    write_data(tmp_path / "d3", train_rows=22, test_rows=10)
    deployed = bob.ok("train", "deploy", "-d", "d3", "--json").json()
    job = deployed["train_job"]["id"]
    bob.run("train", "kill", "-j", job)  # allowed (it may have finished already)
    assert call(team, "bob", "GET", f"/jobs/{job}").json()["job"]["author"] == "bob"
    assert "only its owner or an admin" in bob.fails("workspace", "share", "-u", "dave").err
    assert "only its owner or an admin" in bob.fails("workspace", "kill", "-n", team.ws, "-y").err
    assert bob.ok("serve", "list", "--json").json() == []
    refused = Cli(tmp_path / "dave", tmp_path)
    refused.ok("init", "-e", team.server.url, "-t", TOKENS["dave"])
    assert "belongs to alice" in refused.fails("serve", "list", "-w", team.ws).err


def test_a_stranger_deploying_the_same_inputs_reuses_the_model_and_may_read_it(team, tmp_path):
    """dave holds the same source and data as alice (say, a shared template): his deploy reuses
    her model instead of retraining, and he may read what he could have trained himself."""
    dave = Cli(tmp_path / "dave", tmp_path)
    dave.ok("init", "-e", team.server.url, "-t", TOKENS["dave"])
    dave.ok("workspace", "create", "-n", f"dave-{uuid.uuid4().hex[:6]}")
    write_script_source(tmp_path / "src", TRAIN)
    write_data(tmp_path / "data", train_rows=20, test_rows=10)
    deployed = dave.ok("train", "deploy", "-s", "src", "-d", "data", "--wait", "--json").json()
    assert team.model in deployed["reused"]
    assert dave.ok("train", "provenance", "-m", team.model, "--json").json()["model"]["model_id"]
    assert "belongs to alice" in dave.fails("train", "logs", "-j", team.job).err  # not her logs


@pytest.mark.slow
@pytest.mark.skipif(browser_unavailable() is not None, reason=str(browser_unavailable()))
def test_the_dashboard_shows_the_owner_and_tells_a_stranger_whom_to_ask(team):
    with chromium() as driver:
        driver.get(team.server.url + f"/#/w/{team.ws}")
        form = wait_for(driver, "#token-form")
        driver.find_element("css selector", "#token").send_keys(TOKENS["dave"])
        form.submit()
        error = wait_for(driver, "#main .error")
        assert f"workspace '{team.ws}' belongs to alice: it is not shared with dave" in error.text
        assert f"kaos workspace share -n {team.ws} -u dave --role reader" in error.text
        driver.execute_script("sessionStorage.setItem('kaos.token', arguments[0])", TOKENS["carol"])
        driver.refresh()
        wait_for(driver, "#progress-chart svg[data-drawn]")
        chips = driver.find_element("css selector", ".chips").text
        assert "alice" in chips and "bob (writer), carol (reader)" in chips
        driver.get(team.server.url + "/#/")
        table = wait_for(driver, "#workspaces")
        assert team.ws in table.text and "alice" in table.text


def test_a_deploy_is_checked_again_once_its_data_is_downloaded(team, tmp_path):
    """A manifest deploy downloads before it records: if meanwhile the workspace is deleted
    and dave makes one of the same name, alice's deploy must not land in dave's workspace
    (he would read her data), nor fail with a 500."""
    ws = f"race-{uuid.uuid4().hex[:6]}"
    client(team, "alice").create_workspace(ws)
    asked, release = threading.Event(), threading.Event()

    class Slow(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.set()
            release.wait(60)
            self.send_response(200)
            self.send_header("Content-Length", "7")
            self.end_headers()
            self.wfile.write(b"secret\n")

        def log_message(self, *args: Any) -> None:
            pass

    files = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=files.serve_forever, daemon=True).start()
    manifest = json.dumps({"url": f"http://127.0.0.1:{files.server_port}/f", "path": "f/x.csv"})
    answers: list[httpx.Response] = []
    deploy = threading.Thread(
        target=lambda: answers.append(
            call(team, "alice", "POST", f"/workspaces/{ws}/deploy", json={"manifest": manifest})
        )
    )
    try:
        deploy.start()
        assert asked.wait(60)
        assert call(team, "alice", "DELETE", f"/workspaces/{ws}").status_code == 204
        client(team, "dave").create_workspace(ws)
        release.set()
        deploy.join(60)
    finally:
        release.set()
        files.shutdown()
    (answer,) = answers
    assert answer.status_code == 403, answer.text
    refused = answer.json()["detail"]
    assert refused == f"workspace '{ws}' belongs to dave: it is not shared with alice"
    assert call(team, "dave", "GET", f"/workspaces/{ws}/deploys").json()["total"] == 0
    assert client(team, "dave").workspace(ws)["inputs"]["data"] is None
