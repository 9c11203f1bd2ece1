"""Turn a bundle folder into a `Tree`, reading only the files the stat cache cannot vouch for."""

from __future__ import annotations

import gc
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISDIR, S_ISREG
from typing import NamedTuple

from kaos.errors import BundleError, UnsafePathError
from kaos.store.hashing import hash_bytes, hash_file
from kaos.store.ignore import IgnoreRules
from kaos.store.progress import NullProgress, Progress, Throttled
from kaos.store.state import HashCache, NullStatCache, StatKey
from kaos.store.tree import Tree, TreeEntry

_SMALL_FILE = 4 << 20
# A file modified within this window of the scan may change again within the same mtime tick;
# its hash is used but not cached (git's "racily clean" problem).
_RACY_WINDOW_NS = 2_000_000_000


ContentHook = Callable[[str, bytes], None]


class ScannedFile(NamedTuple):
    path: str
    abspath: str
    key: StatKey
    executable: bool


_SURROGATE = re.compile(r"[\udc80-\udcff]")  # how os.scandir shows bytes that are not UTF-8
_BAD_NAME = re.compile(r"[\n\r\\\udc80-\udcff]")


@dataclass(frozen=True)
class ScannedFolder:
    """A folder's tree and where each of its entries lives on disk (for uploading)."""

    root: Path
    tree: Tree
    files: dict[str, str]  # relative path -> absolute path

    def abspath(self, rel: str) -> str:
        return self.files[rel]


def walk_folder(root: Path) -> list[ScannedFile]:
    """List the bundle's files with their stat keys, honouring ignores and refusing escapes."""
    root = Path(root)
    if not root.exists():
        raise BundleError(f"path not found: {root}", "check the path you passed")
    if not root.is_dir():
        raise BundleError(f"not a folder: {root}", "pass the bundle's folder, not a file")
    root_real = os.path.realpath(root)
    rules = IgnoreRules.for_folder(root)
    found: list[ScannedFile] = []
    skips_file = rules.skips_file if rules.active else None
    stack = [(str(root), "")]
    while stack:
        folder, prefix = stack.pop()
        with os.scandir(folder) as it:
            for entry in it:
                rel = prefix + entry.name
                if _BAD_NAME.search(rel) is not None:
                    _refuse_name(rel)
                if entry.is_symlink():
                    st = _inside_symlink_stat(entry.path, root_real, rel)
                elif entry.is_dir():
                    if not rules.skips_dir(entry.name, rel):
                        stack.append((entry.path, rel + "/"))
                    continue
                else:
                    st = entry.stat()
                if not S_ISREG(st.st_mode) or (skips_file is not None and skips_file(rel)):
                    continue
                key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
                found.append(ScannedFile(rel, entry.path, key, bool(st.st_mode & 0o100)))
    return found


def scan_folder(
    root: str | Path,
    cache: HashCache | None = None,
    progress: Progress | None = None,
    allow_empty: bool = False,
    on_content: ContentHook | None = None,
) -> ScannedFolder:
    """Hash a folder into a tree; unchanged files (same stat key) are answered by the cache.

    `on_content(digest, data)` sees the bytes of every small file that had to be read, so a
    caller that stores them needs no second read (a single-pass ingest).
    """
    with _gc_paused():
        return _scan(
            Path(root),
            cache or NullStatCache(),
            progress or NullProgress(),
            allow_empty,
            on_content,
        )


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Building 100k small tuples triggers Python's cycle collector over and over (a third of
    a rescan's time); nothing here makes cycles, so pause it for the duration."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _scan(
    root: Path,
    cache: HashCache,
    progress: Progress,
    allow_empty: bool,
    on_content: ContentHook | None,
) -> ScannedFolder:
    files = walk_folder(root)
    if not files and not allow_empty:
        raise BundleError(f"bundle is empty: {root}", "put the bundle's files in that folder")
    known = cache.lookup(f.key for f in files)
    todo = [f for f in files if f.key not in known]
    total = sum(f.key[2] for f in todo)
    meter = Throttled(progress, "hash", total, step=max(total // 200, 1 << 20))
    digests = dict(known)
    fresh: list[tuple[StatKey, str]] = []
    racy_after = time.time_ns() - _RACY_WINDOW_NS
    for f in todo:
        digest = _hash_one(f, on_content)
        digests[f.key] = digest
        if f.key[3] < racy_after:
            fresh.append((f.key, digest))
        meter.advance(f.key[2])
    meter.finish()
    cache.record(fresh)
    tree = Tree.from_scan(
        [TreeEntry(f.path, digests[f.key], f.key[2], f.executable) for f in files]
    )
    return ScannedFolder(root, tree, {f.path: f.abspath for f in files})


def _hash_one(f: ScannedFile, on_content: ContentHook | None = None) -> str:
    if f.key[2] <= _SMALL_FILE:
        with open(f.abspath, "rb") as fh:
            data = fh.read()
        if len(data) != f.key[2]:
            raise BundleError(f"file changed while scanning: {f.path}", "scan again")
        digest = hash_bytes(data)
        if on_content is not None:
            on_content(digest, data)
        return digest
    digest, size = hash_file(f.abspath)
    if size != f.key[2]:
        raise BundleError(f"file changed while scanning: {f.path}", "scan again")
    return digest


def _refuse_name(rel: str) -> None:
    """Names become tree lines: they must be UTF-8 and free of line breaks and backslashes."""
    shown = rel.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    if _SURROGATE.search(rel):
        raise BundleError(f"file name is not valid UTF-8: {shown!r}", "rename the file")
    raise BundleError(f"file name has a line break or backslash: {shown!r}", "rename the file")


def _inside_symlink_stat(path: str, root_real: str, rel: str) -> os.stat_result:
    target = os.path.realpath(path)
    if target != root_real and not target.startswith(root_real + os.sep):
        raise UnsafePathError(
            f"symlink points outside the bundle: {rel} -> {os.readlink(path)}",
            "copy the file into the bundle instead of linking to it",
        )
    try:
        st = os.stat(target)
    except FileNotFoundError:
        raise BundleError(f"broken symlink: {rel}", "remove it or fix its target") from None
    if S_ISDIR(st.st_mode):
        raise BundleError(
            f"symlinked folders are not supported: {rel}", "replace the link with the folder"
        )
    return st
