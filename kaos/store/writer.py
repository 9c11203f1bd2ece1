"""A write session: verified objects go into packs; sealed packs upload in the background.

Chunk lists are held back and sent in a last pack once every other pack has landed, so a
chunk list is never visible (or sent to a server that verifies it) before its chunks.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Container
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Protocol

import xxhash

from kaos.errors import BundleError, IntegrityError
from kaos.store.backends.base import Backend
from kaos.store.chunking import FILE_CHUNKS, ChunkParams, split_buffer, split_file
from kaos.store.hashing import hash_bytes
from kaos.store.index import INDEX_PREFIX, PACK_PREFIX, PackIndex
from kaos.store.locks import StoreLocks
from kaos.store.pack import KIND_BLOB, KIND_CHUNKS, PackBuilder, RawPack, encode_chunk_list


class PackSink(Protocol):
    """Where sealed packs go: a backend (local store) or a kaos server (the client)."""

    def store_pack(self, pack_id: str, data: bytes, index: bytes) -> None: ...


class BackendSink:
    def __init__(self, backend: Backend, index: PackIndex) -> None:
        self._backend = backend
        self._index = index

    def store_pack(self, pack_id: str, data: bytes, index: bytes) -> None:
        """Pack first, index second: an index that is visible always names a complete pack."""
        self._backend.put(PACK_PREFIX + pack_id, data)
        self._backend.put(INDEX_PREFIX + pack_id, index)
        self._index.remember(pack_id, index)


class StoreWriter:
    """Use as a context manager: on a clean exit every object added is stored and indexed.

    `known` answers "is this digest already stored?" (the store's index, or what a server said).
    """

    def __init__(
        self,
        sink: PackSink,
        known: Container[str],
        locks: StoreLocks | None = None,
        uploads: int = 4,
    ) -> None:
        self._sink = sink
        self._known = known
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
        return digest in self._known or digest in self._pending

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
        chunks = [self._put_chunk(c) for c in split_buffer(data, params)]
        self.add_raw(digest, KIND_CHUNKS, encode_chunk_list(len(data), chunks))
        return digest

    def put_file(self, path: str | Path, digest: str | None = None) -> str:
        """Store a file, chunked when large; `digest` (if given) must match what is read."""
        path = os.fspath(path)
        if os.stat(path).st_size <= FILE_CHUNKS.threshold:
            with open(path, "rb") as f:
                data = f.read()
            actual = hash_bytes(data)
            _check_unchanged(path, digest, actual)
            if not self.has(actual):
                self.add_raw(actual, KIND_BLOB, data)
            return actual
        hasher = xxhash.xxh3_128()
        chunks = []
        for chunk in split_file(path, FILE_CHUNKS):
            hasher.update(chunk)
            chunks.append(self._put_chunk(chunk))
        actual = hasher.hexdigest()
        _check_unchanged(path, digest, actual)
        if not self.has(actual):
            total = sum(s for _, s in chunks)
            self.add_raw(actual, KIND_CHUNKS, encode_chunk_list(total, chunks))
        return actual

    def _put_chunk(self, chunk: memoryview) -> tuple[str, int]:
        digest = hash_bytes(chunk)
        if not self.has(digest):
            self.add_raw(digest, KIND_BLOB, bytes(chunk))
        return digest, len(chunk)

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
            pack_id, data, index = raw.encode()
            self._sink.store_pack(pack_id, data, index)
            with self._count_lock:
                self.bytes_uploaded += len(data) + len(index)
        finally:
            self._slots.release()


def _check_unchanged(path: str, expected: str | None, actual: str) -> None:
    if expected is not None and expected != actual:
        raise BundleError(f"file changed since it was hashed: {path}", "deploy again")
