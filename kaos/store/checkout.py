"""Materialise a tree into a folder: all or nothing, never outside the destination."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterable, Iterator
from functools import partial
from pathlib import Path
from typing import BinaryIO, Protocol

from kaos.errors import BundleError
from kaos.store.chunking import FILE_CHUNKS
from kaos.store.filecache import FileCache
from kaos.store.paths import resolve_inside
from kaos.store.progress import NullProgress, Progress, Throttled
from kaos.store.tree import Tree, TreeEntry


class ObjectSource(Protocol):
    """Where checkout gets content: the store's reader, or a kaos server through the client."""

    def iter_blobs(self, digests: Iterable[str]) -> Iterator[tuple[str, bytes]]:
        """Verified contents of plain (unchunked) objects, in any order."""
        ...

    def write_to(self, digest: str, out: BinaryIO) -> int:
        """Stream verified content (chunked or not) into `out`."""
        ...


def checkout(
    tree: Tree,
    dest: Path,
    reader: ObjectSource,
    cache: FileCache | None = None,
    link: bool = True,
    progress: Progress | None = None,
) -> Path:
    """Write `tree` into `dest` (which must not exist or be empty).

    With a file cache and `link`, files are hardlinked from the cache (read-only, as DVC does);
    otherwise they are plain writable copies. Files go to a staging folder beside `dest` that is
    renamed into place at the end, so an interrupted checkout leaves nothing half-written.
    """
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise BundleError(f"destination is not empty: {dest}", "choose an empty or new folder")
    stage = dest.parent / f".{dest.name}.kaos-{uuid.uuid4().hex[:8]}"
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        stage.mkdir()
    except OSError as exc:  # a file on the way, a read-only or missing mount
        raise BundleError(
            f"cannot write into {dest.parent}: {exc.strerror}", "choose a folder you can write to"
        ) from None
    meter = Throttled(progress or NullProgress(), "checkout", tree.total_size, step=1 << 20)
    try:
        targets = {e.path: resolve_inside(stage, e.path) for e in tree}
        for target in {t.parent for t in targets.values()}:
            target.mkdir(parents=True, exist_ok=True)
        if cache is not None and link:
            _link_from_cache(tree, targets, reader, cache, meter)
        else:
            _write_copies(tree, targets, reader, meter)
        meter.finish()
        if dest.exists():
            dest.rmdir()
        os.rename(stage, dest)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return dest


def _write_copies(
    tree: Tree, targets: dict[str, Path], reader: ObjectSource, meter: Throttled
) -> None:
    small = [e for e in tree if not is_chunked(e)]
    by_digest: dict[str, list[TreeEntry]] = {}
    for e in small:
        by_digest.setdefault(e.digest, []).append(e)
    for digest, data in reader.iter_blobs(by_digest):
        for e in by_digest[digest]:
            _write_file(targets[e.path], data, e.executable)
            meter.advance(e.size)
    for e in tree:
        if e.digest not in by_digest:
            with open(targets[e.path], "wb") as f:
                reader.write_to(e.digest, f)
            os.chmod(targets[e.path], 0o755 if e.executable else 0o644)
            meter.advance(e.size)


def _link_from_cache(
    tree: Tree, targets: dict[str, Path], reader: ObjectSource, cache: FileCache, meter: Throttled
) -> None:
    absent: dict[str, list[TreeEntry]] = {}
    for e in tree:
        if cache.lookup(e.digest, e.size, e.executable) is None:
            absent.setdefault(e.digest, []).append(e)
    plain = [d for d, entries in absent.items() if not is_chunked(entries[0])]
    for digest, data in reader.iter_blobs(plain):
        for e in absent.pop(digest):
            if cache.lookup(e.digest, e.size, e.executable) is None:
                cache.add(e.digest, e.executable, partial(_write_bytes, data))
    for digest, entries in absent.items():
        for e in entries:
            if cache.lookup(e.digest, e.size, e.executable) is None:
                cache.add(e.digest, e.executable, partial(_write_object, reader, digest))
    for e in tree:
        source = cache.lookup(e.digest, e.size, e.executable)
        if source is None:
            raise BundleError(f"file cache lost {e.digest} during checkout", "checkout again")
        try:
            os.link(source, targets[e.path])
        except OSError:
            shutil.copyfile(source, targets[e.path])
            os.chmod(targets[e.path], 0o755 if e.executable else 0o644)
        meter.advance(e.size)


def is_chunked(entry: TreeEntry) -> bool:
    """Content above the chunking threshold is stored as chunks (see docs/store-format.md)."""
    return entry.size > FILE_CHUNKS.threshold


def _write_file(path: Path, data: bytes, executable: bool) -> None:
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, 0o755 if executable else 0o644)


def _write_bytes(data: bytes, f: BinaryIO) -> None:
    f.write(data)


def _write_object(reader: ObjectSource, digest: str, f: BinaryIO) -> None:
    reader.write_to(digest, f)
