"""API routes, one module per resource; each validates, calls one service, returns a model."""

from fastapi import Request

from kaos.server.services import Services


def services(request: Request) -> Services:
    return request.app.state.services


def author(request: Request) -> str:
    """Who is asking: the token's user once auth is on, else what the client says."""
    return request.headers.get("x-kaos-author", "anonymous")[:64] or "anonymous"
