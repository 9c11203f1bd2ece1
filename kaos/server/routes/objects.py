"""Content transfer: which digests are missing, verified pack uploads, trees and downloads."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response, StreamingResponse

from kaos.errors import KaosError
from kaos.server.routes import services
from kaos.server.schemas import DigestsIn, MissingOut, PackOut
from kaos.server.services import Services
from kaos.store.hashing import digest_to_bytes, is_digest

router = APIRouter(tags=["objects"])
Svc = Annotated[Services, Depends(services)]
FRAME_HEADER = struct.Struct("<16sQ")  # digest, length; then the content
ERROR_SIZE = 2**64 - 1  # a frame of this length carries an error: u32 length, UTF-8 message


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


@router.get("/trees/{digest}")
def get_tree(digest: str, svc: Svc) -> Response:
    _require_digest(digest)
    tree = svc.store.get_tree(digest)
    return Response(tree.serialize(), media_type="application/octet-stream")


@router.post("/objects/fetch")
def fetch(body: DigestsIn, svc: Svc) -> StreamingResponse:
    """Stream objects as (16-byte digest, u64 length, content) frames; the client re-verifies."""
    reader = svc.store.reader
    for digest in body.digests:
        reader.locate(digest)  # unknown digests fail before the stream starts

    def frames() -> Iterator[bytes]:
        try:
            for digest in dict.fromkeys(body.digests):
                size, pieces = reader.open_content(digest)
                yield FRAME_HEADER.pack(digest_to_bytes(digest), size)
                yield from pieces
        except KaosError as exc:  # e.g. a corrupt object: say which, in band, and stop
            message = str(exc).encode()
            yield (
                FRAME_HEADER.pack(bytes(16), ERROR_SIZE) + struct.pack("<I", len(message)) + message
            )

    return StreamingResponse(frames(), media_type="application/octet-stream")


def _require_digest(value: str) -> None:
    if not is_digest(value):
        raise HTTPException(422, f"not a digest: {value!r}")
