"""Endpoints and revisions: the serving pointers kept in the catalog.

An endpoint (workspace, name) points at its current revision; a revision runs one model. Every
move of the pointer (deploy, rollback, follow) adds a revision, so the history is append-only
and `parent` says which revision a rollback returns to.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class EndpointState(StrEnum):
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    FAILED = "FAILED"
    KILLED = "KILLED"


class RevisionState(StrEnum):
    STARTING = "STARTING"
    SERVING = "SERVING"
    DRAINING = "DRAINING"
    STOPPED = "STOPPED"
    FAILED = "FAILED"


class Cause(StrEnum):
    DEPLOY = "deploy"
    ROLLBACK = "rollback"
    FOLLOW = "follow"


@dataclass(frozen=True)
class ServeOptions:
    """How an endpoint's revisions run (kept with the endpoint, reused by every swap)."""

    max_batch_size: int = 0
    max_latency_ms: float = 5.0
    replicas: int = 1
    port: int | None = None
    resources: dict[str, Any] = field(default_factory=dict)
    serve_source: str | None = None  # the kaos 1.0 path: a bundle with an executable model/serve

    def to_json(self) -> dict[str, Any]:
        return {
            "max_batch_size": self.max_batch_size,
            "max_latency_ms": self.max_latency_ms,
            "replicas": self.replicas,
            "port": self.port,
            "resources": dict(self.resources),
            "serve_source": self.serve_source,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ServeOptions:
        """Options from JSON; a missing (or null) one takes its default."""
        known = {k: v for k, v in data.items() if v is not None}
        return cls(
            int(known.get("max_batch_size", 0)),
            float(known.get("max_latency_ms", 5.0)),
            int(known.get("replicas", 1)),
            known.get("port"),
            dict(known.get("resources", {})),
            known.get("serve_source"),
        )


@dataclass(frozen=True)
class Endpoint:
    workspace: str
    name: str
    state: EndpointState
    revision: int | None  # the revision traffic goes to
    follow: str | None  # "accuracy_test", or "-loss" for lower-is-better
    options: ServeOptions
    created: float
    reason: str | None = None


@dataclass(frozen=True)
class Revision:
    id: int
    workspace: str
    name: str
    model_id: str
    state: RevisionState
    cause: Cause
    created: float
    parent: int | None = None  # the revision this one replaced (where rollback goes)
    started: float | None = None  # when it first answered /ping
    stopped: float | None = None
    port: int | None = None
    pid: int | None = None
    previous_model: str | None = None  # for follow swaps: what was served before
    metric: str | None = None
    value: float | None = None
    previous_value: float | None = None
    reason: str | None = None
    stats: dict[str, Any] = field(default_factory=dict)  # final /stats once stopped


def numbers(revisions: Iterable[Revision]) -> dict[int, int]:
    """Catalog id -> the revision's number on its endpoint (1, 2, 3, ... oldest first): what
    users see. The catalog's ids run across every endpoint; the history is append-only, so a
    number never changes."""
    return {r.id: n for n, r in enumerate(sorted(revisions, key=lambda r: r.id), 1)}
