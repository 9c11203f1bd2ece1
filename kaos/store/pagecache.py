"""Whether files are in the page cache, so reading them would not wait for the disk.

Two questions are asked of each file. Linux's cachestat(2) (6.5 and later) counts its cached
pages without touching them; then a one-byte read of its last byte that may not wait
(`RWF_NOWAIT`) says the filesystem can read without waiting: tmpfs, NFS and FUSE refuse it,
so their files are never taken for cached (an NFS open waits on the server whatever is
cached). Where cachestat is not to be had (older kernels, other architectures, a seccomp
filter, a file its user neither owns nor may write, which the kernel will not count), the
read answers alone, which is weaker: a page it misses is read ahead at once, and on a fast
disk (a VM's, served from its host's memory) it is often back before the read looks, so a
file on disk passes for cached (from 1 probe in 10 to 9 in 10 on this project's VM, in runs
minutes apart). The answer only picks how files are read (`kaos.store.ahead`), never what
is read.
"""

from __future__ import annotations

import errno as errno_module
import functools
import os
import stat
import sys
from collections.abc import Callable, Iterable

_CACHESTAT = 451  # the syscall's number on x86-64 and arm64 (Linux 6.5+)
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

PagesCached = Callable[[int, int], int]  # (open file, length) -> its pages cached


def in_page_cache(files: Iterable[tuple[str, int]]) -> bool:
    """Whether every (path, size) is a regular file whose first `size` bytes are all in the
    page cache. False wherever it cannot be told: another system, a filesystem that cannot
    say, a file gone, a fifo or socket. A file that changed since its size was taken may be
    misjudged; the read that follows refuses it."""
    for name, size in files:
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)  # a fifo never blocks
        except OSError:
            return False
        try:
            if not (stat.S_ISREG(os.fstat(fd).st_mode) and _cached(fd, size)):
                return False
        finally:
            os.close(fd)
    return True


def _cached(fd: int, size: int) -> bool:
    count = _cachestat()
    if count is not None and size:
        try:
            if count(fd, size) < -(-size // PAGE):
                return False
        except OSError:  # EPERM: neither owned nor writable; EOPNOTSUPP: hugetlbfs
            pass  # the read alone answers
    return _last_byte_read_without_waiting(fd, size)


@functools.cache
def _cachestat() -> PagesCached | None:
    """cachestat(2) as a function of an open file and a length, giving how many pages of its
    first `length` bytes are cached; None where it is not to be had (Python's os module has
    no binding for it: ctypes calls it by number)."""
    if not sys.platform.startswith("linux") or sys.maxsize < 1 << 32:
        return None
    if os.uname().machine not in ("x86_64", "aarch64"):
        return None  # its number is another on alpha, MIPS and x32: not guessed
    try:
        import ctypes

        syscall = ctypes.CDLL(None, use_errno=True).syscall
    except (ImportError, OSError, AttributeError):  # no ctypes, no libc's syscall()
        return None

    class Range(ctypes.Structure):
        _fields_ = [("off", ctypes.c_uint64), ("len", ctypes.c_uint64)]

    class Counts(ctypes.Structure):
        _fields_ = [
            (name, ctypes.c_uint64)
            for name in ("cache", "dirty", "writeback", "evicted", "recently_evicted")
        ]

    def pages_cached(fd: int, length: int) -> int:
        counts = Counts()
        wanted = Range(0, length)
        if syscall(_CACHESTAT, fd, ctypes.byref(wanted), ctypes.byref(counts), 0) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, os.strerror(errno))
        return int(counts.cache)

    try:
        pages_cached(-1, 1)
    except OSError as refused:  # EBADF: it is there; ENOSYS before 6.5, EPERM from seccomp
        return pages_cached if refused.errno == errno_module.EBADF else None
    return None


def _last_byte_read_without_waiting(fd: int, size: int) -> bool:
    """The read of the module's docstring: a file read once is cached whole or at least to
    its end."""
    nowait = getattr(os, "RWF_NOWAIT", None)
    if nowait is None:
        return False
    try:
        os.preadv(fd, [bytearray(1)], max(size - 1, 0), nowait)
    except (OSError, NotImplementedError):  # BlockingIOError: on the disk only; EOPNOTSUPP
        return False  # (tmpfs, NFS, FUSE) or a Python built without preadv2: cannot tell
    return True
