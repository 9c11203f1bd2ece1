"""The scan's reads: files are read on a few threads, yet digests, the order contents are handed
on (by inode) and the refusal of a file that changes while being read are as a one-thread
read's."""

import os
import threading
import time
from pathlib import Path

import pytest
import xxhash

from kaos.errors import BundleError
from kaos.store import NullStatCache, StatCache, scan_folder
from kaos.store import scan as scan_module
from kaos.store.ahead import in_order

OLD = 1_600_000_000
FILES = 700  # about 11 groups of 64: the threaded path


def many_files(root: Path, n: int = FILES) -> Path:
    for i in range(n):
        p = root / f"d{i % 7}" / f"f{i:04d}.txt"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(f"row {i}\n".encode() * (i % 50 + 1))
        os.utime(p, (OLD, OLD))
    return root


def test_a_threaded_scan_hands_on_every_file_in_inode_order_with_its_digest(tmp_path, kaos_home):
    root = many_files(tmp_path / "b")
    seen: list[tuple[str, bytes]] = []
    scanned = scan_folder(root, StatCache(kaos_home / "state.db"), on_content=_append(seen))
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
def test_a_file_changed_between_walk_and_threaded_read_is_refused(
    tmp_path, kaos_home, change, message
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


def test_every_batch_is_looked_up_before_the_first_is_recorded(tmp_path, kaos_home, monkeypatch):
    """A lookup scans inode ranges that the scan's own new rows fall in: asked after a record,
    it would fetch them all again (quadratic at a million files)."""
    root = many_files(tmp_path / "b")
    monkeypatch.setattr(scan_module, "_BATCH", 100)  # 7 batches
    cache = StatCache(kaos_home / "state.db")
    calls: list[str] = []
    lookup, record = cache.lookup, cache.record
    monkeypatch.setattr(cache, "lookup", lambda keys: calls.append("lookup") or lookup(keys))
    monkeypatch.setattr(cache, "record", lambda rows: calls.append("record") or record(rows))
    first = scan_folder(root, cache)
    assert calls == ["lookup"] * 7 + ["record"] * 7
    os.utime(root / "d0" / "f0000.txt", (OLD + 1, OLD + 1))  # one file changed
    (kaos_home / "scans").rename(kaos_home / "scans-gone")  # no snapshot: the database answers
    calls.clear()
    again = scan_folder(root, cache)
    assert calls == ["lookup"] * 7 + ["record"]  # one file read, one row recorded
    assert again.digest == first.digest
