"""Uploads to a real server, and its answer to "which do you lack?" (in raw digests): packs
travel raw to a server on this machine (compressing costs more than loopback saves) and
zstd-compressed to any other; either way the server verifies them and a checkout gives back
the same bytes."""

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import xxhash

from kaos.client.http import KaosClient
from kaos.client.transport import Transport
from kaos.errors import InputError
from kaos.store.pack import COMP_NONE, COMP_ZSTD, ENTRY, index_from_pack, index_table

FILES = 300


def csv_folder(root: Path, salt: str) -> Path:
    """Compressible files (zstd makes them several times smaller), in two folders; `salt`
    makes them new to a server that has seen other tests' files."""
    for i in range(FILES):
        path = root / "data" / f"part{i % 2}" / f"rows{i:04d}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(salt + "".join(f"{i},{j},{(i * j) % 97}\n" for j in range(200)))
    return root / "data"


def stored_compressions(home: Path, before: set[str]) -> set[int]:
    """The compression flag of every object in the packs the server stored since `before`."""
    flags: set[int] = set()
    for name in set(os.listdir(home / "store" / "packs")) - before:
        data = (home / "store" / "packs" / name).read_bytes()
        table = index_table(name, index_from_pack(name, data))
        flags |= {comp for _d, _k, comp, *_rest in ENTRY.iter_unpack(table)}
    return flags


def packs(home: Path) -> set[str]:
    folder = home / "store" / "packs"
    return set(os.listdir(folder)) if folder.exists() else set()


@pytest.mark.parametrize(
    ("url", "level"),
    [
        ("http://127.0.0.1:8585", None),
        ("http://127.9.0.1:8585", None),
        ("http://localhost:8585", None),
        ("http://[::1]:8585", None),
        ("http://10.0.0.7:8585", 1),
        ("https://kaos.example.org", 1),
        ("https://127.example.org", 1),  # a remote name that starts like a loopback address
        ("http://127.0.0.1.example.org:8585", 1),
        ("http://[::ffff:10.0.0.7]:8585", 1),
    ],
)
def test_packs_are_compressed_unless_the_server_is_on_this_machine(url, level):
    assert Transport(url, {}, 1).loopback is (level is None)
    if level is not None:  # a remote server is not even asked
        assert KaosClient(url).pack_level == level


def test_a_server_on_this_machine_storing_in_s3_gets_compressed_packs(
    tmp_path, s3_endpoint, s3_bucket
):
    """Raw packs pay only into the server's own disk: into S3 they would be sent, and kept,
    at about three times the bytes."""
    import boto3

    from tests.conftest import KaosServer

    home = tmp_path / "home"
    home.mkdir()
    store = ["--store", f"s3://{s3_bucket}/kaos", "--s3-endpoint-url", s3_endpoint]
    server = KaosServer(home, store)
    client = KaosClient(server.url)
    try:
        assert client.health()["store_on_disk"] is False
        assert "inbox" not in client.health()  # only a store on the server's disk has one
        folder = csv_folder(tmp_path, "s3\n")
        report = client.push_folder(folder)
        assert report.bytes_uploaded < sum(p.stat().st_size for p in folder.rglob("*.csv")) / 2
        s3 = boto3.client("s3", endpoint_url=s3_endpoint)
        listed = s3.list_objects_v2(Bucket=s3_bucket, Prefix="kaos/packs/")["Contents"]
        flags: set[int] = set()
        for item in listed:
            name = item["Key"].rsplit("/", 1)[1]
            data = s3.get_object(Bucket=s3_bucket, Key=item["Key"])["Body"].read()
            table = index_table(name, index_from_pack(name, data))
            flags |= {comp for _d, _k, comp, *_rest in ENTRY.iter_unpack(table)}
        assert COMP_ZSTD in flags
        out = client.checkout(report.tree.digest, tmp_path / "out")
        for path in folder.rglob("*.csv"):
            assert (out / path.relative_to(folder)).read_bytes() == path.read_bytes()
    finally:
        client.close()
        server.stop()


@pytest.mark.parametrize("remote", [False, True], ids=["loopback-raw", "remote-zstd"])
def test_a_pushed_folder_is_stored_as_sent_and_checks_out_identical(
    kaos_server, tmp_path, monkeypatch, remote
):
    folder = csv_folder(tmp_path, f"{remote}\n")
    raw_bytes = sum(p.stat().st_size for p in folder.rglob("*.csv"))
    if remote:  # the same real server, taken for one across a network
        monkeypatch.setattr(Transport, "loopback", property(lambda _self: False))
    before = packs(kaos_server.home)
    client = KaosClient(kaos_server.url)
    try:
        report = client.push_folder(folder)
        assert report.files_sent == FILES
        if remote:
            assert stored_compressions(kaos_server.home, before) == {COMP_ZSTD}
            assert report.bytes_uploaded < raw_bytes / 2
        else:
            assert stored_compressions(kaos_server.home, before) == {COMP_NONE}
            assert report.bytes_uploaded > raw_bytes
        out = client.checkout(report.tree.digest, tmp_path / "out")
    finally:
        client.close()
    for path in folder.rglob("*.csv"):
        assert (out / path.relative_to(folder)).read_bytes() == path.read_bytes()
    again = KaosClient(kaos_server.url)
    try:
        assert again.push_folder(folder).files_sent == 0  # a second push sends nothing
    finally:
        again.close()


def test_missing_is_asked_in_raw_digests_and_answers_as_json_did(kaos_server, tmp_path):
    folder = csv_folder(tmp_path, "asked\n")
    client = KaosClient(kaos_server.url)
    try:
        stored = {entry.digest for entry in client.push_folder(folder).tree.entries}
        unknown = {xxhash.xxh3_128_hexdigest(f"never stored {i}".encode()) for i in range(5)}
        assert client.missing(stored | unknown) == unknown
        json_answer = client._json(
            "POST", "/objects/missing", json={"digests": sorted(stored | unknown)}
        )
        assert set(json_answer["missing"]) == unknown
        with pytest.raises(InputError, match="not a digest"):
            client.missing(["abc"])
    finally:
        client.close()


class OlderServer(BaseHTTPRequestHandler):
    """A server from before `POST /objects/missing/raw`: it answers the JSON route only."""

    paths: list[str] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        OlderServer.paths.append(self.path)
        if self.path != "/objects/missing":
            self.send_error(404)
            return
        asked = json.loads(body)["digests"]
        answer = json.dumps({"missing": asked[::2]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: object) -> None:
        return None


def test_a_server_without_the_raw_route_is_asked_in_json_from_then_on():
    server = ThreadingHTTPServer(("127.0.0.1", 0), OlderServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    client = KaosClient(f"http://127.0.0.1:{server.server_address[1]}")
    asked = sorted(xxhash.xxh3_128_hexdigest(str(i).encode()) for i in range(6))
    try:
        assert client.missing(asked) == set(asked[::2])
        assert client.missing(asked) == set(asked[::2])
    finally:
        client.close()
        server.shutdown()
    assert OlderServer.paths == ["/objects/missing/raw", "/objects/missing", "/objects/missing"]
