"""The walk split with a forked child gives exactly the serial walk: the same paths in the same
order, the same stat records, ignores and special files, the same error for a bad entry in
either half, and the same snapshot and tree digest."""

import contextlib
import os
import sys
import threading
from pathlib import Path

import pytest

from kaos.errors import BundleError, UnsafePathError
from kaos.store import StatCache, scan_folder
from kaos.store import walk as walk_module
from kaos.store.walk import split, still_to_walk, walk_folder

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the split walk forks on Linux")
FOLDERS = 6


class Forks:
    """Counts the forks the walk makes (the child is real; the count is the parent's). The
    walk forks only while its process runs no other thread; the test session may run one (a
    moto server), so the check is passed here: the child only walks and writes, it takes no
    lock such a thread could hold."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, safe: bool = True) -> None:
        self.count = 0
        real_fork = os.fork

        def fork() -> int:
            self.count += 1
            return real_fork()

        monkeypatch.setattr(os, "fork", fork)
        if safe:
            monkeypatch.setattr(walk_module, "can_fork", lambda: True)


def data_bundle(root: Path) -> Path:
    """One top folder, several folders below it (where the walk splits), nested folders, an
    executable, a symlink inside, a fifo, ignored files and folders."""
    top = root / "samples"
    for d in range(FOLDERS):
        for f in range(5):
            path = top / f"part{d}" / ("deep/" if f == 4 else "") / f"f{f}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"{d}/{f}")
        (top / f"part{d}" / "skip.tmp").write_text("ignored")
        (top / f"part{d}" / "__pycache__").mkdir()
        (top / f"part{d}" / "__pycache__" / "x.pyc").write_text("ignored")
    (top / "part1" / "run.sh").write_text("#!/bin/sh\n")
    (top / "part1" / "run.sh").chmod(0o755)
    (top / "part2" / "link.txt").symlink_to("f0.txt")
    os.mkfifo(top / "part3" / "pipe")
    (top / "part4" / "logs").mkdir()
    (top / "part4" / "logs" / "a.log").write_text("ignored")
    (root / ".kaosignore").write_text("*.tmp\nlogs/\n")
    return root


def test_the_split_walk_is_the_serial_walk(tmp_path, monkeypatch):
    root = data_bundle(tmp_path / "b")
    forks = Forks(monkeypatch)
    serial = walk_folder(root)
    assert forks.count == 0
    parallel = walk_folder(root, split_from=0)
    assert forks.count == 1
    assert parallel.names == serial.names  # the same order, not just the same set
    assert parallel.stats == serial.stats
    assert parallel.special == serial.special == ("samples/part3/pipe",)
    assert len(serial.paths) == FOLDERS * 5 + 3  # + .kaosignore, run.sh, link.txt
    assert not [p for p in serial.paths if p.endswith((".tmp", ".pyc", ".log"))]


def test_the_child_takes_the_folders_the_serial_walk_reaches_last():
    pending = [(f"/r/{i}", f"{i}/") for i in range(5)]
    theirs, mine = split(pending)
    assert theirs + mine == pending  # the serial walk pops from the end: mine first, then theirs
    assert len(theirs) == 2


@pytest.mark.parametrize(
    ("expect", "files", "folders", "pending", "rest"),
    [
        (100_000, 0, 2, 100, 100_000),  # the last snapshot says, before any file is seen
        (0, 0, 2, 100, 0),  # nothing known, nothing seen: no split yet
        (0, 1_000, 3, 97, 97 * 1_000 / 3),  # from the files per folder so far
        (50, 1_000, 3, 97, 97 * 1_000 / 3),  # a folder grown since its snapshot
        (100_000, 99_000, 90, 10, 11_000),
    ],
)
def test_the_files_still_to_walk_are_estimated_from_the_snapshot_or_the_walk_so_far(
    expect, files, folders, pending, rest
):
    assert still_to_walk(expect, files, folders, pending) == pytest.approx(rest)


def refused_as_serially(
    root: Path, monkeypatch: pytest.MonkeyPatch, error: type[Exception], match: str | None = None
) -> str:
    """The split walk (one fork) refuses `root` with the serial walk's exact error; returns it."""
    with pytest.raises(error, match=match) as serial:
        walk_folder(root)
    forks = Forks(monkeypatch)
    with pytest.raises(error, match=match) as parallel:
        walk_folder(root, split_from=0)
    assert forks.count == 1
    assert str(parallel.value) == str(serial.value)
    return str(parallel.value)


@pytest.mark.parametrize("bad", range(FOLDERS))
def test_an_escaping_symlink_in_either_half_is_refused_as_serially(tmp_path, monkeypatch, bad):
    root = data_bundle(tmp_path / "b")
    (tmp_path / "secret").write_text("s")
    (root / "samples" / f"part{bad}" / "leak").symlink_to(tmp_path / "secret")
    assert f"part{bad}/leak" in refused_as_serially(root, monkeypatch, UnsafePathError)


@pytest.mark.parametrize("bad", range(FOLDERS))
def test_a_bad_name_in_either_half_is_refused_as_serially(tmp_path, monkeypatch, bad):
    root = data_bundle(tmp_path / "b")
    (root / "samples" / f"part{bad}" / "two\nlines").write_text("x")
    refused_as_serially(root, monkeypatch, BundleError, "line break")


def test_two_bad_entries_raise_the_one_the_serial_walk_meets_first(tmp_path, monkeypatch):
    root = data_bundle(tmp_path / "b")
    for d in range(FOLDERS):
        (root / "samples" / f"part{d}" / "dangling").symlink_to("nowhere")
    refused_as_serially(root, monkeypatch, BundleError, "broken symlink")


def test_a_child_that_dies_leaves_the_parent_to_walk_its_part(tmp_path, monkeypatch):
    root = data_bundle(tmp_path / "b")
    serial = walk_folder(root)
    forks = Forks(monkeypatch)
    monkeypatch.setattr(walk_module._Walker, "part", lambda self, pending: os._exit(3))
    parallel = walk_folder(root, split_from=0)
    assert forks.count == 1
    assert parallel == serial


def test_a_child_that_writes_garbage_leaves_the_parent_to_walk_its_part(tmp_path, monkeypatch):
    root = data_bundle(tmp_path / "b")
    serial = walk_folder(root)
    forks = Forks(monkeypatch)
    monkeypatch.setattr(walk_module._Walker, "part", lambda self, pending: b"\x00garbage")
    assert walk_folder(root, split_from=0) == serial
    assert forks.count == 1


def test_a_fork_that_fails_leaves_the_parent_to_walk_alone(tmp_path, monkeypatch):
    root = data_bundle(tmp_path / "b")
    serial = walk_folder(root)
    Forks(monkeypatch)
    open_before = len(os.listdir("/proc/self/fd"))

    def no_fork() -> int:
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(os, "fork", no_fork)
    assert walk_folder(root, split_from=0) == serial
    assert len(os.listdir("/proc/self/fd")) == open_before  # the pipe is closed again


def test_no_fork_while_another_thread_runs(tmp_path, monkeypatch):
    root = data_bundle(tmp_path / "b")
    forks = Forks(monkeypatch, safe=False)
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        walked = walk_folder(root, split_from=0)
    finally:
        stop.set()
        thread.join()
    assert forks.count == 0
    assert walked == walk_folder(root)


def test_no_fork_beside_a_thread_threading_does_not_know_of(tmp_path, monkeypatch):
    import _thread  # a thread started outside `threading`, as a native library's would be

    root = data_bundle(tmp_path / "b")
    forks = Forks(monkeypatch, safe=False)
    started, stop = _thread.allocate_lock(), _thread.allocate_lock()
    started.acquire()
    stop.acquire()

    def hold() -> None:
        started.release()
        stop.acquire()

    _thread.start_new_thread(hold, ())
    started.acquire()
    try:
        walked = walk_folder(root, split_from=0)
    finally:
        stop.release()
    assert forks.count == 0
    assert walked == walk_folder(root)


def test_a_file_gone_before_its_stat_is_named_by_its_full_path(tmp_path, monkeypatch):
    root = data_bundle(tmp_path / "b")
    victim = root / "samples" / "part2" / "f3.txt"
    real_scandir = os.scandir

    @contextlib.contextmanager
    def listing(fd):  # the folder is listed, then the file goes before the walk stats it
        with real_scandir(fd) as it:
            entries = list(it)
        if os.readlink(f"/proc/self/fd/{fd}") == str(victim.parent):
            victim.unlink()
        yield iter(entries)

    monkeypatch.setattr(os, "scandir", listing)
    with pytest.raises(FileNotFoundError) as gone:
        walk_folder(root)
    assert gone.value.filename == str(victim)


def test_a_rescan_walked_in_two_processes_keeps_the_snapshot_and_sees_every_change(
    tmp_path, kaos_home, monkeypatch
):
    root = data_bundle(tmp_path / "b")
    for path in root.rglob("*"):
        os.utime(path, (1_600_000_000, 1_600_000_000))  # out of the racy window
    cache = StatCache(kaos_home / "state.db")
    first = scan_folder(root, cache)
    snapshots = kaos_home / "scans"
    (saved,) = snapshots.iterdir()
    before = saved.read_bytes()
    monkeypatch.setattr(walk_module, "SPLIT_FROM", 0)
    forks = Forks(monkeypatch)
    again = scan_folder(root, cache)
    assert forks.count == 1
    assert again.digest == first.digest
    assert saved.read_bytes() == before  # answered by the snapshot, nothing rewritten
    target = root / "samples" / "part0" / "f1.txt"  # in whichever half: both are checked
    for change in (
        lambda: target.write_text("other"),
        lambda: target.chmod(0o755),
        lambda: target.rename(target.with_name("g1.txt")),
        lambda: (root / "samples" / "part5" / "new.txt").write_text("new"),
        lambda: (root / "samples" / "part5" / "f0.txt").unlink(),
    ):
        previous = scan_folder(root, cache).digest
        change()
        changed = scan_folder(root, cache)
        assert changed.digest != previous
        assert changed.digest == scan_folder(root).digest  # as a fresh serial scan says
    assert forks.count >= 10
