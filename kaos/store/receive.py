"""Accept a pack uploaded by a client, after verifying every byte of it.

Nothing of a bad pack is stored: its id must be its hash, every frame must sit inside the pack
and decompress to the size the index claims (no zip bombs), every blob must match its digest,
and every chunk list must reassemble, from this pack or the store, to its digest.

A pack holds thousands of small objects, so the loop over them works on raw digests and the
index's own records (a hex string, a named tuple or a dict entry per object would cost more
than the hashing itself); digests become hex only for what has to be looked up or reported.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator, Sequence

import xxhash

from kaos.errors import BundleError, IntegrityError
from kaos.store.hashing import hash_bytes
from kaos.store.pack import (
    KIND_BLOB,
    PACK_MAGIC,
    PackObject,
    decode_chunk_list,
    index_from_pack,
    walk_pack,
)
from kaos.store.tree import HEADER as TREE_HEADER
from kaos.store.tree import Tree

LookupBlobs = Callable[[Sequence[str]], Iterator[bytes]]  # stored contents, verified, in order
StoredSize = Callable[[str], int | None]  # a stored object's size, None when absent

_TREE_START = TREE_HEADER[0]


def verify_pack(
    data: bytes | bytearray | memoryview,
    lookup: LookupBlobs,
    stored_size: StoredSize = lambda _d: None,
) -> tuple[str, bytes, list[bytes]]:
    """Check an uploaded pack; returns (pack id, index bytes, the raw digests it holds).
    Payloads are views into the decoded frames, so a pack costs its bytes and its decoded
    frames, no more; none outlives the call (a pack left in the inbox is a view of a mapped
    file, unmapped after)."""
    pack_id = hash_bytes(data)
    if data[: len(PACK_MAGIC)] != PACK_MAGIC:
        raise IntegrityError("upload is not a kaos pack", pack_id)
    digest_of = xxhash.xxh3_128_digest
    objects: list[PackObject] = []
    chunk_lists: list[tuple[bytes, memoryview]] = []
    trees: list[tuple[bytes, memoryview]] = []
    try:
        index = index_from_pack(pack_id, data, hashed=True)  # its id is its hash, from above
        for obj in walk_pack(pack_id, data, index):
            objects.append(obj)
            digest, kind, payload = obj
            if kind != KIND_BLOB:
                chunk_lists.append((digest, payload))
                continue
            if digest_of(payload) != digest:
                raise IntegrityError(f"object {digest.hex()} does not match its hash", digest.hex())
            if payload and payload[0] == _TREE_START and payload[: len(TREE_HEADER)] == TREE_HEADER:
                trees.append((digest, payload))
    except IntegrityError as exc:
        if exc.digest != pack_id:
            raise
        raise IntegrityError(f"uploaded pack is malformed: {exc}", pack_id) from None
    except (ValueError, IndexError, struct.error) as exc:
        raise IntegrityError(f"uploaded pack is malformed: {exc}", pack_id) from None
    if chunk_lists or trees:
        _verify_composites(objects, chunk_lists, trees, lookup, stored_size)
    return pack_id, index, [digest for digest, _kind, _payload in objects]


def _verify_composites(
    objects: list[PackObject],
    chunk_lists: list[tuple[bytes, memoryview]],
    trees: list[tuple[bytes, memoryview]],
    lookup: LookupBlobs,
    stored_size: StoredSize,
) -> None:
    """Chunk lists must reassemble to their digests and trees declare their files' sizes: both
    need the pack's blobs by digest, made only for the packs that hold such objects."""
    blobs = {digest.hex(): payload for digest, kind, payload in objects if kind == KIND_BLOB}
    sizes = {d: len(b) for d, b in blobs.items()}
    for digest, payload in chunk_lists:
        hexed = digest.hex()
        sizes[hexed] = _verify_chunk_list(hexed, payload, blobs, lookup)
    for digest, content in trees:
        _check_tree_sizes(digest.hex(), bytes(content), lambda d: sizes.get(d, stored_size(d)))


def _check_tree_sizes(digest: str, content: bytes, size_of: StoredSize) -> None:
    """A tree must declare the sizes its files have (files not stored yet are checked at
    deploy); content that only looks like a tree is an ordinary file."""
    try:
        tree = Tree.parse(content)
    except BundleError:
        return
    problems = tree.size_problems(size_of)
    if problems:
        raise IntegrityError(f"tree {digest} lies about sizes: {problems[0]}", digest)


def _verify_chunk_list(
    digest: str, payload: memoryview, blobs: dict[str, memoryview], lookup: LookupBlobs
) -> int:
    try:
        total, chunks = decode_chunk_list(payload)  # checks the sizes add up to the total
    except (IntegrityError, ValueError, struct.error) as exc:  # struct: too short to decode
        raise IntegrityError(f"chunk list {digest} is malformed: {exc}", digest) from None
    hasher = xxhash.xxh3_128()
    for chunk, size, content in _contents(chunks, blobs, lookup):
        if len(content) != size:
            raise IntegrityError(f"chunk {chunk} of {digest} has the wrong size", digest)
        hasher.update(content)
    if hasher.hexdigest() != digest:
        raise IntegrityError(f"chunks of {digest} do not add up to it", digest)
    return total


def _contents(
    chunks: list[tuple[str, int]], blobs: dict[str, memoryview], lookup: LookupBlobs
) -> Iterator[tuple[str, int, bytes | memoryview]]:
    """Each chunk with its content, in order: from this pack, else from the store, asked for
    a run of chunks at a time (a stored frame holds many small chunks: a tree's are 8 KiB), so
    each frame is read once per run rather than once per chunk."""
    run: list[tuple[str, int]] = []
    for chunk, size in chunks:
        content = blobs.get(chunk)
        if content is None:
            run.append((chunk, size))
            continue
        if run:
            yield from _stored(run, lookup)
            run = []
        yield chunk, size, content
    if run:
        yield from _stored(run, lookup)


def _stored(
    run: list[tuple[str, int]], lookup: LookupBlobs
) -> Iterator[tuple[str, int, bytes | memoryview]]:
    contents = lookup([chunk for chunk, _size in run])  # ObjectNotFound if one was skipped
    for (chunk, size), content in zip(run, contents, strict=True):
        yield chunk, size, content
