"""A tree as a tar stream, read from the store piece by piece (constant memory per file).

Headers carry fixed owner and time (0), so the same tree always gives the same bytes; each file
is verified against its hash as it is read, and a bad object ends the stream with an error
rather than an archive that looks complete.
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator

from kaos.store.reader import StoreReader
from kaos.store.tree import Tree

BLOCK = 512


def tar_stream(tree: Tree, reader: StoreReader, prefix: str) -> Iterator[bytes]:
    """Every file of `tree` under `prefix/` as an uncompressed POSIX (pax) tar."""
    for entry in tree:
        info = tarfile.TarInfo(f"{prefix}/{entry.path}")
        info.size = entry.size
        info.mode = 0o755 if entry.executable else 0o644
        info.mtime = 0
        info.uname = info.gname = "kaos"
        yield info.tobuf(format=tarfile.PAX_FORMAT)
        size, pieces = reader.open_content(entry.digest)
        if size != entry.size:
            raise ValueError(f"{entry.path}: stored size {size} is not the tree's {entry.size}")
        yield from pieces
        if size % BLOCK:
            yield bytes(BLOCK - size % BLOCK)
    yield bytes(2 * BLOCK)
