"""The folder snapshot: an unchanged folder is answered without reads or database lookups, and
every kind of change is still seen."""

import os
import shutil
import time
from pathlib import Path

import pytest

from kaos.store import NullStatCache, StatCache, scan_folder
from kaos.store import scan as scan_module
from kaos.store.snapshot import SnapshotDir
from kaos.store.tree import Tree

OLD = 1_600_000_000


class Reads:
    """Counts content reads and stat-cache database lookups made by the scanner."""

    def __init__(self, monkeypatch):
        self.paths: list[str] = []
        self.lookups = 0
        real_hash, real_lookup = scan_module._hash_one, StatCache.lookup

        def hash_one(f, *args):
            self.paths.append(f.path)
            return real_hash(f, *args)

        def lookup(cache, keys):
            keys = list(keys)
            self.lookups += len(keys)
            return real_lookup(cache, keys)

        monkeypatch.setattr(scan_module, "_hash_one", hash_one)
        monkeypatch.setattr(StatCache, "lookup", lookup)


def bundle(root: Path, n: int = 12) -> Path:
    for i in range(n):
        p = root / f"d{i % 3}" / f"f{i}.txt"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f"content {i}")
        os.utime(p, (OLD, OLD))
    return root


def test_an_unchanged_folder_is_answered_by_its_snapshot_alone(tmp_path, kaos_home, monkeypatch):
    root = bundle(tmp_path / "b")
    first = scan_folder(root, StatCache(kaos_home / "state.db"))
    reads = Reads(monkeypatch)
    again = scan_folder(root, StatCache(kaos_home / "state.db"))
    assert reads.paths == [] and reads.lookups == 0
    assert again.digest == first.tree.digest == scan_folder(root, NullStatCache()).tree.digest
    assert again.tree == first.tree
    assert Tree.parse(again.tree.serialize(), again.digest) == again.tree


def test_a_changed_file_is_read_again_and_changes_the_tree(tmp_path, kaos_home, monkeypatch):
    root = bundle(tmp_path / "b")
    cache = StatCache(kaos_home / "state.db")
    before = scan_folder(root, cache)
    victim = root / "d1" / "f4.txt"
    victim.write_text("CONTENT 4")  # same size; only the mtime tells
    os.utime(victim, (OLD + 5, OLD + 5))
    reads = Reads(monkeypatch)
    after = scan_folder(root, cache)
    assert reads.paths == ["d1/f4.txt"] and reads.lookups == 1
    assert after.digest != before.digest
    assert after.digest == scan_folder(root, NullStatCache()).tree.digest
    assert after.tree.get("d1/f4.txt").digest != before.tree.get("d1/f4.txt").digest


def test_added_and_removed_files_are_seen(tmp_path, kaos_home, monkeypatch):
    root = bundle(tmp_path / "b")
    cache = StatCache(kaos_home / "state.db")
    scan_folder(root, cache)
    (root / "d0" / "f0.txt").unlink()
    new = root / "d2" / "new.txt"
    new.write_text("new")
    os.utime(new, (OLD, OLD))
    reads = Reads(monkeypatch)
    after = scan_folder(root, cache)
    assert reads.paths == ["d2/new.txt"]
    assert after.tree.get("d0/f0.txt") is None and after.tree.get("d2/new.txt") is not None
    assert after.digest == scan_folder(root, NullStatCache()).tree.digest


def test_an_executable_bit_change_is_seen(tmp_path, kaos_home):
    root = bundle(tmp_path / "b")
    cache = StatCache(kaos_home / "state.db")
    before = scan_folder(root, cache)
    (root / "d0" / "f3.txt").chmod(0o755)  # no mtime change
    after = scan_folder(root, cache)
    assert after.digest != before.digest
    assert after.tree.get("d0/f3.txt").executable


@pytest.mark.parametrize("answered_by", ["snapshot", "database"])
def test_a_rewrite_whose_mtime_was_put_back_is_seen(tmp_path, kaos_home, answered_by):
    """Same inode, same size, the old mtime restored (`touch -r`, `rsync -t`, a tool keeping
    times): only the ctime, which no user can set, tells that the content changed."""
    root = bundle(tmp_path / "b")
    victim = root / "d1" / "f4.txt"
    cache = StatCache(kaos_home / "state.db")
    before = scan_folder(root, cache)
    if answered_by == "database":
        for snapshot in (kaos_home / "scans").iterdir():
            snapshot.unlink()
    old = victim.stat()
    for _ in range(100):  # past the file system's clock tick, so the ctime moves
        time.sleep(0.01)
        victim.write_text("CONTENT 4")
        os.utime(victim, ns=(old.st_atime_ns, old.st_mtime_ns))
        if victim.stat().st_ctime_ns != old.st_ctime_ns:
            break
    now = victim.stat()
    assert (now.st_ino, now.st_size, now.st_mtime_ns) == (old.st_ino, old.st_size, old.st_mtime_ns)
    after = scan_folder(root, cache)
    assert after.tree.get("d1/f4.txt").digest != before.tree.get("d1/f4.txt").digest
    assert after.digest == scan_folder(root, NullStatCache()).digest != before.digest


def test_recently_modified_files_are_read_again_until_they_are_old(
    tmp_path, kaos_home, monkeypatch
):
    root = bundle(tmp_path / "b")
    fresh = root / "d0" / "fresh.txt"
    fresh.write_text("just written")  # within the racy window: not vouched for
    cache = StatCache(kaos_home / "state.db")
    first = scan_folder(root, cache)
    reads = Reads(monkeypatch)
    second = scan_folder(root, cache)
    assert reads.paths == ["d0/fresh.txt"]  # only it; the rest come from the snapshot
    assert second.digest == first.digest
    os.utime(fresh, (OLD, OLD))
    scan_folder(root, cache)
    reads.paths.clear()
    scan_folder(root, cache)
    assert reads.paths == []


@pytest.mark.parametrize(
    "damage",
    [lambda data: b"\x00garbage", lambda data: b"", lambda data: data[: len(data) // 2]],
    ids=["garbage", "empty", "truncated"],
)
def test_a_damaged_snapshot_is_ignored(tmp_path, kaos_home, damage):
    root = bundle(tmp_path / "b")
    cache = StatCache(kaos_home / "state.db")
    first = scan_folder(root, cache)
    for snapshot in (kaos_home / "scans").iterdir():
        snapshot.write_bytes(damage(snapshot.read_bytes()))
    assert SnapshotDir(kaos_home / "scans").load(os.path.realpath(root)) is None
    again = scan_folder(root, cache)  # the stat database still answers
    assert again.digest == first.digest


def _removed(root: Path) -> None:
    (root / "d1" / "f1.txt").unlink()


def _made_a_folder(root: Path) -> None:
    (root / "d1" / "f1.txt").unlink()
    (root / "d1" / "f1.txt").mkdir()


def _parent_made_a_file(root: Path) -> None:
    shutil.rmtree(root / "d1")
    (root / "d1").write_text("now a file")


def _linked_outside(root: Path) -> None:
    """A symlink to a file outside the bundle, of the same size (the walk refuses one)."""
    secret = root.parent / "secret.txt"
    secret.write_text("SECRET!!!")
    (root / "d1" / "f1.txt").unlink()
    (root / "d1" / "f1.txt").symlink_to(secret)


def _parent_linked_outside(root: Path) -> None:
    outside = root.parent / "outside"
    shutil.copytree(root / "d1", outside)
    for p in outside.iterdir():
        p.write_text("X" * len(p.read_text()))
    shutil.rmtree(root / "d1")
    (root / "d1").symlink_to(outside)


def _made_a_fifo(root: Path) -> None:
    (root / "d1" / "f1.txt").unlink()
    os.mkfifo(root / "d1" / "f1.txt")


@pytest.mark.parametrize("read_as", ["small", "large"])  # read whole, or streamed
@pytest.mark.parametrize(
    ("change", "said"),
    [
        (_removed, "removed"),
        (_made_a_folder, "changed"),
        (_parent_made_a_file, "changed"),
        (_linked_outside, "changed"),
        (_parent_linked_outside, "changed"),
        (_made_a_fifo, "changed"),
    ],
    ids=[
        "removed",
        "made-a-folder",
        "parent-made-a-file",
        "linked-outside",
        "parent-linked-outside",
        "made-a-fifo",
    ],
)
def test_a_file_changed_while_scanning_is_one_clear_error(
    tmp_path, monkeypatch, change, said, read_as
):
    """Whatever took the walked file's place is never read: a file outside the bundle could
    otherwise be uploaded under the bundle's name, and a fifo would block the scan."""
    from kaos.errors import BundleError

    if read_as == "large":
        monkeypatch.setattr(scan_module, "_SMALL_FILE", 0)
    root = bundle(tmp_path / "b")
    real_walk = scan_module.walk_folder

    def walk_then_change(folder, **kwargs):
        walk = real_walk(folder, **kwargs)
        change(root)  # between the walk and the read
        return walk

    monkeypatch.setattr(scan_module, "walk_folder", walk_then_change)
    with pytest.raises(BundleError, match=rf"{said} while scanning: d1/f\d+\.txt"):
        scan_folder(root, NullStatCache())


def test_a_snapshot_round_trips_its_paths_and_an_empty_folder(tmp_path):
    from kaos.store.snapshot import DIGEST_SIZE, STAT, Snapshot

    snapshots = SnapshotDir(tmp_path / "scans")
    paths = ["a/x.txt", "a/b/y.txt", "z.txt"]
    stats = b"".join(STAT.pack(1, i, 10 * i, 5, 6, i % 2) for i in range(3))
    digests = bytes(range(3 * DIGEST_SIZE))
    snapshots.save("/data", Snapshot("\n".join(paths), stats, digests, "t" * 32))
    loaded = snapshots.load("/data")
    assert loaded is not None and len(loaded) == 3
    assert loaded.paths == paths and loaded.digests == digests and loaded.tree == "t" * 32
    assert loaded.matches("\n".join(paths), stats)
    assert not loaded.matches("a/x.txt\na/b/y.txt\nz.tx", stats)
    assert not loaded.matches("\n".join([*paths[:2], "z.txt", "w.txt"]), stats)
    snapshots.save("/empty", Snapshot("", b"", b"", "e" * 32))
    empty = snapshots.load("/empty")
    assert empty is not None and empty.paths == [] and empty.matches("", b"")
    assert snapshots.load("/other") is None  # another folder's file name, never its snapshot


def test_a_snapshot_of_another_layout_is_ignored(tmp_path):
    import marshal

    from kaos.store.snapshot import STAT

    snapshots = SnapshotDir(tmp_path / "scans")
    stats = STAT.pack(1, 2, 3, 4, 5, 0)
    # version 1 kept the paths as a list, version 2's records had no ctime; a count that
    # disagrees with the records is damage
    for stale in (
        (1, "/d", ["a/x"], stats, bytes(16), "t"),
        (2, "/d", "a/x", stats[:-9] + stats[-1:], bytes(16), "t"),
        (3, "/d", "a/x\na/y", stats, bytes(16), "t"),
    ):
        (tmp_path / "scans").mkdir(exist_ok=True)
        snapshots._file("/d").write_bytes(marshal.dumps(stale))
        assert snapshots.load("/d") is None


def test_a_file_made_a_symlink_after_it_was_listed_lends_the_walk_no_identity(
    tmp_path, monkeypatch
):
    """Between the folder's listing (a regular file) and its stat, the file becomes a symlink
    to a file outside the bundle: the stat does not follow it, so the link is judged as a
    symlink (refused) instead of the walk recording the outside file's inode."""
    from kaos.errors import UnsafePathError
    from kaos.store import walk as walk_module

    root = bundle(tmp_path / "b")
    secret = tmp_path / "secret.txt"
    secret.write_text("SECRET!!!")
    real_scandir = walk_module.os.scandir

    class Swapping:
        def __init__(self, fd):
            self._it = real_scandir(fd)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._it.close()

        def __iter__(self):
            for entry in self._it:
                if entry.name == "f1.txt":  # listed as a file, then swapped
                    (root / "d1" / "f1.txt").unlink()
                    (root / "d1" / "f1.txt").symlink_to(secret)
                yield entry

    monkeypatch.setattr(walk_module.os, "scandir", Swapping)
    with pytest.raises(UnsafePathError, match=r"symlink points outside the bundle: d1/f1\.txt"):
        scan_folder(root, NullStatCache())
