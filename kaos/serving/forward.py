"""The kaos route's hop to an endpoint: a small keep-alive HTTP/1.1 client on asyncio streams.

A general HTTP client costs several milliseconds per request here; this one writes each request
in one piece and reads the runtime's answers, which always carry Content-Length (runtime.py),
so the hop costs about what the socket does. Idle connections are kept per address (a
revision, or one of its Ray replicas); one found closed (its revision stopped) is replaced by a
fresh connection, once.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass

from kaos.errors import EndpointTimeout
from kaos.serving.process import Address

MAX_IDLE_PER_PORT = 64
TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    content_type: str


class Forwarder:
    def __init__(self) -> None:
        self._idle: dict[Address, list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]] = {}

    async def request(
        self, address: Address, method: str, path: str, body: bytes, content_type: str
    ) -> Answer:
        host, port = address
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode("latin-1")
        while True:
            idle = self._idle.get(address)
            reused = bool(idle)
            reader, writer = idle.pop() if idle else await _connect(address)
            try:
                writer.write(head + body)
                await writer.drain()
                answer, keep = await asyncio.wait_for(_read(reader), TIMEOUT_S)
            except TimeoutError:
                writer.close()  # never sent again: the request reached the endpoint
                raise EndpointTimeout(
                    f"the endpoint on {host}:{port} gave no answer in {TIMEOUT_S:g} s",
                    "its predict may hang: see 'kaos serve logs -n NAME'",
                ) from None
            except (OSError, asyncio.IncompleteReadError, ValueError):
                writer.close()
                if reused:
                    continue  # the revision closed an idle connection: take a fresh one
                raise ConnectionError(f"the endpoint on {host}:{port} did not answer") from None
            pool = self._idle.setdefault(address, [])
            if keep and len(pool) < MAX_IDLE_PER_PORT:
                pool.append((reader, writer))
            else:
                writer.close()
            return answer

    def close(self) -> None:
        for pool in self._idle.values():
            for _, writer in pool:
                writer.close()
        self._idle.clear()


async def _connect(address: Address) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(*address)
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return reader, writer


async def _read(reader: asyncio.StreamReader) -> tuple[Answer, bool]:
    status_line = await reader.readline()
    if not status_line:
        raise asyncio.IncompleteReadError(b"", None)
    status = int(status_line.split()[1])
    headers: dict[str, str] = {}
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    keep = headers.get("connection", "").lower() != "close"
    return Answer(status, body, headers.get("content-type", "application/json")), keep
