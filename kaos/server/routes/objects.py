"""Content transfer: which digests are missing, verified pack uploads, trees and downloads."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response, StreamingResponse

from kaos.server.routes import services
from kaos.server.schemas import CompleteOut, DigestsIn, MissingOut, PackOut
from kaos.server.services import Services
from kaos.store.hashing import is_digest
from kaos.store.stream import encode_stream

router = APIRouter(tags=["objects"])
Svc = Annotated[Services, Depends(services)]


@router.post("/objects/missing")
def missing(body: DigestsIn, svc: Svc) -> MissingOut:
    return MissingOut(missing=sorted(svc.store.missing(body.digests)))


@router.post("/objects/packs", status_code=201)
async def upload_pack(request: Request, svc: Svc) -> PackOut:
    """A pack built by the client (see docs/store-format.md); stored only if fully verified."""
    limit = svc.settings.max_upload_bytes
    declared = request.headers.get("content-length")
    if declared is not None and int(declared) > limit:
        raise HTTPException(413, f"pack larger than {limit} bytes")
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > limit:
            raise HTTPException(413, f"pack larger than {limit} bytes")
    if declared is not None and int(declared) != len(body):
        raise HTTPException(400, "truncated upload")
    stored = await run_in_threadpool(svc.store.receive_pack, bytes(body))
    return PackOut(stored=len(stored))


@router.get("/trees/{digest}/complete")
def tree_complete(digest: str, svc: Svc) -> CompleteOut:
    """Whether the tree and every object it names are stored: an unchanged folder's push is
    this one request (the store remembers complete trees, so it reads nothing)."""
    _require_digest(digest)
    return CompleteOut(complete=svc.store.complete(digest))


@router.get("/trees/{digest}")
def get_tree(digest: str, svc: Svc) -> Response:
    _require_digest(digest)
    tree = svc.store.get_tree(digest)
    return Response(tree.serialize(), media_type="application/octet-stream")


@router.post("/objects/fetch")
def fetch(body: DigestsIn, svc: Svc) -> StreamingResponse:
    """Stream objects in the frames of `kaos.store.stream`; the client re-verifies them."""
    reader = svc.store.reader
    for digest in body.digests:
        reader.locate(digest)  # unknown digests fail before the stream starts
    frames = encode_stream(body.digests, reader.open_content)
    return StreamingResponse(frames, media_type="application/octet-stream")


def _require_digest(value: str) -> None:
    if not is_digest(value):
        raise HTTPException(422, f"not a digest: {value!r}")
