"""HTTP/1.1 for the client on the standard library's `http.client`.

A CLI command is mostly its start-up, and the client's requests are simple (JSON in and out,
a pack body up, an object stream down): importing httpx and httpcore (with whatever async
libraries they probe for) cost more than the request itself. Each thread keeps one
keep-alive connection (uploads run on two threads); a connection idle for two seconds is
dropped before it is used again, so no request goes out on a socket the server is closing.
"""

from __future__ import annotations

import http.client
import json as jsonlib
import ssl
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlencode, urlsplit

_IDLE = 2.0  # seconds: well under uvicorn's keep-alive timeout (5 s)
_PIECE = 256 << 10
_BLOCK = 1 << 20  # a body given in pieces is sent in blocks of about this size

Body = bytes | bytearray | Sequence[bytes | memoryview]  # one buffer, or pieces sent in order


class TransportError(Exception):
    """The server could not be reached, or the connection broke mid-request."""


class CutShort(TransportError):
    """A response body ended before its end (the server stopped sending)."""


class Response:
    """A finished response: status, headers and the whole body."""

    def __init__(self, status: int, headers: Mapping[str, str], content: bytes) -> None:
        self.status_code = status
        self.headers = headers
        self.content = content

    def json(self) -> Any:
        return jsonlib.loads(self.content)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")


class Streamed:
    """A response whose body is read as it arrives (`iter_bytes`), or whole with `read`."""

    def __init__(self, raw: http.client.HTTPResponse) -> None:
        self._raw = raw
        self.status_code = raw.status

    def iter_bytes(self) -> Iterator[bytes]:
        try:
            while piece := self._raw.read1(_PIECE):
                yield piece
            if rest := self._raw.read():  # nothing left, but it marks the response done
                yield rest
        except http.client.IncompleteRead:
            raise CutShort("the response ended early") from None
        except (OSError, http.client.HTTPException) as exc:
            raise TransportError(type(exc).__name__) from None

    def read(self) -> Response:
        body = b"".join(self.iter_bytes())
        return Response(self.status_code, dict(self._raw.getheaders()), body)


class Transport:
    """Requests to one server (`base_url`), with default headers and timeout."""

    def __init__(self, base_url: str, headers: Mapping[str, str], timeout: float) -> None:
        url = urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self._tls = url.scheme == "https"
        self._host = url.hostname
        self._port = url.port or (443 if self._tls else 80)
        self._prefix = url.path.rstrip("/")
        self._headers = dict(headers)
        self._timeout = timeout
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: set[http.client.HTTPConnection] = set()
        self._context: ssl.SSLContext | None = None

    @property
    def loopback(self) -> bool:
        """Whether the server is on this machine, reached over the loopback interface."""
        from kaos.net import is_loopback

        return is_loopback(self._host)

    def close(self) -> None:
        with self._lock:
            conns, self._open = self._open, set()
        for conn in conns:
            conn.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        content: Body | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Response:
        with self.stream(
            method,
            path,
            json=json,
            params=params,
            content=content,
            headers=headers,
            timeout=timeout,
        ) as response:
            return response.read()

    @contextmanager
    def stream(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        content: Body | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Iterator[Streamed]:
        """Send a request; the connection is kept for the thread's next request only when
        the body was read to its end."""
        sent = {**self._headers, **(headers or {})}
        if json is not None:
            content = jsonlib.dumps(json).encode()
            sent["Content-Type"] = "application/json"
        body: bytes | bytearray | Iterator[bytes | memoryview] | None = None
        if isinstance(content, bytes | bytearray):
            body = content
        elif content is not None:
            sent["Content-Length"] = str(sum(map(len, content)))
            body = _blocks(content)
        target = self._prefix + path
        if params:
            target += "?" + urlencode(params)
        conn = self._connection(timeout)
        try:
            conn.request(method, target, body=body, headers=sent)
            raw = conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            self._drop(conn)
            raise TransportError(type(exc).__name__) from None
        response = Streamed(raw)
        try:
            yield response
        except BaseException:
            self._drop(conn)
            raise
        if raw.isclosed() and not raw.will_close:
            self._local.idle_since = time.monotonic()  # read to its end: reusable
        else:
            self._drop(conn)

    def _connection(self, timeout: float | None) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is not None and time.monotonic() - self._local.idle_since > _IDLE:
            self._drop(conn)
            conn = None
        if conn is None:
            conn = self._new_connection()
            self._local.conn = conn
            with self._lock:
                self._open.add(conn)
        conn.timeout = timeout or self._timeout
        if conn.sock is not None:
            conn.sock.settimeout(conn.timeout)
        return conn

    def _new_connection(self) -> http.client.HTTPConnection:
        if not self._tls:
            return http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
        if self._context is None:  # the system's CAs (SSL_CERT_FILE / SSL_CERT_DIR honoured)
            self._context = ssl.create_default_context()
        return http.client.HTTPSConnection(
            self._host, self._port, timeout=self._timeout, context=self._context
        )

    def _drop(self, conn: http.client.HTTPConnection) -> None:
        conn.close()
        with self._lock:
            self._open.discard(conn)
        if getattr(self._local, "conn", None) is conn:
            self._local.conn = None


def _blocks(pieces: Sequence[bytes | memoryview]) -> Iterator[bytes | memoryview]:
    """The pieces joined into blocks of about `_BLOCK` bytes: one system call per block rather
    than per piece (a pack's raw frame is thousands of small files), and no buffer as large as
    the whole body (a fresh 32 MiB buffer costs more in page faults than its copy)."""
    run: list[bytes | memoryview] = []
    size = 0
    for piece in pieces:
        if not run and len(piece) >= _BLOCK:
            yield piece
            continue
        run.append(piece)
        size += len(piece)
        if size >= _BLOCK:
            yield b"".join(run)
            run, size = [], 0
    if run:
        yield b"".join(run)
