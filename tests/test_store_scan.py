"""The scan's reads: files on disk are read on a few threads, files in the page cache on the
scan's own; either way digests, the order contents are handed on (by inode) and the refusal of
a file that changes while being read are as a one-thread read's."""

import os
import sqlite3
import threading
import time
from pathlib import Path

import pytest
import xxhash

from kaos.errors import BundleError
from kaos.store import NullStatCache, StatCache, ahead, scan_folder
from kaos.store import scan as scan_module
from kaos.store.ahead import in_order, read_ahead
from tests.page_cache import drop_from_page_cache, probe_tells_or_skip

OLD = 1_600_000_000
FILES = 700  # about 11 groups of 64: enough for threads


@pytest.fixture(params=["cached", "on disk", "probed"])
def reading(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Both ways a scan reads (on its own thread, or on reader threads), whatever the page
    cache holds, and the way the real probe picks; returns the names of the threads the
    files were read on."""
    if request.param != "probed":
        cached = request.param == "cached"
        monkeypatch.setattr(ahead, "in_page_cache", lambda files: cached)
    threads: list[str] = []
    hash_one = scan_module._hash_one

    def recorded(*args, **kwargs):
        threads.append(threading.current_thread().name)
        return hash_one(*args, **kwargs)

    monkeypatch.setattr(scan_module, "_hash_one", recorded)
    return threads


def _read_on_threads(threads: list[str]) -> bool:
    assert threads, "nothing was read"
    return all(name.startswith("kaos-read") for name in threads)


def many_files(root: Path, n: int = FILES) -> Path:
    for i in range(n):
        p = root / f"d{i % 7}" / f"f{i:04d}.txt"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(f"row {i}\n".encode() * (i % 50 + 1))
        os.utime(p, (OLD, OLD))
    return root


def test_a_scan_hands_on_every_file_in_inode_order_with_its_digest(
    tmp_path, kaos_home, reading, request
):
    root = many_files(tmp_path / "b")
    seen: list[tuple[str, bytes]] = []
    scanned = scan_folder(root, StatCache(kaos_home / "state.db"), on_content=_append(seen))
    way = request.node.callspec.id
    if way != "probed":
        assert _read_on_threads(reading) == (way == "on disk")
    assert len(seen) == FILES
    by_inode = sorted(_entries(scanned), key=lambda entry: (root / entry[0]).stat().st_ino)
    assert by_inode != _entries(scanned)  # the walk's order is another (folder by folder)
    for (path, digest, size, _x), (got, data) in zip(by_inode, seen, strict=True):
        content = (root / path).read_bytes()
        assert got == digest == xxhash.xxh3_128_hexdigest(content)
        assert data == content and size == len(content)
    again = scan_folder(root, NullStatCache())  # the same tree, every file read again
    assert again.digest == scanned.digest


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: p.write_bytes(p.read_bytes() + b"more"), "changed while scanning"),
        (lambda p: p.write_bytes(p.read_bytes()[:-1]), "changed while scanning"),
        (lambda p: p.unlink(), "removed while scanning"),
        (lambda p: (p.unlink(), os.mkfifo(p)), "changed while scanning"),  # never blocks
    ],
    ids=["grown", "shrunk", "removed", "fifo"],
)
def test_a_file_changed_between_walk_and_read_is_refused(
    tmp_path, kaos_home, change, message, reading
):
    root = many_files(tmp_path / "b")
    cache = StatCache(kaos_home / "state.db")
    victims: list[str] = []

    def change_late_files(names: str) -> None:  # after the walk, before any read
        paths = names.split("\n")
        late = (paths[-40], paths[-3])
        victims.extend(sorted(late, key=lambda rel: (root / rel).stat().st_ino))  # read order
        for rel in victims:
            change(root / rel)

    with pytest.raises(BundleError) as refused:
        scan_folder(root, cache, vet=change_late_files)
    assert refused.value.message == f"file {message}: {victims[0]}"  # the first read
    assert cache.last_scan(os.path.realpath(root)) is None  # nothing half-scanned is kept


def test_files_on_disk_are_read_on_threads_and_cached_ones_inline(tmp_path):
    probe_tells_or_skip(tmp_path)
    root = many_files(tmp_path / "b")
    files = sorted(str(p) for p in root.rglob("*.txt"))

    def read(path: str) -> tuple[str, bytes]:
        return threading.current_thread().name, Path(path).read_bytes()

    def size(path: str) -> int:
        return os.path.getsize(path)

    cached = list(read_ahead(read, files, size, str))
    assert {name for name, _ in cached} == {threading.current_thread().name}
    for path in files[len(files) // 2 :]:  # half on disk: not taken for a cached folder
        drop_from_page_cache(Path(path))
    from_disk = list(read_ahead(read, files, size, str))
    assert all(name.startswith("kaos-read") for name, _ in from_disk)
    assert [data for _, data in from_disk] == [data for _, data in cached]


def test_reading_ahead_stays_bounded_and_keeps_order():
    started: list[int] = []
    lock = threading.Lock()

    def work(i: int) -> int:
        with lock:
            started.append(i)
        time.sleep(0.001 * (i % 3))  # finishing out of order
        return i * i

    results = in_order(work, range(100), workers=3, ahead=4)
    assert next(results) == 0
    time.sleep(0.05)
    assert len(started) <= 5  # the first, and at most `ahead` more in flight
    assert list(results) == [i * i for i in range(1, 100)]


def test_the_first_error_in_order_is_raised_and_the_rest_dropped():
    ran: list[int] = []

    def work(i: int) -> int:
        ran.append(i)
        if i in (5, 7):
            raise ValueError(f"bad {i}")
        return i

    got: list[int] = []
    with pytest.raises(ValueError, match="bad 5"):
        for value in in_order(work, range(1000), workers=2, ahead=4):
            got.append(value)
    assert got == [0, 1, 2, 3, 4]
    assert max(ran) < 20  # nothing far beyond the failure was started


def _append(seen: list[tuple[str, bytes]]) -> scan_module.ContentHook:
    def hook(digest: str, data: bytes) -> None:
        seen.append((digest, data))

    return hook


def _entries(scanned: scan_module.ScannedFolder) -> list[tuple[str, str, int, bool]]:
    return [entry for batch in scanned.files() for entry in batch]


def test_a_scan_that_fails_keeps_the_rows_of_the_files_it_read(tmp_path, kaos_home, monkeypatch):
    """The rows are recorded after the reads; a scan cut short (a file changed, an upload
    failed) still records what it read, so the next scan does not read it again."""
    root = many_files(tmp_path / "b")
    monkeypatch.setattr(scan_module, "_BATCH", 100)  # the failure falls mid-batch
    monkeypatch.setattr(ahead, "in_page_cache", lambda files: True)  # read in order, here
    hash_one, read = scan_module._hash_one, []

    def failing(f, keep=False):
        if len(read) == 450:
            raise BundleError(f"file changed while scanning: {f.path}", "scan again")
        result = hash_one(f, keep)
        read.append(f.key)
        return result

    monkeypatch.setattr(scan_module, "_hash_one", failing)
    cache = StatCache(kaos_home / "state.db")
    with pytest.raises(BundleError, match="changed while scanning"):
        scan_folder(root, cache)
    cache.close()
    with sqlite3.connect(kaos_home / "state.db") as db:
        rows = db.execute("SELECT dev, ino, size, mtime_ns, ctime_ns FROM state").fetchall()
    assert sorted(rows) == sorted(read) and len(rows) == 450


def test_a_cache_that_cannot_record_does_not_hide_why_the_scan_failed(tmp_path, monkeypatch):
    root = many_files(tmp_path / "b", 20)

    class Unwritable(NullStatCache):
        def record(self, items):
            raise RuntimeError("the cache's own failure")

    def changed(f, keep=False):
        raise BundleError(f"file changed while scanning: {f.path}", "scan again")

    monkeypatch.setattr(scan_module, "_hash_one", changed)
    with pytest.raises(BundleError, match="changed while scanning"):
        scan_folder(root, Unwritable())


def test_every_batch_is_looked_up_before_and_recorded_after_the_reads(
    tmp_path, kaos_home, monkeypatch
):
    """A lookup scans inode ranges that the scan's own new rows fall in: asked after a record,
    it would fetch them all again (quadratic at a million files). The rows are recorded once,
    after the last read: SQLite's inserts on a thread beside the reads slowed them."""
    root = many_files(tmp_path / "b")
    monkeypatch.setattr(scan_module, "_BATCH", 100)  # 7 batches
    cache = StatCache(kaos_home / "state.db")
    calls: list[str] = []
    lookup, record, read_all = cache.lookup, cache.record, scan_module._read_all

    def recorded(items):
        rows = list(items)
        calls.append(f"record {len(rows)}")
        record(rows)

    def reads(files, on_content):
        calls.append("read")
        return read_all(files, on_content)

    monkeypatch.setattr(cache, "lookup", lambda keys: calls.append("lookup") or lookup(keys))
    monkeypatch.setattr(cache, "record", recorded)
    monkeypatch.setattr(scan_module, "_read_all", reads)
    first = scan_folder(root, cache)
    assert calls == ["lookup"] * 7 + ["read"] * 7 + ["record 700"]
    os.utime(root / "d0" / "f0000.txt", (OLD + 1, OLD + 1))  # one file changed
    (kaos_home / "scans").rename(kaos_home / "scans-gone")  # no snapshot: the database answers
    calls.clear()
    again = scan_folder(root, cache)
    assert calls == ["lookup"] * 7 + ["read", "record 1"]  # one file read, one row recorded
    assert again.digest == first.digest
    cache.close()
    with sqlite3.connect(kaos_home / "state.db") as db:
        assert db.execute("SELECT count(*) FROM state").fetchone() == (700,)
