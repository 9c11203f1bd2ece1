"""A write session: verified objects go into packs; sealed packs upload in the background.

Chunk lists are held back and sent in a last pack once every other pack has landed, so a
chunk list is never visible (or sent to a server that verifies it) before its chunks. The
chunks of a large file are checked against the destination in batches while it is read, so a
file is read once and only the chunks the destination lacks are sent.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from stat import S_ISREG
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import xxhash

from kaos.errors import BundleError, IntegrityError
from kaos.store.chunking import FILE_CHUNKS, ChunkParams, split_buffer, split_file, split_pieces
from kaos.store.hashing import hash_bytes, hash_fd
from kaos.store.locks import StoreLocks
from kaos.store.pack import (
    KIND_BLOB,
    KIND_CHUNKS,
    PackBuilder,
    Piece,
    RawPack,
    encode_chunk_list,
)

if TYPE_CHECKING:
    from kaos.store.transfer import Destination

Level = int | None | Callable[[], int | None]  # a zstd level, None for raw, or who knows it

PROBE_BYTES = 32 << 20  # ask the destination about a large file's chunks this much at a time


class Known(Protocol):
    """What a store already holds, answered without asking it (a pack index, a set)."""

    def __contains__(self, digest: str, /) -> bool: ...


@runtime_checkable
class SendsPieces(Protocol):
    """A destination that takes a pack as its pieces (the HTTP client sends them as they are),
    sparing the join of 32 MiB into one buffer."""

    def store_pack_pieces(self, pack_id: str, pieces: Sequence[Piece], index: bytes) -> None: ...


class StoreWriter:
    """Use as a context manager: on a clean exit every object added is stored and indexed.

    `known` answers "is this digest already stored?" without asking (the local store's index);
    whatever else the writer needs to know it asks the destination with `probe`, in batches.
    `level` is the zstd level of the packs' frames; None sends them raw (no compression);
    a callable is asked when the first pack is sent (it may have to ask the destination).
    """

    def __init__(
        self,
        destination: Destination,
        known: Known = frozenset(),
        locks: StoreLocks | None = None,
        uploads: int = 4,
        level: Level = 1,
    ) -> None:
        self._sink = destination
        self._level = level
        self._known = known
        self._present: set[str] = set()
        self._locks = locks
        self._builder = PackBuilder()
        self._deferred = PackBuilder()
        self._pool = ThreadPoolExecutor(max_workers=uploads, thread_name_prefix="kaos-upload")
        self._slots = threading.BoundedSemaphore(uploads)
        self._futures: list[Future[None]] = []
        self._pending: set[str] = set()
        self._stack = ExitStack()
        self._count_lock = threading.Lock()
        self.bytes_uploaded = 0

    def __enter__(self) -> StoreWriter:
        if self._locks is not None:
            self._stack.enter_context(self._locks.hold(exclusive=False))
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if exc_type is None:
                self.flush()
        finally:
            self._pool.shutdown(wait=True)
            self._stack.close()

    def has(self, digest: str) -> bool:
        return digest in self._pending or digest in self._present or digest in self._known

    def probe(self, digests: Iterable[str]) -> set[str]:
        """Which of `digests` the destination lacks and this session has not added (one ask)."""
        unknown = {d for d in digests if not self.has(d)}
        if not unknown:
            return set()
        absent = self._sink.missing(unknown)
        self._present |= unknown - absent
        return absent

    def add_blob(self, digest: str, data: bytes | memoryview) -> None:
        """Store content under its digest, after checking that the digest is right."""
        if hash_bytes(data) != digest:
            raise IntegrityError(f"content does not match its hash {digest}", digest)
        self.add_raw(digest, KIND_BLOB, data)

    def add_raw(self, digest: str, kind: int, payload: bytes | memoryview) -> None:
        """Add an already verified payload (also used by gc to move live objects)."""
        self._pending.add(digest)
        if kind == KIND_CHUNKS:
            self._deferred.add(digest, kind, payload)
            return
        self._builder.add(digest, kind, payload)
        if self._builder.full:
            self._seal(self._builder)
            self._builder = PackBuilder()

    def put_bytes(self, data: bytes, params: ChunkParams = FILE_CHUNKS) -> str:
        digest = hash_bytes(data)
        if self.has(digest):
            return digest
        if len(data) <= params.threshold:
            self.add_raw(digest, KIND_BLOB, data)
            return digest
        return self._put_chunked(split_buffer(data, params))

    def put_file(self, path: str | Path, digest: str | None = None) -> str:
        """Store a file, chunked when large; `digest` (if given) must match what is read."""
        path = os.fspath(path)
        # Opened without blocking and checked to be a regular file: a fifo put in the file's
        # place since it was hashed is refused, not waited on.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        with open(fd, "rb", buffering=0) as f:
            st = os.fstat(fd)
            if not S_ISREG(st.st_mode):
                raise changed_since_hashed(path)
            if st.st_size <= FILE_CHUNKS.threshold:
                data = f.read()
                actual = hash_bytes(data)
                _check_unchanged(path, digest, actual)
                if not self.has(actual):
                    self.add_raw(actual, KIND_BLOB, data)
                return actual
            if digest is not None:  # hashed first: content from elsewhere is never sent
                _check_unchanged(path, digest, hash_fd(fd)[0])
                f.seek(0)
            actual = self._put_chunked(split_file(f, FILE_CHUNKS))
        _check_unchanged(path, digest, actual)
        return actual

    def put_stream(self, pieces: Iterable[bytes], params: ChunkParams = FILE_CHUNKS) -> str:
        """Store content given as a stream of pieces (a million-file tree as it is serialized),
        chunked when larger than `params.threshold`, never joined into one buffer."""
        stream = iter(pieces)
        head: list[bytes] = []
        size = 0
        for piece in stream:
            head.append(piece)
            size += len(piece)
            if size > params.threshold:
                return self._put_chunked(split_pieces(itertools.chain(head, stream), params))
        return self.put_bytes(b"".join(head), params)

    def _put_chunked(self, pieces: Iterable[memoryview]) -> str:
        """Store content from its chunks: the chunks the destination lacks (asked about in
        batches while reading), then its chunk list (held back until they have landed)."""
        hasher = xxhash.xxh3_128()
        chunks: list[tuple[str, int]] = []
        batch: list[tuple[str, bytes]] = []
        batch_bytes = 0
        for chunk in pieces:
            hasher.update(chunk)
            chunk_digest = hash_bytes(chunk)
            chunks.append((chunk_digest, len(chunk)))
            if not self.has(chunk_digest):
                batch.append((chunk_digest, bytes(chunk)))
                batch_bytes += len(chunk)
                if batch_bytes >= PROBE_BYTES:
                    self._put_chunks(batch)
                    batch, batch_bytes = [], 0
        self._put_chunks(batch)
        digest = hasher.hexdigest()
        if not self.has(digest):
            total = sum(s for _, s in chunks)
            self.add_raw(digest, KIND_CHUNKS, encode_chunk_list(total, chunks))
        return digest

    def _put_chunks(self, chunks: Sequence[tuple[str, bytes | memoryview]]) -> None:
        """Add the chunks the destination lacks (asked once for the whole batch)."""
        absent = self.probe(d for d, _ in chunks)
        for digest, chunk in chunks:
            if digest in absent and digest not in self._pending:
                self.add_raw(digest, KIND_BLOB, bytes(chunk))

    def flush(self) -> None:
        """Store everything added so far; chunk lists last, after their chunks have landed."""
        if len(self._builder):
            self._seal(self._builder)
            self._builder = PackBuilder()
        self._wait()
        if len(self._deferred):
            self._seal(self._deferred)
            self._deferred = PackBuilder()
            self._wait()

    def _wait(self) -> None:
        futures, self._futures = self._futures, []
        for future in futures:
            future.result()

    def _seal(self, builder: PackBuilder) -> None:
        raw = builder.seal()
        self._slots.acquire()
        self._futures.append(self._pool.submit(self._upload, raw))

    def _upload(self, raw: RawPack) -> None:
        """Compress on this worker thread, then hand the pack to the sink."""
        try:
            level = self._level() if callable(self._level) else self._level
            pack_id, pieces, index = raw.encode_pieces(level)
            if isinstance(self._sink, SendsPieces):
                self._sink.store_pack_pieces(pack_id, pieces, index)
            else:
                self._sink.store_pack(pack_id, b"".join(pieces), index)
            with self._count_lock:
                self.bytes_uploaded += sum(map(len, pieces)) + len(index)
        finally:
            self._slots.release()


def _check_unchanged(path: str, expected: str | None, actual: str) -> None:
    if expected is not None and expected != actual:
        raise changed_since_hashed(path)


def changed_since_hashed(path: str) -> BundleError:
    """A file's content (or kind) is not what its scan hashed: it changed in between."""
    return BundleError(f"file changed since it was hashed: {path}", "deploy again")
