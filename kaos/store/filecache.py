"""A local cache of whole files by hash, from which folders are materialised by hardlink.

Cached files are read-only and stamped with mtime 0: a file that was written to through a
hardlink shows a different mtime, size or mode (made writable to be written), and is then
discarded instead of served. (Jobs see these files through read-only mounts; a process
outside one that writes a file without changing its mode, size or mtime is not caught.) Their access
time is set on every use, so with a size limit (`KAOS_CACHE_MAX`) the least recently used go
first; a job that hardlinked a file keeps its link when the cache lets go of it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from stat import S_IMODE
from typing import BinaryIO

_SEALED_MTIME_NS = 0


class FileCache:
    def __init__(self, root: Path, max_bytes: int | None = None) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes

    def trim(self) -> int:
        """Remove least recently used files until the cache fits its limit; returns bytes freed."""
        if self.max_bytes is None:
            return 0
        entries = []
        total = 0
        for folder in os.scandir(self.root):
            if not folder.is_dir(follow_symlinks=False):
                continue
            for entry in os.scandir(folder.path):
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                entries.append((st.st_atime_ns, st.st_size, entry.path))
                total += st.st_size
        freed = 0
        for _used, size, path in sorted(entries):
            if total - freed <= self.max_bytes:
                break
            Path(path).unlink(missing_ok=True)
            freed += size
        return freed

    def _touch(self, path: Path) -> None:
        """Record a use (the access time; the mtime stays the seal)."""
        with contextlib.suppress(OSError):
            os.utime(path, ns=(time.time_ns(), _SEALED_MTIME_NS))

    def path_for(self, digest: str, executable: bool) -> Path:
        return self.root / digest[:2] / (digest[2:] + (".x" if executable else ""))

    def lookup(self, digest: str, size: int, executable: bool) -> Path | None:
        """The cached file, if present and untouched since it was cached."""
        path = self.path_for(digest, executable)
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        if (
            st.st_size == size
            and st.st_mtime_ns == _SEALED_MTIME_NS
            and S_IMODE(st.st_mode) == _mode(executable)
        ):
            self._touch(path)
            return path
        path.unlink(missing_ok=True)  # modified through a link: never serve it
        return None

    def add(self, digest: str, executable: bool, fill: Callable[[BinaryIO], object]) -> Path:
        """Write a cache entry through `fill` (which writes verified bytes) and seal it."""
        path = self.path_for(digest, executable)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                fill(f)
            os.chmod(tmp, _mode(executable))
            os.utime(tmp, ns=(time.time_ns(), _SEALED_MTIME_NS))
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path


def _mode(executable: bool) -> int:
    """A cached file's mode: read-only, for everyone."""
    return 0o555 if executable else 0o444
