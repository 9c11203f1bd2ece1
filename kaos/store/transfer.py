"""One transfer: store a scanned folder's missing files, then its tree, at any destination.

A destination answers three questions, "do you hold this whole tree?", "which of these do you
lack?" and "store this pack"; the local `ContentStore` and the HTTP `KaosClient` both do, so
the CLI, the Python API, the server's remote-data download and the executors' output upload
all go through `push` below. An unchanged folder costs the first question alone.
"""

from __future__ import annotations

import contextlib
import gc
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from kaos.errors import BundleError
from kaos.store.ahead import read_ahead, read_small
from kaos.store.chunking import FILE_CHUNKS, TREE_CHUNKS
from kaos.store.hashing import hash_bytes
from kaos.store.pack import KIND_BLOB
from kaos.store.progress import NullProgress, Progress, Throttled
from kaos.store.scan import PathsHook, ScannedFolder, scan_folder
from kaos.store.state import HashCache
from kaos.store.tree import Tree
from kaos.store.writer import Level, StoreWriter, changed_since_hashed


class Destination(Protocol):
    """Where pushed content goes: a local content store or a kaos server."""

    def complete(self, tree_digest: str) -> bool:
        """Whether it holds the tree and every object the tree names (one question)."""
        ...

    def missing(self, digests: Iterable[str]) -> set[str]:
        """The digests it does not hold (asked in batches, so one question per batch)."""
        ...

    def store_pack(self, pack_id: str, data: bytes, index: bytes) -> None:
        """Store one sealed pack: pack first, index second (a server verifies it first)."""
        ...


@dataclass(frozen=True)
class PushReport:
    scanned: ScannedFolder
    files_sent: int
    bytes_read: int
    bytes_uploaded: int

    @property
    def tree(self) -> Tree:
        return self.scanned.tree


def push(
    scanned: ScannedFolder,
    destination: Destination,
    progress: Progress | None = None,
    writer: StoreWriter | None = None,
    files_held: bool = False,
) -> PushReport:
    """Send every file of `scanned` the destination lacks, then the tree (after its files).

    Large files are chunked and only chunks the destination lacks are sent, so an appended data
    file costs its new rows. Pass `writer` to share one write session (and its lock);
    `files_held` says it already holds or has asked about every file (a scan that read them
    all offered them), so only the tree is left.
    """
    if destination.complete(scanned.digest):  # unchanged since it was pushed: no tree is built
        return PushReport(scanned, 0, 0, 0)
    if writer is None:
        with StoreWriter(destination) as session:
            return push(scanned, destination, progress, session)
    sent = sent_bytes = 0
    if not files_held:
        sent, sent_bytes = _push_files(scanned, writer, progress)
    if writer.probe([scanned.digest]):
        writer.put_stream(scanned.serialized(), TREE_CHUNKS)
    writer.flush()
    return PushReport(scanned, sent, sent_bytes, writer.bytes_uploaded)


def _push_files(
    scanned: ScannedFolder, writer: StoreWriter, progress: Progress | None
) -> tuple[int, int]:
    """Read and add the files the destination lacks (small ones on reader threads, in walk
    order; large ones chunked); returns (files, bytes) sent."""
    todo, total = _absent_files(scanned, writer)
    meter = Throttled(progress or NullProgress(), "upload", total, step=max(total // 200, 1 << 20))
    sent = sent_bytes = done = 0
    for batch in scanned.files():
        small: list[tuple[str, str, int]] = []
        for i, (path, digest, size, _executable) in enumerate(batch, done):
            if not todo[i]:
                continue
            if size > FILE_CHUNKS.threshold:
                writer.put_file(scanned.abspath(path), digest)
                meter.advance(size)
                sent, sent_bytes = sent + 1, sent_bytes + size
            else:
                small.append((scanned.abspath(path), digest, size))
        done += len(batch)
        read = read_ahead(_read, small, _size, _path)
        for (path, digest, size), data in zip(small, read, strict=True):
            if hash_bytes(data) != digest:
                raise changed_since_hashed(path)
            if not writer.has(digest):  # a copy of it went already
                writer.add_raw(digest, KIND_BLOB, data)
                meter.advance(size)
                sent, sent_bytes = sent + 1, sent_bytes + size
    meter.finish()
    return sent, sent_bytes


def _read(file: tuple[str, str, int]) -> bytes:
    try:
        return read_small(file[0], file[2])
    except FileNotFoundError:
        raise BundleError(f"file removed since it was hashed: {file[0]}", "deploy again") from None


def _size(file: tuple[str, str, int]) -> int:
    return file[2]


def _path(file: tuple[str, str, int]) -> str:
    return file[0]


def _absent_files(scanned: ScannedFolder, writer: StoreWriter) -> tuple[bytearray, int]:
    """Which files the destination lacks (a flag per file, in walk order) and about how many
    bytes that is: asked a batch at a time, so no set of every digest is ever built."""
    todo = bytearray(len(scanned))
    total = done = 0
    for batch in scanned.files():
        absent = writer.probe(digest for _path, digest, _size, _x in batch)
        for i, (_path, digest, size, _executable) in enumerate(batch, done):
            if digest in absent and not writer.has(digest):
                absent.discard(digest)  # the first file with that content sends it
                todo[i] = 1
                total += size
        done += len(batch)
    return todo, total


_YOUNG_THRESHOLD = 50_000


@contextlib.contextmanager
def _fewer_collections() -> Iterator[None]:
    """Run Python's cycle collector less often during a scan and push: by default it runs every
    700 new container objects, about 1,200 times (0.28-0.37 CPU s, its full passes walking
    every object alive) in a 100k-file first deploy; every 50,000, 35 times (0.09-0.14 s).
    It still runs, so memory stays bounded, and a push makes almost no cyclic garbage (the
    same 96 objects at 10k and 100k files; upload buffers are freed by reference counting)."""
    old = gc.get_threshold()
    gc.set_threshold(_YOUNG_THRESHOLD, *old[1:])
    try:
        yield
    finally:
        gc.set_threshold(*old)


def scan_and_push(
    root: str | Path,
    destination: Destination,
    cache: HashCache | None = None,
    progress: Progress | None = None,
    vet: PathsHook | None = None,
    uploads: int = 2,
    level: Level = 1,
) -> PushReport:
    """Scan a folder and push it in one pass: every small file read to be hashed is offered to
    the destination right away, in batches (one "which do you lack?" per batch), and packed
    and uploaded on the writer's threads while the scan goes on. A first push thus reads each
    file once; an unchanged folder still costs its walk and one question. `vet(names)` may
    refuse the folder before anything is read or sent. `level`: the packs' zstd level, None to
    send them raw."""
    with _fewer_collections(), StoreWriter(destination, uploads=uploads, level=level) as writer:
        offer = _Offer(writer)
        try:
            scanned = scan_folder(root, cache, progress, on_content=offer, vet=vet)
            offer.flush()
        finally:
            offer.close()
        report = push(scanned, destination, None, writer, files_held=offer.seen == len(scanned))
    return replace(
        report,
        files_sent=report.files_sent + offer.files,
        bytes_read=report.bytes_read + offer.bytes,
        bytes_uploaded=writer.bytes_uploaded,
    )


class _Offer:
    """Collects (digest, content) pairs from a scan and hands them on a batch at a time: two
    threads ask the destination which it lacks (a server busy verifying packs is slow to
    answer, so questions overlap) and one packs what it lacks, batch after batch in the
    order read. The scan waits for neither, only for a free place when `_QUEUED` batches are
    already waiting. Until `flush` returns, only these threads touch the writer."""

    _FILES = 2_000
    _BYTES = 16 << 20
    _QUEUED = 2
    _ASKING = 2

    def __init__(self, writer: StoreWriter) -> None:
        self._writer = writer
        self._digests: list[str] = []
        self._contents: list[bytes] = []
        self._bytes = 0
        self._askers = ThreadPoolExecutor(self._ASKING, thread_name_prefix="kaos-ask")
        self._packer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kaos-offer")
        self._queued: deque[Future[tuple[int, int]]] = deque()
        self.files = 0  # sent so far
        self.bytes = 0
        self.seen = 0  # files offered (none larger than a chunk)

    def __call__(self, digest: str, data: bytes) -> None:
        if len(data) > FILE_CHUNKS.threshold:
            return  # large content is chunked by the push that follows
        self.seen += 1
        self._digests.append(digest)
        self._contents.append(data)
        self._bytes += len(data)
        if len(self._digests) >= self._FILES or self._bytes >= self._BYTES:
            self._hand_on()

    def flush(self) -> None:
        """Wait until every batch is asked about and packed (raising what went wrong)."""
        if self._digests:
            self._hand_on()
        while self._queued:
            self._count(self._queued.popleft())

    def close(self) -> None:
        """Drop batches not started and wait for the running ones (after an error)."""
        self._packer.shutdown(wait=True, cancel_futures=True)
        self._askers.shutdown(wait=True, cancel_futures=True)

    def _hand_on(self) -> None:
        digests, contents = self._digests, self._contents
        self._digests, self._contents, self._bytes = [], [], 0
        asked = self._askers.submit(self._writer.probe, digests)
        if len(self._queued) >= self._QUEUED:
            self._count(self._queued.popleft())
        self._queued.append(self._packer.submit(self._pack, digests, contents, asked))

    def _count(self, batch: Future[tuple[int, int]]) -> None:
        files, size = batch.result()
        self.files += files
        self.bytes += size

    def _pack(
        self, digests: list[str], contents: list[bytes], asked: Future[set[str]]
    ) -> tuple[int, int]:
        """On the packing thread: add what the destination lacks, in the order read, once each
        (an earlier batch, asked about at the same time, may have added it already)."""
        absent = asked.result()
        writer = self._writer
        files = size = 0
        for digest, data in zip(digests, contents, strict=True):
            if digest in absent and not writer.has(digest):
                writer.add_raw(digest, KIND_BLOB, data)  # hashed by the scan
                files += 1
                size += len(data)
        return files, size
