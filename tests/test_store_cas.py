"""The content store on both backends: a local folder and a real HTTP S3 endpoint."""

import os
import random
from pathlib import Path

import pytest

from kaos.errors import BundleError, IntegrityError, ObjectNotFound, StoreBusy, UnsafePathError
from kaos.store import ContentStore, Tree, TreeEntry, scan_folder
from kaos.store.backends import LocalBackend
from kaos.store.backends.s3 import S3Backend
from kaos.store.hashing import hash_bytes
from kaos.store.index import INDEX_PREFIX, PACK_PREFIX
from kaos.store.pack import KIND_CHUNKS


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path, kaos_home) -> ContentStore:
    if request.param == "local":
        backend = LocalBackend(tmp_path / "store")
    else:
        endpoint = request.getfixturevalue("s3_endpoint")
        bucket = request.getfixturevalue("s3_bucket")
        backend = S3Backend(bucket, "kaos", endpoint_url=endpoint)
    return ContentStore(backend, kaos_home)


def make_bundle(root: Path, n: int = 30, big: int = 0) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (root / f"dir{i % 3}").mkdir(exist_ok=True)
        (root / f"dir{i % 3}" / f"file{i}.csv").write_text(f"{i},{i * 2},{i * 3}\n" * (i + 1))
    (root / "run.sh").write_text("#!/bin/sh\necho hi\n")
    os.chmod(root / "run.sh", 0o755)
    if big:
        (root / "big.bin").write_bytes(random.Random(7).randbytes(big))
    return root


def files_of(root: Path) -> dict[str, tuple[bytes, bool]]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            out[str(p.relative_to(root))] = (p.read_bytes(), os.access(p, os.X_OK))
    return out


def test_push_then_checkout_round_trips_bytes_and_modes(store, tmp_path):
    src = make_bundle(tmp_path / "src", big=5 << 20)
    report = store.push(scan_folder(src))
    assert report.files_sent == 32
    copy = store.checkout(report.tree.digest, tmp_path / "copy", link=False)
    linked = store.checkout(report.tree.digest, tmp_path / "linked", link=True)
    assert files_of(copy) == files_of(src) == files_of(linked)
    assert store.get_tree(report.tree.digest) == report.tree


def test_second_push_sends_nothing(store, tmp_path):
    scanned = scan_folder(make_bundle(tmp_path / "src"))
    store.push(scanned)
    again = store.push(scanned)
    assert again.files_sent == 0
    assert again.bytes_uploaded == 0


def test_missing_reports_only_absent_hashes(store, tmp_path):
    scanned = scan_folder(make_bundle(tmp_path / "src"))
    store.push(scanned)
    unknown = hash_bytes(b"never stored")
    assert store.missing([*scanned.tree.digests(), unknown]) == {unknown}


def test_another_process_sees_new_objects(store, tmp_path, kaos_home):
    other = ContentStore(store.backend, kaos_home / "other")
    digest = store.put_bytes(b"written by the first")
    assert other.missing([digest]) == set()
    assert other.get_bytes(digest) == b"written by the first"


def test_small_files_are_packed_into_few_objects(store, tmp_path):
    store.push(scan_folder(make_bundle(tmp_path / "src", n=300)))
    packs = list(store.backend.list(PACK_PREFIX))
    assert len(packs) == 1
    assert len(list(store.backend.list(INDEX_PREFIX))) == 1


def test_compressible_content_is_stored_compressed(store, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "data.csv").write_text("0,0,0,0,0,12,255,0,0\n" * 100_000)
    store.push(scan_folder(src))
    stored = sum(info.size for info in store.backend.list(PACK_PREFIX))
    assert stored < (src / "data.csv").stat().st_size / 5


def test_appending_rows_stores_only_new_chunks(store, tmp_path):
    rng = random.Random(1)
    rows = [",".join(str(rng.randrange(256)) for _ in range(40)) + "\n" for _ in range(60_000)]
    src = tmp_path / "src"
    src.mkdir()
    csv = src / "train.csv"
    csv.write_text("".join(rows))
    first = store.push(scan_folder(src))
    assert store.reader.locate(first.tree.get("train.csv").digest).kind == KIND_CHUNKS
    before = store.index.digests()
    with csv.open("a") as f:
        f.write("".join(rows[:18_000]))  # +30%
    store.push(scan_folder(src))
    new_chunks = (
        set(store.reader.chunk_digests(scan_folder(src).tree.get("train.csv").digest)) - before
    )
    new_bytes = sum(store.reader.locate(d).size for d in new_chunks)
    assert new_bytes / csv.stat().st_size < 0.3
    copy = store.checkout(scan_folder(src).tree, tmp_path / "copy", link=False)
    assert (copy / "train.csv").read_bytes() == csv.read_bytes()


def test_one_changed_small_file_uploads_little(store, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3000):
        (src / f"f{i:05d}.txt").write_text(f"row {i}\n" * 50)
    store.push(scan_folder(src))
    (src / "f01234.txt").write_text("changed\n" * 50)
    report = store.push(scan_folder(src))
    assert report.files_sent == 1
    assert report.bytes_uploaded < 16 << 10


def test_corrupt_pack_is_reported_by_hash_and_never_served(store, tmp_path):
    digest = store.put_bytes(b"precious model weights" * 100)
    (info,) = list(store.backend.list(PACK_PREFIX))
    data = bytearray(store.backend.get(info.key))
    loc = store.reader.locate(digest)
    data[loc.frame_offset + loc.frame_length // 2] ^= 0xFF
    store.backend.put(info.key, bytes(data))
    with pytest.raises(IntegrityError) as err:
        store.get_bytes(digest)
    assert err.value.digest in (digest, loc.pack)
    report = store.verify()
    assert not report.ok
    assert report.corrupt


def test_blob_with_wrong_hash_is_refused_on_write(store):
    with store.writer() as w, pytest.raises(IntegrityError, match="does not match"):
        w.add_blob(hash_bytes(b"claimed"), b"actual bytes")


def test_file_changed_between_scan_and_push_is_refused(store, tmp_path):
    src = make_bundle(tmp_path / "src", n=2)
    scanned = scan_folder(src)
    (src / "dir0" / "file0.csv").write_text("edited after scanning\n")
    with pytest.raises(BundleError, match="changed since it was hashed"):
        store.push(scanned)


def test_verify_passes_on_a_healthy_store(store, tmp_path):
    tree = store.push(scan_folder(make_bundle(tmp_path / "src", big=3 << 20))).tree
    report = store.verify([tree.digest])
    assert report.ok, report
    assert report.objects > 30


def test_verify_finds_a_tree_that_lies_about_its_sizes(store):
    small = store.put_bytes(b"13 bytes here")
    liar = store.put_tree(Tree.of([TreeEntry("features/x", small, 100 << 30)]))
    honest = store.put_tree(Tree.of([TreeEntry("features/x", small, 13)]))
    assert store.verify([honest]).ok
    assert store.verify([liar]).corrupt == [liar]
    with pytest.raises(IntegrityError, match="lies about sizes"):
        store.absent_from(liar)  # what a deploy asks


def test_unknown_object_is_not_found(store):
    with pytest.raises(ObjectNotFound):
        store.get_bytes("0" * 32)


def test_gc_keeps_reachable_and_drops_the_rest(store, tmp_path):
    keep = store.push(scan_folder(make_bundle(tmp_path / "a", big=3 << 20))).tree
    drop_src = tmp_path / "b"
    drop_src.mkdir()
    (drop_src / "only-here.txt").write_text("garbage soon")
    drop = store.push(scan_folder(drop_src)).tree
    assert store.gc([keep.digest], grace_seconds=3600).packs_deleted == 0  # too young
    report = store.gc([keep.digest], grace_seconds=0)
    assert report.packs_deleted == 1
    assert store.missing([drop.digest, *drop.digests()]) == {drop.digest, *drop.digests()}
    assert store.verify([keep.digest]).ok
    out = store.checkout(keep, tmp_path / "out", link=False)
    assert files_of(out) == files_of(tmp_path / "a")


def test_gc_repacks_partly_live_packs(store, tmp_path):
    src = make_bundle(tmp_path / "src", n=10)
    with store.writer() as w:
        junk = w.put_bytes(b"unreachable" * 1000)
        tree = scan_folder(src).tree
        for e in tree:
            w.put_file(src / e.path, e.digest)
        store.put_tree(tree, w)
    report = store.gc([tree.digest], grace_seconds=0)
    assert report.packs_rewritten == 1
    assert junk in store.missing([junk])
    assert store.verify([tree.digest]).ok
    assert files_of(store.checkout(tree, tmp_path / "out", link=False)) == files_of(src)


def test_gc_refuses_to_run_while_a_writer_is_active(store):
    with store.writer() as w:
        w.put_bytes(b"in flight")
        with pytest.raises(StoreBusy):
            store.gc([], grace_seconds=0)
    assert store.gc([], grace_seconds=0).packs_deleted == 1


def test_checkout_refuses_a_non_empty_destination(store, tmp_path):
    tree = store.push(scan_folder(make_bundle(tmp_path / "src", n=1))).tree
    (tmp_path / "dest").mkdir()
    (tmp_path / "dest" / "mine.txt").write_text("keep me")
    with pytest.raises(BundleError, match="not empty"):
        store.checkout(tree, tmp_path / "dest")
    assert (tmp_path / "dest" / "mine.txt").read_text() == "keep me"


def test_checkout_never_writes_outside_its_destination(store, tmp_path):
    digest = store.put_bytes(b"payload")
    forged = b"kaos-tree 1\n" + f"{digest} 7 - ../escaped.txt\n".encode()
    forged_digest = store.put_bytes(forged)
    with pytest.raises(UnsafePathError):
        store.checkout(forged_digest, tmp_path / "dest")
    assert not (tmp_path / "escaped.txt").exists()
    assert not (tmp_path / "dest").exists()


def test_linked_checkout_is_not_poisoned_by_edits(store, tmp_path):
    tree = store.push(scan_folder(make_bundle(tmp_path / "src", n=2))).tree
    out = store.checkout(tree, tmp_path / "one", link=True)
    target = out / "run.sh"
    os.chmod(target, 0o755)
    target.write_text("tampered through the hardlink")
    again = store.checkout(tree, tmp_path / "two", link=True)
    assert (again / "run.sh").read_text() == "#!/bin/sh\necho hi\n"


def test_a_same_size_edit_with_the_seal_put_back_is_not_served(store, tmp_path):
    """Written through a link, its size kept and its mtime set back to the seal (0), as
    `cp -p` from another checkout does: the mode made writable for the write still tells."""
    tree = store.push(scan_folder(make_bundle(tmp_path / "src", n=2))).tree
    target = store.checkout(tree, tmp_path / "one", link=True) / "run.sh"
    os.chmod(target, 0o755)
    target.write_text("#!/bin/sh\necho HI\n")
    os.utime(target, ns=(0, 0))
    again = store.checkout(tree, tmp_path / "two", link=True)
    assert (again / "run.sh").read_text() == "#!/bin/sh\necho hi\n"


def test_interrupted_upload_leaves_nothing_visible(store, tmp_path, monkeypatch):
    src = make_bundle(tmp_path / "src", n=5)
    calls = []
    real_put = store.backend.put

    def failing_put(key, data):
        calls.append(key)
        if key.startswith(INDEX_PREFIX):
            raise ConnectionError("network went away")
        real_put(key, data)

    monkeypatch.setattr(store.backend, "put", failing_put)
    with pytest.raises(ConnectionError):
        store.push(scan_folder(src))
    monkeypatch.setattr(store.backend, "put", real_put)
    fresh = ContentStore(store.backend)
    assert fresh.missing(scan_folder(src).tree.digests()) == scan_folder(src).tree.digests()
    assert fresh.push(scan_folder(src)).files_sent == 6


def test_tree_objects_are_chunked_so_big_trees_dedupe(store):
    entries = [
        TreeEntry(f"data/f{i:06d}.txt", hash_bytes(str(i).encode()), 10) for i in range(5000)
    ]
    tree = Tree.of(entries)
    store.put_tree(tree)
    assert store.reader.locate(tree.digest).kind == KIND_CHUNKS
    assert store.get_tree(tree.digest) == tree


def test_the_local_index_cache_survives_concurrent_writers(tmp_path):
    """Ray tasks on one machine share a node folder: they may cache the same index at once."""
    import shutil
    from concurrent.futures import ThreadPoolExecutor

    from kaos.store.index import PackIndex

    backend = LocalBackend(tmp_path / "store")
    store = ContentStore(backend)
    for i in range(6):
        store.put_bytes(f"object {i}".encode() * 100)
    cache = tmp_path / "index-cache"
    for _ in range(5):
        shutil.rmtree(cache, ignore_errors=True)
        with ThreadPoolExecutor(max_workers=8) as pool:
            indexes = list(pool.map(lambda _: PackIndex(backend, cache), range(8)))
        assert all(len(ix.packs()) == 6 for ix in indexes)
    assert sorted(p.name for p in cache.iterdir()) == sorted(store.index.packs())


def test_a_complete_tree_is_remembered_until_gc(tmp_path, kaos_home, monkeypatch):
    store = ContentStore(LocalBackend(tmp_path / "store"), kaos_home)
    whole = store.push(scan_folder(make_bundle(tmp_path / "a"))).tree
    partial_src = tmp_path / "b"
    partial_src.mkdir()
    for name in ("first.txt", "second.txt"):
        (partial_src / name).write_text(f"only in b: {name}")
    partial = scan_folder(partial_src).tree
    with store.writer() as w:  # the tree without one of its files, as an interrupted push
        for entry in partial.entries[1:]:
            w.put_file(partial_src / entry.path, entry.digest)
        store.put_tree(partial, w)
    assert store.absent_from(whole.digest) == set()
    assert store.absent_from(partial.digest) == {partial.entries[0].digest}

    reads = []
    real_read = store.reader.tree_pieces
    monkeypatch.setattr(store.reader, "tree_pieces", lambda d: reads.append(d) or real_read(d))
    assert store.absent_from(whole.digest) == set()  # remembered: nothing read
    assert store.absent_from(partial.digest)  # an incomplete one is checked every time
    assert reads == [partial.digest]

    store.gc([], grace_seconds=0)  # both trees collected
    with pytest.raises(ObjectNotFound):
        store.absent_from(whole.digest)


def test_a_complete_trees_top_level_names_are_remembered_with_it(tmp_path, monkeypatch):
    """A deploy checks its tree, then names it: the names come from the check's one read."""
    store = ContentStore(LocalBackend(tmp_path / "store"))
    blob = store.put_bytes(b"row\n")
    paths = ["README", "data/b/x.csv", "data/y.csv", "extra/z", ".hidden"]
    tree = Tree.of(TreeEntry(p, blob, 4) for p in paths)
    digest = store.put_tree(tree)
    expected = [".hidden", "README", "data/", "extra/"]
    assert store.top_level(digest) == expected  # not yet known complete: read
    assert store.absent_from(digest) == set()
    reads = []
    real_read = store.reader.tree_pieces
    monkeypatch.setattr(store.reader, "tree_pieces", lambda d: reads.append(d) or real_read(d))
    assert store.top_level(digest) == expected
    assert reads == []
    one = Tree.of(TreeEntry(f"data/f{i:05d}", blob, 4) for i in range(5000))  # many blocks
    assert store.top_level(store.put_tree(one)) == ["data/"]


def test_scan_and_push_reads_each_new_file_once_and_round_trips(tmp_path, kaos_home, monkeypatch):
    from kaos.store import StatCache
    from kaos.store.transfer import scan_and_push
    from kaos.store.writer import StoreWriter

    store = ContentStore(LocalBackend(tmp_path / "store"), kaos_home)
    src = make_bundle(tmp_path / "src", n=40, big=3 << 20)  # 3 MiB: chunked by the push
    reread = []
    real_put_file = StoreWriter.put_file
    monkeypatch.setattr(
        StoreWriter,
        "put_file",
        lambda w, path, *a: reread.append(path) or real_put_file(w, path, *a),
    )
    report = scan_and_push(src, store, StatCache(kaos_home / "state.db"))
    assert [os.path.basename(p) for p in reread] == ["big.bin"]  # only the chunked one
    assert report.files_sent == len(scan_folder(src).tree.digests()) == 42
    assert store.absent_from(report.scanned.digest) == set()
    assert store.get_tree(report.scanned.digest) == scan_folder(src).tree
    assert files_of(
        store.checkout(report.scanned.digest, tmp_path / "out", link=False)
    ) == files_of(src)
    assert scan_and_push(src, store, StatCache(kaos_home / "state.db")).files_sent == 0


def test_scan_and_push_refused_by_vet_stores_nothing(tmp_path, kaos_home):
    from kaos.store.transfer import scan_and_push

    store = ContentStore(LocalBackend(tmp_path / "store"), kaos_home)

    def refuse(paths):
        raise BundleError("wrong shape")

    with pytest.raises(BundleError, match="wrong shape"):
        scan_and_push(make_bundle(tmp_path / "src"), store, vet=refuse)
    assert not [p for p in (tmp_path / "store").rglob("*") if p.is_file()]


def test_the_file_cache_lets_the_least_recently_used_go_first(tmp_path):
    from kaos.store.filecache import FileCache

    cache = FileCache(tmp_path / "cache", max_bytes=2000)
    for digest in ("a" * 32, "b" * 32, "c" * 32):
        cache.add(digest, False, lambda f: f.write(b"x" * 1000))
    assert cache.lookup("a" * 32, 1000, False)  # used again: now the most recent
    assert cache.trim() == 1000
    assert cache.lookup("b" * 32, 1000, False) is None
    assert cache.lookup("a" * 32, 1000, False) and cache.lookup("c" * 32, 1000, False)


def test_a_tree_found_complete_is_asked_again_once_another_replica_deleted_its_packs(
    store, tmp_path, kaos_home
):
    """A complete tree is remembered; packs deleted by another replica's gc (seen by the
    next refresh) make it a question again, so a push is not skipped for content gone."""
    scanned = scan_folder(make_bundle(tmp_path / "src"))
    store.push(scanned)
    assert store.complete(scanned.digest)
    other = ContentStore(store.backend, kaos_home / "other")  # the other replica
    for info in list(other.backend.list(PACK_PREFIX)) + list(other.backend.list(INDEX_PREFIX)):
        other.backend.delete(info.key)  # what its gc does to packs it found dead
    assert store.complete(scanned.digest)  # remembered: nothing was read to say so
    with pytest.raises(ObjectNotFound):  # a build reads the bundle: its pack is gone
        store.checkout(scanned.digest, tmp_path / "out", link=False)
    assert not store.complete(scanned.digest)  # asked again, so the push below is not skipped
    assert store.push(scanned).files_sent == 31
    assert store.complete(scanned.digest)


@pytest.mark.parametrize("was_large", [False, True])
def test_a_fifo_put_in_a_hashed_files_place_is_refused_not_waited_on(store, tmp_path, was_large):
    """Between a scan and its upload: opening a fifo for reading would wait for a writer."""
    from kaos.store.chunking import FILE_CHUNKS

    src = tmp_path / "src"
    src.mkdir()
    victim = src / "data.bin"
    victim.write_bytes(b"x" * (FILE_CHUNKS.threshold + 1 if was_large else 10))
    digest = scan_folder(src).tree.get("data.bin").digest
    victim.unlink()
    os.mkfifo(victim)
    with store.writer() as w, pytest.raises(BundleError, match="changed since it was hashed"):
        w.put_file(victim, digest)
    assert store.missing([digest]) == {digest}


def test_a_large_file_swapped_before_its_upload_sends_none_of_the_other_content(store, tmp_path):
    """Its chunks would go before the whole file's digest is known: it is hashed first."""
    from kaos.store.chunking import FILE_CHUNKS

    src = tmp_path / "src"
    src.mkdir()
    victim = src / "big.bin"
    victim.write_bytes(random.Random(1).randbytes(FILE_CHUNKS.threshold * 2))
    digest = scan_folder(src).tree.get("big.bin").digest
    outside = tmp_path / "outside.bin"
    outside.write_bytes(random.Random(2).randbytes(FILE_CHUNKS.threshold * 2))
    victim.unlink()
    victim.symlink_to(outside)
    before = {info.key for info in store.backend.list("")}
    with store.writer() as w, pytest.raises(BundleError, match="changed since it was hashed"):
        w.put_file(victim, digest)
    assert {info.key for info in store.backend.list("")} == before
