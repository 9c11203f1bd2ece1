from fastapi import APIRouter, Request

from kaos import __version__
from kaos.server.routes import Local, Objects

router = APIRouter(tags=["health"])


@router.get("/health")
def health(request: Request, objects: Objects, local: Local) -> dict[str, str | int | bool]:
    """Liveness, and the limits a client checks before uploading anything."""
    settings = request.app.state.settings
    answer: dict[str, str | int | bool] = {
        "status": "ok",
        "version": __version__,
        "max_combinations": settings.max_combinations,
        "auth": request.app.state.tokens.enabled,
        # Raw packs pay only into a store on this server's own disk (an S3 store would be
        # sent, and would keep, about three times the bytes): clients on this machine ask.
        "store_on_disk": not settings.store_url.startswith("s3://"),
    }
    # A client on this machine may leave packs in this folder instead of sending them.
    inbox = objects.inbox(local)
    if inbox is not None:
        answer["inbox"] = inbox
    return answer
