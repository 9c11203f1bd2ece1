"""The page-cache probe that picks how a scan reads files: cachestat(2) where the kernel has
it, a one-byte read that may not wait where it has not."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kaos.store import pagecache
from kaos.store.pagecache import in_page_cache
from tests.page_cache import drop_from_page_cache, exact_probe_or_skip, probe_tells_or_skip


def written(path: Path, size: int) -> tuple[str, int]:
    path.write_bytes(os.urandom(size))
    return str(path), size


def test_the_probe_tells_cached_files_from_files_on_disk(tmp_path):
    probe_tells_or_skip(tmp_path)
    f = written(tmp_path / "f", 100_000)
    g = written(tmp_path / "g", 30_000)
    assert in_page_cache([f, g])  # just written
    drop_from_page_cache(tmp_path / "f")
    assert not in_page_cache([f])
    assert not in_page_cache([f])  # looking brought nothing back
    assert not in_page_cache([g, f]) and in_page_cache([g])  # every file must be cached
    fd = os.open(f[0], os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)  # no read-ahead: the head only
        os.pread(fd, 4096, 0)
    finally:
        os.close(fd)
    assert not in_page_cache([f])  # cached in part (its head) is on disk
    drop_from_page_cache(tmp_path / "f")
    fd = os.open(f[0], os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
        os.pread(fd, 1, f[1] - 1)
    finally:
        os.close(fd)
    assert not in_page_cache([f])  # and its end alone (which the read alone takes for all)
    Path(f[0]).read_bytes()
    assert in_page_cache([f, g])


def test_what_cannot_be_read_from_the_cache_is_never_taken_for_cached(tmp_path):
    probe_tells_or_skip(tmp_path)
    (tmp_path / "empty").touch()
    assert in_page_cache([(str(tmp_path / "empty"), 0)])  # nothing to wait for
    assert not in_page_cache([(str(tmp_path / "gone"), 10)])
    os.mkfifo(tmp_path / "fifo")
    assert not in_page_cache([(str(tmp_path / "fifo"), 0)])  # never blocks
    assert not in_page_cache([(str(tmp_path), 0)])  # a folder


def test_a_filesystem_that_cannot_read_without_waiting_is_never_taken_for_cached():
    count = exact_probe_or_skip()
    shm = Path("/dev/shm")  # tmpfs stands in for NFS and FUSE, which refuse RWF_NOWAIT too
    if not (os.path.ismount(shm) and os.access(shm, os.W_OK)):
        pytest.skip("no writable tmpfs at /dev/shm to write a file to")
    f = shm / f"kaos-test-{os.getpid()}"
    try:
        name, size = written(f, 50_000)
        fd = os.open(name, os.O_RDONLY)
        try:
            assert count(fd, size) == 13  # every page counted as cached
        finally:
            os.close(fd)
        assert not in_page_cache([(name, size)])  # yet its reads are not promised not to wait
    finally:
        f.unlink()


@pytest.fixture
def older_probe(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """The probe as on a kernel without cachestat(2), or where a filesystem cannot count."""

    def probe(files: list[tuple[str, int]]) -> bool:
        with monkeypatch.context() as patched:
            patched.setattr(pagecache, "_cachestat", lambda: None)
            return in_page_cache(files)

    if not hasattr(os, "RWF_NOWAIT"):
        pytest.skip("the older probe needs Linux's RWF_NOWAIT")
    if not probe([written(tmp_path / "written", 10_000)]):
        pytest.skip(f"the older probe cannot tell on {tmp_path}'s filesystem (tmpfs, NFS, FUSE)")
    return probe


def test_the_older_probe_tells_a_file_on_disk_though_not_every_time(tmp_path, older_probe):
    f = written(tmp_path / "f", 100_000)
    assert older_probe([f])
    on_disk = 0
    for _ in range(200):  # the page its read misses is read ahead, and may be back in time
        drop_from_page_cache(tmp_path / "f")
        on_disk += not older_probe([f])
    assert on_disk > 0
    Path(f[0]).read_bytes()
    assert older_probe([f])
    assert not older_probe([(str(tmp_path / "gone"), 10)])
    os.mkfifo(tmp_path / "fifo")
    assert not older_probe([(str(tmp_path / "fifo"), 0)])


def test_a_file_cachestat_refuses_is_asked_with_the_read_alone(tmp_path, monkeypatch):
    f = written(tmp_path / "f", 10_000)
    asked: list[int] = []

    def cannot_count(fd: int, length: int) -> int:
        asked.append(fd)
        raise PermissionError(1, "Operation not permitted")  # a file neither owned nor writable

    monkeypatch.setattr(pagecache, "_cachestat", lambda: cannot_count)
    answer = in_page_cache([f])
    assert asked
    monkeypatch.setattr(pagecache, "_cachestat", lambda: None)
    assert answer == in_page_cache([f])  # the older probe's, whatever it can tell here
