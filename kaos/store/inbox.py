"""The inbox: a folder in a local store where a client on the same machine leaves a sealed pack
for the server to adopt, instead of sending its bytes through a loopback socket.

Only a transport, as git's local clone is: the server verifies the file exactly as an uploaded
pack (`verify_pack`, read through a mapping of the file, no copy), then fsyncs and renames it
into place; the store's format does not change. The client names its file
`<pack id>-<16 hex>.pack`; the server opens nothing else, never through a symbolic link, and
refuses a file that has another name too (a hard link): the inbox can neither adopt nor delete
any other file. A mapped file that shrinks under the check would end the server (SIGBUS), so
the server maps a file only under a read lease (no one can then open it for writing or truncate
it: they wait until the lease is let go); a file it cannot lease (open for writing elsewhere, a
filesystem without leases) is read into memory and stored as an upload is. Whatever it refuses
it removes; files a killed client left behind are swept at start-up and by gc (nothing here is
ever listed as a pack: its keys are under `inbox/`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import mmap
import os
import re
import signal
import stat
import time
import traceback
from pathlib import Path
from types import TracebackType

from kaos.errors import InputError, IntegrityError, NotFound
from kaos.store.backends.local import LocalBackend, release_cache

INBOX = "inbox"  # under the store's root, beside packs/ and index/
STALE_S = 3600.0  # older files were left by a client killed mid-write
_NAME = re.compile(r"[0-9a-f]{32}-[0-9a-f]{16}\.pack")
_HTTP = "send the pack with POST /objects/packs"
# A lease's break is told by a signal: one ignored by default (SIGIO, the default, would end
# the server); nothing needs telling, the server checks the lease before it adopts the file.
_LEASE_BREAK_SIGNAL = signal.SIGURG


class TooLarge(InputError):
    http_status = 413


def inbox_folder(root: Path) -> Path:
    return root / INBOX


def open_inbox(root: Path, stale_s: float = STALE_S) -> Path:
    """Make the inbox (only this user may enter it) and sweep what killed clients left."""
    folder = inbox_folder(root)
    folder.mkdir(mode=0o700, exist_ok=True)
    st = os.lstat(folder)
    if stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and st.st_mode & 0o077:
        os.chmod(folder, 0o700)  # made by hand, open to others: they could take clients' files
    sweep(folder, time.time() - stale_s)
    return folder


def sweep(folder: Path, cutoff: float, dry_run: bool = False) -> tuple[int, int]:
    """Remove inbox entries last changed before `cutoff` (folders are left alone); returns
    their count and size. An inbox that is a link to elsewhere is not swept."""
    count = size = 0
    try:
        fd = open_folder(folder)
    except (FileNotFoundError, NotADirectoryError, NotFound):
        return 0, 0
    try:
        for entry in list(os.scandir(fd)):
            try:
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode) or st.st_mtime > cutoff:
                    continue
                if not dry_run:
                    os.unlink(entry.name, dir_fd=fd)
            except FileNotFoundError:
                continue
            count, size = count + 1, size + st.st_size
    finally:
        os.close(fd)
    return count, size


def open_folder(folder: Path) -> int:
    """The inbox folder itself, never a link's target (a link put in its place could have
    the server sweep, or adopt from, any folder)."""
    try:
        return os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:  # a link: ELOOP, or ENOTDIR as it is not itself a folder
        if exc.errno in (errno.ELOOP, errno.ENOTDIR) and os.path.islink(folder):
            raise NotFound(f"the inbox {folder} is a symbolic link", _HTTP) from None
        raise


def is_inbox(folder: Path) -> bool:
    """Whether `folder` is a folder of its own (not a link), so worth telling clients."""
    try:
        return stat.S_ISDIR(os.lstat(folder).st_mode)
    except OSError:
        return False


class Delivery:
    """One file of the inbox, opened without following links and mapped read-only; as a
    context manager it removes the file on the way out unless it was adopted."""

    def __init__(self, folder: Path, name: str, max_bytes: int) -> None:
        if not _NAME.fullmatch(name):
            raise InputError(
                f"{name!r} is not an inbox file name", f"name it <pack id>-<16 hex>.pack; {_HTTP}"
            )
        self.name = name
        self._max_bytes = max_bytes
        try:
            self._folder = open_folder(folder)
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound("this server has no inbox folder", _HTTP) from None
        self.fd = -1
        self._map: mmap.mmap | None = None
        self.view = memoryview(b"")  # the file's bytes, once entered
        self.copy: bytearray | None = None  # the bytes read, when the file could not be leased
        self.adopted = False

    def __enter__(self) -> Delivery:
        try:
            self.fd = self._open()
            if _leased(self.fd):
                self._map = self._mapped()
                self.view = memoryview(self._map)
            else:
                self.copy = self._read()
                self.view = memoryview(self.copy)
        except BaseException:
            self._close(None)
            raise
        return self

    def __exit__(
        self, exc_type: object, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._close(exc)

    def _open(self) -> int:
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(self.name, flags, dir_fd=self._folder)
        except FileNotFoundError:
            raise NotFound(
                f"no {self.name} in the server's inbox (not a filesystem shared with it)", _HTTP
            ) from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise InputError(f"{self.name} in the inbox is a symbolic link", _HTTP) from None
            raise
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise InputError(f"{self.name} in the inbox is not a regular file", _HTTP)
            if st.st_nlink != 1:
                raise InputError(f"{self.name} in the inbox has other names (a hard link)", _HTTP)
            if st.st_uid != os.geteuid():
                raise InputError(f"{self.name} in the inbox is not the server user's", _HTTP)
            if st.st_size > self._max_bytes:
                raise TooLarge(
                    f"pack larger than {self._max_bytes} bytes", "seal packs of at most that"
                )
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _mapped(self) -> mmap.mmap:
        """The whole file, read-only, its pages mapped at once (the client has just written
        them, so they are in the page cache: no copy, no fault per page)."""
        size = os.fstat(self.fd).st_size
        if size == 0:  # mmap refuses an empty file
            raise IntegrityError("upload is not a kaos pack")
        flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
        return mmap.mmap(self.fd, size, flags=flags, prot=mmap.PROT_READ)

    def _read(self) -> bytearray:
        """The file's bytes as they are now (it may still change: only these are stored)."""
        with open(self.fd, "rb", closefd=False) as f:
            data = bytearray(f.read(self._max_bytes + 1))
        if len(data) > self._max_bytes:
            raise TooLarge(f"pack larger than {self._max_bytes} bytes", "seal smaller packs")
        return data

    def untouched(self) -> bool:
        """Whether no one has asked to write or truncate the (leased) file since it was opened:
        one who did waits for the lease to go, then would change what was verified."""
        return fcntl.fcntl(self.fd, fcntl.F_GETLEASE) == fcntl.F_RDLCK

    def _close(self, exc: BaseException | None) -> None:
        """Unmap (after dropping the views a failed check's traceback still holds), close,
        and remove the file unless it was adopted (its name only: never a link's target); an
        adopted pack leaves the page cache, as a large `LocalBackend.put` does."""
        size = self.view.nbytes  # the file's, when adopted (leased: it cannot have changed)
        try:
            self.view.release()
            if self._map is not None:
                _drop_frames(exc)
                with contextlib.suppress(BufferError):  # a view still alive: unmapped with it
                    self._map.close()
                self._map = None
            if self.fd >= 0:
                if self.adopted:  # fsynced and (above) unmapped: its pages can go
                    release_cache(self.fd, size)
                os.close(self.fd)
                self.fd = -1
            if not self.adopted:
                with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                    os.unlink(self.name, dir_fd=self._folder)  # a folder stays: swept never
        finally:
            os.close(self._folder)

    def adopt(self, backend: LocalBackend, key: str) -> None:
        """Move the (verified, leased) file into the store as `key`."""
        try:
            backend.adopt(key, self._folder, self.name, self.fd, self.untouched)
        except FileNotFoundError:  # the client removed it meanwhile (interrupted)
            raise NotFound(f"{self.name} left the inbox before it was stored", _HTTP) from None
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            raise NotFound("the inbox is on another filesystem than the store", _HTTP) from None
        self.adopted = True


def _leased(fd: int) -> bool:
    """Take a read lease on the file: False when it is open for writing anywhere or the
    filesystem has no leases. While held, an open for writing or a truncate waits (at most
    /proc/sys/fs/lease-break-time, 45 s by default, far longer than a check takes)."""
    try:
        fcntl.fcntl(fd, fcntl.F_SETSIG, _LEASE_BREAK_SIGNAL)
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
    except OSError:
        return False
    return True


def _drop_frames(exc: BaseException | None) -> None:
    """Clear the locals of finished frames in `exc`'s tracebacks (and its context's), which
    hold views into the mapping."""
    seen = 0
    while exc is not None and seen < 8:
        if exc.__traceback__ is not None:
            traceback.clear_frames(exc.__traceback__)
        exc = exc.__context__
        seen += 1
