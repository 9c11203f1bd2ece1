"""Deploys, jobs, models, logs and kills."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from kaos.pipeline.compare import compare_models
from kaos.pipeline.inputs import Grid, InputsChange, Resources
from kaos.pipeline.lockstore import summarize
from kaos.pipeline.reproduce import reproduction
from kaos.server.routes import author, services
from kaos.server.schemas import (
    DeployIn,
    DeployOut,
    EnvironmentOut,
    JobDetailOut,
    JobOut,
    LogsOut,
    ModelDiff,
    ModelOut,
    ProvenanceOut,
    ReproductionOut,
)
from kaos.server.services import Services
from kaos.server.views import inputs_out

router = APIRouter(tags=["train"])
Svc = Annotated[Services, Depends(services)]
Author = Annotated[str, Depends(author)]


@router.post("/workspaces/{name}/deploy", status_code=201)
def deploy(name: str, body: DeployIn, svc: Svc, who: Author) -> DeployOut:
    change = InputsChange(
        source=body.source,
        data=body.data,
        grid=Grid.from_json(body.grid, svc.settings.max_combinations)
        if body.grid is not None
        else None,
        resources=Resources.from_json(body.resources.model_dump()) if body.resources else None,
    )
    result = svc.pipeline.deploy(
        name,
        change,
        who,
        force=body.force,
        parallelism=body.parallelism,
        refresh_env=body.refresh_env,
        manifest=body.manifest,
    )
    workspace = svc.catalog.workspace(name)
    return DeployOut(
        deploy_id=result.deploy.id,
        inputs=inputs_out(svc, workspace),
        build_job=JobOut.of(result.build_job) if result.build_job else None,
        train_job=JobOut.of(result.train_job) if result.train_job else None,
        reused=[model_id for _, model_id in result.plan.reused],
        waiting=len(result.plan.waiting),
        in_progress=len(result.plan.in_progress),
        notes=list(result.notes),
    )


@router.get("/workspaces/{name}/jobs")
def list_jobs(
    name: str, svc: Svc, kind: Annotated[str | None, Query(pattern="^(build|train)$")] = None
) -> list[JobOut]:
    svc.catalog.workspace(name)
    return [JobOut.of(job) for job in svc.catalog.jobs(name, kind)]


@router.get("/jobs/{job_id}")
def get_job(job_id: str, svc: Svc) -> JobDetailOut:
    job = svc.catalog.find_job(job_id)
    models = svc.catalog.models(job.id)
    metrics = sorted({name for m in models for name in m.metrics})
    return JobDetailOut(
        job=JobOut.of(job),
        models=[ModelOut.of(m) for m in models],
        available_metrics=metrics,
        source_name=svc.bundle_name(job.source),
        data_name=svc.bundle_name(job.data),
    )


@router.get("/jobs/{job_id}/logs")
def job_logs(
    job_id: str, svc: Svc, offset: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0
) -> LogsOut:
    job = svc.catalog.find_job(job_id)
    text, next_offset = svc.logs.read(job.id, offset)
    finished = svc.catalog.job(job.id).state.finished
    return LogsOut(text=text, offset=next_offset, finished=finished)


@router.post("/jobs/{job_id}/kill")
def kill(job_id: str, svc: Svc) -> JobOut:
    return JobOut.of(svc.pipeline.kill(job_id))


@router.get("/models/{model_id}")
def provenance(model_id: str, svc: Svc) -> ProvenanceOut:
    model = svc.catalog.find_model(model_id)
    job = svc.catalog.job(model.job_id)
    deploy = svc.catalog.deploy(job.deploy_id) if job.deploy_id else None
    return ProvenanceOut(
        model=ModelOut.of(model),
        job=JobOut.of(job),
        source_name=svc.bundle_name(job.source),
        data_name=svc.bundle_name(job.data),
        deploy_author=deploy.author if deploy else job.author,
        deploy_time=deploy.time if deploy else job.created,
        environment=EnvironmentOut(**asdict(summarize(svc.store, job.lock, job.source)))
        if job.lock and job.source
        else None,
        network=deploy.inputs.resources.network if deploy else False,
    )


@router.get("/models/{model_id}/diff")
def diff(model_id: str, against: Annotated[str, Query(min_length=1)], svc: Svc) -> ModelDiff:
    """What changed from model `against` to model `model_id`: source, data, hyperparameters,
    locked packages and metrics, from the stored trees."""
    return ModelDiff.of(compare_models(svc.catalog, svc.store, against, model_id))


@router.post("/models/{model_id}/reproduce", status_code=201)
def reproduce(model_id: str, svc: Svc, who: Author) -> JobOut:
    """Retrain a model from its stored source, data, hyperparameters and lock (a job of kind
    `reproduce`; the workspace's inputs stay as they are)."""
    return JobOut.of(svc.pipeline.reproduce(model_id, who))


@router.get("/reproductions/{job_id}")
def get_reproduction(job_id: str, svc: Svc) -> ReproductionOut:
    return ReproductionOut.of(reproduction(svc.catalog, svc.store, job_id))
