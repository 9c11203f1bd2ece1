"""Garbage collection: drop what no kept tree reaches, repacking packs that are partly live.

Safe against concurrent writers: gc holds the store's exclusive lock (writers hold shared ones)
and never touches a pack younger than the grace period, so a pack uploaded by a writer whose
tree is not recorded yet survives.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass

from kaos.store.backends.base import Backend
from kaos.store.backends.local import LocalBackend
from kaos.store.inbox import inbox_folder, sweep
from kaos.store.index import INDEX_PREFIX, PACK_PREFIX, PackIndex
from kaos.store.reader import StoreReader
from kaos.store.tree import Tree
from kaos.store.writer import StoreWriter


@dataclass
class GcReport:
    packs_deleted: int = 0
    packs_rewritten: int = 0
    objects_removed: int = 0
    bytes_freed: int = 0
    temp_files_removed: int = 0  # left by writers that crashed mid-upload, and in the inbox
    dry_run: bool = False


def reachable(reader: StoreReader, kept_trees: Iterable[str]) -> set[str]:
    """Every digest a kept tree needs: the tree object, its files, and their chunks."""
    live: set[str] = set()
    for tree_digest in kept_trees:
        tree = Tree.parse(reader.get_tree_bytes(tree_digest), tree_digest)
        for digest in [tree_digest, *tree.digests()]:
            if digest not in live:
                live.add(digest)
                live.update(reader.chunk_digests(digest))
    return live


def collect_garbage(
    backend: Backend,
    index: PackIndex,
    reader: StoreReader,
    writer: StoreWriter,
    kept_trees: Iterable[str],
    grace_seconds: float,
    dry_run: bool = False,
) -> GcReport:
    """Run under the exclusive lock (the caller holds it); `writer` receives moved objects.
    A dry run reports what would go and changes nothing."""
    report = GcReport(dry_run=dry_run)
    index.refresh()
    live = reachable(reader, kept_trees)
    cutoff = time.time() - grace_seconds
    packs = {info.key[len(PACK_PREFIX) :]: info for info in backend.list(PACK_PREFIX)}
    contents = index.packs()
    doomed: list[str] = []
    for pack_id, info in packs.items():
        if info.modified > cutoff:
            continue
        digests = contents.get(pack_id, [])  # a pack without an index is an interrupted write
        keep = [d for d in digests if d in live and _owned_by(index, d, pack_id)]
        if len(keep) == len(digests) and digests:
            continue
        report.objects_removed += len(digests) - len(keep)
        report.bytes_freed += info.size
        report.packs_rewritten += bool(keep)
        report.packs_deleted += not keep
        if dry_run:
            continue
        for d in keep:
            loc, payload = reader.payload(d)
            writer.add_raw(d, loc.kind, payload)
        doomed.append(pack_id)
    removed, freed = _stale_temporaries(backend, cutoff, dry_run)
    if isinstance(backend, LocalBackend):  # packs a killed client left in the inbox
        swept, swept_bytes = sweep(inbox_folder(backend.root), cutoff, dry_run)
        removed, freed = removed + swept, freed + swept_bytes
    report.temp_files_removed, report.bytes_freed = removed, report.bytes_freed + freed
    if dry_run:
        return report
    writer.flush()  # moved objects are safely stored before their old packs go
    for pack_id in doomed:
        backend.delete(INDEX_PREFIX + pack_id)
        index.forget(pack_id)
        backend.delete(PACK_PREFIX + pack_id)
    present = {info.key[len(PACK_PREFIX) :] for info in backend.list(PACK_PREFIX)}
    for info in backend.list(INDEX_PREFIX):
        pack_id = info.key[len(INDEX_PREFIX) :]
        if pack_id not in present and info.modified <= cutoff:
            backend.delete(info.key)  # an index whose pack is gone
            index.forget(pack_id)
    return report


def _stale_temporaries(backend: Backend, cutoff: float, dry_run: bool) -> tuple[int, int]:
    """Remove temp files older than the grace period from a local store (an S3 put leaves
    none); returns their count and size."""
    if not isinstance(backend, LocalBackend):
        return 0, 0
    count = size = 0
    for folder, _dirs, files in os.walk(backend.root):
        for name in files:
            if not name.startswith(".tmp-"):
                continue
            path = os.path.join(folder, name)
            try:
                st = os.lstat(path)
                if st.st_mtime > cutoff:
                    continue
                if not dry_run:
                    os.unlink(path)
            except FileNotFoundError:
                continue
            count, size = count + 1, size + st.st_size
    return count, size


def _owned_by(index: PackIndex, digest: str, pack_id: str) -> bool:
    """Duplicates (the same object in two packs) survive only where the index points."""
    loc = index.locate(digest)
    return loc is not None and loc.pack == pack_id
