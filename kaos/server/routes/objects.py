"""Content transfer: which digests are missing, verified pack uploads, trees and downloads."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response, StreamingResponse
from starlette.requests import ClientDisconnect

from kaos.server.bodies import BufferPool, TooLarge
from kaos.server.routes import Local, Objects, User
from kaos.server.schemas import CompleteOut, DigestsIn, FetchIn, InboxIn, MissingOut, PackOut
from kaos.store.hashing import is_digest

router = APIRouter(tags=["objects"])


@router.post("/objects/missing")
def missing(body: DigestsIn, objects: Objects, user: User) -> MissingOut:
    return objects.missing(user, body.digests)


@router.post("/objects/missing/raw")
async def missing_raw(request: Request, objects: Objects, user: User) -> Response:
    """`/objects/missing` in raw 16-byte digests, concatenated, both ways (no JSON string per
    digest): the body asks, the answer is those the store lacks, in the order asked."""
    body = await request.body()  # capped by the middleware, as JSON bodies are
    absent = await run_in_threadpool(objects.missing_raw, user, body)
    return Response(absent, media_type="application/octet-stream")


@router.post("/objects/packs", status_code=201)
async def upload_pack(request: Request, objects: Objects, user: User) -> PackOut:
    """A pack built by the client (see docs/store-format.md); stored only if fully verified."""
    limit = objects.max_upload_bytes
    declared = request.headers.get("content-length")
    if declared is not None and int(declared) > limit:
        raise HTTPException(413, f"pack larger than {limit} bytes")
    try:
        body = await _BODIES.receive(request.stream(), limit)
    except TooLarge:
        raise HTTPException(413, f"pack larger than {limit} bytes") from None
    except ClientDisconnect:  # the client went mid-upload (killed): nothing stored, no traceback
        raise HTTPException(400, "upload cut short: the client went") from None
    try:
        if declared is not None and int(declared) != len(body):
            raise HTTPException(400, "truncated upload")
        return await run_in_threadpool(objects.receive_pack, user, body)  # no copy of the pack
    finally:
        _BODIES.release(body)


_BODIES = BufferPool()  # pack bodies are received into buffers used again (kaos.server.bodies)


@router.post("/objects/packs/inbox", status_code=201)
def adopt_pack(body: InboxIn, objects: Objects, user: User, local: Local) -> PackOut:
    """A pack a client on this machine wrote into the inbox folder `GET /health` told it
    (kaos/store/inbox.py): verified as an upload is, then moved into the store; 404 when the
    server sees no such file (the client then uploads it)."""
    return objects.adopt_pack(user, body.name, local)


@router.get("/trees/{digest}/complete")
def tree_complete(digest: str, objects: Objects, user: User) -> CompleteOut:
    """Whether the tree and every object it names are stored: an unchanged folder's push is
    this one request (the store remembers complete trees, so it reads nothing)."""
    _require_digest(digest)
    return objects.complete(user, digest)


@router.get("/trees/{digest}")
def get_tree(digest: str, objects: Objects, user: User) -> Response:
    _require_digest(digest)
    return Response(objects.tree(user, digest), media_type="application/octet-stream")


@router.post("/objects/fetch")
def fetch(body: FetchIn, objects: Objects, user: User) -> StreamingResponse:
    """Stream objects of a tree in the frames of `kaos.store.stream`; the client re-verifies
    them."""
    frames = objects.fetch(user, body.digests, body.tree)
    return StreamingResponse(frames, media_type="application/octet-stream")


def _require_digest(value: str) -> None:
    if not is_digest(value):
        raise HTTPException(422, f"not a digest: {value!r}")
