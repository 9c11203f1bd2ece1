"""One transfer: store a scanned folder's missing files, then its tree, at any destination.

A destination answers three questions, "do you hold this whole tree?", "which of these do you
lack?" and "store this pack"; the local `ContentStore` and the HTTP `KaosClient` both do, so
the CLI, the Python API, the server's remote-data download and the executors' output upload
all go through `push` below. An unchanged folder costs the first question alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from kaos.store.chunking import TREE_CHUNKS
from kaos.store.progress import NullProgress, Progress, Throttled
from kaos.store.scan import ScannedFolder
from kaos.store.tree import Tree, TreeEntry
from kaos.store.writer import StoreWriter


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
) -> PushReport:
    """Send every file of `scanned` the destination lacks, then the tree (after its files).

    Large files are chunked and only chunks the destination lacks are sent, so an appended data
    file costs its new rows. Pass `writer` to share one write session (and its lock).
    """
    if destination.complete(scanned.digest):  # unchanged since it was pushed: no tree is built
        return PushReport(scanned, 0, 0, 0)
    if writer is None:
        with StoreWriter(destination) as session:
            return push(scanned, destination, progress, session)
    tree = scanned.tree
    absent = writer.probe(tree.digests() | {tree.digest})
    todo: dict[str, TreeEntry] = {}
    for entry in tree:
        if entry.digest in absent and entry.digest not in todo:
            todo[entry.digest] = entry
    total = sum(e.size for e in todo.values())
    meter = Throttled(progress or NullProgress(), "upload", total, step=max(total // 200, 1 << 20))
    for digest, entry in todo.items():
        writer.put_file(scanned.abspath(entry.path), digest)
        meter.advance(entry.size)
    if tree.digest in absent:
        writer.put_bytes(tree.serialize(), TREE_CHUNKS)
    writer.flush()
    meter.finish()
    return PushReport(scanned, len(todo), total, writer.bytes_uploaded)
