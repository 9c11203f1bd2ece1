"""Who may do what to a workspace: pure rules, no I/O (the catalog lookups are in `guard`).

A workspace belongs to the user who created it; its owner shares it with others as readers
or writers. Readers see everything in it (inputs, jobs, logs, models, provenance, bundles,
endpoints); writers also change it (deploy, kill, reproduce, serve); only the owner shares,
unshares or deletes it. Admins (marked in the tokens file, and the `--token` user) act as
owners of every workspace. Without tokens the one local user is an admin: nothing is refused.

A refusal is a `Forbidden` (403) whose one line names the owner to ask and the command that
grants what was missing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum, IntEnum

from kaos.errors import Forbidden, InputError


class Role(IntEnum):
    """What a user is to a workspace; each role may do everything the ones below may."""

    NONE = 0
    READER = 1
    WRITER = 2
    OWNER = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def shared(cls, text: str) -> Role:
        """A role an owner can give (`--role reader|writer`); ownership is never shared."""
        for role in (cls.READER, cls.WRITER):
            if text == role.label:
                return role
        raise InputError(f"unknown role {text!r}", "use --role reader or --role writer")


class Action(Enum):
    """What a request does to a workspace, and the role it needs."""

    READ = "read"  # list, info, jobs, logs, provenance, get, models, serve list/info/predict
    WRITE = "write"  # deploy, kill, reproduce, serve deploy/kill/rollback
    MANAGE = "manage"  # share, unshare, delete

    @property
    def needs(self) -> Role:
        return {Action.READ: Role.READER, Action.WRITE: Role.WRITER}.get(self, Role.OWNER)


@dataclass(frozen=True)
class Caller:
    """The user a request comes from; `admin` for tokens-file admins and for everyone when the
    server has no tokens (the embedded one, where the only user is trusted)."""

    name: str
    admin: bool = False


@dataclass(frozen=True)
class Ownership:
    """A workspace's owner (None for workspaces made before ownership and never deployed to:
    admins only) and the roles it was shared with."""

    workspace: str
    owner: str | None
    shares: Mapping[str, Role] = field(default_factory=dict)


def role_of(caller: Caller, ownership: Ownership) -> Role:
    if caller.admin or (ownership.owner is not None and caller.name == ownership.owner):
        return Role.OWNER
    return ownership.shares.get(caller.name, Role.NONE)


def allows(caller: Caller, ownership: Ownership, action: Action) -> bool:
    return role_of(caller, ownership) >= action.needs


def check(caller: Caller, ownership: Ownership, action: Action) -> None:
    if not allows(caller, ownership, action):
        raise refusal(caller, ownership, action)


def refusal(caller: Caller, ownership: Ownership, action: Action) -> Forbidden:
    """The one line a refused user reads: whose workspace it is and what to ask for."""
    ws, owner = ownership.workspace, ownership.owner
    whose = f"workspace {ws!r} belongs to {owner}" if owner else f"workspace {ws!r} has no owner"
    asked = owner or "an admin"
    if action is Action.MANAGE:
        return Forbidden(
            f"{whose}: only its owner or an admin may share, unshare or delete it",
            f"ask {asked}",
        )
    has = role_of(caller, ownership)
    why = f"{caller.name} may only read it" if has else f"it is not shared with {caller.name}"
    return Forbidden(
        f"{whose}: {why}",
        f"ask {asked} to share it: kaos workspace share -n {ws} -u {caller.name} "
        f"--role {action.needs.label}",
    )


def may_share(caller: Caller, ownership: Ownership, member: str) -> None:
    """Only the owner (or an admin) shares; sharing with the owner would change nothing."""
    check(caller, ownership, Action.MANAGE)
    if member == ownership.owner:
        raise InputError(
            f"{member} owns workspace {ownership.workspace!r} already",
            "share it with another user",
        )


def may_unshare(caller: Caller, ownership: Ownership, member: str) -> None:
    """Only the owner (or an admin) takes a role back; the owner's own is not a share."""
    check(caller, ownership, Action.MANAGE)
    if member == ownership.owner:
        ws = ownership.workspace
        raise InputError(
            f"{member} owns workspace {ws!r}: only the roles it was shared with can be taken back",
            f"see them with 'kaos workspace info -n {ws}'",
        )
