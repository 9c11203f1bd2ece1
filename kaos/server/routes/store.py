"""Store maintenance: a full integrity check."""

from typing import Annotated

from fastapi import APIRouter, Depends

from kaos.server.routes import services
from kaos.server.schemas import VerifyOut
from kaos.server.services import Services

router = APIRouter(tags=["store"])
Svc = Annotated[Services, Depends(services)]


@router.post("/store/verify")
def verify(svc: Svc) -> VerifyOut:
    """Re-hash every stored object; check that every tree the catalog names is complete."""
    trees = svc.catalog.referenced_trees()
    report = svc.store.verify(trees)
    problems = svc.catalog.check_integrity()
    return VerifyOut(
        ok=report.ok and not problems,
        packs=report.packs,
        objects=report.objects,
        trees=len(trees),
        corrupt=report.corrupt,
        missing=sorted(set(report.missing)),
        catalog_problems=problems,
    )
