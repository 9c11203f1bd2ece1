"""Reading objects back: ranged reads of frames, coalesced per pack, every object verified."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import BinaryIO

import xxhash
import zstandard

from kaos.errors import BundleError, IntegrityError, ObjectNotFound
from kaos.store.backends.base import Backend
from kaos.store.hashing import hash_bytes
from kaos.store.index import PACK_PREFIX, PackIndex
from kaos.store.pack import KIND_BLOB, KIND_CHUNKS, Location, decode_chunk_list, decode_frame
from kaos.store.tree import HEADER as TREE_HEADER

_MERGE_GAP = 256 << 10  # read across gaps up to this size rather than issue another request
_MERGE_MAX = 32 << 20
_WINDOW = 32  # objects read in order are fetched this many at a time (a frame read once each)
MAX_TREE_BYTES = 512 << 20  # about 5 million files; anything larger is not read as a tree


class StoreReader:
    """Reads verified objects. An object found corrupt is dropped from the index at once (and
    `on_corrupt` told), so the store stops claiming it and the next push of the same content
    uploads it again; `kaos store verify --repair` makes that permanent."""

    def __init__(self, backend: Backend, index: PackIndex) -> None:
        self._backend = backend
        self._index = index
        self.on_corrupt: Callable[[str], None] | None = None

    def _corrupt(self, digest: str, message: str) -> IntegrityError:
        loc = self._index.locate(digest)
        if loc is not None:
            self._index.discard(digest, loc.pack)
        if self.on_corrupt is not None:
            self.on_corrupt(digest)
        return IntegrityError(message, digest)

    def _verified(self, digest: str, data: bytes) -> bytes:
        if hash_bytes(data) != digest:
            raise self._corrupt(digest, f"object {digest} is corrupt and was not served")
        return data

    def _pack_range(self, pack_id: str, offset: int, length: int, digest: str) -> bytes:
        """Bytes of a pack. A pack the index names but the backend lacks was deleted by
        someone else (another replica's gc): the index forgets it (and the store what it made
        complete), so the next push sends its content again instead of failing the same way."""
        try:
            return self._backend.get(PACK_PREFIX + pack_id, offset, length)
        except ObjectNotFound:
            self._index.refresh()
            raise ObjectNotFound(digest) from None

    def locate(self, digest: str) -> Location:
        loc = self._index.locate(digest)
        if loc is None and not self._index.was_discarded(digest):
            self._index.refresh()  # another writer (a replica, a Ray node) may have stored it
            loc = self._index.locate(digest)
        if loc is None:
            if self._index.was_discarded(digest):
                raise IntegrityError(
                    f"object {digest} is corrupt and was not served",
                    digest,
                    "deploy the same content again, or run 'kaos store verify --repair'",
                )
            raise ObjectNotFound(digest)
        return loc

    def payload(self, digest: str) -> tuple[Location, bytes]:
        loc = self.locate(digest)
        frame = self._pack_range(loc.pack, loc.frame_offset, loc.frame_length, digest)
        try:
            raw = decode_frame(loc, frame, zstandard.ZstdDecompressor())
        except IntegrityError as exc:
            raise self._corrupt(digest, f"object {digest} is corrupt: {exc.message}") from None
        return loc, raw[loc.inner_offset : loc.inner_offset + loc.size]

    def get_bytes(self, digest: str) -> bytes:
        """The verified content of `digest` (chunked content is reassembled)."""
        loc, payload = self.payload(digest)
        if loc.kind == KIND_BLOB:
            return self._verified(digest, payload)
        out = bytearray()
        for part in self._chunks(digest, payload):
            out += part
        return bytes(out)

    def size(self, digest: str) -> int:
        """The content's size from the index (and a chunk list's header), without reading it."""
        loc = self.locate(digest)
        if loc.kind == KIND_BLOB:
            return loc.size
        return decode_chunk_list(self.payload(digest)[1])[0]

    def get_tree_bytes(self, digest: str, limit: int = MAX_TREE_BYTES) -> bytes:
        """A tree's bytes, whole (for trees small enough to parse into a `Tree`)."""
        out = bytearray()
        for piece in self.tree_pieces(digest, limit):
            out += piece
        try:
            out.decode("utf-8")
        except UnicodeDecodeError:
            raise BundleError(f"tree {digest} is broken: its paths are not valid UTF-8") from None
        return bytes(out)

    def tree_pieces(self, digest: str, limit: int = MAX_TREE_BYTES) -> Iterator[bytes]:
        """A tree's verified bytes as they are read (a chunk at a time); an object that is too
        large or does not start like a tree is refused before it is read whole (a deploy
        naming a 2 GB data file costs one chunk, not 2 GB)."""
        size = self.size(digest)
        if size > limit:
            raise BundleError(f"object {digest} is not a tree ({size} bytes, trees are smaller)")
        return self._tree_pieces(digest)

    def _tree_pieces(self, digest: str) -> Iterator[bytes]:
        start = b""
        for piece in self.open_content(digest)[1]:
            if len(start) < len(TREE_HEADER):
                start += piece[: len(TREE_HEADER) - len(start)]
                if start != TREE_HEADER[: len(start)]:
                    raise BundleError(f"object {digest} is not a tree")
            yield piece

    def open_content(self, digest: str) -> tuple[int, Iterator[bytes]]:
        """(size, verified pieces) of any content: one piece for a blob, its chunks otherwise."""
        loc, payload = self.payload(digest)
        if loc.kind == KIND_BLOB:
            return len(payload), iter([self._verified(digest, payload)])
        total, _chunks = decode_chunk_list(payload)
        return total, self._chunks(digest, payload)

    def write_to(self, digest: str, out: BinaryIO) -> int:
        """Stream verified content into `out` chunk by chunk; returns the size written."""
        loc, payload = self.payload(digest)
        if loc.kind == KIND_BLOB:
            out.write(self._verified(digest, payload))
            return len(payload)
        written = 0
        for part in self._chunks(digest, payload):
            out.write(part)
            written += len(part)
        return written

    def _chunks(self, digest: str, chunk_list: bytes) -> Iterator[bytes]:
        total, chunks = decode_chunk_list(chunk_list)
        hasher = xxhash.xxh3_128()
        size = 0
        try:
            for _chunk, data in self.iter_blobs([c for c, _ in chunks], keep_order=True):
                hasher.update(data)
                size += len(data)
                yield data
        except IntegrityError as exc:  # a corrupt chunk: the whole file must be sent again
            raise self._corrupt(digest, f"object {digest} is corrupt: {exc.message}") from None
        if size != total or hasher.hexdigest() != digest:
            raise self._corrupt(digest, f"object {digest} is corrupt (chunks do not add up)")

    def contents(self, digests: Sequence[str]) -> Iterator[bytes]:
        """The verified contents of `digests`, in order (the stored chunks of a chunk list):
        blobs a window at a time, each frame read once per window; chunked ones reassembled."""
        for start in range(0, len(digests), _WINDOW):
            window = digests[start : start + _WINDOW]
            if all(self.locate(d).kind == KIND_BLOB for d in window):
                for _d, data in self.iter_blobs(window, keep_order=True):
                    yield data
            else:
                for d in window:
                    yield self.get_bytes(d)

    def chunk_digests(self, digest: str) -> list[str]:
        """The chunks a chunked object is made of (empty for a plain blob)."""
        loc = self.locate(digest)
        if loc.kind != KIND_CHUNKS:
            return []
        _loc, payload = self.payload(digest)
        return [c for c, _ in decode_chunk_list(payload)[1]]

    def iter_blobs(
        self, digests: Iterable[str], keep_order: bool = False
    ) -> Iterator[tuple[str, bytes]]:
        """Yield (digest, verified content) of plain blobs, reading each needed frame once.

        Frames are grouped per pack and neighbouring frames fetched with one ranged read.
        """
        ordered = list(digests)
        locs = {d: self.locate(d) for d in ordered}
        for d, loc in locs.items():
            if loc.kind != KIND_BLOB:
                raise IntegrityError(f"object {d} is chunked; read it with get_bytes", d)
        if keep_order:
            # Read in windows so a chunked file streams instead of being loaded whole; a digest
            # may repeat (the same chunk twice in one file) and is yielded each time.
            for start in range(0, len(ordered), _WINDOW):
                window = ordered[start : start + _WINDOW]
                found = dict(self._read_frames({d: locs[d] for d in window}))
                for d in window:
                    yield d, found[d]
            return
        yield from self._read_frames(locs)

    def _read_frames(self, locs: dict[str, Location]) -> Iterator[tuple[str, bytes]]:
        by_pack: dict[str, dict[int, list[tuple[str, Location]]]] = defaultdict(
            lambda: defaultdict(list)
        )
        for d, loc in locs.items():
            by_pack[loc.pack][loc.frame_offset].append((d, loc))
        decompressor = zstandard.ZstdDecompressor()
        for pack_id, frames in by_pack.items():
            for start, end, offsets in _coalesce(frames):
                data = self._pack_range(pack_id, start, end - start, next(iter(locs)))
                for offset in offsets:
                    members = frames[offset]
                    first = members[0][1]
                    frame = data[offset - start : offset - start + first.frame_length]
                    raw = decode_frame(first, frame, decompressor)
                    for d, loc in members:
                        payload = raw[loc.inner_offset : loc.inner_offset + loc.size]
                        yield d, self._verified(d, payload)


def _coalesce(
    frames: dict[int, list[tuple[str, Location]]],
) -> Iterator[tuple[int, int, list[int]]]:
    """Merge frames into ranged reads: (start, end, frame offsets inside)."""
    current: list[int] = []
    start = end = 0
    for offset in sorted(frames):
        length = frames[offset][0][1].frame_length
        if current and offset - end <= _MERGE_GAP and offset + length - start <= _MERGE_MAX:
            current.append(offset)
            end = max(end, offset + length)
            continue
        if current:
            yield start, end, current
        current, start, end = [offset], offset, offset + length
    if current:
        yield start, end, current
