from fastapi import APIRouter

from kaos.server.routes import User, Workspaces
from kaos.server.schemas import ShareIn, WorkspaceIn, WorkspaceOut

router = APIRouter(tags=["workspaces"])


@router.post("/workspaces", status_code=201)
def create_workspace(body: WorkspaceIn, workspaces: Workspaces, user: User) -> WorkspaceOut:
    return workspaces.create(user, body.name)


@router.get("/workspaces")
def list_workspaces(workspaces: Workspaces, user: User) -> list[WorkspaceOut]:
    return workspaces.all(user)


@router.get("/workspaces/{name}")
def get_workspace(name: str, workspaces: Workspaces, user: User) -> WorkspaceOut:
    return workspaces.get(user, name)


@router.delete("/workspaces/{name}", status_code=204)
def delete_workspace(name: str, workspaces: Workspaces, user: User) -> None:
    """Forget a workspace and its history; refused (409) while one of its jobs runs."""
    workspaces.delete(user, name)


@router.post("/workspaces/{name}/shares")
def share(name: str, body: ShareIn, workspaces: Workspaces, user: User) -> WorkspaceOut:
    """Give a user a role (reader or writer) on a workspace: its owner and admins only."""
    return workspaces.share(user, name, body.member, body.role)


@router.delete("/workspaces/{name}/shares/{member}")
def unshare(name: str, member: str, workspaces: Workspaces, user: User) -> WorkspaceOut:
    return workspaces.unshare(user, name, member)
