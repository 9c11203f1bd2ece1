"""Turn a bundle folder into a `Tree`, reading only the files the stat cache cannot vouch for.

A walk is kept as flat arrays (paths, packed stat records, raw digests), not one object per
file, and compared with the folder's last snapshot as arrays: an unchanged folder costs its
walk plus two comparisons, and a `Tree` of entry objects is built only when someone asks.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from array import array
from collections.abc import Callable, Iterator, Sequence
from functools import cached_property
from pathlib import Path
from stat import S_ISREG
from typing import NamedTuple

import xxhash
import zstandard

from kaos.errors import BundleError
from kaos.store.ahead import read_ahead, read_fd
from kaos.store.hashing import hash_fd
from kaos.store.progress import NullProgress, Progress, Throttled
from kaos.store.snapshot import DIGEST_SIZE, STAT, UNKNOWN, Snapshot
from kaos.store.state import HashCache, NullStatCache, StatKey
from kaos.store.tree import HEADER, Tree, TreeEntry, entry_line
from kaos.store.walk import Walk, walk_folder

_SMALL_FILE = 4 << 20
# A file modified within this window of the scan may change again within the same mtime tick;
# its hash is used but not cached (git's "racily clean" problem).
_RACY_WINDOW_NS = 2_000_000_000
_BATCH = 50_000  # files looked up and hashed at a time
# A scan that hashed its tree keeps the serialization for the push that usually follows:
# making it again costs 1.5-2.5 s at a million files (its sort alone 0.5), where 100,000 took
# 0.2. Up to this many files the pieces are kept as made (about 73 bytes a file); beyond, each
# is zstd-compressed (about 20 bytes a file: 20 MB at a million, 0.3 s to compress and 0.2 to
# unpack), so memory stays bounded.
_KEEP_TREE = 250_000


ContentHook = Callable[[str, bytes], None]
PathsHook = Callable[[str], object]  # sees the walk's paths, joined by line breaks


class ScannedFile(NamedTuple):
    """A file that has to be read (the snapshot and the stat cache could not vouch for it)."""

    path: str
    abspath: str
    key: StatKey
    executable: bool


class ScannedFolder:
    """A folder's tree digest and its entries as arrays; the `Tree` of objects is built only
    when asked for (an unchanged folder whose tree the server has never needs it)."""

    def __init__(
        self,
        root: Path,
        walk: Walk,
        digests: bytes,
        digest: str,
        serialized: KeptTree | None = None,
    ) -> None:
        self.root = root
        self.digest = digest
        self._serialized = serialized
        self._prefix = os.path.join(root, "")
        self._walk = walk
        self._digests = digests

    def __len__(self) -> int:
        return len(self._walk)

    @property
    def paths(self) -> list[str]:
        """The relative paths of the files, in walk order (not sorted)."""
        return self._walk.paths

    @cached_property
    def tree(self) -> Tree:
        """The entries as objects (for small bundles: pushing never needs this)."""
        entries = [TreeEntry(*f) for batch in self.files() for f in batch]
        return Tree.from_scan(entries, self.digest)

    def files(self, batch: int = 50_000) -> Iterator[list[tuple[str, str, int, bool]]]:
        """(path, digest, size, executable) of every file in walk order, a batch at a time, so
        a million-file folder never has a million of them alive."""
        paths, stats, raw = self._walk.paths, self._walk.stats, self._digests
        size_at = STAT.size
        for start in range(0, len(paths), batch):
            end = min(start + batch, len(paths))
            digests = raw[start * DIGEST_SIZE : end * DIGEST_SIZE].hex()
            yield [
                (paths[i], digests[(i - start) * 32 : (i - start + 1) * 32], size, executable != 0)
                for i, (_dev, _ino, size, _mtime, _ctime, executable) in enumerate(
                    STAT.iter_unpack(stats[start * size_at : end * size_at]), start
                )
            ]

    def serialized(self) -> Iterator[bytes]:
        """The tree's canonical serialization, streamed in pieces from the arrays (or the
        pieces the scan made when it hashed them)."""
        if self._serialized is not None:
            return self._serialized.pieces()
        return _tree_pieces(self._walk.paths, self._walk.stats, self._digests)

    def abspath(self, rel: str) -> str:
        return self._prefix + rel

    @property
    def special(self) -> tuple[str, ...]:
        """Paths that are neither files nor folders (fifos, sockets, devices): not in the tree."""
        return self._walk.special


def scan_folder(
    root: str | Path,
    cache: HashCache | None = None,
    progress: Progress | None = None,
    allow_empty: bool = False,
    on_content: ContentHook | None = None,
    vet: PathsHook | None = None,
) -> ScannedFolder:
    """Hash a folder into a tree; unchanged files (same stat record) are answered by the
    folder's last snapshot or the stat cache, and a folder unchanged since its last scan is
    answered by the snapshot alone.

    `on_content(digest, data)` sees the bytes of every small file that had to be read, so a
    caller that stores them needs no second read (a single-pass ingest). `vet(names)` sees the
    file list (joined by line breaks) before anything is read, so a bundle of the wrong shape
    is refused first.
    """
    cache, progress = cache or NullStatCache(), progress or NullProgress()
    return _scan(Path(root), cache, progress, allow_empty, on_content, vet)


def _scan(
    root: Path,
    cache: HashCache,
    progress: Progress,
    allow_empty: bool,
    on_content: ContentHook | None,
    vet: PathsHook | None,
) -> ScannedFolder:
    real = os.path.realpath(root)
    last = cache.last_scan(real)  # its size says early whether a split walk pays
    walk = walk_folder(root, expect=len(last) if last is not None else 0)
    if not len(walk) and not allow_empty:
        raise BundleError(f"bundle is empty: {root}", "put the bundle's files in that folder")
    if vet is not None:
        vet(walk.names)
    if last is not None and last.matches(walk.names, walk.stats):
        return ScannedFolder(root, walk, last.digests, last.tree or "")
    racy_after = time.time_ns() - _RACY_WINDOW_NS
    n = len(walk)
    digests = bytearray(n * DIGEST_SIZE)
    rest: Sequence[int] = (
        last.vouch(walk.paths, walk.stats, digests) if last is not None else range(n)
    )
    size_at, prefix, stats = STAT.size, os.path.join(root, ""), walk.stats
    total = sum(STAT.unpack_from(stats, i * size_at)[2] for i in rest)
    meter = Throttled(progress, "hash", total, step=max(total // 200, 1 << 20))
    unread = _in_inode_order(_look_up(rest, stats, cache, digests, meter), stats)
    racy: list[int] = []
    fresh = array("q")  # files read and older than the racy window: the stat cache's rows
    try:
        for start in range(0, len(unread), _BATCH):  # batches: memory flat at a million files
            files: list[tuple[int, ScannedFile]] = []
            for i in unread[start : start + _BATCH]:
                record, path = STAT.unpack_from(stats, i * size_at), walk.paths[i]
                files.append((i, ScannedFile(path, prefix + path, _key(record), record[5] != 0)))
            for (i, found), (raw, data) in zip(files, _read_all(files, on_content), strict=True):
                digests[i * DIGEST_SIZE : (i + 1) * DIGEST_SIZE] = raw
                key = found.key
                if data is not None and on_content is not None:
                    on_content(raw.hex(), data)
                if key[3] < racy_after:
                    fresh.append(i)
                else:
                    racy.append(i)
                meter.advance(key[2])
    except BaseException:  # a file changed, an upload failed: what was read is not read again
        with contextlib.suppress(Exception):  # the scan's own error is the one to raise
            cache.record(_stat_rows(bytes(stats), bytes(digests), fresh))
        raise
    meter.finish()
    digest, serialized = _tree_digest(walk.paths, stats, digests, compress=n > _KEEP_TREE)
    stats_now, digests_now = bytes(stats), bytes(digests)
    if racy:  # vouched for by nothing next time: read again until they are old enough
        kept = bytearray(digests)
        for i in racy:
            kept[i * DIGEST_SIZE : (i + 1) * DIGEST_SIZE] = UNKNOWN
        cache.remember_scan(real, Snapshot(walk.names, stats_now, bytes(kept), None))
    else:
        cache.remember_scan(real, Snapshot(walk.names, stats_now, digests_now, digest))
    cache.record(_stat_rows(stats_now, digests_now, fresh))
    return ScannedFolder(root, walk, digests_now, digest, serialized)


def _stat_rows(
    stats: bytes, digests: bytes, positions: array[int]
) -> Iterator[tuple[StatKey, str]]:
    """The stat cache's rows for the files at `positions`, made as the cache writes them.

    The rows are written once the reads are done, on the cache's thread, while this one
    pushes the tree and waits for the server. Written batch by batch beside the reads, the
    inserts (about 1 CPU s for 100,000 rows, the GIL handed back and forth with every row)
    slowed the reads: a first deploy of 100,000 files took 5.4 s against 5.1 now (medians of
    6 alternated runs). Made here, from the scan's arrays, a million rows are never a list."""
    size_at, unpack = STAT.size, STAT.unpack_from
    for i in positions:
        yield (
            _key(unpack(stats, i * size_at)),
            digests[i * DIGEST_SIZE : (i + 1) * DIGEST_SIZE].hex(),
        )


def _look_up(
    wanted: Sequence[int],
    stats: bytes | bytearray,
    cache: HashCache,
    into: bytearray,
    meter: Throttled,
) -> array[int]:
    """Ask the stat cache for the digests of the `wanted` entries, a batch at a time, copying
    those it knows into `into`; return the positions of the others (to be read).

    Every batch is asked before the first read is recorded: a lookup scans inode ranges, and
    the rows this scan records fall in those ranges, so a later batch would fetch (and throw
    away) every row the earlier ones wrote: 419,000 rows at a million new files, 2 s, where
    100,000 files fetched 5,900."""
    unread = array("q")
    size_at = STAT.size
    for start in range(0, len(wanted), _BATCH):
        batch = wanted[start : start + _BATCH]
        keys = [_key(STAT.unpack_from(stats, i * size_at)) for i in batch]
        known = cache.lookup(keys)
        for i, key in zip(batch, keys, strict=True):
            digest = known.get(key)
            if digest is None:
                unread.append(i)
            else:
                into[i * DIGEST_SIZE : (i + 1) * DIGEST_SIZE] = bytes.fromhex(digest)
                meter.advance(key[2])
    return unread


def _in_inode_order(positions: array[int], stats: bytes | bytearray) -> array[int]:
    """The positions sorted by inode, the order the files are read and recorded in (as GNU
    tar's --sort=inode): the stat cache's rows are keyed by inode, so its inserts then append
    instead of landing all over its B-tree (a million rows: 3.4 s of SQLite instead of 6.5;
    the sort costs 0.8-1.0), and a disk reads files made together, together. Each key is
    unpacked from its own record, so a few changed files cost a few keys, not a list of every
    inode."""
    size_at, unpack = STAT.size, STAT.unpack_from
    return array("q", sorted(positions, key=lambda i: unpack(stats, i * size_at)[1]))


def _key(record: tuple[int, ...]) -> StatKey:
    return record[0], record[1], record[2], record[3], record[4]


class KeptTree:
    """A tree's serialization kept in pieces, each zstd-compressed or as made."""

    def __init__(self, compressed: bool) -> None:
        self._kept: list[bytes] = []
        self._compressor = zstandard.ZstdCompressor(level=1) if compressed else None

    def add(self, piece: bytes) -> None:
        self._kept.append(piece if self._compressor is None else self._compressor.compress(piece))

    def pieces(self) -> Iterator[bytes]:
        if self._compressor is None:
            return iter(self._kept)
        return map(zstandard.ZstdDecompressor().decompress, self._kept)


def _tree_digest(
    paths: list[str], stats: bytes | bytearray, digests: bytes | bytearray, compress: bool
) -> tuple[str, KeptTree]:
    """The tree's digest from the arrays (the bytes `Tree.serialize` would give, hashed as
    they are made, without one object per entry), and those bytes, kept in pieces."""
    hasher = xxhash.xxh3_128()
    kept = KeptTree(compress)
    for piece in _tree_pieces(paths, stats, digests):
        hasher.update(piece)
        kept.add(piece)
    return hasher.hexdigest(), kept


def _tree_pieces(
    paths: list[str], stats: bytes | bytearray, digests: bytes | bytearray
) -> Iterator[bytes]:
    """The canonical serialization from the arrays, in pieces of 4096 lines (sorted by path)."""
    yield HEADER
    hexes, size_at, unpack = digests.hex(), STAT.size, STAT.unpack_from
    lines: list[str] = []
    for i in sorted(range(len(paths)), key=paths.__getitem__):
        _dev, _ino, size, _mtime, _ctime, executable = unpack(stats, i * size_at)
        lines.append(entry_line(paths[i], hexes[i * 32 : i * 32 + 32], size, executable != 0))
        if len(lines) == 4096:
            yield "".join(lines).encode("utf-8")
            lines.clear()
    if lines:
        yield "".join(lines).encode("utf-8")


def _read_all(
    files: list[tuple[int, ScannedFile]], on_content: ContentHook | None
) -> Iterator[tuple[bytes, bytes | None]]:
    """(raw digest, content or None) of each file, in order: read on this thread when the
    files are in the page cache, else on a few threads (`read_ahead`)."""
    keep = on_content is not None
    return read_ahead(
        lambda item: _hash_one(item[1], keep),
        files,
        lambda item: item[1].key[2],
        lambda item: item[1].abspath,
    )


def _hash_one(f: ScannedFile, keep: bool = False) -> tuple[bytes, bytes | None]:
    """A file's raw digest, and its content when `keep` and it is small (read whole); a file
    whose size is not the walk's is refused (it changed while being scanned)."""
    data: bytes | None = None
    fd = _open_walked(f)
    try:
        if f.key[2] > _SMALL_FILE:
            digest, size = hash_fd(fd)
            raw = bytes.fromhex(digest)
        else:
            data = read_fd(fd, f.key[2])
            size, raw = len(data), xxhash.xxh3_128_digest(data)
    finally:
        os.close(fd)
    if size != f.key[2]:
        raise _changed(f)
    return raw, data if keep else None


# What opening a walked file gives when something else took its place: a folder above it made
# a file, a symlink loop, a socket.
_REPLACED = (errno.ENOTDIR, errno.ELOOP, errno.ENXIO, errno.EISDIR)


def _open_walked(f: ScannedFile) -> int:
    """The walked file, opened, if it still is the file the walk saw (the same device and
    inode, a regular file): one swapped after the walk for a symlink to a file outside the
    bundle, a fifo or a folder is never read, and a fifo never blocks the scan."""
    try:
        fd = os.open(f.abspath, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise BundleError(f"file removed while scanning: {f.path}", "scan again") from None
    except OSError as exc:
        if exc.errno in _REPLACED:
            raise _changed(f) from None
        raise
    st = os.fstat(fd)
    if not S_ISREG(st.st_mode) or st.st_ino != f.key[1] or st.st_dev != f.key[0]:
        os.close(fd)
        raise _changed(f)
    return fd


def _changed(f: ScannedFile) -> BundleError:
    return BundleError(f"file changed while scanning: {f.path}", "scan again")
