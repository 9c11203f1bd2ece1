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
        pytest.skip("cachestat(2) is not on this kernel (6.5+) or a seccomp filter refuses it")
    return count


def drop_from_page_cache(path: Path) -> None:
    """Drops the file's pages and, where cachestat(2) can tell, waits until none is left: the
    kernel keeps a page it is busy with (written back, on another CPU's list) and the advice
    is then given again."""
    count = pagecache._cachestat()
    for _ in range(50):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)  # only clean pages are dropped
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            if count is None or count(fd) == 0:
                return
        finally:
            os.close(fd)
        time.sleep(0.02)
    pytest.fail(f"the kernel kept pages of {path} in its cache after 50 POSIX_FADV_DONTNEED")
