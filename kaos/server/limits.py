"""A cap on each request's body, checked before any of it is parsed (413 beyond it).

JSON bodies are parsed whole by the framework, so without a cap one request can cost the
server memory and seconds in proportion to what a client sends. Each route gets a cap a real
client never reaches; pack uploads stream and are capped by their route.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

DEFAULT_LIMIT = 1 << 20
LIMITS = {  # path prefix -> cap in bytes (None: the route streams and caps on its own)
    "/objects/packs/inbox": DEFAULT_LIMIT,  # a file name
    "/objects/packs": None,
    "/objects/": 8 << 20,  # up to 100,000 digests per call
    "/workspaces/": 12 << 20,  # a deploy may carry an 8 MiB manifest
    "/serve/": 32 << 20,  # prediction requests forwarded to endpoints (batches of rows)
}


def limit_for(path: str) -> int | None:
    for prefix, limit in LIMITS.items():
        if path.startswith(prefix):
            return limit
    return DEFAULT_LIMIT


class BodyLimit:
    """ASGI middleware: refuse a body over its route's cap by its Content-Length, or while it
    arrives when it has none; the accepted body is handed on unchanged."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = limit_for(scope.get("path", "")) if scope["type"] == "http" else None
        if limit is None:
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _too_large(send, limit)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            if len(body) > limit:
                await _too_large(send, limit)
                return
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)


async def _too_large(send: Send, limit: int) -> None:
    content: dict[str, Any] = {
        "detail": f"request body larger than {limit} bytes",
        "fix": "send less per request",
    }
    payload = json.dumps(content).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
