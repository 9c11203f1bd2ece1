"""Taking files out of the page cache, as memory pressure would, for tests of how files on
disk are read."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from kaos.store import pagecache


def exact_probe_or_skip() -> pagecache.PagesCached:
    """cachestat(2), which tells a dropped file for certain; the older probe cannot (see
    `kaos.store.pagecache`)."""
    count = pagecache._cachestat()
    if count is None:
        pytest.skip("no cachestat(2) here (Linux 6.5+, x86-64 or arm64, not refused by seccomp)")
    return count


def probe_tells_or_skip(folder: Path) -> None:
    """Skips where the probe cannot tell (tmpfs, NFS, FUSE: reads there are not promised not
    to wait): it then always answers "on disk", which is right there, but nothing can be
    shown; and where a file on disk cannot be told for certain (no cachestat)."""
    exact_probe_or_skip()
    written = folder / "written"
    written.write_bytes(b"x" * 10_000)
    if not pagecache.in_page_cache([(str(written), 10_000)]):
        pytest.skip(f"the page-cache probe cannot tell on {folder}'s filesystem (tmpfs, NFS)")
    written.unlink()


def drop_from_page_cache(path: Path) -> None:
    """Drops the file's pages and, where cachestat(2) can tell, waits until none is left: the
    kernel keeps a page it is busy with (written back, on another CPU's list) and the advice
    is then given again."""
    count = pagecache._cachestat()
    length = path.stat().st_size
    for attempt in range(50):
        fd = os.open(path, os.O_RDONLY)
        try:
            before = count(fd, length) if count else 0
            os.fsync(fd)  # only clean pages are dropped
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            left = count(fd, length) if count else 0
        finally:
            os.close(fd)
        if left == 0:
            return
        if attempt == 0 and left == before:
            pytest.skip(f"{path}'s filesystem keeps its pages (tmpfs): nothing is on disk there")
        time.sleep(0.02)
    pytest.fail(f"the kernel kept pages of {path} in its cache after 50 POSIX_FADV_DONTNEED")
