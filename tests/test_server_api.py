"""The HTTP API and client against a real kaos server process on 127.0.0.1."""

from __future__ import annotations

import os
import uuid

import httpx
import pytest

from kaos.client import KaosClient, ServerError, ServerUnreachable
from kaos.store import scan_folder
from kaos.store.hashing import hash_bytes
from kaos.store.pack import KIND_BLOB, PackBuilder
from tests.cli import Cli
from tests.fixtures.bundles import write_data, write_source


@pytest.fixture
def api(kaos_server) -> KaosClient:
    return KaosClient(kaos_server.url, author="alice")


@pytest.fixture
def workspace(api) -> str:
    name = f"ws-{uuid.uuid4().hex[:8]}"
    api.create_workspace(name)
    return name


def test_push_uploads_only_what_is_missing_and_round_trips(api, tmp_path):
    src = write_source(tmp_path / "src", tag=uuid.uuid4().hex)
    (src / "digits" / "big.bin").write_bytes(os.urandom(1 << 20) * 5)  # chunked, new to the server
    scanned = scan_folder(src)
    absent = api.missing(scanned.tree.digests())
    assert len(absent) >= 2  # at least params.json and big.bin are new
    first = api.push(scanned)
    assert first.files_sent == len(absent)
    assert api.missing(scanned.tree.digests()) == set()
    again = api.push(scan_folder(src))
    assert again.files_sent == 0 and again.bytes_uploaded == 0
    out = api.checkout(first.tree.digest, tmp_path / "out")
    assert scan_folder(out).tree == first.tree


def test_a_one_line_edit_sends_one_small_file(api, tmp_path):
    data = write_data(tmp_path / "data", train_rows=1000)
    api.push(scan_folder(data))
    (data / "features" / "extra.txt").write_text("note\n")
    result = api.push(scan_folder(data))
    assert result.files_sent == 1
    assert result.bytes_uploaded < 8 << 10


def test_a_tampered_pack_is_refused_and_nothing_stored(api, kaos_server):
    payload = b"honest bytes" * 100
    builder = PackBuilder()
    builder.add(hash_bytes(b"other bytes"), KIND_BLOB, payload)
    _pack_id, data, _index = builder.seal().encode()
    response = httpx.post(kaos_server.url + "/objects/packs", content=data)
    assert response.status_code == 422
    assert "does not match its hash" in response.json()["detail"]
    assert api.missing([hash_bytes(b"other bytes")]) == {hash_bytes(b"other bytes")}


def test_a_truncated_upload_is_refused(kaos_server):
    payload = b"x" * 10_000
    builder = PackBuilder()
    builder.add(hash_bytes(payload), KIND_BLOB, payload)
    _pack_id, data, _index = builder.seal().encode()
    response = httpx.post(kaos_server.url + "/objects/packs", content=data[: len(data) // 2])
    assert response.status_code == 422


def test_packs_received_into_reused_buffers_are_each_stored_intact(api, kaos_server):
    """A server receives pack bodies into buffers it uses again: a long pack, then a short
    one, then a bad one, then a long one: each is stored (or refused) as it was sent."""
    contents = [os.urandom(300_000), os.urandom(1000), os.urandom(200_000)]
    for i, content in enumerate(contents):
        builder = PackBuilder()
        builder.add(hash_bytes(content), KIND_BLOB, content)
        _id, data, _index = builder.seal().encode()
        response = httpx.post(kaos_server.url + "/objects/packs", content=data)
        assert response.status_code == 201, response.text
        if i == 1:
            bad = bytearray(data)
            bad[-60] ^= 1  # in the index: the pack's own hash no longer matches
            response = httpx.post(kaos_server.url + "/objects/packs", content=bytes(bad))
            assert response.status_code == 422
    assert api.missing(hash_bytes(c) for c in contents) == set()
    fetched = {d: b"".join(pieces) for d, _n, pieces in api.fetch(list(map(hash_bytes, contents)))}
    assert fetched == {hash_bytes(c): c for c in contents}


def test_missing_asked_in_raw_digests_answers_as_the_json_route(api, kaos_server):
    held = os.urandom(5000)
    builder = PackBuilder()
    builder.add(hash_bytes(held), KIND_BLOB, held)
    _id, data, _index = builder.seal().encode()
    assert httpx.post(kaos_server.url + "/objects/packs", content=data).status_code == 201
    unknown = [hash_bytes(os.urandom(64)) for _ in range(3)]
    asked = [unknown[2], hash_bytes(held), unknown[0], unknown[2], unknown[1]]
    response = httpx.post(
        kaos_server.url + "/objects/missing/raw", content=b"".join(bytes.fromhex(d) for d in asked)
    )
    assert response.status_code == 200
    assert response.content == b"".join(bytes.fromhex(d) for d in [unknown[2], *unknown[:2]])
    assert api.missing(asked) == set(unknown)
    response = httpx.post(kaos_server.url + "/objects/missing/raw", content=b"x" * 17)
    assert response.status_code == 400
    assert "whole 16-byte digests" in response.json()["detail"]


def test_deploy_of_an_incompletely_uploaded_bundle_is_refused(api, workspace, tmp_path):
    src = write_source(tmp_path / "src", kernel=uuid.uuid4().hex)  # content the server never saw
    scanned = scan_folder(src)
    builder = PackBuilder()
    serialized = scanned.tree.serialize()
    builder.add(scanned.tree.digest, KIND_BLOB, serialized)  # the tree, but none of its files
    api.store_pack(*builder.seal().encode())
    assert not api.complete(scanned.tree.digest)
    with pytest.raises(ServerError, match="incomplete"):
        api.deploy(workspace, source=scanned.tree.digest)
    assert api.workspace(workspace)["inputs"]["source"] is None
    assert api.push(scanned).files_sent > 0  # not taken for complete: the files are sent
    assert api.complete(scanned.tree.digest)


def test_an_unchanged_folder_pushes_in_one_request_and_a_change_is_still_sent(
    api, tmp_path, kaos_home
):
    from kaos.store import StatCache

    data = write_data(tmp_path / "data", train_rows=200 + len(uuid.uuid4().hex))
    (data / "features" / "tag.txt").write_text(uuid.uuid4().hex)
    cache = StatCache(kaos_home / "state.db")
    first = api.push(scan_folder(data, cache))
    assert first.files_sent > 0
    seen: list[str] = []
    sent = api._http.request
    api._http.request = lambda method, path, **kw: seen.append(path) or sent(method, path, **kw)

    again = scan_folder(data, cache)
    assert api.push(again).files_sent == 0
    assert seen == [f"/trees/{first.tree.digest}/complete"]
    assert "tree" not in vars(again)  # no tree of entries was built

    (data / "features" / "tag.txt").write_text(uuid.uuid4().hex)
    changed = api.push(scan_folder(data, cache))
    assert changed.files_sent == 1 and changed.tree.digest != first.tree.digest
    assert api.complete(changed.tree.digest)


@pytest.mark.parametrize(
    "body, status, message",
    [
        ({"source": "not-a-digest"}, 422, "hex digest"),
        ({"grid": {"a": []}}, 400, "empty list"),
        ({"grid": {"a": list(range(50)), "b": list(range(50))}}, 400, "more than the limit"),
        ({"parallelism": 0}, 422, "parallelism"),
        ({}, 400, "nothing to deploy"),
    ],
)
def test_bad_deploys_get_a_clear_4xx(api, workspace, body, status, message):
    with pytest.raises(ServerError, match=message) as err:
        api.deploy(workspace, **body)
    assert err.value.status == status


def test_unknown_things_are_404_with_the_fix(api):
    with pytest.raises(ServerError, match="no workspace named") as err:
        api.deploy("nope", data="0" * 32)
    assert err.value.status == 404 and "kaos workspace create" in err.value.fix
    with pytest.raises(ServerError, match="no job matches"):
        api.job("0123456789")


def test_unreachable_server_names_the_fix():
    with pytest.raises(ServerUnreachable, match="kaos server start"):
        KaosClient("http://127.0.0.1:9").health()


def test_openapi_docs_are_served(kaos_server):
    assert httpx.get(kaos_server.url + "/docs").status_code == 200
    paths = httpx.get(kaos_server.url + "/openapi.json").json()["paths"]
    assert "/workspaces/{name}/deploy" in paths and "/objects/missing" in paths


def test_cli_errors_are_one_line_with_a_non_zero_exit(kaos_server, tmp_path):
    cli = Cli(tmp_path / "home", tmp_path, kaos_server.url)
    no_ws = cli.fails("train", "list")
    assert (
        no_ws.err.strip()
        == "Error: no workspace is set (create one with 'kaos workspace create -n NAME')"
    )
    cli.ok("workspace", "create", "-n", f"cli-{uuid.uuid4().hex[:6]}")
    missing = cli.fails("train", "deploy", "-s", "does/not/exist")
    assert "source bundle path not found: does/not/exist" in missing.err
    (tmp_path / "grid.json").write_text("{not json")
    assert "invalid JSON in grid" in cli.fails("train", "deploy", "-h", "grid.json").err
    empty = tmp_path / "empty-src" / "x"
    empty.mkdir(parents=True)
    (empty / "Dockerfile").write_text("FROM x\n")
    assert (
        "has no model/train" in cli.fails("train", "deploy", "-s", str(tmp_path / "empty-src")).err
    )
    assert "no training job at index 3" in cli.fails("train", "info", "-i", "3").err
    for result in (no_ws, missing):
        assert len(result.err.strip().splitlines()) == 1


def test_cli_reports_an_unreachable_server(tmp_path):
    cli = Cli(tmp_path / "home", tmp_path)
    cli.env["KAOS_HOME"] = str(tmp_path / "home")
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "config.json").write_text(
        '{"endpoint": "http://127.0.0.1:9", "workspace": "w"}'
    )
    result = cli.fails("train", "list")
    assert "cannot reach the kaos server at http://127.0.0.1:9" in result.err


def test_workspace_kill_forgets_it_but_never_while_a_job_runs(kaos_server, tmp_path):
    from kaos.pipeline.catalog import SqliteCatalog
    from kaos.pipeline.records import Job
    from kaos.pipeline.states import JobState

    cli = Cli(tmp_path / "home", tmp_path, kaos_server.url)
    name = f"gone-{uuid.uuid4().hex[:6]}"
    cli.ok("workspace", "create", "-n", name)
    write_data(tmp_path / "data", train_rows=5)
    cli.ok("train", "deploy", "-d", "data")  # data alone: recorded, nothing runs
    busy = f"busy-{uuid.uuid4().hex[:6]}"
    cli.ok("workspace", "create", "-n", busy)
    SqliteCatalog(kaos_server.home / "catalog.db").add_job(
        Job(uuid.uuid4().hex, "train", busy, None, JobState.RUNNING, 1.0)
    )
    refused = cli.fails("workspace", "kill", "-n", busy, "--yes")
    assert "has 1 running jobs" in refused.err and "kaos train kill" in refused.err
    assert (
        cli.ok("workspace", "kill", "-n", name, "--yes").out.strip()
        == f"Successfully killed {name} workspace"
    )
    names = [w["name"] for w in cli.ok("workspace", "list", "--json").json()]
    assert name not in names and busy in names
    assert "no workspace named" in cli.fails("train", "list", "-w", name).err


def test_a_dot_name_is_refused_before_the_url_resolves_it_away(kaos_server, tmp_path):
    """`serve kill -n ..` would be DELETE /workspaces/WS, which kills the workspace."""
    cli = Cli(tmp_path / "home", tmp_path, kaos_server.url)
    name = f"dots-{uuid.uuid4().hex[:6]}"
    cli.ok("workspace", "create", "-n", name)
    for args in (("serve", "kill", "-n", ".."), ("serve", "info", "-n", ".."),
                 ("serve", "logs", "-n", "../x")):  # fmt: skip
        result = cli.fails(*args)
        assert "is not a valid name or id" in result.err and "Traceback" not in result.err
        assert len(result.err.strip().splitlines()) == 1, result.err
    assert name in [w["name"] for w in cli.ok("workspace", "list", "--json").json()]


def test_a_catalog_without_recorded_bundle_names_shows_the_trees_top_folder(
    api, workspace, kaos_server, tmp_path
):
    """Catalogs from before names were recorded at deploy: the name is the tree's top folder,
    read once and then recorded."""
    import sqlite3

    data = write_data(tmp_path / "data", train_rows=50 + uuid.uuid4().int % 100)
    tree = api.push(scan_folder(data)).tree.digest
    api.deploy(workspace, data=tree)
    with sqlite3.connect(kaos_server.home / "catalog.db") as db:
        db.execute("DELETE FROM bundles WHERE digest = ?", (tree,))  # as an older server left it
    assert api.workspace(workspace)["inputs"]["data_name"] == "features"
    with sqlite3.connect(kaos_server.home / "catalog.db") as db:
        recorded = db.execute("SELECT name FROM bundles WHERE digest = ?", (tree,)).fetchall()
    assert recorded == [("features",)]


def test_a_client_gone_mid_upload_leaves_no_traceback_and_the_next_upload_is_stored(
    api, kaos_server
):
    """A deploy killed while it sends a pack: the server logs no 'Exception in ASGI
    application' (a traceback a user hunting a real error would take for one), stores nothing,
    and the next upload is received and stored whole."""
    import socket
    import time

    log = kaos_server.home.parent / f"server-{kaos_server.port}.log"
    before = log.stat().st_size
    with socket.create_connection(("127.0.0.1", kaos_server.port)) as sock:
        sock.sendall(
            b"POST /objects/packs HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/octet-stream\r\nContent-Length: 1000000\r\n\r\n"
            + b"KPK"
            * 1000
        )
        time.sleep(0.3)  # the server is reading the body when the client goes
    payload = os.urandom(5000)
    builder = PackBuilder()
    builder.add(hash_bytes(payload), KIND_BLOB, payload)
    _id, data, _index = builder.seal().encode()
    response = httpx.post(kaos_server.url + "/objects/packs", content=data)
    assert response.status_code == 201, response.text
    fetched = {d: b"".join(pieces) for d, _n, pieces in api.fetch([hash_bytes(payload)])}
    assert fetched == {hash_bytes(payload): payload}
    time.sleep(0.3)
    with open(log, "rb") as f:
        f.seek(before)
        assert b"Traceback" not in f.read()
