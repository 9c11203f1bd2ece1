"""API routes, one module per resource; each validates, calls one service, returns a model."""

from fastapi import Request

from kaos.server.auth import TokenTable
from kaos.server.services import Services


def services(request: Request) -> Services:
    made: Services = request.app.state.services
    return made


def authenticate(request: Request) -> str:
    """Every route but /health depends on this: with tokens configured, the bearer token must
    name a user (401 otherwise); without, the client's word is taken."""
    tokens: TokenTable = request.app.state.tokens
    if tokens.enabled:
        user = tokens.user_for(request.headers.get("authorization"))
    else:
        user = request.headers.get("x-kaos-author", "anonymous")[:64] or "anonymous"
    request.state.user = user
    return user


def author(request: Request) -> str:
    """Who is asking (set by `authenticate`): the token's user, or what the client says."""
    user: str | None = getattr(request.state, "user", None)
    return user or authenticate(request)
