"""Receiving a pack upload's body into a buffer that is used again for the next upload.

A pack is up to about 32 MiB (raw, when a client on this machine sends it uncompressed). A
fresh buffer of that size costs a page fault and a zeroed page per 4 KiB as it fills, which
measured more than the copy itself: 583 MB of raw packs took 2.5 CPU s to receive, 1.9 with
buffers kept. A buffer goes back to the pool only when nothing holds a view into it, so no
later upload can change bytes an earlier one still reads.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

KEEP = 2  # buffers kept between uploads: a client has at most two packs in flight
KEEP_MAX_BYTES = 64 << 20  # a buffer grown beyond this (an unusual pack) is let go


class TooLarge(Exception):
    """The body grew beyond the caller's limit (it is not read further)."""


class BufferPool:
    """Buffers for upload bodies; used on the event loop's thread only, so no lock."""

    def __init__(self, keep: int = KEEP) -> None:
        self._keep = keep
        self._free: list[bytearray] = []

    async def receive(self, chunks: AsyncIterator[bytes], limit: int) -> bytearray:
        """The whole body, in a buffer of exactly its size (from the pool when one is free);
        raises TooLarge past `limit` bytes. Give it back with `release` once done with."""
        body = self._free.pop() if self._free else bytearray()
        size = 0
        async for chunk in chunks:
            end = size + len(chunk)
            if end > limit:
                self.release(body)
                raise TooLarge
            body[size:end] = chunk  # in place while inside the old size, appended past it
            size = end
        del body[size:]  # keeps its memory unless it shrank below half
        return body

    def release(self, body: bytearray) -> None:
        """Keep `body` for the next upload, unless views into it are still alive (then the
        garbage collector has it when they are gone) or the pool is full."""
        if len(self._free) >= self._keep or len(body) > KEEP_MAX_BYTES:
            return
        try:
            body.append(0)  # refused while anything holds a view into it
        except BufferError:
            return
        body.pop()
        self._free.append(body)
