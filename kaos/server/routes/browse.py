"""Browsing a workspace's history: pages of models, the progress curve, the deploy timeline,
and a model's trees as tar archives streamed from the store (what the dashboard reads)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import StreamingResponse

from kaos.pipeline.browse import MAX_OFFSET, MAX_PAGE, ModelQuery
from kaos.pipeline.states import JobState
from kaos.server.routes import Browsing, User
from kaos.server.schemas import ModelPageOut, ProgressOut, TimelineEntryOut, TimelineOut

router = APIRouter(tags=["browse"])


@router.get("/workspaces/{name}/models")
def workspace_models(
    name: str,
    browsing: Browsing,
    user: User,
    sort: Annotated[
        str,
        Query(
            description="created, finished, model_id, metrics.NAME or params.NAME; "
            "a leading '-' sorts descending"
        ),
    ] = "created",
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    state: Annotated[list[JobState] | None, Query(description="keep only these states")] = None,
    filter: Annotated[
        list[str] | None,
        Query(description="FIELD OP VALUE, e.g. metrics.accuracy_test>=0.9 or params.C=10"),
    ] = None,
) -> ModelPageOut:
    """One page of the workspace's models across its jobs, with their metrics and
    hyperparameters, and a summary of every column (does it differ between models)."""
    query = ModelQuery.parse(sort, limit, offset, [s.value for s in state or []], filter or [])
    return browsing.models_page(user, name, query)


@router.get("/workspaces/{name}/progress")
def workspace_progress(
    name: str,
    browsing: Browsing,
    user: User,
    metric: str | None = None,
    goal: Annotated[str, Query(pattern="^(auto|max|min)$")] = "auto",
) -> ProgressOut:
    """A metric over the successful models in deploy order: each point says what changed from
    the one before and whether it was the best so far."""
    return browsing.progress_curve(user, name, metric, goal)


@router.get("/workspaces/{name}/deploys")
def workspace_deploys(
    name: str,
    browsing: Browsing,
    user: User,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> TimelineOut:
    """The deploy timeline, newest first: what each deploy changed, who, and what it started."""
    return browsing.timeline(user, name, limit, offset)


@router.get("/deploys/{deploy_id}")
def get_deploy(
    deploy_id: Annotated[int, Path(ge=1, le=2**62)], browsing: Browsing, user: User
) -> TimelineEntryOut:
    return browsing.deploy_entry(user, deploy_id)


@router.get(
    "/models/{model_id}/archive/{part}",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-tar": {}}}},
)
def model_archive(
    model_id: str,
    browsing: Browsing,
    user: User,
    part: Annotated[str, Path(pattern="^(source|data|model)$")],
) -> StreamingResponse:
    """The model's source, data or output tree as a tar, streamed from the store."""
    filename, stream = browsing.model_archive(user, model_id, part)
    return StreamingResponse(
        stream,
        media_type="application/x-tar",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
