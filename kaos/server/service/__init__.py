"""The server's service layer: one service per resource, each method taking the user asking
and parsed arguments, and returning a response schema (`kaos.server.schemas`).

Routes parse, make one call here and return its answer; they never reach the parts (catalog,
engine, store) themselves, so access checks and business rules live in one place.
"""

from __future__ import annotations

from kaos.server.auth import TokenTable
from kaos.server.service.browse import BrowseService
from kaos.server.service.objects import ObjectService
from kaos.server.service.parts import Parts
from kaos.server.service.serving import EndpointService
from kaos.server.service.store import StoreService
from kaos.server.service.train import TrainService
from kaos.server.service.workspaces import WorkspaceService
from kaos.server.settings import Settings


class Services:
    """Made once at start-up: the parts, then the services over them."""

    def __init__(self, parts: Parts) -> None:
        self._parts = parts
        self.workspaces = WorkspaceService(parts)
        self.training = TrainService(parts)
        self.browsing = BrowseService(parts)
        self.endpoints = EndpointService(parts)
        self.objects = ObjectService(parts)
        self.maintenance = StoreService(parts)
        self.notes: list[str] = []  # told at start-up (see app.lifespan)

    @classmethod
    def start(cls, settings: Settings, tokens: TokenTable) -> Services:
        """Make the parts, end what a previous server left running, bring endpoints back."""
        parts = Parts.start(settings, tokens)
        services = cls(parts)
        sandbox = getattr(parts.executor, "sandbox", None)
        if sandbox is not None:  # local and ray: whether trains are contained, or refused
            services.notes.append(sandbox.message())
        recovered = parts.pipeline.recover()
        if recovered:
            services.notes.append(
                f"kaos: {recovered} jobs left running by the last server were marked failed"
            )
        parts.pipeline.start()  # heartbeats, and claims of what other replicas left
        parts.serving.start()  # endpoints that served before a restart come back
        return services

    def close(self) -> None:
        """Stop running jobs (recorded as killed), then let the executor let go of its engine.
        Endpoint processes stop too, but stay RUNNING in the catalog, to come back at start."""
        self._parts.serving.close()
        self._parts.pipeline.shutdown()
        self._parts.executor.close()
        self._parts.catalog.close()
