from typing import Annotated

from fastapi import APIRouter, Depends

from kaos.server.routes import services
from kaos.server.schemas import WorkspaceIn, WorkspaceOut
from kaos.server.services import Services
from kaos.server.views import workspace_out

router = APIRouter(tags=["workspaces"])
Svc = Annotated[Services, Depends(services)]


@router.post("/workspaces", status_code=201)
def create_workspace(body: WorkspaceIn, svc: Svc) -> WorkspaceOut:
    return workspace_out(svc, svc.catalog.create_workspace(body.name))


@router.get("/workspaces")
def list_workspaces(svc: Svc) -> list[WorkspaceOut]:
    return [workspace_out(svc, ws) for ws in svc.catalog.workspaces()]


@router.get("/workspaces/{name}")
def get_workspace(name: str, svc: Svc) -> WorkspaceOut:
    return workspace_out(svc, svc.catalog.workspace(name))


@router.delete("/workspaces/{name}", status_code=204)
def delete_workspace(name: str, svc: Svc) -> None:
    """Forget a workspace and its history; refused (409) while one of its jobs runs."""
    svc.catalog.delete_workspace(name)
