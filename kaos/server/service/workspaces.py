"""Workspaces: create, list, read, delete, share. Every call names the user asking; the access
checks (kaos.server.guard) go here, beside the catalog call, never in a route."""

from __future__ import annotations

from kaos.errors import NotFound
from kaos.server.access import Action, Role, may_share, may_unshare
from kaos.server.schemas import WorkspaceOut
from kaos.server.service.parts import Parts
from kaos.server.service.views import workspace_out


class WorkspaceService:
    def __init__(self, parts: Parts) -> None:
        self._parts = parts

    def create(self, user: str, name: str) -> WorkspaceOut:
        """A new workspace belongs to `user`; one they can read already is just selected."""
        return workspace_out(self._parts, self._parts.guard.create(user, name))

    def all(self, user: str) -> list[WorkspaceOut]:
        """The workspaces `user` can read (all of them for admins, or without tokens)."""
        parts = self._parts
        shares = parts.catalog.shares()
        spaces = parts.guard.readable(user, parts.catalog.workspaces())
        return [workspace_out(parts, ws, shares) for ws in spaces]

    def get(self, user: str, name: str) -> WorkspaceOut:
        return workspace_out(self._parts, self._parts.guard.workspace(user, name, Action.READ))

    def delete(self, user: str, name: str) -> None:
        """For the owner and admins; refused (409) while one of the workspace's jobs runs.
        Under the workspace's lock, so a deploy in flight records before or finds it gone."""
        with self._parts.catalog.workspace_lock(name, self._parts.settings.lock_wait_s):
            self._parts.guard.workspace(user, name, Action.MANAGE)
            self._parts.catalog.delete_workspace(name)

    def share(self, user: str, name: str, member: str, role: str) -> WorkspaceOut:
        """Give `member` a role on the workspace (the owner and admins only)."""
        parts, given = self._parts, Role.shared(role)
        ws = parts.catalog.workspace(name)
        may_share(parts.guard.caller(user), parts.guard.ownership(ws), member)
        if parts.tokens.enabled and member not in parts.tokens.users:
            raise NotFound(
                f"no user {member!r} on this server", "use a user of the server's tokens file"
            )
        parts.catalog.share(name, member, given.label)
        return workspace_out(parts, ws)

    def unshare(self, user: str, name: str, member: str) -> WorkspaceOut:
        parts = self._parts
        ws = parts.catalog.workspace(name)
        may_unshare(parts.guard.caller(user), parts.guard.ownership(ws), member)
        if not parts.catalog.unshare(name, member):
            raise NotFound(
                f"{member} has no role on workspace {name!r}", "see 'kaos workspace info'"
            )
        return workspace_out(parts, ws)
