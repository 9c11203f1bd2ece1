"""The inbox: a client on the server's machine leaves packs as files in the store's inbox
folder, and the server verifies and adopts them (kaos/store/inbox.py). It must store exactly
what an HTTP upload stores, never touch a file outside the inbox through a name in it, leave
nothing behind, and fall back to HTTP whenever the server cannot see the client's file."""

from __future__ import annotations

import array
import contextlib
import ctypes
import itertools
import mmap
import os
import threading
import time
from pathlib import Path

import httpx
import pytest

from kaos.client.http import KaosClient
from kaos.client.inbox import rest_after, write_all
from kaos.errors import ServerError
from kaos.net import is_loopback
from kaos.store.backends.local import LocalBackend
from kaos.store.cas import ContentStore
from kaos.store.hashing import hash_bytes
from kaos.store.inbox import Delivery, open_inbox
from kaos.store.pack import KIND_BLOB, PackBuilder
from tests.conftest import KaosServer

FILES = 120


def folder_of_files(root: Path, salt: str) -> Path:
    for i in range(FILES):
        path = root / "data" / f"part{i % 3}" / f"f{i:04d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{salt} {i}\n" * (i + 1))
    return root / "data"


def one_pack(content: bytes) -> tuple[str, bytes]:
    builder = PackBuilder()
    builder.add(hash_bytes(content), KIND_BLOB, content)
    pack_id, data, _index = builder.seal().encode()
    return pack_id, data


class Spy:
    """Records the routes a client asks (the real requests still go out)."""

    def __init__(self, client: KaosClient) -> None:
        self.paths: list[str] = []
        send = client._send

        def recorded(method: str, path: str, **kwargs):
            self.paths.append(path)
            return send(method, path, **kwargs)

        client._send = recorded  # type: ignore[method-assign]


def push(server_url: str, folder: Path, tmp_path: Path, name: str) -> tuple[str, list[str]]:
    """Push `folder`, check it out again; returns its tree digest and the routes used."""
    client = KaosClient(server_url)
    spy = Spy(client)
    try:
        report = client.push_folder(folder)
        out = client.checkout(report.tree.digest, tmp_path / name)
        assert client.verify_store()["ok"] is True
    finally:
        client.close()
    for path in folder.rglob("*.txt"):
        assert (out / path.relative_to(folder)).read_bytes() == path.read_bytes()
    return report.tree.digest, spy.paths


@pytest.fixture
def http_only_server(tmp_path):
    home = tmp_path / "http-home"
    home.mkdir()
    server = KaosServer(home, env={"KAOS_INBOX": "off"})
    yield server
    server.stop()


def test_packs_through_the_inbox_store_what_http_uploads_store(
    kaos_server, http_only_server, tmp_path
):
    folder = folder_of_files(tmp_path, f"same {time.time_ns()}")
    inbox = Path(httpx.get(kaos_server.url + "/health").json()["inbox"])
    assert inbox == kaos_server.home / "store" / "inbox" and inbox.is_dir()
    assert "inbox" not in httpx.get(http_only_server.url + "/health").json()

    tree, routes = push(kaos_server.url, folder, tmp_path, "out-inbox")
    assert "/objects/packs/inbox" in routes and "/objects/packs" not in routes
    assert os.listdir(inbox) == []
    same, routes = push(http_only_server.url, folder, tmp_path, "out-http")
    assert "/objects/packs" in routes and "/objects/packs/inbox" not in routes
    assert same == tree
    sent = set(os.listdir(http_only_server.home / "store" / "packs"))
    assert sent <= set(os.listdir(kaos_server.home / "store" / "packs"))  # the very same packs
    answer = httpx.post(http_only_server.url + "/objects/packs/inbox", json={"name": "x"})
    assert answer.status_code == 404 and "off" in answer.json()["detail"]


def resident_pages(path: Path) -> int:
    """How many of the file's pages are in the page cache (mincore on a mapping that touches
    none of them)."""
    libc = ctypes.CDLL(None, use_errno=True)
    size = path.stat().st_size
    pages = -(-size // mmap.PAGESIZE)
    vector = (ctypes.c_ubyte * pages)()
    with open(path, "rb") as f, mmap.mmap(f.fileno(), size, access=mmap.ACCESS_COPY) as mapped:
        start = ctypes.c_void_p(ctypes.addressof(ctypes.c_char.from_buffer(mapped)))
        try:
            if libc.mincore(start, ctypes.c_size_t(size), vector) != 0:
                raise OSError(ctypes.get_errno(), "mincore")
        finally:
            del start  # the buffer's export ends before the mapping closes
    return sum(byte & 1 for byte in vector)


@pytest.mark.parametrize("route", ["inbox", "http"])
def test_a_stored_data_pack_leaves_the_page_cache_and_a_small_one_stays(
    route, kaos_server, http_only_server, tmp_path
):
    """A data set's packs are not kept in the page cache once durable (their pages are reused
    for the next pack); a small pack, read back at once by a build, is."""
    server = kaos_server if route == "inbox" else http_only_server
    packs = server.home / "store" / "packs"
    large, small = tmp_path / "large", tmp_path / "small"
    for i in range(48):  # 3 MiB in one pack
        (large / f"{i:02d}.bin").parent.mkdir(exist_ok=True)
        (large / f"{i:02d}.bin").write_bytes(os.urandom(64 << 10))
    (small / "a.txt").parent.mkdir()
    (small / "a.txt").write_bytes(os.urandom(200 << 10))
    sizes = {}
    client = KaosClient(server.url)
    try:
        for folder in (large, small):
            before = set(os.listdir(packs)) if packs.exists() else set()
            client.push_folder(folder)
            (new,) = [packs / name for name in set(os.listdir(packs)) - before]
            sizes[folder.name] = new.stat().st_size, resident_pages(new)
    finally:
        client.close()
    (large_size, large_cached), (small_size, small_cached) = sizes["large"], sizes["small"]
    assert large_size > 3 << 20 and large_cached == 0
    assert small_size < 1 << 20 and small_cached > 0


def test_names_outside_the_inbox_links_and_hard_links_are_refused_untouched(kaos_server, tmp_path):
    inbox = kaos_server.home / "store" / "inbox"
    victim = tmp_path / "victim.pack"  # a valid pack, so only the name checks can refuse it
    pack_id, data = one_pack(os.urandom(5000))
    victim.write_bytes(data)
    linked, hard = f"{pack_id}-{'1' * 16}.pack", f"{pack_id}-{'2' * 16}.pack"
    os.symlink(victim, inbox / linked)
    os.link(victim, inbox / hard)
    fifo, folder = f"{pack_id}-{'7' * 16}.pack", f"{pack_id}-{'8' * 16}.pack"
    os.mkfifo(inbox / fifo)
    (inbox / folder).mkdir()
    url = kaos_server.url + "/objects/packs/inbox"
    for name, status, words in [
        ("../victim.pack", 400, "not an inbox file name"),
        (str(victim), 400, "not an inbox file name"),
        (f"../{pack_id}-{'0' * 16}.pack", 400, "not an inbox file name"),
        (linked, 400, "symbolic link"),
        (hard, 400, "hard link"),
        (fifo, 400, "not a regular file"),
        (folder, 400, "not a regular file"),
        (f"{pack_id}-{'3' * 16}.pack", 404, "no "),
    ]:
        answer = httpx.post(url, json={"name": name})
        assert answer.status_code == status, (name, answer.text)
        assert words in answer.json()["detail"] and answer.json()["fix"]
    assert victim.read_bytes() == data and os.stat(victim).st_nlink == 1
    assert os.listdir(inbox) == [folder]  # the links' own names went, nothing else
    (inbox / folder).rmdir()
    assert not (kaos_server.home / "store" / "packs" / pack_id).exists()


def test_a_corrupt_pack_in_the_inbox_is_refused_removed_and_nothing_stored(kaos_server):
    inbox = kaos_server.home / "store" / "inbox"
    content = os.urandom(20_000)
    pack_id, data = one_pack(content)
    bad = bytearray(data)
    bad[len(bad) // 3] ^= 1
    name = f"{pack_id}-{'4' * 16}.pack"
    (inbox / name).write_bytes(bytes(bad))
    answer = httpx.post(kaos_server.url + "/objects/packs/inbox", json={"name": name})
    assert answer.status_code == 422, answer.text
    assert os.listdir(inbox) == []
    client = KaosClient(kaos_server.url)
    try:
        assert client.missing([hash_bytes(content)]) == {hash_bytes(content)}
        (inbox / name).write_bytes(data)  # the intact pack under that name is taken
        answer = httpx.post(kaos_server.url + "/objects/packs/inbox", json={"name": name})
        assert answer.status_code == 201 and answer.json() == {"stored": 1}
        assert client.missing([hash_bytes(content)]) == set()
    finally:
        client.close()
    assert os.listdir(inbox) == []
    assert (kaos_server.home / "store" / "packs" / pack_id).read_bytes() == data


@pytest.mark.parametrize("seen_as", ["another-folder", "no-folder"])
def test_an_inbox_the_client_cannot_share_falls_back_to_http(
    kaos_server, tmp_path, monkeypatch, seen_as
):
    """A client in another mount namespace sees another folder (or none) at the inbox's
    path: the server answers 404, the pack goes over HTTP, and nothing is left behind."""
    elsewhere = tmp_path / "elsewhere"
    if seen_as == "another-folder":
        elsewhere.mkdir()
    monkeypatch.setattr(KaosClient, "_inbox", lambda self: None if self._inbox_off else elsewhere)
    folder = folder_of_files(tmp_path, f"{seen_as} {time.time_ns()}")
    _tree, routes = push(kaos_server.url, folder, tmp_path, "out")
    assert "/objects/packs" in routes
    asked = routes.count("/objects/packs/inbox")  # by the first packs only, then HTTP
    assert asked >= 1 if seen_as == "another-folder" else asked == 0
    assert not elsewhere.exists() or os.listdir(elsewhere) == []
    assert os.listdir(kaos_server.home / "store" / "inbox") == []


def test_a_client_interrupted_or_refused_leaves_no_file(kaos_server, tmp_path, monkeypatch):
    inbox = kaos_server.home / "store" / "inbox"
    client = KaosClient(kaos_server.url)

    send = KaosClient._send

    def interrupted(self, method, path, **kwargs):
        if path != "/objects/packs/inbox":
            return send(self, method, path, **kwargs)
        assert os.listdir(inbox)  # the pack is there when the server is asked
        raise KeyboardInterrupt

    monkeypatch.setattr(KaosClient, "_send", interrupted)
    _id, data = one_pack(os.urandom(3000))
    try:
        with pytest.raises(KeyboardInterrupt):
            client.store_pack_pieces(_id, [memoryview(data)], b"")
        monkeypatch.undo()
        bad = bytearray(data)
        bad[20] ^= 1
        with pytest.raises(ServerError) as refused:
            client.store_pack_pieces(hash_bytes(bytes(bad)), [bytes(bad)], b"")
        assert refused.value.status == 422
    finally:
        client.close()
    assert os.listdir(inbox) == []


def test_stale_inbox_files_are_swept_and_never_taken_for_packs(tmp_path):
    root = tmp_path / "store"
    store = ContentStore(LocalBackend(root))
    store.put_bytes(b"kept")
    inbox = open_inbox(root)
    pack_id, data = one_pack(os.urandom(1000))
    stale, fresh = inbox / f"{pack_id}-{'5' * 16}.pack", inbox / f"{pack_id}-{'6' * 16}.pack"
    for path in (stale, fresh):
        path.write_bytes(data)
    hours_ago = time.time() - 7200
    os.utime(stale, (hours_ago, hours_ago))
    report = store.verify()
    assert report.ok and report.packs == 1  # inbox files are not packs
    assert store.gc([], dry_run=True).temp_files_removed == 1 and stale.exists()
    assert store.gc([]).temp_files_removed == 1
    assert not stale.exists() and fresh.exists()
    os.utime(fresh, (hours_ago, hours_ago))
    os.chmod(inbox, 0o777)  # made open to every user by hand
    open_inbox(root)  # a server starting sweeps too, and closes it to other users again
    assert os.listdir(inbox) == [] and os.stat(inbox).st_mode & 0o777 == 0o700


@pytest.mark.parametrize(
    ("host", "local"),
    [("127.0.0.1", True), ("127.3.0.1", True), ("::1", True), ("::ffff:127.0.0.1", True),
     ("10.0.0.7", False), ("192.0.2.2", False), ("testclient", False), (None, False)],
)  # fmt: skip
def test_only_clients_on_a_loopback_address_are_told_the_inbox(host, local):
    assert is_loopback(host) is local


def test_short_writes_resume_where_they_stopped():
    pieces: list[bytes | memoryview] = [b"abc", b"", b"defg", b"h"]
    assert rest_after(pieces, 0) == pieces
    assert [bytes(p) for p in rest_after(pieces, 2)] == [b"c", b"", b"defg", b"h"]
    assert [bytes(p) for p in rest_after(pieces, 5)] == [b"fg", b"h"]
    assert rest_after(pieces, 8) == []


def test_write_all_writes_every_byte_in_order_through_short_writes(tmp_path, monkeypatch):
    """More pieces than one writev takes, and writes that stop after two pieces or halfway
    through one: the file is still every piece, in order, once."""
    pieces: list[bytes | memoryview] = [os.urandom(n) for n in (5, 0, 3000, 1, 7)] * 300
    real, calls = os.writev, itertools.count()

    def short_writev(fd: int, buffers: list) -> int:
        first = memoryview(buffers[0])
        if next(calls) % 3 == 0 and len(first) > 1:
            return real(fd, [first[: len(first) // 2]])
        return real(fd, buffers[:2])

    monkeypatch.setattr(os, "writev", short_writev)
    with open(tmp_path / "out", "wb") as f:
        write_all(f.fileno(), pieces)
    monkeypatch.undo()
    assert (tmp_path / "out").read_bytes() == b"".join(pieces)
    assert next(calls) > len(pieces) // 2  # the writes were short


def test_write_all_counts_bytes_not_items_of_a_wider_view(tmp_path):
    """A view of 4-byte items has len() 3 and 12 bytes: all 12 are written, and it ends."""
    wide = memoryview(array.array("I", [1, 2, 3]))
    with open(tmp_path / "out", "wb") as f:
        write_all(f.fileno(), [wide, b"end"])
    assert (tmp_path / "out").read_bytes() == wide.tobytes() + b"end"


def big_pack() -> tuple[str, bytes]:
    """A pack of 48 MB: its check lasts long enough to be interrupted."""
    builder = PackBuilder()
    for _ in range(12):
        content = os.urandom(4 << 20)
        builder.add(hash_bytes(content), KIND_BLOB, content)
    pack_id, data, _index = builder.seal().encode()
    return pack_id, data


def adopt_in_background(server: KaosServer, name: str) -> tuple[threading.Thread, list]:
    answers: list[httpx.Response] = []
    url = server.url + "/objects/packs/inbox"
    thread = threading.Thread(
        target=lambda: answers.append(httpx.post(url, json={"name": name}, timeout=60))
    )
    thread.start()
    return thread, answers


def wait_until_open(pid: int, name: str) -> None:
    """Until the server process holds `name` open (it is checking it)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            fds = f"/proc/{pid}/fd"
            if any(os.readlink(f"{fds}/{fd}").endswith(name) for fd in os.listdir(fds)):
                return
    raise AssertionError(f"the server never opened {name}")


def test_a_pack_truncated_while_the_server_checks_it_neither_ends_it_nor_gets_stored(
    kaos_server,
):
    """The server maps the file it checks: a same-user process truncating it then used to
    end the server (SIGBUS). Now the truncate waits for the server, which refuses the file."""
    inbox = kaos_server.home / "store" / "inbox"
    pack_id, data = big_pack()
    name = f"{pack_id}-{'5' * 16}.pack"
    (inbox / name).write_bytes(data)
    thread, answers = adopt_in_background(kaos_server, name)
    wait_until_open(kaos_server.proc.pid, name)
    with contextlib.suppress(FileNotFoundError):  # adopted before the truncate began
        os.truncate(inbox / name, 100)
    thread.join(60)
    assert kaos_server.proc.poll() is None, "the server died"
    [answer] = answers
    stored = kaos_server.home / "store" / "packs" / pack_id
    if answer.status_code == 201:
        assert stored.read_bytes() == data
    else:
        assert answer.status_code == 422, answer.text
        assert "opened to be changed" in answer.json()["detail"] and not stored.exists()
    assert os.listdir(inbox) == []
    assert httpx.get(kaos_server.url + "/health").status_code == 200


def test_a_pack_still_open_for_writing_is_stored_as_read_not_as_changed_after(kaos_server):
    """A file someone still holds open for writing cannot be leased: the server stores the
    bytes it read and checked, as for an upload, and later writes do not reach the store."""
    inbox = kaos_server.home / "store" / "inbox"
    pack_id, data = one_pack(os.urandom(50_000))
    name = f"{pack_id}-{'6' * 16}.pack"
    with open(inbox / name, "wb") as writer:
        writer.write(data)
        writer.flush()
        answer = httpx.post(kaos_server.url + "/objects/packs/inbox", json={"name": name})
        assert answer.status_code == 201 and answer.json() == {"stored": 1}, answer.text
        writer.truncate(10)
        writer.write(b"changed")
    assert os.listdir(inbox) == []
    assert (kaos_server.home / "store" / "packs" / pack_id).read_bytes() == data


def assert_no_inbox(server: KaosServer, tmp_path: Path, name: str, why: str) -> None:
    """A server without a usable inbox tells no client of one, answers an adopt with 404
    saying `why`, and a push goes over HTTP."""
    assert "inbox" not in httpx.get(server.url + "/health").json()
    answer = httpx.post(server.url + "/objects/packs/inbox", json={"name": name})
    assert answer.status_code == 404 and why in answer.json()["detail"]
    folder = folder_of_files(tmp_path, f"without {time.time_ns()}")
    _tree, routes = push(server.url, folder, tmp_path, "out")
    assert "/objects/packs" in routes and "/objects/packs/inbox" not in routes


def test_an_inbox_replaced_by_a_link_is_neither_used_nor_swept(tmp_path):
    """A store whose inbox is a symbolic link to another folder (made before the server
    starts): the server tells no client of it, adopts nothing through it, sweeps nothing
    there (its start-up sweep would remove that folder's old files), and packs go over HTTP."""
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    (home / "store").mkdir(parents=True)
    elsewhere.mkdir()
    os.symlink(elsewhere, home / "store" / "inbox")
    old = elsewhere / "notes.txt"
    old.write_text("keep me")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    pack_id, data = one_pack(os.urandom(5000))
    name = f"{pack_id}-{'9' * 16}.pack"
    (elsewhere / name).write_bytes(data)
    server = KaosServer(home)
    try:
        assert_no_inbox(server, tmp_path, name, "symbolic link")
    finally:
        server.stop()
    assert sorted(os.listdir(elsewhere)) == sorted([name, "notes.txt"])
    assert old.read_text() == "keep me" and (elsewhere / name).read_bytes() == data


@pytest.mark.parametrize(
    "proxied",
    [{"Forwarded": "for=192.0.2.60"}, {"X-Real-IP": "192.0.2.60"},
     {"X-Forwarded-For": "192.0.2.60"}],
)  # fmt: skip
def test_a_request_through_a_reverse_proxy_is_neither_told_the_inbox_nor_adopted(
    kaos_server, proxied
):
    """A proxy on this machine connects from a loopback address for a client anywhere."""
    assert "inbox" in httpx.get(kaos_server.url + "/health").json()
    assert "inbox" not in httpx.get(kaos_server.url + "/health", headers=proxied).json()
    inbox = kaos_server.home / "store" / "inbox"
    pack_id, data = one_pack(os.urandom(3000))
    name = f"{pack_id}-{'a' * 16}.pack"
    (inbox / name).write_bytes(data)
    url = kaos_server.url + "/objects/packs/inbox"
    answer = httpx.post(url, json={"name": name}, headers=proxied)
    assert answer.status_code == 404 and "machine" in answer.json()["detail"]
    assert not (kaos_server.home / "store" / "packs" / pack_id).exists()
    (inbox / name).unlink()


def test_a_closed_file_is_mapped_under_a_lease_and_one_open_for_writing_is_read(tmp_path):
    """The client closes its file before the server adopts it: that one is mapped, not
    copied (the inbox's point); only a file still open for writing is read into memory."""
    folder = open_inbox(tmp_path)
    pack_id, data = one_pack(os.urandom(4000))
    name = f"{pack_id}-{'c' * 16}.pack"
    (folder / name).write_bytes(data)
    with Delivery(folder, name, 1 << 20) as delivery:
        assert delivery.copy is None and bytes(delivery.view) == data and delivery.untouched()
    assert not (folder / name).exists()  # not adopted: removed
    with open(folder / name, "wb") as writer:
        writer.write(data)
        writer.flush()
        with Delivery(folder, name, 1 << 20) as delivery:
            assert delivery.copy == data


def test_a_file_where_the_inbox_goes_leaves_the_server_starting_without_one(tmp_path):
    """A file (not a folder) named `inbox` in the store: the server used to fail to start."""
    home = tmp_path / "home"
    (home / "store").mkdir(parents=True)
    (home / "store" / "inbox").write_text("mine")
    server = KaosServer(home)
    try:
        pack_id, _data = one_pack(os.urandom(100))
        assert_no_inbox(server, tmp_path, f"{pack_id}-{'d' * 16}.pack", "no inbox")
    finally:
        server.stop()
    assert (home / "store" / "inbox").read_text() == "mine"
    assert "kaos: no inbox (File exists" in (tmp_path / f"server-{server.port}.log").read_text()
