"""One transfer: `push` to any destination, and the download stream's framing."""

from __future__ import annotations

import os
import threading

import pytest

from kaos.errors import BundleError, IntegrityError, KaosError
from kaos.store import ContentStore, StatCache, scan_folder, transfer
from kaos.store.backends import LocalBackend
from kaos.store.hashing import hash_bytes
from kaos.store.pack import walk_pack
from kaos.store.stream import decode_stream, encode_stream
from kaos.store.transfer import push, scan_and_push


class CountingDestination:
    """A destination over a local store that records what it is asked and sent."""

    def __init__(self, store: ContentStore) -> None:
        self.store = store
        self.questions = 0
        self.packs = 0

    def complete(self, tree_digest):  # the one-request answer for an unchanged folder
        return self.store.complete(tree_digest)

    def missing(self, digests):
        self.questions += 1
        return self.store.missing(digests)

    def store_pack(self, pack_id, data, index):
        self.packs += 1
        self.store.store_pack(pack_id, data, index)


@pytest.fixture
def destination(tmp_path) -> CountingDestination:
    return CountingDestination(ContentStore(LocalBackend(tmp_path / "store")))


def test_an_append_to_a_large_file_sends_only_new_chunks_in_few_questions(destination, tmp_path):
    folder = tmp_path / "data"
    (folder / "features").mkdir(parents=True)
    big = folder / "features" / "rows.bin"
    big.write_bytes(os.urandom(8 << 20))
    first = push(scan_folder(folder), destination)
    assert first.files_sent == 1 and destination.questions <= 3
    with big.open("ab") as f:
        f.write(os.urandom(1 << 20))
    asked = destination.questions
    again = push(scan_folder(folder), destination)
    assert again.files_sent == 1
    assert again.bytes_uploaded < 4 << 20  # the new chunk(s), not the whole 9 MiB
    assert destination.questions - asked <= 3
    out = destination.store.checkout(again.tree.digest, tmp_path / "out", link=False)
    assert (out / "features" / "rows.bin").read_bytes() == big.read_bytes()


def test_pushing_what_is_there_stores_no_pack(destination, tmp_path):
    folder = tmp_path / "src"
    (folder / "pkg").mkdir(parents=True)
    (folder / "pkg" / "a.txt").write_text("a")
    push(scan_folder(folder), destination)
    packs = destination.packs
    assert push(scan_folder(folder), destination).files_sent == 0
    assert destination.packs == packs


def small_files(folder, n: int, salt: str = "") -> None:
    for i in range(n):
        path = folder / f"d{i % 4}" / f"f{i:05d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{salt}{i}\n" * (i % 20 + 1))


def test_a_scan_and_push_asks_in_batches_off_the_scan_and_sends_each_content_once(
    destination, tmp_path, monkeypatch
):
    monkeypatch.setattr(transfer._Offer, "_FILES", 50)  # many batches in flight
    folder = tmp_path / "data"
    small_files(folder, 600)
    (folder / "d0" / "copy.txt").write_text("7\n" * 8)  # the content of f00007.txt again
    report = scan_and_push(folder, destination)
    assert report.files_sent == 600  # the copy is sent once
    assert destination.questions >= 12  # one question per batch
    out = destination.store.checkout(report.tree.digest, tmp_path / "out", link=False)
    assert scan_folder(out).digest == report.tree.digest
    assert scan_and_push(folder, destination).files_sent == 0


def test_content_in_batches_asked_about_at_once_is_sent_once(destination, tmp_path, monkeypatch):
    monkeypatch.setattr(transfer._Offer, "_FILES", 10)  # questions overlap across batches
    folder = tmp_path / "data"
    folder.mkdir()
    for i in range(400):
        (folder / f"f{i:03d}.txt").write_text(f"content {i % 40}\n")  # 40 contents, 10 times
    sent: list[str] = []
    real_store = destination.store_pack

    def store_pack(pack_id, data, index):
        sent.extend(digest for digest, *_ in walk_pack(pack_id, data, index))
        real_store(pack_id, data, index)

    destination.store_pack = store_pack
    report = scan_and_push(folder, destination)
    assert report.files_sent == 40
    assert len(sent) == len(set(sent)) == 41  # each content once, and the tree


def test_files_the_scan_did_not_offer_are_read_again_by_the_push(destination, tmp_path, kaos_home):
    folder = tmp_path / "data"
    small_files(folder, 200, "hashed before ")
    cache = StatCache(kaos_home / "state.db")
    scan_folder(folder, cache)  # every file vouched for by the cache from now on
    (folder / "big.bin").write_bytes(os.urandom(3 << 20))  # chunked: never offered
    report = scan_and_push(folder, destination, cache)
    assert report.files_sent == 201
    out = destination.store.checkout(report.tree.digest, tmp_path / "out", link=False)
    assert (out / "big.bin").read_bytes() == (folder / "big.bin").read_bytes()
    assert scan_folder(out).digest == report.tree.digest


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: p.write_text("same size?"), "changed since it was hashed"),
        (lambda p: p.write_text(p.read_text() + "grown"), "changed since it was hashed"),
        (lambda p: p.unlink(), "removed since it was hashed"),
    ],
    ids=["rewritten", "grown", "removed"],
)
def test_a_file_changed_between_scan_and_push_is_refused(destination, tmp_path, change, message):
    folder = tmp_path / "data"
    small_files(folder, 300)  # read on threads by the push
    scanned = scan_folder(folder)
    victim = folder / scanned.paths[-7]
    change(victim)
    with pytest.raises(BundleError) as refused:
        push(scanned, destination)
    assert refused.value.message == f"file {message}: {victim}"
    assert destination.packs == 0  # the tree never went


def test_a_file_changed_during_a_scan_and_push_stops_it_and_its_threads(
    destination, tmp_path, monkeypatch
):
    monkeypatch.setattr(transfer._Offer, "_FILES", 50)
    folder = tmp_path / "data"
    small_files(folder, 600, "v1 ")
    threads = threading.active_count()

    def grow_a_late_file(names: str) -> None:
        (folder / names.split("\n")[-5]).write_text("grown after the walk\n" * 50)

    with pytest.raises(BundleError, match="changed while scanning"):
        scan_and_push(folder, destination, vet=grow_a_late_file)
    assert threading.active_count() == threads


def test_a_destination_that_fails_a_question_fails_the_push(tmp_path, monkeypatch):
    monkeypatch.setattr(transfer._Offer, "_FILES", 50)
    folder = tmp_path / "data"
    small_files(folder, 300)

    class Refusing(CountingDestination):
        def missing(self, digests):
            raise KaosError("the server is full", "free some space")

    with pytest.raises(KaosError, match="the server is full"):
        scan_and_push(folder, Refusing(ContentStore(LocalBackend(tmp_path / "store"))))


def _pieces(frames, size):
    """Re-cut a byte stream at arbitrary points, as a network would."""
    data = b"".join(frames)
    return iter([data[i : i + size] for i in range(0, len(data), size)])


def test_the_stream_round_trips_any_cut_of_its_bytes():
    objects = {hash_bytes(b): b for b in (b"first", b"x" * 70_000, b"")}

    def open_content(digest):
        return len(objects[digest]), [objects[digest][:3], objects[digest][3:]]

    for cut in (1, 7, 4096):
        frames = _pieces(encode_stream(list(objects) * 2, open_content), cut)
        got = {d: b"".join(p) for d, _size, p in decode_stream(frames, len(objects))}
        assert got == objects


def test_an_error_frame_names_the_problem_and_a_cut_stream_is_refused():
    def broken(digest):
        raise KaosError(f"object {digest} is corrupt")

    frames = encode_stream([hash_bytes(b"a")], broken)
    with pytest.raises(IntegrityError, match="is corrupt"):
        list(decode_stream(frames, 1))
    whole = b"".join(encode_stream([hash_bytes(b"abc")], lambda d: (3, [b"abc"])))
    with pytest.raises(IntegrityError, match="truncated"):
        for _digest, _size, pieces in decode_stream(iter([whole[:-1]]), 1):
            b"".join(pieces)
