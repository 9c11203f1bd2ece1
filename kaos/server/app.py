"""The FastAPI application: routes, error mapping, and the services made at start-up."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from kaos import __version__
from kaos.errors import KaosError
from kaos.server.auth import TokenTable
from kaos.server.limits import BodyLimit
from kaos.server.routes import (
    authenticate,
    browse,
    health,
    objects,
    serving,
    store,
    train,
    ui,
    workspaces,
)
from kaos.server.services import Services
from kaos.server.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.services = Services(settings)
        sandbox = getattr(app.state.services.executor, "sandbox", None)
        if sandbox is not None:  # local and ray: whether trains are contained, or refused
            print(sandbox.message(), flush=True)
        if app.state.services.recovered:
            print(
                f"kaos: {app.state.services.recovered} jobs left running by the last server "
                "were marked failed",
                flush=True,
            )
        yield
        app.state.services.close()

    app = FastAPI(
        title="kaos",
        version=__version__,
        description="Incremental, content-addressed model training.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.add_middleware(BodyLimit)

    @app.exception_handler(KaosError)
    async def kaos_error(_request: Request, exc: KaosError) -> JSONResponse:
        return JSONResponse(
            status_code=exc.http_status, content={"detail": exc.message, "fix": exc.fix}
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        message = f"invalid request: {where}: {first.get('msg', 'bad value')}".replace(": :", ":")
        return JSONResponse(status_code=422, content={"detail": message, "fix": None})

    app.state.tokens = TokenTable.from_settings(settings.token, settings.tokens_file)
    app.include_router(health.router)
    app.include_router(ui.router)
    app.mount("/ui", ui.static, name="ui")
    for module in (workspaces, objects, train, store, serving, browse):
        app.include_router(module.router, dependencies=[Depends(authenticate)])
    return app
