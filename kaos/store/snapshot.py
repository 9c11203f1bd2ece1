"""What the last scan of a folder found, kept in one file per folder as git keeps its index.

A rescan compares its walk with the snapshot as two flat arrays (paths, packed stat records):
when they are equal the recorded tree digest holds without reading a file or building one
object per entry; otherwise each entry whose stat record (with its ctime, so a rewrite whose
mtime was put back is seen) is unchanged keeps its recorded digest.
Entries modified within the racy window of the scan that recorded them are not vouched for (a
change within the same mtime tick would go unseen), and a snapshot holding any such entry has
no tree digest.
"""

from __future__ import annotations

import marshal
import mmap
import os
import struct
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from kaos.store.hashing import hash_bytes

STAT = struct.Struct("<QQqqqB")  # device, inode, size, mtime_ns, ctime_ns, executable
DIGEST_SIZE = 16
UNKNOWN = bytes(DIGEST_SIZE)  # a digest slot the snapshot does not vouch for
_VERSION = 3  # 1 kept the paths as a list, 2 had no ctime


@dataclass(frozen=True)
class Snapshot:
    names: str  # the relative paths in walk order, joined by line breaks (names hold none)
    stats: bytes  # one STAT record per path
    digests: bytes  # one raw xxh3-128 digest per path; UNKNOWN where not vouched for
    tree: str | None  # the folder's tree digest, when every entry is vouched for

    def __len__(self) -> int:
        return len(self.stats) // STAT.size

    @cached_property
    def paths(self) -> list[str]:
        """The paths as a list, made only for a folder that changed: one string loads in a
        millisecond where 100,000 took 12 (and takes half the memory)."""
        return self.names.split("\n") if self.stats else []

    def matches(self, names: str, stats: bytes | bytearray) -> bool:
        """The walk (its paths joined by line breaks) found exactly what this snapshot
        recorded: compared as a string and a bytes array, in C."""
        return self.tree is not None and self.stats == stats and names == self.names

    def vouch(self, paths: list[str], stats: bytes | bytearray, into: bytearray) -> list[int]:
        """Copy into `into` the digest of every walked entry whose stat record is unchanged;
        return the positions of the others (they must be looked up or read)."""
        size = STAT.size
        mine, theirs, digests = memoryview(stats), memoryview(self.stats), self.digests
        if paths == self.paths:
            pairs: Iterable[tuple[int, int | None]] = ((i, i) for i in range(len(paths)))
        else:
            where = {path: i for i, path in enumerate(self.paths)}
            pairs = ((i, where.get(p)) for i, p in enumerate(paths))
        rest = []
        for i, j in pairs:
            if (
                j is not None
                and mine[i * size : (i + 1) * size] == theirs[j * size : (j + 1) * size]
            ):
                digest = digests[j * DIGEST_SIZE : (j + 1) * DIGEST_SIZE]
                if digest != UNKNOWN:
                    into[i * DIGEST_SIZE : (i + 1) * DIGEST_SIZE] = digest
                    continue
            rest.append(i)
        return rest


def path_count(names: str) -> int:
    """How many paths a line-break-joined string holds (none when it is empty)."""
    return names.count("\n") + 1 if names else 0


class SnapshotDir:
    """Snapshots under one folder (KAOS_HOME/scans), one file per scanned folder."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder

    def _file(self, root: str) -> Path:
        return self._folder / hash_bytes(root.encode("utf-8", "surrogateescape"))

    def load(self, root: str) -> Snapshot | None:
        """The last snapshot of `root` (a real path), or None when there is none or it is
        unreadable: it is a cache, so anything odd means "scan as if for the first time"."""
        try:  # unmarshalled from a mapping: no read buffer of the file's size (8 MB, 2,000
            # fresh pages at 100,000 files, on every unchanged deploy)
            with (
                open(self._file(root), "rb") as f,
                mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as view,
            ):
                version, recorded, names, stats, digests, tree = marshal.loads(view)
        except (OSError, ValueError, EOFError, TypeError):
            return None
        if (
            version != _VERSION
            or recorded != root
            or not isinstance(names, str)
            or not isinstance(stats, bytes)
            or not isinstance(digests, bytes)
            or len(stats) % STAT.size
            or path_count(names) != len(stats) // STAT.size
            or len(digests) != len(stats) // STAT.size * DIGEST_SIZE
            or not (tree is None or isinstance(tree, str))
        ):
            return None
        return Snapshot(names, stats, digests, tree)

    def save(self, root: str, snapshot: Snapshot) -> None:
        """Replace the snapshot atomically (a temp file renamed over it)."""
        self._folder.mkdir(parents=True, exist_ok=True)
        data = marshal.dumps(
            (
                _VERSION,
                root,
                snapshot.names,
                bytes(snapshot.stats),
                bytes(snapshot.digests),
                snapshot.tree,
            )
        )
        fd, tmp = tempfile.mkstemp(dir=self._folder, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, self._file(root))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
