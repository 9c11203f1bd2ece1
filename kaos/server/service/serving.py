"""Serving: endpoints (deploy, list, info, rollback, kill, logs) and the kaos route's hop to
an endpoint. Each method takes the user asking and returns the response schema."""

from __future__ import annotations

import asyncio
from typing import Any

from kaos.errors import KaosError, NotFound, NotServing, ServeError
from kaos.server.access import Action
from kaos.server.schemas import (
    EndpointDetailOut,
    EndpointOut,
    RevisionOut,
    ServeDeployIn,
    ServeLogsOut,
    ServeStatsOut,
)
from kaos.server.service.parts import Parts
from kaos.serving.forward import Answer, Forwarder
from kaos.serving.records import Endpoint, EndpointState, Revision, ServeOptions, numbers

ROUTED_PATHS = ("invocations", "ping", "health", "version")
LOG_CHUNK = 1 << 20  # bytes of a serving log per request


class EndpointService:
    def __init__(self, parts: Parts) -> None:
        self._parts = parts
        self._forwarder = Forwarder()  # keep-alive connections to the revisions

    def deploy(self, user: str, workspace: str, body: ServeDeployIn) -> EndpointDetailOut:
        """Serve a model; what the request leaves out of how it runs (replicas, batching,
        resources) a redeploy keeps from the endpoint."""
        guard = self._parts.guard
        guard.workspace(user, workspace, Action.WRITE)
        if body.model_id is not None:  # a model of another workspace: read through it
            body.model_id = str(guard.model(user, body.model_id).model_id)
        if body.serve_source is not None:
            guard.tree(user, body.serve_source)
        given = {
            "max_batch_size": body.max_batch_size,
            "max_latency_ms": body.max_latency_ms,
            "replicas": body.replicas,
            "resources": body.resources.model_dump() if body.resources else None,
        }
        options = ServeOptions.from_json(
            {**given, "port": body.port, "serve_source": body.serve_source}
        )
        unset = [k for k, v in given.items() if v is None]
        name = body.name or self._default_name(body.model_id)
        self._parts.serving.deploy(
            workspace,
            name,
            body.model_id,
            body.follow,
            options,
            unset,
            recheck=lambda: guard.workspace(user, workspace, Action.WRITE),
        )
        return self._detail(self._parts.serving.endpoint(workspace, name))

    def all(self, user: str, workspace: str) -> list[EndpointOut]:
        catalog = self._parts.catalog
        self._parts.guard.workspace(user, workspace, Action.READ)  # unknown: 404, not []
        return [
            self._out(e, catalog.revisions(workspace, e.name)) for e in catalog.endpoints(workspace)
        ]

    def get(self, user: str, workspace: str, name: str) -> EndpointDetailOut:
        self._parts.guard.workspace(user, workspace, Action.READ)
        return self._detail(self._parts.serving.endpoint(workspace, name))

    def rollback(self, user: str, workspace: str, name: str) -> EndpointDetailOut:
        self._parts.guard.workspace(user, workspace, Action.WRITE)
        return self._detail(self._parts.serving.rollback(workspace, name))

    def kill(self, user: str, workspace: str, name: str) -> EndpointDetailOut:
        self._parts.guard.workspace(user, workspace, Action.WRITE)
        return self._detail(self._parts.serving.kill(workspace, name))

    def logs(self, user: str, workspace: str, name: str, offset: int) -> ServeLogsOut:
        """The serving revision's log (the last revision's, once stopped), from a byte offset."""
        self._parts.guard.workspace(user, workspace, Action.READ)
        serving = self._parts.serving
        endpoint = serving.endpoint(workspace, name)
        revisions = self._parts.catalog.revisions(workspace, name)
        revision = endpoint.revision or (revisions[-1].id if revisions else None)
        if revision is None:
            return ServeLogsOut(text="", offset=0, revision=None)
        path = serving.log_path(revision)
        number = numbers(revisions)[revision]
        data = b""
        if path.exists():
            with open(path, "rb") as f:
                f.seek(offset)
                data = f.read(LOG_CHUNK)
        return ServeLogsOut(
            text=data.decode("utf-8", "replace"), offset=offset + len(data), revision=number
        )

    def build_logs(self, user: str, workspace: str, name: str) -> ServeLogsOut:
        """How the endpoint's environment was built: its serve source's build, or the model's."""
        self._parts.guard.workspace(user, workspace, Action.READ)
        serving = self._parts.serving
        endpoint = serving.endpoint(workspace, name)
        revisions = self._parts.catalog.revisions(workspace, name)
        number = numbers(revisions).get(endpoint.revision or 0)
        path = serving.serve_build_log(endpoint)
        if path is not None:
            text = path.read_text(errors="replace") if path.exists() else ""
            return ServeLogsOut(text=text, offset=len(text.encode()), revision=number)
        job = serving.build_job(revisions[-1].model_id) if revisions else None
        if job is None:
            raise NotFound(f"no build is recorded for endpoint {name!r}")
        text, offset = self._parts.logs.read(job)
        return ServeLogsOut(text=text, offset=offset, revision=number)

    async def forward(
        self,
        user: str,
        workspace: str,
        name: str,
        method: str,
        path: str,
        body: bytes,
        content_type: str,
    ) -> Answer:
        """Send a request to the endpoint's serving revision; a swap never fails a request in
        flight (the old revision drains first), and a connection lost to a restart is retried
        once."""
        self._parts.guard.workspace(user, workspace, Action.READ)
        if path not in ROUTED_PATHS:
            raise NotFound(
                f"no route /{path} on an endpoint", f"use one of {', '.join(ROUTED_PATHS)}"
            )
        for attempt in range(2):
            with self._parts.serving.routed(workspace, name) as address:
                try:
                    return await self._forwarder.request(
                        address, method, f"/{path}", body, content_type
                    )
                except ConnectionError as exc:
                    if attempt:
                        raise NotServing(str(exc), f"see 'kaos serve logs -n {name}'") from None
            await asyncio.sleep(0.2)
        raise AssertionError("unreachable: the loop returns or raises")

    # -- responses ------------------------------------------------------------------------------
    def _default_name(self, model_id: str | None) -> str:
        """Without -n: the source bundle's name (`mnist`), as kaos 1.0 named endpoints."""
        if model_id is None:
            raise KaosError("name the endpoint", "pass -n NAME")
        try:
            model = self._parts.catalog.find_model(model_id)
        except NotFound:
            raise ServeError(f"no successfully trained model {model_id!r}") from None
        job = self._parts.catalog.job(model.job_id)
        return self._parts.bundle_name(job.source) or "model"

    def _revision_out(self, revision: Revision, number: dict[int, int]) -> RevisionOut:
        """The revision as users see it: numbered on its endpoint, as its parent is."""
        fields: dict[str, Any] = {
            k: getattr(revision, k)
            for k in RevisionOut.model_fields
            if k not in ("id", "parent", "state", "cause", "stats")
        }
        return RevisionOut(
            **fields,
            id=number[revision.id],
            parent=number.get(revision.parent) if revision.parent is not None else None,
            state=revision.state.value,
            cause=revision.cause.value,
            stats=ServeStatsOut(**_known(self._parts.serving.stats(revision))),
        )

    def _out(self, endpoint: Endpoint, revisions: list[Revision]) -> EndpointOut:
        serving = self._parts.serving
        current = next((r for r in revisions if r.id == endpoint.revision), None)
        live = (
            serving.live_address(endpoint.revision)
            if endpoint.state == EndpointState.RUNNING
            else None
        )
        stats = [serving.stats(r) if r.id == endpoint.revision else r.stats for r in revisions]
        now = serving.stats(current) if current else {}
        return EndpointOut(
            workspace=endpoint.workspace,
            name=endpoint.name,
            state=endpoint.state.value,
            model_id=current.model_id if current else None,
            revision=numbers(revisions).get(endpoint.revision or 0),
            follow=endpoint.follow,
            url=f"http://{live[0]}:{live[1]}" if live else None,
            route=f"/serve/{endpoint.workspace}/{endpoint.name}",
            created=endpoint.created,
            started=current.started if current else None,
            reason=endpoint.reason,
            options=endpoint.options.to_json(),
            stats=ServeStatsOut(
                requests=sum(int(s.get("requests") or 0) for s in stats),
                errors=sum(int(s.get("errors") or 0) for s in stats),
                p50_ms=now.get("p50_ms"),
                p99_ms=now.get("p99_ms"),
            ),
        )

    def _detail(self, endpoint: Endpoint) -> EndpointDetailOut:
        revisions = self._parts.catalog.revisions(endpoint.workspace, endpoint.name)
        out = self._out(endpoint, revisions)
        build_job = None
        if out.model_id:
            try:
                build_job = self._parts.serving.build_job(out.model_id)
            except KaosError:
                build_job = None
        return EndpointDetailOut(
            **out.model_dump(),
            revisions=[self._revision_out(r, numbers(revisions)) for r in revisions],
            build_job=build_job,
        )


def _known(stats: dict[str, Any]) -> dict[str, Any]:
    return {k: stats[k] for k in ServeStatsOut.model_fields if k in stats}
