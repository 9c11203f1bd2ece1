"""Deploys, jobs, models, logs and kills."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from kaos.server.routes import Training, User
from kaos.server.schemas import (
    DeployIn,
    DeployOut,
    JobDetailOut,
    JobOut,
    LogsOut,
    ModelDiff,
    ProvenanceOut,
    ReproductionOut,
)

router = APIRouter(tags=["train"])


@router.post("/workspaces/{name}/deploy", status_code=201)
def deploy(name: str, body: DeployIn, training: Training, user: User) -> DeployOut:
    return training.deploy(user, name, body)


@router.get("/workspaces/{name}/jobs")
def list_jobs(
    name: str,
    training: Training,
    user: User,
    kind: Annotated[str | None, Query(pattern="^(build|train)$")] = None,
) -> list[JobOut]:
    return training.jobs(user, name, kind)


@router.get("/jobs/{job_id}")
def get_job(job_id: str, training: Training, user: User) -> JobDetailOut:
    return training.job(user, job_id)


@router.get("/jobs/{job_id}/logs")
def job_logs(
    job_id: str,
    training: Training,
    user: User,
    offset: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
) -> LogsOut:
    return training.logs(user, job_id, offset)


@router.post("/jobs/{job_id}/kill")
def kill(job_id: str, training: Training, user: User) -> JobOut:
    return training.kill(user, job_id)


@router.get("/models/{model_id}")
def provenance(model_id: str, training: Training, user: User) -> ProvenanceOut:
    return training.provenance(user, model_id)


@router.get("/models/{model_id}/diff")
def diff(
    model_id: str,
    against: Annotated[str, Query(min_length=1)],
    training: Training,
    user: User,
) -> ModelDiff:
    """What changed from model `against` to model `model_id`: source, data, hyperparameters,
    locked packages and metrics, from the stored trees."""
    return training.diff(user, model_id, against)


@router.post("/models/{model_id}/reproduce", status_code=201)
def reproduce(model_id: str, training: Training, user: User) -> JobOut:
    """Retrain a model from its stored source, data, hyperparameters and lock (a job of kind
    `reproduce`; the workspace's inputs stay as they are)."""
    return training.reproduce(user, model_id)


@router.get("/reproductions/{job_id}")
def get_reproduction(job_id: str, training: Training, user: User) -> ReproductionOut:
    return training.reproduction(user, job_id)
