"""A local folder as an object store (the embedded default, under KAOS_HOME)."""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from kaos.errors import IntegrityError, ObjectNotFound
from kaos.store.backends.base import ObjectInfo
from kaos.store.paths import check_relative_path

_AGAIN = "send it again"
# Objects this large are packs of a data set, read back (if at all soon) by ranged reads; once
# durable they leave the page cache (`release_cache`). Smaller ones (refs, locks, indexes, the
# small pack of a source bundle, which a build reads at once) stay cached.
RELEASE_FROM = 1 << 20


def release_cache(fd: int, size: int) -> None:
    """Let the kernel take back a written, fsynced (so clean) and unmapped file's pages, when
    it is `RELEASE_FROM` bytes or more.

    Why: storing a data set writes as much again into the page cache. Released, the pages of
    one pack are reused for the next, so an ingest neither takes fresh memory for all of it
    nor pushes the user's working set out of the cache (as borg's SyncFile does). Fresh pages
    are the dear part on a VM whose host reclaims free guest memory: writing 600 MB into them
    costs 1.3-1.6 s of system time here, against 0.15 s into reused ones. A read soon after
    comes from disk. Best effort: a platform without `posix_fadvise` keeps the pages."""
    if size < RELEASE_FROM:
        return
    with contextlib.suppress(OSError, AttributeError):
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)


class LocalBackend:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.location = f"file://{self.root}"

    def _path(self, key: str) -> Path:
        return self.root / check_relative_path(key)

    def put(self, key: str, data: bytes | bytearray) -> None:
        """Write to a temp file in the same folder, fsync, then rename: readers see all or none.
        A large object leaves the page cache once durable (`RELEASE_FROM`)."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
                release_cache(f.fileno(), len(data))
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def adopt(
        self, key: str, folder: int, name: str, fd: int, untouched: Callable[[], bool]
    ) -> None:
        """Move in a file already verified through `fd` (named `name` in the folder open as
        `folder`, on this store's filesystem): fsynced, renamed to a temporary name, checked to
        be that very file (not one put in its place since) and `untouched` (no writer waiting
        to change it), then renamed to `key`, so readers see all or none, as with `put`."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        os.fsync(fd)
        tmp = path.parent / f".tmp-{uuid.uuid4().hex}"
        os.rename(name, tmp, src_dir_fd=folder)
        try:
            moved, held = os.lstat(tmp), os.fstat(fd)
            if (moved.st_dev, moved.st_ino) != (held.st_dev, held.st_ino):
                raise IntegrityError(f"{name} was replaced while it was verified", fix=_AGAIN)
            if not untouched():
                changed = f"{name} was opened to be changed as it was verified"
                raise IntegrityError(changed, fix=_AGAIN)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise

    def get(self, key: str, start: int = 0, length: int | None = None) -> bytes:
        try:
            with open(self._path(key), "rb") as f:
                if start:
                    f.seek(start)
                return f.read() if length is None else f.read(length)
        except FileNotFoundError:
            raise ObjectNotFound(key) from None

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        base = self.root / prefix if prefix else self.root
        if not base.is_dir():
            return
        for folder, _dirs, files in os.walk(base):
            for name in files:
                if name.startswith(".tmp-"):
                    continue
                full = os.path.join(folder, name)
                try:
                    st = os.stat(full)
                except FileNotFoundError:
                    continue
                key = os.path.relpath(full, self.root).replace(os.sep, "/")
                yield ObjectInfo(key, st.st_size, st.st_mtime)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()
