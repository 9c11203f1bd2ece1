"""Access checks against the catalog: the rules of `access`, applied to what a request names.

Each check finds the record a request is about (a workspace, job, deploy, model or stored
tree), decides with `access`, and returns the record, so a service checks and fetches in one
call. Content is content-addressed and shared between workspaces, so reading by hash is
allowed only through a workspace that names the content and that the caller can read: a tree
(source, data, lock, model output, serve source) by the catalog's references, an object by
the tree it belongs to.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import TypeVar

from kaos.errors import Ambiguous, Forbidden, NotFound
from kaos.pipeline.catalog import SqlCatalog
from kaos.pipeline.records import Deploy, Job, Model, Workspace
from kaos.server.access import Action, Caller, Ownership, Role, allows, check, refusal
from kaos.server.auth import TokenTable
from kaos.store import ContentStore

# Digest sets of recently downloaded trees (a checkout asks once per batch of objects), kept up
# to this many digests in all (about 100 MB): one million-file tree, or many small ones.
_DIGESTS_KEPT = 1_000_000
R = TypeVar("R")


class Guard:
    def __init__(self, catalog: SqlCatalog, store: ContentStore, tokens: TokenTable) -> None:
        self._catalog = catalog
        self._store = store
        self._tokens = tokens
        self._trees: OrderedDict[str, frozenset[str]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        """Off without tokens: the one local user may do everything, nothing is looked up."""
        return self._tokens.enabled

    def caller(self, user: str) -> Caller:
        return Caller(user, admin=not self.enabled or user in self._tokens.admins)

    def ownership(self, ws: Workspace, shares: dict[str, str] | None = None) -> Ownership:
        if shares is None:
            shares = self._catalog.shares(ws.name).get(ws.name, {})
        return Ownership(ws.name, ws.owner, {m: Role[r.upper()] for m, r in shares.items()})

    # -- workspaces -------------------------------------------------------------------------
    def workspace(self, user: str, name: str, action: Action) -> Workspace:
        """The workspace (404 if there is none), if the caller may do `action` to it (403
        naming its owner otherwise)."""
        ws = self._catalog.workspace(name)
        if self.enabled:
            check(self.caller(user), self.ownership(ws), action)
        return ws

    def create(self, user: str, name: str) -> Workspace:
        """A new workspace is the caller's; `create` of one they can read just selects it."""
        ws = self._catalog.create_workspace(name, owner=user)
        if self.enabled:
            check(self.caller(user), self.ownership(ws), Action.READ)
        return ws

    def readable(self, user: str, spaces: Iterable[Workspace]) -> list[Workspace]:
        """The workspaces the caller can read (one query for every share)."""
        spaces = list(spaces)
        if not self.enabled:
            return spaces
        caller, shares = self.caller(user), self._catalog.shares()
        return [
            ws
            for ws in spaces
            if allows(caller, self.ownership(ws, shares.get(ws.name, {})), Action.READ)
        ]

    # -- records that belong to a workspace -------------------------------------------------
    def job(self, user: str, job_id: str, action: Action) -> Job:
        job = self._resolve(user, lambda among: self._catalog.find_job(job_id, among))
        self.workspace(user, job.workspace, action)
        return job

    def deploy(self, user: str, deploy_id: int) -> Deploy:
        deploy = self._catalog.deploy(deploy_id)
        self.workspace(user, deploy.workspace, Action.READ)
        return deploy

    def model(self, user: str, model_id: str, action: Action = Action.READ) -> Model:
        """A model is read through its job's workspace, or by whoever can read both its source
        and its data: a deploy of the same inputs elsewhere reuses it rather than retraining,
        and its author holds everything it was made from."""
        model = self._resolve(user, lambda among: self._catalog.find_model(model_id, among))
        if not self.enabled:
            return model
        job = self._catalog.job(model.job_id)
        ws = self._catalog.workspace(job.workspace)
        caller, ownership = self.caller(user), self.ownership(ws)
        if allows(caller, ownership, action):
            return model
        if action is Action.READ and all(
            d and self._reads(caller, d) for d in (job.source, job.data)
        ):
            return model
        raise refusal(caller, ownership, action)

    def _resolve(self, user: str, find: Callable[[list[str] | None], R]) -> R:
        """Ids are typed as prefixes: one that also matches records the caller cannot read is
        resolved among the workspaces they can, so it is neither ambiguous for them nor a
        listing of others' ids."""
        try:
            return find(None)
        except Ambiguous:
            if not self.enabled or self.caller(user).admin:
                raise
            return find([ws.name for ws in self.readable(user, self._catalog.workspaces())])

    # -- content by hash --------------------------------------------------------------------
    def tree(self, user: str, digest: str) -> None:
        """A stored tree may be read by whoever can read a workspace naming it."""
        if self.enabled and not self._reads(self.caller(user), digest):
            raise _unreadable(digest)

    def objects(self, user: str, tree: str | None, digests: Iterable[str]) -> None:
        """Objects are read as part of a tree the caller can read (the client names it)."""
        if not self.enabled or self.caller(user).admin:
            return
        if tree is None:
            raise Forbidden(
                "name the tree these objects belong to",
                "download with a kaos client of this version (kaos train get)",
            )
        self.tree(user, tree)
        members = self._members(tree)
        for digest in digests:
            if digest not in members:
                raise _unreadable(digest)

    def _reads(self, caller: Caller, digest: str) -> bool:
        if caller.admin:
            return True
        for name in sorted(self._catalog.workspaces_referencing(digest)):
            try:
                ws = self._catalog.workspace(name)
            except NotFound:  # deleted meanwhile
                continue
            if allows(caller, self.ownership(ws), Action.READ):
                return True
        return False

    def _members(self, tree: str) -> frozenset[str]:
        with self._lock:
            if tree in self._trees:
                self._trees.move_to_end(tree)
                return self._trees[tree]
        members = frozenset(self._store.get_tree(tree).digests())
        with self._lock:
            self._trees[tree] = members
            while len(self._trees) > 1 and sum(map(len, self._trees.values())) > _DIGESTS_KEPT:
                self._trees.popitem(last=False)
        return members


def _unreadable(digest: str) -> Forbidden:
    """The same answer whether or not the content exists: a hash alone reveals nothing."""
    return Forbidden(
        f"{digest} is not in a workspace you can read",
        "ask its owner to share the workspace (kaos workspace share)",
    )
