"""Browsing a workspace's history: its models, progress curve and deploy timeline, and a
model's trees as archives (what the dashboard reads). Each method takes the user asking."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

from kaos.errors import KaosError
from kaos.pipeline.browse import Change, ModelQuery, ModelRow, goal_of, progress
from kaos.pipeline.records import Deploy
from kaos.pipeline.states import JobState
from kaos.server.access import Action
from kaos.server.schemas import (
    ChangeOut,
    ColumnOut,
    JobOut,
    ModelPageOut,
    ModelRowOut,
    ProgressOut,
    ProgressPointOut,
    TimelineEntryOut,
    TimelineOut,
)
from kaos.server.service.parts import Parts
from kaos.store.archive import tar_stream

ARCHIVE_PARTS = ("source", "data", "model")
_ALL = 1_000_000  # the progress curve takes every model: it is drawn whole


class BrowseService:
    def __init__(self, parts: Parts) -> None:
        self._parts = parts

    def models_page(self, user: str, workspace: str, query: ModelQuery) -> ModelPageOut:
        parts = self._parts
        parts.guard.workspace(user, workspace, Action.READ)  # an unknown one is a 404
        total, rows = parts.catalog.model_rows(workspace, query)
        summary = parts.catalog.model_columns(workspace)
        return ModelPageOut(
            total=total,
            offset=query.offset,
            limit=query.limit,
            items=[_row_out(parts, row) for row in rows],
            columns=[ColumnOut(**vars(c)) for c in summary],
        )

    def progress_curve(
        self, user: str, workspace: str, metric: str | None, goal: str | None
    ) -> ProgressOut:
        """Successful models in deploy order, as points of `metric` (default: the first one)."""
        parts = self._parts
        parts.guard.workspace(user, workspace, Action.READ)  # an unknown one is a 404
        query = ModelQuery(limit=_ALL, states=(JobState.SUCCESS.value,))
        _total, rows = parts.catalog.model_rows(workspace, query)
        metrics = sorted({name for row in rows for name in row.model.metrics})
        metric = metric or (metrics[0] if metrics else None)
        if metric is not None and metrics and metric not in metrics:
            raise KaosError(f"no model reports {metric!r}", f"choose one of {', '.join(metrics)}")
        direction = goal_of(metric or "", goal)
        points = progress(rows, metric, direction) if metric else []
        return ProgressOut(
            metric=metric,
            goal=direction,
            metrics=metrics,
            points=[
                ProgressPointOut(
                    model_id=p.row.model.model_id or "",
                    job_id=p.row.model.job_id,
                    index=p.row.model.index,
                    deploy_id=p.row.deploy_id,
                    created=p.row.created,
                    author=p.row.author,
                    value=p.value,
                    best=p.best,
                    params=p.row.model.params,
                    changes=[_change_out(parts, c) for c in p.changes],
                )
                for p in points
            ],
        )

    def timeline(self, user: str, workspace: str, limit: int, offset: int) -> TimelineOut:
        parts = self._parts
        parts.guard.workspace(user, workspace, Action.READ)  # an unknown one is a 404
        total, deploys = parts.catalog.deploys_page(workspace, limit, offset)
        jobs = parts.catalog.jobs_of_deploys([d.id for d in deploys])
        return TimelineOut(
            total=total,
            offset=offset,
            limit=limit,
            items=[_entry_out(parts, d, jobs[d.id]) for d in deploys],
        )

    def deploy_entry(self, user: str, deploy_id: int) -> TimelineEntryOut:
        parts = self._parts
        deploy = parts.guard.deploy(user, deploy_id)
        return _entry_out(parts, deploy, parts.catalog.jobs_of_deploys([deploy.id])[deploy.id])

    def model_archive(self, user: str, model_id: str, part: str) -> tuple[str, Iterator[bytes]]:
        """(file name, tar stream) of a model's source, data or output tree; unknown ids and
        missing trees fail here, before the response starts."""
        parts = self._parts
        if part not in ARCHIVE_PARTS:
            raise KaosError(f"no archive {part!r}", f"ask for one of {', '.join(ARCHIVE_PARTS)}")
        model = parts.guard.model(user, model_id)
        job = parts.catalog.job(model.job_id)
        digest = {"source": job.source, "data": job.data, "model": model.output_tree}[part]
        if digest is None:
            raise KaosError(f"model {model.model_id} has no {part} tree")
        tree = parts.store.get_tree(digest)
        for entry in tree:
            parts.store.reader.locate(entry.digest)  # every file present before the first byte
        name = f"{(model.model_id or 'model').replace(':', '-')}-{part}"
        return f"{name}.tar", tar_stream(tree, parts.store.reader, name)


def _row_out(parts: Parts, row: ModelRow) -> ModelRowOut:
    return ModelRowOut(
        **{**asdict(row.model), "state": row.model.state.value},
        workspace=row.workspace,
        deploy_id=row.deploy_id,
        created=row.created,
        source=row.source,
        data=row.data,
        source_name=parts.bundle_name(row.source),
        data_name=parts.bundle_name(row.data),
        author=row.author,
    )


def _bundle_label(parts: Parts, digest: Any, kind: str) -> str:
    if not digest:
        return "none"
    return f"/{parts.bundle_name(digest) or kind}:{str(digest)[:5]}"


def _change_out(parts: Parts, change: Change) -> ChangeOut:
    if change.what in ("source", "data"):
        label = (
            f"{change.what} {_bundle_label(parts, change.before, change.what)} -> "
            f"{_bundle_label(parts, change.after, change.what)}"
        )
    else:
        label = f"{change.what.removeprefix('params.')}: {change.before!r} -> {change.after!r}"
    return ChangeOut(what=change.what, before=change.before, after=change.after, label=label)


def _entry_out(parts: Parts, deploy: Deploy, jobs: list[Any]) -> TimelineEntryOut:
    changed = deploy.changed
    return TimelineEntryOut(
        id=deploy.id,
        workspace=deploy.workspace,
        author=deploy.author,
        time=deploy.time,
        force=deploy.force,
        source=changed.get("source"),
        source_name=parts.bundle_name(changed.get("source")),
        data=changed.get("data"),
        data_name=parts.bundle_name(changed.get("data")),
        grid=changed.get("grid"),
        resources=changed.get("resources"),
        parallelism=int(changed.get("parallelism") or 1),
        jobs=[JobOut.of(job) for job in jobs],
    )
