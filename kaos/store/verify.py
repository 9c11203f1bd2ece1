"""Re-hash everything stored and report what is corrupt or missing (`kaos store verify`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import xxhash

from kaos.errors import BundleError, IntegrityError, ObjectNotFound
from kaos.store.backends.base import Backend
from kaos.store.index import INDEX_PREFIX, PACK_PREFIX, PackIndex
from kaos.store.pack import KIND_BLOB, decode_chunk_list, index_from_pack, walk_pack
from kaos.store.progress import NullProgress, Progress
from kaos.store.reader import StoreReader
from kaos.store.tree import Tree


@dataclass
class VerifyReport:
    packs: int = 0
    objects: int = 0
    corrupt: list[str] = field(default_factory=list)  # pack ids or object digests
    missing: list[str] = field(default_factory=list)  # digests referenced but not stored
    missing_packs: list[str] = field(default_factory=list)  # indexed, but the pack is gone
    damaged: set[str] = field(default_factory=set)  # packs to repair: gone or holding damage
    dropped: list[str] = field(default_factory=list)  # digests a repair removed from the index

    @property
    def ok(self) -> bool:
        return not self.corrupt and not self.missing and not self.missing_packs


def verify_store(
    backend: Backend,
    index: PackIndex,
    reader: StoreReader,
    trees: Iterable[str] = (),
    progress: Progress | None = None,
) -> VerifyReport:
    progress = progress or NullProgress()
    report = VerifyReport()
    index.refresh()
    packs = [info for info in backend.list(PACK_PREFIX)]
    listed = {info.key[len(PACK_PREFIX) :] for info in packs}
    for pack_id in sorted(set(index.packs()) - listed):  # its index promises what is gone
        report.missing_packs.append(pack_id)
        report.damaged.add(pack_id)
    for done, info in enumerate(packs, 1):
        pack_id = info.key[len(PACK_PREFIX) :]
        report.packs += 1
        found = len(report.corrupt) + len(report.missing)
        try:
            _verify_pack(backend, index, pack_id, report)
        except (IntegrityError, ObjectNotFound, ValueError):
            report.corrupt.append(pack_id)
        if len(report.corrupt) + len(report.missing) > found:
            report.damaged.add(pack_id)
        progress("verify", done, len(packs))
    for tree_digest in trees:
        _verify_tree(reader, index, tree_digest, report)
    return report


def _verify_pack(backend: Backend, index: PackIndex, pack_id: str, report: VerifyReport) -> None:
    data = backend.get(PACK_PREFIX + pack_id)
    trailer_index = index_from_pack(pack_id, data)  # checks the pack's own hash
    if (
        backend.exists(INDEX_PREFIX + pack_id)
        and backend.get(INDEX_PREFIX + pack_id) != trailer_index
    ):
        raise IntegrityError(f"index of pack {pack_id} differs from the pack", pack_id)
    for digest, kind, payload in walk_pack(pack_id, data, trailer_index):
        report.objects += 1
        if kind == KIND_BLOB:
            if xxhash.xxh3_128_digest(payload) != digest:
                report.corrupt.append(digest.hex())
        else:
            for chunk, _size in decode_chunk_list(payload)[1]:
                if chunk not in index:
                    report.missing.append(chunk)


def _verify_tree(
    reader: StoreReader, index: PackIndex, tree_digest: str, report: VerifyReport
) -> None:
    try:
        tree = Tree.parse(reader.get_tree_bytes(tree_digest), tree_digest)
    except ObjectNotFound:
        report.missing.append(tree_digest)
        return
    except (IntegrityError, BundleError):
        report.corrupt.append(tree_digest)
        return
    report.missing.extend(d for d in sorted(tree.digests()) if d not in index)
    if tree.size_problems(lambda d: reader.size(d) if d in index else None):
        report.corrupt.append(tree_digest)  # it declares sizes its files do not have
