"""The download stream format (`POST /objects/fetch`): pure framing, no I/O.

Objects travel as frames of a 16-byte digest, a u64 content length, then the content. A frame
whose length is ERROR_SIZE carries an error instead (u32 length, UTF-8 message): a server that
finds a corrupt object mid-stream says which, in band, and stops. Readers re-verify every object.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Iterator

from kaos.errors import IntegrityError, KaosError
from kaos.store.hashing import bytes_to_digest, digest_to_bytes

FRAME_HEADER = struct.Struct("<16sQ")  # digest, length; then the content
ERROR_SIZE = 2**64 - 1
_ERROR_LENGTH = struct.Struct("<I")

OpenContent = Callable[[str], tuple[int, Iterable[bytes]]]  # digest -> (size, pieces)


def encode_stream(digests: Iterable[str], open_content: OpenContent) -> Iterator[bytes]:
    """The frames of `digests` (each once, in order); a failure ends the stream in band."""
    try:
        for digest in dict.fromkeys(digests):
            size, pieces = open_content(digest)
            yield FRAME_HEADER.pack(digest_to_bytes(digest), size)
            yield from pieces
    except KaosError as exc:
        message = str(exc).encode()
        yield FRAME_HEADER.pack(bytes(16), ERROR_SIZE) + _ERROR_LENGTH.pack(len(message)) + message


def decode_stream(parts: Iterator[bytes], count: int) -> Iterator[tuple[str, int, Iterator[bytes]]]:
    """(digest, size, pieces) of `count` frames; consume each frame's pieces before the next."""
    reader = _StreamReader(parts)
    for _ in range(count):
        raw, size = FRAME_HEADER.unpack(reader.read_exact(FRAME_HEADER.size))
        if size == ERROR_SIZE:
            (length,) = _ERROR_LENGTH.unpack(reader.read_exact(_ERROR_LENGTH.size))
            raise IntegrityError(reader.read_exact(length).decode("utf-8", "replace"))
        yield bytes_to_digest(raw), size, reader.pieces(size)


class _StreamReader:
    """Exact-size reads over an iterator of byte strings."""

    def __init__(self, parts: Iterator[bytes]) -> None:
        self._parts = parts
        self._buffer = bytearray()

    def read_exact(self, n: int) -> bytes:
        while len(self._buffer) < n:
            self._fill()
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        return data

    def pieces(self, n: int) -> Iterator[bytes]:
        while n > 0:
            if not self._buffer:
                self._fill()
            take = min(n, len(self._buffer))
            yield bytes(self._buffer[:take])
            del self._buffer[:take]
            n -= take

    def _fill(self) -> None:
        part = next(self._parts, None)
        if part is None:
            raise IntegrityError("download ended early (truncated stream)")
        self._buffer += part
