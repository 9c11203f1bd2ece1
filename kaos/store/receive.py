"""Accept a pack uploaded by a client, after verifying every byte of it.

Nothing of a bad pack is stored: its id must be its hash, every frame must sit inside the pack
and decompress to the size the index claims (no zip bombs), every blob must match its digest,
and every chunk list must reassemble, from this pack or the store, to its digest.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import xxhash

from kaos.errors import BundleError, IntegrityError
from kaos.store.hashing import hash_bytes
from kaos.store.pack import (
    KIND_BLOB,
    KIND_CHUNKS,
    PACK_MAGIC,
    Location,
    decode_chunk_list,
    decode_index,
    index_from_pack,
    walk_pack,
)
from kaos.store.tree import HEADER as TREE_HEADER
from kaos.store.tree import Tree

LookupBlob = Callable[[str], bytes]  # a stored blob's verified content (the store's reader)
StoredSize = Callable[[str], int | None]  # a stored object's size, None when absent


def verify_pack(
    data: bytes | bytearray, lookup_blob: LookupBlob, stored_size: StoredSize = lambda _d: None
) -> tuple[str, bytes, list[tuple[str, Location]]]:
    """Check an uploaded pack; returns (pack id, index bytes, the index decoded: what it holds
    and where). Payloads are views into the decoded frames, so a pack costs its bytes and its
    decoded frames, no more."""
    pack_id = hash_bytes(data)
    if not data.startswith(PACK_MAGIC):
        raise IntegrityError("upload is not a kaos pack", pack_id)
    try:
        index = index_from_pack(pack_id, data)
        entries = decode_index(pack_id, index)
        objects = list(walk_pack(pack_id, data, index, entries))
    except IntegrityError as exc:
        if exc.digest != pack_id:
            raise
        raise IntegrityError(f"uploaded pack is malformed: {exc}", pack_id) from None
    except (ValueError, IndexError, struct.error) as exc:
        raise IntegrityError(f"uploaded pack is malformed: {exc}", pack_id) from None
    blobs: dict[str, memoryview] = {}
    for obj in objects:
        if obj.kind == KIND_BLOB:
            if hash_bytes(obj.payload) != obj.digest:
                raise IntegrityError(f"object {obj.digest} does not match its hash", obj.digest)
            blobs[obj.digest] = obj.payload
    sizes = {d: len(b) for d, b in blobs.items()}
    for obj in objects:
        if obj.kind == KIND_CHUNKS:
            sizes[obj.digest] = _verify_chunk_list(obj.digest, obj.payload, blobs, lookup_blob)
    for digest, content in blobs.items():
        if content[: len(TREE_HEADER)] == TREE_HEADER:
            _check_tree_sizes(digest, bytes(content), lambda d: sizes.get(d, stored_size(d)))
    return pack_id, index, entries


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
    digest: str, payload: memoryview, blobs: dict[str, memoryview], lookup: LookupBlob
) -> int:
    try:
        total, chunks = decode_chunk_list(payload)  # checks the sizes add up to the total
    except (IntegrityError, ValueError) as exc:
        raise IntegrityError(f"chunk list {digest} is malformed: {exc}", digest) from None
    hasher = xxhash.xxh3_128()
    for chunk, size in chunks:
        content: bytes | memoryview | None = blobs.get(chunk)
        if content is None:
            content = lookup(chunk)  # ObjectNotFound if the client skipped a chunk
        if len(content) != size:
            raise IntegrityError(f"chunk {chunk} of {digest} has the wrong size", digest)
        hasher.update(content)
    if hasher.hexdigest() != digest:
        raise IntegrityError(f"chunks of {digest} do not add up to it", digest)
    return total
