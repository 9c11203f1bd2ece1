"""The bad-input catalogue: each case through the CLI or the API gets a clear one-line error,
a non-zero exit or a 4xx, and changes nothing in the store or the catalog."""

from __future__ import annotations

import json
import os
import sqlite3
import uuid
from pathlib import Path

import httpx
import pytest

from kaos.pipeline.catalog import SqliteCatalog
from kaos.pipeline.records import Job
from kaos.pipeline.states import JobState
from kaos.store.hashing import hash_bytes
from kaos.store.pack import KIND_BLOB, PackBuilder
from tests.cli import Cli
from tests.fixtures.bundles import write_data, write_source


def snapshot(home: Path) -> tuple:
    """Everything a bad input must leave alone: stored objects and catalog rows."""
    store = sorted(
        str(p.relative_to(home / "store"))
        for p in (home / "store").rglob("*")
        if p.is_file() and "locks" not in p.parts and not p.name.startswith(".tmp-")
    )
    db = sqlite3.connect(home / "catalog.db")
    rows = tuple(
        db.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
        for table in ("workspaces", "deploys", "jobs", "models", "images")
    )
    db.close()
    return store, rows


@pytest.fixture(scope="module")
def world(kaos_server, tmp_path_factory):
    """A workspace with one trained model, so ids, indexes and metrics exist to get wrong."""
    root = tmp_path_factory.mktemp("bad-input")
    cli = Cli(root / "client-home", root, kaos_server.url)
    name = f"bad-{uuid.uuid4().hex[:6]}"
    cli.ok("workspace", "create", "-n", name)
    write_source(root / "src", kernel="linear", tag=uuid.uuid4().hex)
    write_data(root / "data", train_rows=80)
    cli.ok("train", "deploy", "-s", "src", "-d", "data", "--wait")
    catalog = SqliteCatalog(kaos_server.home / "catalog.db")  # two finished jobs sharing a prefix
    for suffix in ("1", "2"):
        job = Job("abcabc" + suffix * 26, "train", name, None, JobState.FAILURE, 1.0, finished=2.0)
        catalog.add_job(job)
    return cli, root, name


def bundle(root: Path, name: str, files: dict[str, str], executable: tuple[str, ...] = ()) -> str:
    folder = root / f"{name}-{uuid.uuid4().hex[:6]}"
    for rel, text in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text)
    for rel in executable:
        os.chmod(folder / rel, 0o755)
    return str(folder)


def cli_case(world, kaos_server, args, expected: str) -> None:
    cli, _root, _name = world
    before = snapshot(kaos_server.home)
    result = cli.fails(*args)
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.err
    assert expected in lines[0], lines[0]
    assert snapshot(kaos_server.home) == before


GOOD_SRC = {"m/Dockerfile": "FROM x\n", "m/model/train": "#!/bin/sh\n"}


def make_args(world, case: str) -> tuple[list[str], str]:
    cli, root, _name = world
    if case == "path does not exist":
        return ["train", "deploy", "-s", "no/such/folder"], "source bundle path not found"
    if case == "empty bundle":
        (root / "empty").mkdir(exist_ok=True)
        return ["train", "deploy", "-d", str(root / "empty")], "bundle is empty"
    if case == "no Dockerfile":
        src = bundle(root, "s", {"m/model/train": "#!/bin/sh\n"}, ("m/model/train",))
        return ["train", "deploy", "-s", src], "has no Dockerfile"
    if case == "no model/train":
        return [
            "train",
            "deploy",
            "-s",
            bundle(root, "s", {"m/Dockerfile": "FROM x\n"}),
        ], "has no model/train"
    if case == "train not executable":
        return ["train", "deploy", "-s", bundle(root, "s", GOOD_SRC)], "is not executable"
    if case == "two top-level folders":
        src = bundle(root, "s", {**GOOD_SRC, "other/x": "1"}, ("m/model/train",))
        return ["train", "deploy", "-s", src], "exactly one top-level folder"
    if case == "symlink outside the bundle":
        src = Path(bundle(root, "s", GOOD_SRC, ("m/model/train",)))
        (src / "m" / "leak").symlink_to("/etc/hostname")
        return ["train", "deploy", "-s", str(src)], "symlink points outside the bundle"
    if case == "non-UTF-8 file name":
        data = Path(bundle(root, "d", {"features/a.csv": "1\n"}))
        with open(os.path.join(os.fsencode(data / "features"), b"\xff\xfe.csv"), "wb") as f:
            f.write(b"1\n")
        return ["train", "deploy", "-d", str(data)], "not valid UTF-8"
    if case == "invalid grid JSON":
        (root / "bad.json").write_text("{oops")
        return ["train", "deploy", "-h", "bad.json"], "invalid JSON in grid"
    if case == "grid too large":
        (root / "big.json").write_text(json.dumps({"a": list(range(50)), "b": list(range(50))}))
        return ["train", "deploy", "-h", "big.json"], "more than the limit of 1000"
    if case == "grid with an empty list":
        (root / "empty.json").write_text('{"a": []}')
        return ["train", "deploy", "-h", "empty.json"], "empty list"
    if case == "grid with a non-scalar":
        (root / "nested.json").write_text('{"a": [{"b": 1}]}')
        return ["train", "deploy", "-h", "nested.json"], "non-scalar"
    if case == "grid file missing":
        return ["train", "deploy", "-h", "nope.json"], "grid file not found"
    if case == "unknown workspace":
        return ["train", "list", "-w", "no-such-workspace"], "no workspace named"
    if case == "unknown job id":
        return ["train", "info", "-j", "fedcba9876"], "no job matches"
    if case == "ambiguous job prefix":
        return ["train", "kill", "-j", "abcabc"], "is ambiguous"
    if case == "index out of range":
        return ["train", "info", "-i", "99"], "no training job at index 99"
    if case == "unknown metric":
        return ["train", "info", "-i", "0", "-s", "no_such_metric"], "unknown metric"
    if case == "malformed manifest":
        (root / "bad.mf").write_text("not json at all\n")
        return ["train", "deploy", "-m", "bad.mf"], "manifest line 1 is not JSON"
    if case == "manifest path escaping":
        (root / "esc.mf").write_text(json.dumps({"url": "http://127.0.0.1:9/x", "path": "../x"}))
        return ["train", "deploy", "-m", "esc.mf"], "escapes the data bundle"
    if case == "manifest absolute path":
        (root / "abs.mf").write_text(json.dumps({"url": "http://127.0.0.1:9/x", "path": "/etc/x"}))
        return ["train", "deploy", "-m", "abs.mf"], "escapes the data bundle"
    if case == "manifest naming cloud metadata":  # its answer: the server's cloud credentials
        url = "http://169.254.169.254/latest/meta-data/iam/security-credentials/"
        (root / "meta.mf").write_text(json.dumps({"url": url, "path": "f/creds"}))
        return ["train", "deploy", "-m", "meta.mf"], (
            "manifest line 1: http://169.254.169.254/latest/meta-data/iam/security-credentials/ "
            "leads to 169.254.169.254, a link-local address (cloud metadata), which kaos never fetches"
        )
    if case == "manifest naming cloud metadata in IPv6":
        url = "http://[::ffff:169.254.169.254]/latest/meta-data/"
        (root / "meta6.mf").write_text(json.dumps({"url": url, "path": "f/creds"}))
        return ["train", "deploy", "-m", "meta6.mf"], "a link-local address (cloud metadata)"
    if case == "data and manifest together":
        (root / "ok.mf").write_text(json.dumps({"url": "http://127.0.0.1:9/x", "path": "f/x"}))
        return ["train", "deploy", "-d", "data", "-m", "ok.mf"], "not both"
    if case == "nothing to deploy":
        return ["train", "deploy"], "nothing to deploy"
    if case == "bad memory size":
        return ["train", "deploy", "--memory", "lots"], "bad memory size"
    if case == "memory overflowing a float":
        return ["train", "deploy", "--memory", "1e400g"], "bad memory size"
    if case == "memory not a number":
        return ["train", "deploy", "--memory", "nang"], "bad memory size"
    if case == "cpu not a number":
        return ["train", "deploy", "--cpu", "nan"], "--cpu must be a number above 0"
    if case == "cpu infinite":
        return ["train", "deploy", "--cpu", "inf"], "--cpu must be a number above 0"
    if case == "symlink loop":
        src = Path(bundle(root, "s", GOOD_SRC, ("m/model/train",)))
        (src / "m" / "loop-a").symlink_to("loop-b")
        (src / "m" / "loop-b").symlink_to("loop-a")
        return ["train", "deploy", "-s", str(src)], "symlink loop"
    if case == "token with a trailing space":
        return ["init", "-e", "http://127.0.0.1:9", "-t", "a" * 40 + " "], "trailing whitespace"
    if case == "unknown template":
        return ["template", "get", "--name", "no-such-template"], "no template named"
    if case == "unknown model":
        return ["train", "provenance", "-m", "00000_00000"], "no model matches"
    if case == "workspace name with a query":
        return ["train", "list", "-w", f"{_name}?kind=build"], "no workspace named"
    if case == "model id climbing to another route":
        return ["train", "provenance", "-m", f"../../workspaces/{_name}"], "not a valid name or id"
    if case == "empty model id to diff":
        return ["train", "diff", "", "0"], "not a valid name or id"
    if case == "get into a file":
        (root / "a-file").write_text("x")
        return ["train", "get", "-i", "0", "-c", "-o", str(root / "a-file")], "cannot write into"
    if case == "template into a file":
        (root / "b-file").write_text("x")
        return ["template", "get", "--name", "diabetes", "-o", str(root / "b-file")], "b-file"
    if case == "refresh-env of an empty workspace":
        empty = f"empty-{uuid.uuid4().hex[:6]}"
        cli.ok("workspace", "create", "-n", empty)
        return ["train", "deploy", "--refresh-env", "-w", empty], "no source or data yet"
    if case == "finished job killed":
        job = cli.ok("train", "list", "--json").json()["training"][-1]["id"]
        return ["train", "kill", "-j", job], "already finished"
    raise AssertionError(case)


CLI_CASES = [
    "path does not exist", "empty bundle", "no Dockerfile", "no model/train", "train not executable",
    "two top-level folders", "symlink outside the bundle", "non-UTF-8 file name", "invalid grid JSON",
    "grid too large", "grid with an empty list", "grid with a non-scalar", "grid file missing",
    "unknown workspace", "unknown job id", "ambiguous job prefix", "index out of range",
    "unknown metric", "malformed manifest", "manifest path escaping", "manifest absolute path",
    "manifest naming cloud metadata", "manifest naming cloud metadata in IPv6",
    "data and manifest together", "nothing to deploy", "bad memory size", "unknown template",
    "unknown model", "finished job killed", "memory overflowing a float", "memory not a number",
    "cpu not a number", "cpu infinite", "symlink loop", "token with a trailing space",
    "workspace name with a query", "model id climbing to another route", "empty model id to diff",
    "get into a file", "template into a file", "refresh-env of an empty workspace",
]  # fmt: skip


@pytest.mark.parametrize("case", CLI_CASES)
def test_cli_bad_input(world, kaos_server, case):
    args, expected = make_args(world, case)
    cli_case(world, kaos_server, args, expected)


def _pack(digest: str, payload: bytes) -> bytes:
    builder = PackBuilder()
    builder.add(digest, KIND_BLOB, payload)
    return builder.seal().encode()[1]


def _forged_tree(path: str) -> tuple[str, bytes]:
    payload = b"x"
    tree = b"kaos-tree 1\n" + f"{hash_bytes(payload)} 1 - {path}\n".encode()
    return hash_bytes(tree), tree


NOT_UTF8_TREE = b"kaos-tree 1\n\xff\xfe not text\n"
BIG_BLOB = b"not a tree, just data\n" * 1000


def _lying_pack() -> bytes:
    """A one-byte file and a tree declaring it as 100 GB, in one upload."""
    builder = PackBuilder()
    builder.add(hash_bytes(b"x"), KIND_BLOB, b"x")
    tree = b"kaos-tree 1\n" + f"{hash_bytes(b'x')} {100 << 30} - features/x\n".encode()
    builder.add(hash_bytes(tree), KIND_BLOB, tree)
    return builder.seal().encode()[1]


STORED_FIRST = {  # cases that need objects in the store before the bad request
    "tree with .. path": [_forged_tree("../outside.txt")[1]],
    "tree header then invalid UTF-8": [NOT_UTF8_TREE],
    "deploy of a tree with invalid UTF-8": [NOT_UTF8_TREE],
    "a file read as a tree": [BIG_BLOB],
}


def api_cases(url: str, workspace: str) -> dict[str, tuple[str, str, dict, int, str]]:
    dotdot_digest, _ = _forged_tree("../outside.txt")
    deploy = f"/workspaces/{workspace}/deploy"
    return {
        "blob not matching its hash": ("POST", "/objects/packs", {"content": _pack(hash_bytes(b"a"), b"b")}, 422, "does not match"),
        "truncated upload": ("POST", "/objects/packs", {"content": _pack(hash_bytes(b"t" * 9000), b"t" * 9000)[:-40]}, 422, "malformed"),
        "not a digest": ("POST", "/objects/missing", {"json": {"digests": ["../etc"]}}, 422, "hex digest"),
        "unknown tree": ("GET", f"/trees/{'0' * 32}", {}, 404, "not in the store"),
        "tree with .. path": ("POST", f"/workspaces/{workspace}/deploy", {"json": {"data": dotdot_digest}}, 400, ""),
        "unknown data digest": ("POST", f"/workspaces/{workspace}/deploy", {"json": {"data": "1" * 32}}, 400, "never uploaded"),
        "bad workspace name": ("POST", "/workspaces", {"json": {"name": "../x"}}, 422, "invalid request"),
        "logs of unknown job": ("GET", "/jobs/0f0f0f0f0f/logs", {}, 404, "no job matches"),
        "fetch unknown object": ("POST", "/objects/fetch", {"json": {"digests": ["2" * 32]}}, 404, "not in the store"),
        "logs offset beyond 64 bits": ("GET", f"/jobs/{'abcabc' + '1' * 26}/logs?offset={2**64}", {}, 422, "invalid request"),
        "tree header then invalid UTF-8": ("GET", f"/trees/{hash_bytes(NOT_UTF8_TREE)}", {}, 400, "not valid UTF-8"),
        "deploy of a tree with invalid UTF-8": ("POST", deploy, {"json": {"data": hash_bytes(NOT_UTF8_TREE)}}, 400, "not valid UTF-8"),
        "a file read as a tree": ("GET", f"/trees/{hash_bytes(BIG_BLOB)}", {}, 400, "is not a tree"),
        "tree lying about sizes": ("POST", "/objects/packs", {"content": _lying_pack()}, 422, "lies about sizes"),
        "cpu NaN": ("POST", deploy, {"content": b'{"resources": {"cpu": NaN}}', "headers": {"content-type": "application/json"}}, 422, "invalid request"),
        "cpu beyond the bound": ("POST", deploy, {"json": {"resources": {"cpu": 1e9}}}, 422, "invalid request"),
        "gpu beyond the bound": ("POST", deploy, {"json": {"resources": {"gpu": 10**6}}}, 422, "invalid request"),
        "memory 1e400g": ("POST", deploy, {"json": {"resources": {"memory": "1e400g"}}}, 400, "bad memory size"),
        "JSON body over its cap": ("POST", "/workspaces", {"json": {"name": "x", "pad": "y" * (2 << 20)}}, 413, "larger than"),
        "deploy body over its cap": ("POST", deploy, {"json": {"grid": {"a": ["z" * 100] * (200_000)}}}, 413, "larger than"),
    }  # fmt: skip


API_CASES = list(api_cases("", "w"))


@pytest.mark.parametrize("case", API_CASES)
def test_api_bad_input(world, kaos_server, case):
    _cli, _root, workspace = world
    for stored in STORED_FIRST.get(case, []):  # e.g. a forged tree, for the deploy to find
        httpx.post(
            kaos_server.url + "/objects/packs", content=_pack(hash_bytes(stored), stored)
        ).raise_for_status()
    method, path, kwargs, status, expected = api_cases(kaos_server.url, workspace)[case]
    before = snapshot(kaos_server.home)
    response = httpx.request(method, kaos_server.url + path, timeout=30, **kwargs)
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert expected in detail and "\n" not in detail and "Traceback" not in detail
    assert snapshot(kaos_server.home) == before


def test_an_upload_declared_too_large_is_refused_before_it_is_read(world, kaos_server):
    import socket

    before = snapshot(kaos_server.home)
    with socket.create_connection(("127.0.0.1", kaos_server.port), timeout=30) as conn:
        conn.sendall(
            b"POST /objects/packs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/octet-stream\r\nContent-Length: 1099511627776\r\n\r\nKAOS"
        )
        status = conn.recv(4096).split(b"\r\n", 1)[0]
    assert b" 413 " in status
    assert snapshot(kaos_server.home) == before


def test_a_2gib_file_is_streamed_never_loaded_in_memory(world, kaos_server, tmp_path):
    import resource

    cli, _root, _name = world
    cli.ok("workspace", "create", "-n", f"big-{uuid.uuid4().hex[:6]}")  # data alone: nothing trains
    big = tmp_path / "data" / "features" / "huge.bin"
    big.parent.mkdir(parents=True)
    with open(big, "wb") as f:  # sparse: 2 GiB of zeros that take no disk
        f.truncate(2 << 30)
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result = cli.ok("train", "deploy", "-d", str(tmp_path / "data"), "--json")
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    assert result.json()["inputs"]["data"]
    assert peak_mib < 400, f"the CLI peaked at {peak_mib:.0f} MiB for a 2 GiB file"
    assert before / 1024 < 400


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://kaos:secret@db:5432/kaos", "postgresql://kaos:***@db:5432/kaos"),
        ("postgresql://kaos:p@ss@db/kaos", "postgresql://kaos:***@db/kaos"),
        ("postgresql://kaos:a/b:c@db/kaos", "postgresql://kaos:***@db/kaos"),
        (
            "postgresql://db/kaos?user=kaos&password=secret",
            "postgresql://db/kaos?user=kaos&password=***",
        ),
        ("postgresql://kaos@db/kaos?sslmode=require", "postgresql://kaos@db/kaos?sslmode=require"),
        ("/var/lib/kaos/catalog.db", "/var/lib/kaos/catalog.db"),
    ],
)
def test_a_catalog_url_is_shown_without_its_password(url, shown):
    from kaos.server.settings import without_password

    assert without_password(url) == shown


def test_one_token_given_to_two_users_is_refused_at_start(tmp_path):
    """The later line used to win silently: alice's token then logged her in as bob."""
    from kaos.errors import ConfigError
    from kaos.server.auth import TokenTable

    shared = "s" * 32
    tokens = tmp_path / "tokens"
    tokens.write_text(f"alice {shared}\nbob {'b' * 32}\n")
    assert TokenTable.from_settings(None, tokens).users == {"alice", "bob"}
    tokens.write_text(f"alice {shared}\nalice {shared} admin\nbob {shared}\n")
    with pytest.raises(ConfigError, match="the same token is given to alice and bob"):
        TokenTable.from_settings(None, tokens)
    tokens.write_text(f"bob {shared}\n")
    with pytest.raises(ConfigError, match="the same token is given to root and bob"):
        TokenTable.from_settings(f"root:{shared}", tokens)
