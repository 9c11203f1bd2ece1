"""Uploaded packs are stored only when every byte checks out."""

import pytest

from kaos.errors import IntegrityError, ObjectNotFound
from kaos.store import ContentStore
from kaos.store.backends import LocalBackend
from kaos.store.hashing import hash_bytes
from kaos.store.index import PACK_PREFIX
from kaos.store.pack import KIND_BLOB, KIND_CHUNKS, PackBuilder, encode_chunk_list


@pytest.fixture
def store(tmp_path, kaos_home):
    return ContentStore(LocalBackend(tmp_path / "store"), kaos_home)


def pack_of(*objects):
    builder = PackBuilder()
    for digest, kind, payload in objects:
        builder.add(digest, kind, payload)
    return builder.seal().encode()


def test_a_valid_pack_is_stored_and_served(store):
    data = b"weights" * 1000
    _pack_id, pack, _index = pack_of((hash_bytes(data), KIND_BLOB, data))
    assert store.receive_pack(pack) == [hash_bytes(data)]
    assert store.get_bytes(hash_bytes(data)) == data


def test_a_blob_under_a_wrong_digest_is_refused(store):
    _id, pack, _index = pack_of((hash_bytes(b"claimed"), KIND_BLOB, b"something else"))
    with pytest.raises(IntegrityError, match="does not match"):
        store.receive_pack(pack)
    assert list(store.backend.list(PACK_PREFIX)) == []


def test_a_flipped_byte_is_refused(store):
    data = bytes(range(256)) * 100
    _id, pack, _index = pack_of((hash_bytes(data), KIND_BLOB, data))
    bad = bytearray(pack)
    bad[20] ^= 1
    with pytest.raises(IntegrityError):
        store.receive_pack(bytes(bad))
    assert list(store.backend.list(PACK_PREFIX)) == []


def test_a_truncated_pack_is_refused(store):
    data = b"x" * 5000
    _id, pack, _index = pack_of((hash_bytes(data), KIND_BLOB, data))
    with pytest.raises(IntegrityError):
        store.receive_pack(pack[:-10])


def test_a_chunk_list_needs_all_its_chunks(store):
    a, b = b"a" * 70_000, b"b" * 70_000
    whole = a + b
    chunk_list = encode_chunk_list(len(whole), [(hash_bytes(a), len(a)), (hash_bytes(b), len(b))])
    _id, pack, _index = pack_of(
        (hash_bytes(a), KIND_BLOB, a), (hash_bytes(whole), KIND_CHUNKS, chunk_list)
    )
    with pytest.raises(ObjectNotFound):
        store.receive_pack(pack)
    _id, pack, _index = pack_of((hash_bytes(b), KIND_BLOB, b))
    store.receive_pack(pack)
    _id, pack, _index = pack_of(
        (hash_bytes(a), KIND_BLOB, a), (hash_bytes(whole), KIND_CHUNKS, chunk_list)
    )
    store.receive_pack(pack)
    assert store.get_bytes(hash_bytes(whole)) == whole


def test_a_chunk_list_that_lies_about_its_content_is_refused(store):
    a = b"a" * 1000
    lie = hash_bytes(b"not the concatenation")
    _id, pack, _index = pack_of(
        (hash_bytes(a), KIND_BLOB, a),
        (lie, KIND_CHUNKS, encode_chunk_list(1000, [(hash_bytes(a), 1000)])),
    )
    with pytest.raises(IntegrityError, match="do not add up"):
        store.receive_pack(pack)


@pytest.mark.parametrize(
    "payload",
    [b"abc", encode_chunk_list(1000, [(hash_bytes(b"a" * 1000), 1000)]) + b"extra"],
    ids=["shorter-than-its-header", "a-partial-item"],
)
def test_a_chunk_list_too_short_to_decode_is_refused_as_malformed(store, payload):
    """A client sends a chunk list's bytes unhashed: ones that are no list at all are a 422
    naming the object, not a struct.error (an Internal Server Error)."""
    digest = hash_bytes(b"whatever it claims")
    _id, pack, _index = pack_of((digest, KIND_CHUNKS, payload))
    with pytest.raises(IntegrityError, match=f"chunk list {digest} is malformed"):
        store.receive_pack(pack)
    assert list(store.backend.list(PACK_PREFIX)) == []


def test_a_decompression_bomb_is_refused(store):
    big = b"\0" * (64 << 20)  # compresses to almost nothing
    digest = hash_bytes(big[: 1 << 16])
    builder = PackBuilder()
    builder.add(digest, KIND_BLOB, big[: 1 << 16])
    raw = builder.seal()
    raw._frames[0] = [raw._frames[0][0]._replace(payload=big)]  # 64 MiB of zeros: a tiny frame
    _id, pack, _index = raw.encode()
    assert len(pack) < 64 << 10
    with pytest.raises(IntegrityError, match="oversized"):
        store.receive_pack(pack)


def test_a_pack_that_inflates_beyond_any_pack_kaos_writes_is_refused(store, monkeypatch):
    from kaos.store import pack as pack_format

    parts = [bytes([i]) * (256 << 10) for i in range(5)]  # 1.25 MiB raw, a few KiB packed
    _id, pack, _index = pack_of(*((hash_bytes(p), KIND_BLOB, p) for p in parts))
    monkeypatch.setattr(pack_format, "MAX_PACK_RAW", 1 << 20)
    with pytest.raises(IntegrityError, match="inflates beyond"):
        store.receive_pack(pack)
    assert list(store.backend.list(PACK_PREFIX)) == []
    monkeypatch.setattr(pack_format, "MAX_PACK_RAW", 2 << 20)
    assert len(store.receive_pack(pack)) == 5


def craft(frame, entries, comp=0):
    """A pack of one raw frame with a hand-written index (entries: digest, kind, offset,
    length, inner offset, size), as a hostile client could send."""
    from kaos.store.pack import _TRAILER, PACK_MAGIC, encode_index

    index = encode_index(
        [(d, k, comp, off, flen, inner, n) for d, k, off, flen, inner, n in entries]
    )
    return PACK_MAGIC + frame + index + _TRAILER.pack(len(index), PACK_MAGIC)


@pytest.mark.parametrize(
    ("kind", "offset", "length", "inner", "size", "message"),
    [
        (KIND_BLOB, 0, 50, 0, 50, "points outside the pack"),  # over the magic
        (KIND_BLOB, 8, 51, 0, 50, "points outside the pack"),  # into the index
        (KIND_BLOB, 8, 50, 10, 41, "points outside its frame"),
        (7, 8, 50, 0, 50, "has an unknown kind 7"),
    ],
)
def test_an_index_that_lies_about_its_objects_is_refused(
    store, kind, offset, length, inner, size, message
):
    frame = b"f" * 50
    digest = hash_bytes(frame)
    with pytest.raises(IntegrityError, match=message) as caught:
        store.receive_pack(craft(frame, [(digest, kind, offset, length, inner, size)]))
    assert caught.value.digest == digest  # named by the object, as the client reports it
    assert list(store.backend.list(PACK_PREFIX)) == []


def test_objects_sharing_a_frame_offset_are_each_checked_as_their_own_entry_reads(store):
    """Two entries at one offset but different lengths: each is read as its entry says (as a
    later read would), so the second cannot borrow the first one's frame."""
    frame = b"a" * 40 + b"b" * 10
    first, second = hash_bytes(frame[:40]), hash_bytes(frame[40:])
    entries = [(first, KIND_BLOB, 8, 50, 0, 40), (second, KIND_BLOB, 8, 40, 40, 10)]
    with pytest.raises(IntegrityError, match=f"object {second} points outside its frame"):
        store.receive_pack(craft(frame, entries))
    entries[1] = (second, KIND_BLOB, 8, 50, 40, 10)
    assert store.receive_pack(craft(frame, entries)) == [first, second]


def test_a_chunk_list_reads_each_stored_frame_once_per_run_of_chunks(store, monkeypatch):
    """A large tree's chunk list arrives after its 8 KiB chunks, which share stored frames:
    its check reads a frame per run of chunks, not one per chunk."""
    chunks = [bytes([i]) * 8192 for i in range(64)]  # two shared frames of 256 KiB
    _id, pack, _index = pack_of(*((hash_bytes(c), KIND_BLOB, c) for c in chunks))
    store.receive_pack(pack)
    whole = b"".join(chunks)
    listed = encode_chunk_list(len(whole), [(hash_bytes(c), len(c)) for c in chunks])
    _id, pack, _index = pack_of((hash_bytes(whole), KIND_CHUNKS, listed))
    reads = []
    get = store.backend.get
    monkeypatch.setattr(store.backend, "get", lambda key, *a: reads.append(key) or get(key, *a))
    assert store.receive_pack(pack) == [hash_bytes(whole)]
    frames_read = [key for key in reads if key.startswith(PACK_PREFIX)]
    assert 1 <= len(frames_read) <= 2  # two windows of 32 chunks, a read each (was 64)
    assert store.get_bytes(hash_bytes(whole)) == whole
