"""Leaving a sealed pack in the inbox of a server on this machine (`kaos.store.inbox` is its
side), instead of sending its bytes through a loopback socket: the client writes the file once
and the server verifies it where it lies, then renames it into its store."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kaos.store.pack import Piece

IOV_MAX = 1024  # buffers per writev call (Linux's limit)


def write_pack(folder: str, pack_id: str, pieces: Sequence[Piece]) -> str:
    """Write a pack's pieces into `folder` as a new file (never over another one, never
    through a link), in order and never joined; returns its name. Raises OSError when the
    folder is not there or not writable; a file written in part is removed."""
    name = f"{pack_id}-{secrets.token_hex(8)}.pack"
    path = os.path.join(folder, name)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(path, flags, 0o600)
    try:
        try:
            write_all(fd, pieces)
        finally:
            os.close(fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    return name


def write_all(fd: int, pieces: Sequence[Piece]) -> None:
    """Write every piece, a writev call per IOV_MAX of them, resuming after short writes
    (only a short write walks its pieces in Python: a pack is a hundred thousand of them)."""
    for start in range(0, len(pieces), IOV_MAX):
        group = list(pieces[start : start + IOV_MAX])
        left = sum(map(len, group))
        while left > 0:
            done = os.writev(fd, group)
            left -= done
            if left:
                group = rest_after(group, done)


def rest_after(group: list[Piece], done: int) -> list[Piece]:
    """What is left to write of `group` once its first `done` bytes are written."""
    for i, piece in enumerate(group):
        if done < len(piece):
            return [memoryview(piece)[done:], *group[i + 1 :]]
        done -= len(piece)
    return []
