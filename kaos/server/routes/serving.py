"""Serving: endpoints (deploy, list, info, rollback, kill, logs) and the kaos route to them."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from kaos.errors import KaosError, NotFound, NotServing, ServeError
from kaos.server.routes import services
from kaos.server.schemas import (
    EndpointDetailOut,
    EndpointOut,
    RevisionOut,
    ServeDeployIn,
    ServeLogsOut,
    ServeStatsOut,
)
from kaos.server.services import Services
from kaos.serving.forward import Forwarder
from kaos.serving.records import Endpoint, EndpointState, Revision, ServeOptions

router = APIRouter(tags=["serving"])
Svc = Annotated[Services, Depends(services)]
ROUTED_PATHS = ("invocations", "ping", "health", "version")


@router.post("/workspaces/{workspace}/endpoints", status_code=201)
def deploy(workspace: str, body: ServeDeployIn, svc: Svc) -> EndpointDetailOut:
    options = ServeOptions(
        max_batch_size=body.max_batch_size,
        max_latency_ms=body.max_latency_ms,
        replicas=body.replicas,
        port=body.port,
        resources=body.resources.model_dump() if body.resources else {},
        serve_source=body.serve_source,
    )
    name = body.name or _default_name(svc, body.model_id)
    svc.serving.deploy(workspace, name, body.model_id, body.follow, options)
    return _detail(svc, svc.serving.endpoint(workspace, name))


@router.get("/workspaces/{workspace}/endpoints")
def list_endpoints(workspace: str, svc: Svc) -> list[EndpointOut]:
    svc.catalog.workspace(workspace)
    return [
        _out(svc, e, svc.catalog.revisions(workspace, e.name))
        for e in svc.catalog.endpoints(workspace)
    ]


@router.get("/workspaces/{workspace}/endpoints/{name}")
def get_endpoint(workspace: str, name: str, svc: Svc) -> EndpointDetailOut:
    return _detail(svc, svc.serving.endpoint(workspace, name))


@router.post("/workspaces/{workspace}/endpoints/{name}/rollback")
def rollback(workspace: str, name: str, svc: Svc) -> EndpointDetailOut:
    return _detail(svc, svc.serving.rollback(workspace, name))


@router.delete("/workspaces/{workspace}/endpoints/{name}")
def kill(workspace: str, name: str, svc: Svc) -> EndpointDetailOut:
    return _detail(svc, svc.serving.kill(workspace, name))


@router.get("/workspaces/{workspace}/endpoints/{name}/logs")
def logs(
    workspace: str, name: str, svc: Svc, offset: Annotated[int, Query(ge=0)] = 0
) -> ServeLogsOut:
    """The serving revision's log (the last revision's, once stopped), from a byte offset."""
    endpoint = svc.serving.endpoint(workspace, name)
    revisions = svc.catalog.revisions(workspace, name)
    revision = endpoint.revision or (revisions[-1].id if revisions else None)
    if revision is None:
        return ServeLogsOut(text="", offset=0, revision=None)
    path = svc.serving.log_path(revision)
    data = b""
    if path.exists():
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read(1 << 20)
    return ServeLogsOut(
        text=data.decode("utf-8", "replace"), offset=offset + len(data), revision=revision
    )


@router.get("/workspaces/{workspace}/endpoints/{name}/build-logs")
def build_logs(workspace: str, name: str, svc: Svc) -> ServeLogsOut:
    """How the endpoint's environment was built: its serve source's build, or the model's."""
    endpoint = svc.serving.endpoint(workspace, name)
    path = svc.serving.serve_build_log(endpoint)
    if path is not None:
        text = path.read_text(errors="replace") if path.exists() else ""
        return ServeLogsOut(text=text, offset=len(text.encode()), revision=endpoint.revision)
    revisions = svc.catalog.revisions(workspace, name)
    job = svc.serving.build_job(revisions[-1].model_id) if revisions else None
    if job is None:
        raise NotFound(f"no build is recorded for endpoint {name!r}")
    text, offset = svc.logs.read(job)
    return ServeLogsOut(text=text, offset=offset, revision=endpoint.revision)


@router.api_route("/serve/{workspace}/{name}/{path:path}", methods=["GET", "POST"])
async def route(workspace: str, name: str, path: str, request: Request, svc: Svc) -> Response:
    """Forward to the endpoint's serving revision; a swap never fails a request in flight
    (the old revision drains first), and a connection lost to a restart is retried once."""
    path = path.strip("/")
    if path not in ROUTED_PATHS:
        raise NotFound(f"no route /{path} on an endpoint", f"use one of {', '.join(ROUTED_PATHS)}")
    body = await request.body()
    content_type = request.headers.get("content-type", "application/json")
    forwarder = _forwarder(request)
    for attempt in range(2):
        with svc.serving.routed(workspace, name) as address:
            try:
                answer = await forwarder.request(
                    address, request.method, f"/{path}", body, content_type
                )
                return Response(answer.body, answer.status, media_type=answer.content_type)
            except ConnectionError as exc:
                if attempt:
                    raise NotServing(str(exc), f"see 'kaos serve logs -n {name}'") from None
        await asyncio.sleep(0.2)
    raise AssertionError("unreachable: the loop returns or raises")


def _forwarder(request: Request) -> Forwarder:
    forwarder = getattr(request.app.state, "serve_forwarder", None)
    if forwarder is None:
        forwarder = request.app.state.serve_forwarder = Forwarder()
    return forwarder


def _default_name(svc: Services, model_id: str | None) -> str:
    """Without -n: the source bundle's name (`mnist`), as kaos 1.0 named endpoints."""
    if model_id is None:
        raise KaosError("name the endpoint", "pass -n NAME")

    try:
        model = svc.catalog.find_model(model_id)
    except NotFound:
        raise ServeError(f"no successfully trained model {model_id!r}") from None
    job = svc.catalog.job(model.job_id)
    return svc.bundle_name(job.source) or "model"


def _revision_out(svc: Services, revision: Revision) -> RevisionOut:
    fields: dict[str, Any] = {
        k: getattr(revision, k)
        for k in RevisionOut.model_fields
        if k not in ("state", "cause", "stats")
    }
    return RevisionOut(
        **fields,
        state=revision.state.value,
        cause=revision.cause.value,
        stats=ServeStatsOut(**_known(svc.serving.stats(revision))),
    )


def _out(svc: Services, endpoint: Endpoint, revisions: list[Revision]) -> EndpointOut:
    current = next((r for r in revisions if r.id == endpoint.revision), None)
    live = (
        svc.serving.live_address(endpoint.revision)
        if endpoint.state == EndpointState.RUNNING
        else None
    )
    stats = [svc.serving.stats(r) if r.id == endpoint.revision else r.stats for r in revisions]
    now = svc.serving.stats(current) if current else {}
    return EndpointOut(
        workspace=endpoint.workspace,
        name=endpoint.name,
        state=endpoint.state.value,
        model_id=current.model_id if current else None,
        revision=endpoint.revision,
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


def _detail(svc: Services, endpoint: Endpoint) -> EndpointDetailOut:
    revisions = svc.catalog.revisions(endpoint.workspace, endpoint.name)
    out = _out(svc, endpoint, revisions)
    build_job = None
    if out.model_id:
        try:
            build_job = svc.serving.build_job(out.model_id)
        except KaosError:
            build_job = None
    return EndpointDetailOut(
        **out.model_dump(),
        revisions=[_revision_out(svc, r) for r in revisions],
        build_job=build_job,
    )


def _known(stats: dict[str, Any]) -> dict[str, Any]:
    return {k: stats[k] for k in ServeStatsOut.model_fields if k in stats}
