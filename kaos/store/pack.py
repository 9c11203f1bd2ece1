"""The on-store pack format (see docs/store-format.md): pure encoding, no I/O.

A pack holds many objects in frames; a frame is one zstd-compressed (or raw) run of payloads.
Small payloads share a frame (better compression, fewer calls); large ones get a frame each.
Its index lists every object's location and is stored twice: as the pack's trailer (so a pack
describes itself) and as a separate small object (so readers can list contents cheaply).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import NamedTuple

import xxhash
import zstandard

from kaos.errors import IntegrityError
from kaos.store.hashing import bytes_to_digest, digest_to_bytes, hash_bytes

KIND_BLOB = 0  # payload is the content itself
KIND_CHUNKS = 1  # payload is a chunk list; the content is the chunks concatenated

COMP_NONE = 0
COMP_ZSTD = 1

PACK_MAGIC = b"KAOSPAK1"
INDEX_MAGIC = b"KAOSIDX1"
ENTRY = struct.Struct("<16sBBQIII")  # digest, kind, comp, frame_off, frame_len, inner_off, size
_COUNT = struct.Struct("<I")
_TRAILER = struct.Struct("<Q8s")  # index length, PACK_MAGIC
TRAILER_SIZE = _TRAILER.size

BLOCK_TARGET = 256 << 10  # close a shared frame once this much raw payload is in it
OWN_FRAME_MIN = 64 << 10  # payloads at least this large get a frame of their own
PACK_TARGET = 32 << 20  # seal a pack once this much raw payload is in it
_MIN_GAIN = 0.95  # keep compression only if it saves at least 5%


class Location(NamedTuple):
    """Where one object lives: enough to fetch and decode it with one ranged read."""

    pack: str
    kind: int
    comp: int
    frame_offset: int
    frame_length: int
    inner_offset: int
    size: int


class _Item(NamedTuple):
    digest: str
    kind: int
    payload: bytes | memoryview


class PackBuilder:
    """Groups objects into frames of one future pack. Cheap: it only collects references.

    `seal()` hands back a `RawPack`, whose `encode()` does the costly part (compression,
    hashing) and so can run on a worker thread while the next pack is being filled.
    """

    def __init__(self) -> None:
        self._frames: list[list[_Item]] = []
        self._block: list[_Item] = []
        self._block_size = 0
        self.raw_size = 0
        self.digests: set[str] = set()

    @property
    def full(self) -> bool:
        return self.raw_size >= PACK_TARGET

    def __len__(self) -> int:
        return len(self.digests)

    def add(self, digest: str, kind: int, payload: bytes | memoryview) -> None:
        """Add one object. The caller has verified `digest` against the content."""
        if digest in self.digests:
            return
        self.digests.add(digest)
        self.raw_size += len(payload)
        item = _Item(digest, kind, payload)
        if len(payload) >= OWN_FRAME_MIN:
            self._frames.append([item])
            return
        self._block.append(item)
        self._block_size += len(payload)
        if self._block_size >= BLOCK_TARGET:
            self._close_block()

    def seal(self) -> RawPack:
        self._close_block()
        return RawPack(self._frames)

    def _close_block(self) -> None:
        if self._block:
            self._frames.append(self._block)
            self._block = []
            self._block_size = 0


Piece = bytes | memoryview


class RawPack:
    def __init__(self, frames: list[list[_Item]]) -> None:
        self._frames = frames

    def encode(self, level: int | None = 1) -> tuple[str, bytes, bytes]:
        """Compress and lay out the pack; returns (pack_id, pack bytes, index bytes)."""
        pack_id, pieces, index = self.encode_pieces(level)
        return pack_id, b"".join(pieces), index

    def encode_pieces(self, level: int | None = 1) -> tuple[str, list[Piece], bytes]:
        """The pack as pieces to write or send in order (joining 32 MiB costs more than
        sending the pieces), with its id and index. `level` None keeps every frame raw: its
        payloads are pieces as they are, not copied, and nothing is compressed."""
        compressor = None if level is None else zstandard.ZstdCompressor(level=level)
        pieces: list[Piece] = [PACK_MAGIC]
        hasher = xxhash.xxh3_128(PACK_MAGIC)
        entries: list[tuple[str, int, int, int, int, int, int]] = []
        offset = len(PACK_MAGIC)
        for items in self._frames:
            frame: list[Piece] = [item.payload for item in items]
            length = sum(map(len, frame))
            comp = COMP_NONE
            if compressor is not None:
                raw = b"".join(frame)
                packed = compressor.compress(raw)
                if len(packed) <= length * _MIN_GAIN:
                    frame, length, comp = [packed], len(packed), COMP_ZSTD
            inner = 0
            for item in items:
                size = len(item.payload)
                entries.append((item.digest, item.kind, comp, offset, length, inner, size))
                inner += size
            for piece in frame:
                hasher.update(piece)
            pieces += frame
            offset += length
        index = encode_index(entries)
        tail = index + _TRAILER.pack(len(index), PACK_MAGIC)
        hasher.update(tail)
        pieces.append(tail)
        return hasher.hexdigest(), pieces, index


def encode_index(entries: list[tuple[str, int, int, int, int, int, int]]) -> bytes:
    body = bytearray(INDEX_MAGIC)
    body += _COUNT.pack(len(entries))
    for digest, kind, comp, off, flen, inner, size in entries:
        body += ENTRY.pack(digest_to_bytes(digest), kind, comp, off, flen, inner, size)
    return bytes(body) + digest_to_bytes(hash_bytes(body))


def index_table(pack_id: str, data: bytes) -> bytes:
    """An index's entry table (one `ENTRY` record per object), after verifying its checksum
    and length: what the store's in-memory index keeps, undecoded."""
    body, checksum = data[:-16], data[-16:]
    if not body.startswith(INDEX_MAGIC) or digest_to_bytes(hash_bytes(body)) != checksum:
        raise IntegrityError(f"index of pack {pack_id} is corrupt", pack_id)
    (count,) = _COUNT.unpack_from(body, len(INDEX_MAGIC))
    start = len(INDEX_MAGIC) + _COUNT.size
    if len(body) != start + count * ENTRY.size:
        raise IntegrityError(f"index of pack {pack_id} is truncated", pack_id)
    return bytes(body[start:])


def index_from_pack(
    pack_id: str, data: bytes | bytearray | memoryview, hashed: bool = False
) -> bytes:
    """Recover a pack's index from its trailer (and check the pack's own hash, unless the
    caller just computed `pack_id` from `data`: `hashed`)."""
    if not hashed and hash_bytes(data) != pack_id:
        raise IntegrityError(f"pack {pack_id} is corrupt", pack_id)
    length, magic = _TRAILER.unpack_from(data, len(data) - _TRAILER.size)
    if magic != PACK_MAGIC:
        raise IntegrityError(f"pack {pack_id} has no trailer", pack_id)
    end = len(data) - _TRAILER.size
    return bytes(data[end - length : end])


MAX_FRAME_RAW = 8 << 20  # no frame kaos writes decompresses to more (chunks are <= 2 MiB)


def decode_frame(
    loc: Location, frame: bytes | memoryview, decompressor: zstandard.ZstdDecompressor
) -> bytes:
    """A frame's raw bytes; refuses frames that would inflate beyond MAX_FRAME_RAW (bombs)."""
    if len(frame) != loc.frame_length:
        raise IntegrityError(f"pack {loc.pack} is truncated", loc.pack)
    if loc.comp == COMP_NONE:
        return bytes(frame)  # no copy when given bytes
    if loc.comp != COMP_ZSTD:
        raise IntegrityError(f"pack {loc.pack} uses unknown compression {loc.comp}", loc.pack)
    try:
        size = zstandard.frame_content_size(frame)
        if size < 0 or size > MAX_FRAME_RAW:
            raise IntegrityError(f"pack {loc.pack} has an unsized or oversized frame", loc.pack)
        return decompressor.decompress(frame)
    except zstandard.ZstdError as exc:
        raise IntegrityError(f"pack {loc.pack} has a corrupt frame", loc.pack) from exc


MAX_PACK_RAW = 8 * PACK_TARGET  # no pack kaos writes inflates to more (one seals at 32 MiB)

PackObject = tuple[bytes, int, memoryview]  # raw 16-byte digest, kind, payload (a frame view)


def walk_pack(
    pack_id: str, data: bytes | bytearray | memoryview, index: bytes
) -> Iterator[PackObject]:
    """Every object of a whole pack with its payload, decoding each frame once.

    Checks that every object lies inside the pack's body and inside its frame and has a known
    kind, and that the pack does not inflate beyond MAX_PACK_RAW (a bomb of many small frames);
    content hashes are left to the caller (an upload refuses, a store check reports). Digests
    stay raw (hex costs a string per object; it is made only for what is reported), and the
    index table is read record by record, so an object costs one tuple, not three.
    """
    table = index_table(pack_id, index)
    body_end = len(data) - len(index) - TRAILER_SIZE
    decompressor = zstandard.ZstdDecompressor()
    frames: dict[tuple[int, int, int], memoryview] = {}  # (offset, length, comp) -> decoded
    inflated = 0
    view = memoryview(data)
    current = (-1, 0, 0)  # the frame the previous object was in
    raw = view[:0]
    for digest, kind, comp, start, length, inner, size in ENTRY.iter_unpack(table):
        if start != current[0] or length != current[1] or comp != current[2]:
            current = (start, length, comp)
            cached = frames.get(current)
            if cached is None:
                if start < len(PACK_MAGIC) or start + length > body_end:
                    hexed = digest.hex()
                    raise IntegrityError(f"object {hexed} points outside the pack", hexed)
                frame = view[start : start + length]
                if comp != COMP_NONE:
                    loc = Location(pack_id, kind, comp, start, length, inner, size)
                    try:
                        frame = memoryview(decode_frame(loc, frame, decompressor))
                    except IntegrityError as exc:
                        hexed = digest.hex()
                        raise IntegrityError(f"object {hexed}: {exc.message}", hexed) from None
                inflated += len(frame)
                if inflated > MAX_PACK_RAW:
                    raise IntegrityError(
                        f"pack {pack_id} inflates beyond {MAX_PACK_RAW} bytes", pack_id
                    )
                cached = frames[current] = frame
            raw = cached
        if inner + size > len(raw):
            hexed = digest.hex()
            raise IntegrityError(f"object {hexed} points outside its frame", hexed)
        if kind != KIND_BLOB and kind != KIND_CHUNKS:
            hexed = digest.hex()
            raise IntegrityError(f"object {hexed} has an unknown kind {kind}", hexed)
        yield digest, kind, raw[inner : inner + size]


_CHUNK_HEAD = struct.Struct("<Q")
_CHUNK_ITEM = struct.Struct("<16sI")


def encode_chunk_list(total: int, chunks: list[tuple[str, int]]) -> bytes:
    out = bytearray(_CHUNK_HEAD.pack(total))
    for digest, size in chunks:
        out += _CHUNK_ITEM.pack(digest_to_bytes(digest), size)
    return bytes(out)


def decode_chunk_list(payload: bytes | memoryview) -> tuple[int, list[tuple[str, int]]]:
    (total,) = _CHUNK_HEAD.unpack_from(payload)
    chunks = [
        (bytes_to_digest(d), size)
        for d, size in _CHUNK_ITEM.iter_unpack(payload[_CHUNK_HEAD.size :])
    ]
    if sum(s for _, s in chunks) != total:
        raise IntegrityError("chunk list does not add up to its size")
    return total, chunks
