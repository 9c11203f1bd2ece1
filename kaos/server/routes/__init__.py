"""API routes, one module per resource: each parses, makes one service call with the user
asking, and returns the schema it answers (kaos.server.service)."""

from typing import Annotated

from fastapi import Depends, Request

from kaos.server.auth import TokenTable
from kaos.server.service import Services
from kaos.server.service.browse import BrowseService
from kaos.server.service.objects import ObjectService, is_local
from kaos.server.service.serving import EndpointService
from kaos.server.service.store import StoreService
from kaos.server.service.train import TrainService
from kaos.server.service.workspaces import WorkspaceService


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


def _from_this_machine(request: Request) -> bool:
    """Whether the request came from a client on the server's machine (not through a proxy)."""
    return is_local(request.client.host if request.client else None, request.headers)


def _workspaces(request: Request) -> WorkspaceService:
    return services(request).workspaces


def _training(request: Request) -> TrainService:
    return services(request).training


def _browsing(request: Request) -> BrowseService:
    return services(request).browsing


def _endpoints(request: Request) -> EndpointService:
    return services(request).endpoints


def _objects(request: Request) -> ObjectService:
    return services(request).objects


def _maintenance(request: Request) -> StoreService:
    return services(request).maintenance


User = Annotated[str, Depends(author)]
Local = Annotated[bool, Depends(_from_this_machine)]
Workspaces = Annotated[WorkspaceService, Depends(_workspaces)]
Training = Annotated[TrainService, Depends(_training)]
Browsing = Annotated[BrowseService, Depends(_browsing)]
Endpoints = Annotated[EndpointService, Depends(_endpoints)]
Objects = Annotated[ObjectService, Depends(_objects)]
Maintenance = Annotated[StoreService, Depends(_maintenance)]
