from typing import Annotated

from fastapi import APIRouter, Depends

from kaos.pipeline.records import Workspace
from kaos.server.routes import services
from kaos.server.schemas import InputsOut, WorkspaceIn, WorkspaceOut, image_out
from kaos.server.services import Services

router = APIRouter(tags=["workspaces"])
Svc = Annotated[Services, Depends(services)]


def inputs_out(svc: Services, ws: Workspace) -> InputsOut:
    inputs = ws.inputs
    source_name = svc.bundle_name(inputs.source, "source")
    image = svc.catalog.image(inputs.source, svc.executor.kind) if inputs.source else None
    image_name = (
        f"build-train-{source_name}:{inputs.source[:5]}" if inputs.source and source_name else None
    )
    return InputsOut(
        source=inputs.source,
        data=inputs.data,
        source_name=source_name,
        data_name=svc.bundle_name(inputs.data, "data"),
        grid=inputs.grid.to_json() if inputs.grid else None,
        resources=inputs.resources.to_json(),
        image=image_out(image, image_name),
    )


def workspace_out(svc: Services, ws: Workspace) -> WorkspaceOut:
    return WorkspaceOut(
        name=ws.name,
        created=ws.created,
        inputs=inputs_out(svc, ws),
        jobs=len(svc.catalog.jobs(ws.name)),
    )


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
