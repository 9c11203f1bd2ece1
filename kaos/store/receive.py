"""Accept a pack uploaded by a client, after verifying every byte of it.

Nothing of a bad pack is stored: its id must be its hash, every frame must sit inside the pack
and decompress to the size the index claims (no zip bombs), every blob must match its digest,
and every chunk list must reassemble, from this pack or the store, to its digest.
"""

from __future__ import annotations

from collections.abc import Callable

import xxhash
import zstandard

from kaos.errors import IntegrityError
from kaos.store.hashing import hash_bytes
from kaos.store.pack import (
    KIND_BLOB,
    KIND_CHUNKS,
    PACK_MAGIC,
    TRAILER_SIZE,
    Location,
    decode_chunk_list,
    decode_frame,
    decode_index,
    index_from_pack,
)
from kaos.store.writer import PackSink

LookupBlob = Callable[[str], bytes]  # a stored blob's verified content (the store's reader)


def verify_pack(data: bytes, lookup_blob: LookupBlob) -> tuple[str, bytes, list[str]]:
    """Check an uploaded pack; returns (pack id, index bytes, digests it holds)."""
    pack_id = hash_bytes(data)
    if not data.startswith(PACK_MAGIC):
        raise IntegrityError("upload is not a kaos pack", pack_id)
    try:
        index = index_from_pack(pack_id, data)
        entries = decode_index(pack_id, index)
    except (IntegrityError, ValueError, IndexError) as exc:
        raise IntegrityError(f"uploaded pack is malformed: {exc}", pack_id) from None
    body_end = len(data) - len(index) - TRAILER_SIZE
    frames: dict[int, bytes] = {}
    blobs: dict[str, bytes] = {}
    decompressor = zstandard.ZstdDecompressor()
    for digest, loc in entries:
        if loc.frame_offset < len(PACK_MAGIC) or loc.frame_offset + loc.frame_length > body_end:
            raise IntegrityError(f"object {digest} points outside the pack", digest)
        if loc.frame_offset not in frames:
            frames[loc.frame_offset] = _decode(data, loc, decompressor, digest)
        raw = frames[loc.frame_offset]
        if loc.inner_offset + loc.size > len(raw):
            raise IntegrityError(f"object {digest} points outside its frame", digest)
        payload = raw[loc.inner_offset : loc.inner_offset + loc.size]
        if loc.kind == KIND_BLOB:
            if hash_bytes(payload) != digest:
                raise IntegrityError(f"object {digest} does not match its hash", digest)
            blobs[digest] = payload
        elif loc.kind != KIND_CHUNKS:
            raise IntegrityError(f"object {digest} has an unknown kind {loc.kind}", digest)
    for digest, loc in entries:
        if loc.kind == KIND_CHUNKS:
            payload = frames[loc.frame_offset][loc.inner_offset : loc.inner_offset + loc.size]
            _verify_chunk_list(digest, payload, blobs, lookup_blob)
    return pack_id, index, [d for d, _ in entries]


def receive_pack(data: bytes, sink: PackSink, lookup_blob: LookupBlob) -> list[str]:
    pack_id, index, digests = verify_pack(data, lookup_blob)
    sink.store_pack(pack_id, data, index)
    return digests


def _decode(
    data: bytes, loc: Location, decompressor: zstandard.ZstdDecompressor, digest: str
) -> bytes:
    frame = data[loc.frame_offset : loc.frame_offset + loc.frame_length]
    try:
        return decode_frame(loc, frame, decompressor)
    except IntegrityError as exc:
        raise IntegrityError(f"object {digest}: {exc.message}", digest) from None


def _verify_chunk_list(
    digest: str, payload: bytes, blobs: dict[str, bytes], lookup: LookupBlob
) -> None:
    try:
        _total, chunks = decode_chunk_list(payload)  # checks the sizes add up to the total
    except (IntegrityError, ValueError) as exc:
        raise IntegrityError(f"chunk list {digest} is malformed: {exc}", digest) from None
    hasher = xxhash.xxh3_128()
    for chunk, size in chunks:
        content = blobs.get(chunk)
        if content is None:
            content = lookup(chunk)  # ObjectNotFound if the client skipped a chunk
        if len(content) != size:
            raise IntegrityError(f"chunk {chunk} of {digest} has the wrong size", digest)
        hasher.update(content)
    if hasher.hexdigest() != digest:
        raise IntegrityError(f"chunks of {digest} do not add up to it", digest)
