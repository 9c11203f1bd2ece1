"""xxh3-128 content hashing: the identity of every blob, chunk, tree and pack."""

from __future__ import annotations

import os
import re
from pathlib import Path

import xxhash

_HEX = re.compile(r"^[0-9a-f]{32}$")
_READ_SIZE = 1 << 20


def hash_bytes(data: bytes | bytearray | memoryview) -> str:
    """The hex digest that names `data` in the store."""
    return xxhash.xxh3_128_hexdigest(data)


def hash_file(path: str | Path) -> tuple[str, int]:
    """Hash a file by streaming it; returns (digest, size). Never loads it whole."""
    with open(path, "rb", buffering=0) as f:
        return hash_fd(f.fileno())


def hash_fd(fd: int) -> tuple[str, int]:
    """Hash an open file from where it stands to its end; returns (digest, size)."""
    hasher = xxhash.xxh3_128()
    size = 0
    buf = bytearray(_READ_SIZE)
    view = memoryview(buf)
    while n := os.readv(fd, [buf]):
        hasher.update(view[:n])
        size += n
    return hasher.hexdigest(), size


def is_digest(value: str) -> bool:
    """True for a well-formed full digest (32 lowercase hex characters)."""
    return bool(_HEX.match(value))


def digest_to_bytes(digest: str) -> bytes:
    return bytes.fromhex(digest)


def bytes_to_digest(raw: bytes) -> str:
    return raw.hex()
