"""Store maintenance: a full integrity check (and repair), garbage collection."""

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Depends, Request

from kaos.server.routes import author, services
from kaos.server.schemas import GcIn, GcOut, VerifyOut
from kaos.server.services import Services

router = APIRouter(tags=["store"])
Svc = Annotated[Services, Depends(services)]


def _admin(request: Request) -> None:
    request.app.state.tokens.require_admin(author(request))


@router.post("/store/verify")
def verify(request: Request, svc: Svc, repair: bool = False) -> VerifyOut:
    """Re-hash every stored object; check that every tree the catalog names is complete.
    `repair=true` (admins) drops lost and corrupt objects from the index, so a redeploy heals."""
    if repair:
        _admin(request)
    trees = svc.catalog.referenced_trees()
    report = svc.store.verify(trees, repair=repair)
    problems = svc.catalog.check_integrity()
    return VerifyOut(
        ok=report.ok and not problems,
        packs=report.packs,
        objects=report.objects,
        trees=len(trees),
        corrupt=report.corrupt,
        missing=sorted(set(report.missing)),
        missing_packs=report.missing_packs,
        catalog_problems=problems,
        dropped=report.dropped,
    )


@router.post("/store/gc")
def gc(body: GcIn, request: Request, svc: Svc) -> GcOut:
    """Remove what no workspace, job, model or ref reaches, and temporary files of crashed
    uploads, both older than the grace period (admins only when tokens are on)."""
    _admin(request)
    report = svc.store.gc(
        svc.catalog.referenced_trees(), svc.settings.gc_grace_seconds, dry_run=body.dry_run
    )
    return GcOut(**asdict(report))
