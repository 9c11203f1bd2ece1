"""A local cache of whole files by hash, from which folders are materialised by hardlink.

Cached files are read-only and stamped with mtime 0: a file that was written to through a
hardlink shows a different mtime or size, and is then discarded instead of served.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

_SEALED_MTIME_NS = 0


class FileCache:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path_for(self, digest: str, executable: bool) -> Path:
        return self.root / digest[:2] / (digest[2:] + (".x" if executable else ""))

    def lookup(self, digest: str, size: int, executable: bool) -> Path | None:
        """The cached file, if present and untouched since it was cached."""
        path = self.path_for(digest, executable)
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        if st.st_size == size and st.st_mtime_ns == _SEALED_MTIME_NS:
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
            os.chmod(tmp, 0o555 if executable else 0o444)
            os.utime(tmp, ns=(_SEALED_MTIME_NS, _SEALED_MTIME_NS))
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path
