"""The FastAPI application: routes, error mapping, and the services made at start-up."""

from __future__ import annotations

import errno
import shutil
import sqlite3
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
from kaos.server.service import Services
from kaos.server.settings import Settings


def disk_full(settings: Settings) -> JSONResponse:
    """507: the store (or the catalog) could not be written; nothing partial was kept, since
    every write is atomic."""
    try:
        free = shutil.disk_usage(settings.home).free
    except OSError:
        free = 0
    return JSONResponse(
        status_code=507,
        content={
            "detail": f"the store's disk is full ({free} bytes free)",
            "fix": "free space on the server (kaos store gc removes unreachable content)",
        },
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.services = Services.start(settings, app.state.tokens)
        for note in app.state.services.notes:
            print(note, flush=True)
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

    @app.exception_handler(OSError)
    async def os_error(_request: Request, exc: OSError) -> JSONResponse:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise exc
        return disk_full(settings)

    @app.exception_handler(sqlite3.OperationalError)
    async def db_error(_request: Request, exc: sqlite3.OperationalError) -> JSONResponse:
        if "full" not in str(exc):
            raise exc
        return disk_full(settings)

    try:
        from psycopg import OperationalError as PostgresDown
    except ImportError:  # without the postgres extra there is no PostgreSQL catalog
        pass
    else:

        @app.exception_handler(PostgresDown)
        async def catalog_down(_request: Request, exc: PostgresDown) -> JSONResponse:
            """The catalog's PostgreSQL stopped or cannot be reached: a 503 saying so in one
            line (its pool reconnects once it is back), not a 500."""
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            return JSONResponse(
                status_code=503,
                content={
                    "detail": f"the catalog's PostgreSQL failed: {reason}",
                    "fix": "check that it runs and KAOS_CATALOG names it; this server "
                    "reconnects by itself",
                },
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
