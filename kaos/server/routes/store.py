"""Store maintenance: a full integrity check (and repair), garbage collection."""

from fastapi import APIRouter

from kaos.server.routes import Maintenance, User
from kaos.server.schemas import GcIn, GcOut, VerifyOut

router = APIRouter(tags=["store"])


@router.post("/store/verify")
def verify(maintenance: Maintenance, user: User, repair: bool = False) -> VerifyOut:
    """Re-hash every stored object; check that every tree the catalog names is complete.
    `repair=true` (admins) drops lost and corrupt objects from the index, so a redeploy heals."""
    return maintenance.verify(user, repair)


@router.post("/store/gc")
def gc(body: GcIn, maintenance: Maintenance, user: User) -> GcOut:
    """Remove what no workspace, job, model or ref reaches, and temporary files of crashed
    uploads, both older than the grace period (admins only when tokens are on)."""
    return maintenance.gc(user, body.dry_run)
