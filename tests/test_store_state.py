import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from kaos.store import StatCache, scan_folder
from kaos.store import scan as scan_module
from kaos.store import state as state_module
from kaos.store.state import open_stat_cache


class CountingReads:
    """Counts content reads made by the scanner (the stat cache must make them unnecessary)."""

    def __init__(self, monkeypatch):
        self.paths: list[str] = []
        real = scan_module._hash_one

        def counted(f, *args):
            self.paths.append(f.path)
            return real(f, *args)

        monkeypatch.setattr(scan_module, "_hash_one", counted)


def make_old_files(root: Path, n: int) -> None:
    for i in range(n):
        p = root / f"f{i}.txt"
        p.write_text(f"content {i}")
        os.utime(p, (1_600_000_000, 1_600_000_000))


def test_unchanged_folder_rescan_reads_no_file(tmp_path, kaos_home, monkeypatch):
    (tmp_path / "b").mkdir()
    make_old_files(tmp_path / "b", 20)
    cache = StatCache(kaos_home / "state.db")
    first = scan_folder(tmp_path / "b", cache)
    reads = CountingReads(monkeypatch)
    again = scan_folder(tmp_path / "b", StatCache(kaos_home / "state.db"))
    assert reads.paths == []
    assert again.tree == first.tree


def test_a_changed_stat_rehashes_only_that_file(tmp_path, kaos_home, monkeypatch):
    (tmp_path / "b").mkdir()
    make_old_files(tmp_path / "b", 10)
    cache = StatCache(kaos_home / "state.db")
    before = scan_folder(tmp_path / "b", cache).tree
    p = tmp_path / "b" / "f3.txt"
    p.write_text("content 3")  # same bytes, new mtime: re-hashed, same digest
    os.utime(p, (1_600_000_100, 1_600_000_100))
    q = tmp_path / "b" / "f4.txt"
    q.write_text("content 4 grown")  # a new size
    os.utime(q, (1_600_000_000, 1_600_000_000))
    reads = CountingReads(monkeypatch)
    after = scan_folder(tmp_path / "b", cache).tree
    assert sorted(reads.paths) == ["f3.txt", "f4.txt"]
    assert after.get("f3.txt").digest == before.get("f3.txt").digest


def test_rewrite_with_same_size_and_mtime_on_a_new_inode_is_rehashed(
    tmp_path, kaos_home, monkeypatch
):
    (tmp_path / "b").mkdir()
    make_old_files(tmp_path / "b", 3)
    cache = StatCache(kaos_home / "state.db")
    before = scan_folder(tmp_path / "b", cache).tree
    p = tmp_path / "b" / "f1.txt"
    tmp = tmp_path / "b" / "new"
    tmp.write_text("CONTENT 1")
    os.utime(tmp, (1_600_000_000, 1_600_000_000))
    os.replace(tmp, p)  # editors save this way: new inode, same size and mtime
    reads = CountingReads(monkeypatch)
    after = scan_folder(tmp_path / "b", cache).tree
    assert reads.paths == ["f1.txt"]
    assert after.get("f1.txt").digest != before.get("f1.txt").digest


def test_recently_modified_files_are_not_cached(tmp_path, kaos_home, monkeypatch):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "fresh.txt").write_text("just written")
    cache = StatCache(kaos_home / "state.db")
    scan_folder(tmp_path / "b", cache)
    reads = CountingReads(monkeypatch)
    scan_folder(tmp_path / "b", cache)
    assert reads.paths == ["fresh.txt"]  # could change again within the same mtime tick


def test_rows_are_written_before_the_process_ends_even_right_after_a_scan(tmp_path, kaos_home):
    """The stat cache writes in the background; a process that ends as soon as its scan
    returns (a CLI command) still leaves every row behind."""
    (tmp_path / "b").mkdir()
    make_old_files(tmp_path / "b", 3000)
    script = "import sys; from pathlib import Path; from kaos.store import StatCache, scan_folder;"
    script += "scan_folder(sys.argv[1], StatCache(Path(sys.argv[2])))"
    subprocess.run([sys.executable, "-c", script, tmp_path / "b", kaos_home / "s.db"], check=True)
    with sqlite3.connect(kaos_home / "s.db") as db:
        assert db.execute("SELECT count(*) FROM state").fetchone() == (3000,)


def test_a_failed_background_write_makes_the_cache_give_up_quietly(
    tmp_path, kaos_home, monkeypatch
):
    (tmp_path / "b").mkdir()
    make_old_files(tmp_path / "b", 5)
    cache = open_stat_cache(kaos_home / "state.db")
    scan_folder(tmp_path / "b", cache)  # a snapshot and five rows
    cache.record([((1, 10, 5, 1), "a" * 32)])  # waits for the scan's rows
    with sqlite3.connect(kaos_home / "state.db") as db:
        db.execute("DROP TABLE state")
    cache.record([((1, 11, 5, 1), "b" * 32)])  # fails, in the background
    cache.record([((1, 12, 5, 1), "c" * 32)])  # raises that failure: the cache gives up
    reads = CountingReads(monkeypatch)
    assert len(scan_folder(tmp_path / "b", cache)) == 5  # scans go on...
    assert len(reads.paths) == 5  # ...reading every file (the snapshot is not used any more)


def test_a_scan_starts_once_the_last_scans_rows_are_written(tmp_path, kaos_home, monkeypatch):
    """The walk forks only while no other thread runs: a scan right after another (a source
    bundle, then the data) must not find the first one's write still going."""
    for name in ("src", "data"):
        (tmp_path / name).mkdir()
        make_old_files(tmp_path / name, 5)
    write = StatCache._write

    def slow_write(self, db, rows):
        time.sleep(0.3)
        write(self, db, rows)

    monkeypatch.setattr(StatCache, "_write", slow_write)
    seen: list[list[str]] = []
    walk = scan_module.walk_folder

    def walk_folder(*args, **kwargs):
        seen.append([thread.name for thread in threading.enumerate()])
        return walk(*args, **kwargs)

    monkeypatch.setattr(scan_module, "walk_folder", walk_folder)
    cache = StatCache(kaos_home / "state.db")
    scan_folder(tmp_path / "src", cache)
    scan_folder(tmp_path / "data", cache)
    assert "kaos-stat-cache" not in seen[1]
    cache.close()
    with sqlite3.connect(kaos_home / "state.db") as db:
        assert db.execute("SELECT count(*) FROM state").fetchone() == (10,)


def test_the_writer_gives_up_its_rows_rather_than_wait_for_another_process_lock(
    tmp_path, kaos_home, monkeypatch
):
    """Another process holding the database's write lock (a hung command) must not keep this
    one waiting SQLite's 30 s at exit: the rows are dropped, the cache gives up quietly."""
    monkeypatch.setattr(state_module, "WRITE_WAIT_S", 0.2)
    (tmp_path / "b").mkdir()
    make_old_files(tmp_path / "b", 5)
    cache = open_stat_cache(kaos_home / "state.db")
    holder = sqlite3.connect(kaos_home / "state.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # the write lock, held throughout
    try:
        scan_folder(tmp_path / "b", cache)
        writers = [t for t in threading.enumerate() if t.name == state_module.WRITER_THREAD]
        for writer in writers:
            writer.join(timeout=20)
            assert not writer.is_alive()  # gave up while the lock is still held
        cache.record([((1, 1, 1, 1), "a" * 32)])  # the failure surfaces: the cache gives up
        reads = CountingReads(monkeypatch)
        scan_folder(tmp_path / "b", cache)
        assert len(reads.paths) == 5
    finally:
        holder.rollback()
        holder.close()


def test_a_database_made_without_ctimes_is_remade_not_trusted(tmp_path, kaos_home, monkeypatch):
    """A stat cache from before ctimes were kept: its rows cannot vouch for a file, so the
    table is remade (it is only a cache) and the files are read once."""
    (tmp_path / "b").mkdir()
    make_old_files(tmp_path / "b", 3)
    kaos_home.mkdir(parents=True, exist_ok=True)
    path = kaos_home / "state.db"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE state (dev INTEGER, ino INTEGER, size INTEGER, mtime_ns INTEGER,"
            " digest TEXT, PRIMARY KEY (dev, ino)) WITHOUT ROWID"
        )
        for p in (tmp_path / "b").iterdir():
            st = p.stat()
            db.execute(
                "INSERT INTO state VALUES (?,?,?,?,?)",
                (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, "0" * 32),  # a wrong digest
            )
    db.close()
    reads = CountingReads(monkeypatch)
    cache = StatCache(path)
    tree = scan_folder(tmp_path / "b", cache).tree
    cache.close()  # its rows written
    assert sorted(reads.paths) == ["f0.txt", "f1.txt", "f2.txt"]
    assert "0" * 32 not in {entry.digest for entry in tree.entries}
    reads.paths.clear()
    for snapshot in (kaos_home / "scans").iterdir():
        snapshot.unlink()
    assert scan_folder(tmp_path / "b", StatCache(path)).tree == tree
    assert reads.paths == []  # the remade table answers


def test_a_damaged_database_is_made_again(tmp_path, kaos_home, monkeypatch):
    """Garbage where the database was (a crash of the disk, a stray copy) would otherwise
    switch the stat cache off for good: it is only a cache, so it is made again."""
    (tmp_path / "b").mkdir()
    make_old_files(tmp_path / "b", 3)
    kaos_home.mkdir(parents=True, exist_ok=True)
    path = kaos_home / "state.db"
    path.write_bytes(b"not a database at all, " * 100)
    cache = open_stat_cache(path)
    first = scan_folder(tmp_path / "b", cache)
    state_module.wait_for_writes()
    for snapshot in (kaos_home / "scans").iterdir():
        snapshot.unlink()  # so the database alone must answer
    reads = CountingReads(monkeypatch)
    again = scan_folder(tmp_path / "b", open_stat_cache(path))
    assert reads.paths == [] and again.digest == first.digest
