"""Store maintenance: a full integrity check (and repair), garbage collection. Repair and gc
are for admins when tokens are on."""

from __future__ import annotations

from dataclasses import asdict

from kaos.server.schemas import GcOut, VerifyOut
from kaos.server.service.parts import Parts


class StoreService:
    def __init__(self, parts: Parts) -> None:
        self._parts = parts

    def verify(self, user: str, repair: bool) -> VerifyOut:
        """Re-hash every stored object; check that every tree the catalog names is complete.
        `repair` drops lost and corrupt objects from the index, so a redeploy heals. Admins
        only when tokens are on: it re-reads everything and its report names everyone's
        content."""
        self._parts.tokens.require_admin(user)
        trees = self._parts.catalog.referenced_trees()
        report = self._parts.store.verify(trees, repair=repair)
        problems = self._parts.catalog.check_integrity()
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

    def gc(self, user: str, dry_run: bool) -> GcOut:
        """Remove what no workspace, job, model or ref reaches, and temporary files of crashed
        uploads, both older than the grace period."""
        self._parts.tokens.require_admin(user)
        parts = self._parts
        report = parts.store.gc(
            parts.catalog.referenced_trees(), parts.settings.gc_grace_seconds, dry_run=dry_run
        )
        return GcOut(**asdict(report))
