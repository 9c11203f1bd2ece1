"""Workspaces: create, list, read, delete. Every call names the user asking (access checks
go here, beside the catalog call, never in a route)."""

from __future__ import annotations

from kaos.server.schemas import WorkspaceOut
from kaos.server.service.parts import Parts
from kaos.server.service.views import workspace_out


class WorkspaceService:
    def __init__(self, parts: Parts) -> None:
        self._parts = parts

    def create(self, user: str, name: str) -> WorkspaceOut:
        return workspace_out(self._parts, self._parts.catalog.create_workspace(name))

    def all(self, user: str) -> list[WorkspaceOut]:
        return [workspace_out(self._parts, ws) for ws in self._parts.catalog.workspaces()]

    def get(self, user: str, name: str) -> WorkspaceOut:
        return workspace_out(self._parts, self._parts.catalog.workspace(name))

    def delete(self, user: str, name: str) -> None:
        """Refused (409) while one of the workspace's jobs runs."""
        self._parts.catalog.delete_workspace(name)
