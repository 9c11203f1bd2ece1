"""Serving: endpoints (deploy, list, info, rollback, kill, logs) and the kaos route to them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from kaos.server.routes import Endpoints, User
from kaos.server.schemas import EndpointDetailOut, EndpointOut, ServeDeployIn, ServeLogsOut

router = APIRouter(tags=["serving"])


@router.post("/workspaces/{workspace}/endpoints", status_code=201)
def deploy(
    workspace: str, body: ServeDeployIn, endpoints: Endpoints, user: User
) -> EndpointDetailOut:
    return endpoints.deploy(user, workspace, body)


@router.get("/workspaces/{workspace}/endpoints")
def list_endpoints(workspace: str, endpoints: Endpoints, user: User) -> list[EndpointOut]:
    return endpoints.all(user, workspace)


@router.get("/workspaces/{workspace}/endpoints/{name}")
def get_endpoint(workspace: str, name: str, endpoints: Endpoints, user: User) -> EndpointDetailOut:
    return endpoints.get(user, workspace, name)


@router.post("/workspaces/{workspace}/endpoints/{name}/rollback")
def rollback(workspace: str, name: str, endpoints: Endpoints, user: User) -> EndpointDetailOut:
    return endpoints.rollback(user, workspace, name)


@router.delete("/workspaces/{workspace}/endpoints/{name}")
def kill(workspace: str, name: str, endpoints: Endpoints, user: User) -> EndpointDetailOut:
    return endpoints.kill(user, workspace, name)


@router.get("/workspaces/{workspace}/endpoints/{name}/logs")
def logs(
    workspace: str,
    name: str,
    endpoints: Endpoints,
    user: User,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> ServeLogsOut:
    """The serving revision's log (the last revision's, once stopped), from a byte offset."""
    return endpoints.logs(user, workspace, name, offset)


@router.get("/workspaces/{workspace}/endpoints/{name}/build-logs")
def build_logs(workspace: str, name: str, endpoints: Endpoints, user: User) -> ServeLogsOut:
    """How the endpoint's environment was built: its serve source's build, or the model's."""
    return endpoints.build_logs(user, workspace, name)


@router.api_route("/serve/{workspace}/{name}/{path:path}", methods=["GET", "POST"])
async def route(
    workspace: str, name: str, path: str, request: Request, endpoints: Endpoints, user: User
) -> Response:
    """Forward to the endpoint's serving revision (/invocations, /ping, /health, /version)."""
    answer = await endpoints.forward(
        user,
        workspace,
        name,
        request.method,
        path.strip("/"),
        await request.body(),
        request.headers.get("content-type", "application/json"),
    )
    return Response(answer.body, answer.status, media_type=answer.content_type)
