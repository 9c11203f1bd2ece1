"""The dashboard's static files: the page at `/`, its scripts and styles under `/ui/`.

Served without auth (they hold no data); every piece of data the page shows comes through the
authenticated JSON API with the token the page asks for.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

UI_DIR = Path(__file__).resolve().parent.parent / "ui"

router = APIRouter(include_in_schema=False)
static = StaticFiles(directory=UI_DIR)


@router.get("/")
def index() -> FileResponse:
    return FileResponse(UI_DIR / "index.html", headers={"Cache-Control": "no-cache"})
