"""Heal what `verify` found: damaged packs leave the index, their intact objects move on.

A pack that is gone, or holds a corrupt object, is dropped from the index after every object
of it that still verifies is written to a new pack. What is lost is then simply absent: the
next push of the same content uploads it again (the store no longer claims to have it).
Runs under the store's exclusive lock, as gc does.
"""

from __future__ import annotations

from collections.abc import Iterable

from kaos.errors import IntegrityError, ObjectNotFound
from kaos.store.backends.base import Backend
from kaos.store.hashing import hash_bytes
from kaos.store.index import INDEX_PREFIX, PACK_PREFIX, PackIndex
from kaos.store.pack import KIND_BLOB
from kaos.store.reader import StoreReader
from kaos.store.writer import StoreWriter


def repair_packs(
    backend: Backend,
    index: PackIndex,
    reader: StoreReader,
    writer: StoreWriter,
    damaged: Iterable[str],
) -> list[str]:
    """Drop the damaged packs from the store; returns the digests that were lost."""
    contents = index.packs()
    doomed = sorted(set(damaged))
    dropped = {pack_id for pack_id in doomed}
    lost: list[str] = []
    for pack_id in doomed:
        for digest in contents.get(pack_id, []):
            loc = index.locate(digest)
            if loc is not None and loc.pack not in dropped:
                continue  # an intact copy lives in another pack
            if not _salvage(reader, writer, digest):
                lost.append(digest)
    writer.flush()  # the survivors are stored before their old packs go
    for pack_id in doomed:
        backend.delete(INDEX_PREFIX + pack_id)
        index.forget(pack_id)
        backend.delete(PACK_PREFIX + pack_id)
    return lost


def _salvage(reader: StoreReader, writer: StoreWriter, digest: str) -> bool:
    """Copy one object to the writer if it still reads back intact."""
    try:
        loc, payload = reader.payload(digest)
        if loc.kind == KIND_BLOB:
            if hash_bytes(payload) != digest:
                return False
        else:
            for _piece in reader.open_content(digest)[1]:  # verified as a whole at the end
                pass
    except (IntegrityError, ObjectNotFound, ValueError):
        return False
    writer.add_raw(digest, loc.kind, payload)
    return True
