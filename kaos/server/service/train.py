"""Training: deploys, jobs, their logs and kills, models' provenance, diffs and
reproductions. Each method takes the user asking and returns the response schema."""

from __future__ import annotations

from dataclasses import asdict

from kaos.pipeline.compare import compare_models
from kaos.pipeline.inputs import Grid, InputsChange, Resources
from kaos.pipeline.lockstore import summarize
from kaos.pipeline.reproduce import reproduction
from kaos.server.access import Action
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
from kaos.server.service.parts import Parts
from kaos.server.service.views import inputs_out


class TrainService:
    def __init__(self, parts: Parts) -> None:
        self._parts = parts

    def deploy(self, user: str, workspace: str, body: DeployIn) -> DeployOut:
        """Record the deploy (downloading a manifest's data first, in the engine) and start
        what it invalidates; `user` is the deploy's author."""
        parts = self._parts
        parts.guard.workspace(user, workspace, Action.WRITE)
        change = InputsChange(
            source=body.source,
            data=body.data,
            grid=Grid.from_json(body.grid, parts.settings.max_combinations)
            if body.grid is not None
            else None,
            resources=Resources.from_json(body.resources.model_dump()) if body.resources else None,
        )
        result = parts.pipeline.deploy(
            workspace,
            change,
            user,
            force=body.force,
            parallelism=body.parallelism,
            refresh_env=body.refresh_env,
            manifest=body.manifest,
            recheck=lambda: parts.guard.workspace(user, workspace, Action.WRITE),
        )
        return DeployOut(
            deploy_id=result.deploy.id,
            inputs=inputs_out(parts, parts.catalog.workspace(workspace)),
            build_job=JobOut.of(result.build_job) if result.build_job else None,
            train_job=JobOut.of(result.train_job) if result.train_job else None,
            reused=[model_id for _, model_id in result.plan.reused],
            waiting=len(result.plan.waiting),
            in_progress=len(result.plan.in_progress),
            notes=list(result.notes),
        )

    def jobs(self, user: str, workspace: str, kind: str | None) -> list[JobOut]:
        self._parts.guard.workspace(user, workspace, Action.READ)  # unknown: 404, not []
        return [JobOut.of(job) for job in self._parts.catalog.jobs(workspace, kind)]

    def job(self, user: str, job_id: str) -> JobDetailOut:
        parts = self._parts
        job = parts.guard.job(user, job_id, Action.READ)
        models = parts.catalog.models(job.id)
        return JobDetailOut(
            job=JobOut.of(job),
            models=[ModelOut.of(m) for m in models],
            available_metrics=sorted({name for m in models for name in m.metrics}),
            source_name=parts.bundle_name(job.source),
            data_name=parts.bundle_name(job.data),
        )

    def logs(self, user: str, job_id: str, offset: int) -> LogsOut:
        job = self._parts.guard.job(user, job_id, Action.READ)
        # read before the text: a job seen finished has shipped its last line, so the client
        # that stops at an empty read of a finished job misses nothing
        finished = self._parts.catalog.job(job.id).state.finished
        text, next_offset = self._parts.logs.read(job.id, offset)
        return LogsOut(text=text, offset=next_offset, finished=finished)

    def kill(self, user: str, job_id: str) -> JobOut:
        job = self._parts.guard.job(user, job_id, Action.WRITE)
        return JobOut.of(self._parts.pipeline.kill(job.id))

    def provenance(self, user: str, model_id: str) -> ProvenanceOut:
        parts = self._parts
        model = parts.guard.model(user, model_id)
        job = parts.catalog.job(model.job_id)
        deploy = parts.catalog.deploy(job.deploy_id) if job.deploy_id else None
        return ProvenanceOut(
            model=ModelOut.of(model),
            job=JobOut.of(job),
            source_name=parts.bundle_name(job.source),
            data_name=parts.bundle_name(job.data),
            deploy_author=deploy.author if deploy else job.author,
            deploy_time=deploy.time if deploy else job.created,
            environment=EnvironmentOut(**asdict(summarize(parts.store, job.lock, job.source)))
            if job.lock and job.source
            else None,
            network=deploy.inputs.resources.network if deploy else False,
        )

    def diff(self, user: str, model_id: str, against: str) -> ModelDiff:
        parts = self._parts
        old, new = parts.guard.model(user, against), parts.guard.model(user, model_id)
        return ModelDiff.of(
            compare_models(parts.catalog, parts.store, str(old.model_id), str(new.model_id))
        )

    def reproduce(self, user: str, model_id: str) -> JobOut:
        """A job of kind `reproduce`, authored by `user`; the workspace's inputs stay."""
        model = self._parts.guard.model(user, model_id, Action.WRITE)
        return JobOut.of(self._parts.pipeline.reproduce(str(model.model_id), user))

    def reproduction(self, user: str, job_id: str) -> ReproductionOut:
        job = self._parts.guard.job(user, job_id, Action.READ)
        return ReproductionOut.of(reproduction(self._parts.catalog, self._parts.store, job.id))
