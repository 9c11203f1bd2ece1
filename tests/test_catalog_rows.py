"""Catalog rows are mapped to records by field name: every field survives a round trip, with its
enum and JSON types, and only the fields that may change after insert can be updated (on SQLite
and PostgreSQL)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from kaos.pipeline.catalog import SqlCatalog
from kaos.pipeline.inputs import Grid, Resources, TrainingInputs
from kaos.pipeline.records import Image, Job, Model
from kaos.pipeline.states import ImageState, JobKind, JobState
from kaos.serving.records import (
    Cause,
    Endpoint,
    EndpointState,
    Revision,
    RevisionState,
    ServeOptions,
)

S, D, OUT, L = "a" * 32, "b" * 32, "c" * 32, "d" * 32


@pytest.fixture
def catalog(catalog_place) -> SqlCatalog:
    catalog = catalog_place.open()
    catalog.create_workspace("ws")
    return catalog


def full_job(**fields) -> Job:
    """A job with every field set to something other than its default."""
    base = Job(
        "j" * 32, JobKind.TRAIN, "ws", None, JobState.RUNNING, 1.5, started=2.5, finished=3.5,
        source=S, data=D, image="env", author="ana", hyperopt=True, parallelism=3,
        reason="why", lock=L,
    )  # fmt: skip
    return replace(base, **fields)


def test_jobs_and_models_round_trip_every_field(catalog):
    deploy = catalog.record_deploy("ws", "ana", TrainingInputs(S, D), {"source": S}, True)
    job = full_job(deploy_id=deploy.id)
    model = Model(
        job.id, 0, "k" * 32, {"gamma": 0.1}, JobState.SUCCESS, "aaaaa_bbbbb:cccccc", OUT,
        {"accuracy": 0.9}, 4.0, 5.0, "ok", "node-1",
    )  # fmt: skip
    catalog.add_job(job, [model])
    assert catalog.job(job.id) == job
    assert isinstance(catalog.job(job.id).kind, JobKind)
    assert catalog.models(job.id) == [model]
    assert catalog.deploys("ws") == [deploy] and deploy.id > 0 and deploy.force is True


def test_images_keep_their_state_as_an_enum(catalog):
    image = Image(S, "local", ImageState.READY, "j" * 32, "env", L)
    catalog.set_image(image)
    assert catalog.image(S, "local") == image
    assert catalog.image(S, "local").state is ImageState.READY


def test_workspace_inputs_follow_the_last_deploy(catalog):
    inputs = TrainingInputs(S, D, Grid.from_json({"k": [1, 2]}), Resources(cpu=2.0))
    catalog.record_deploy("ws", "ana", inputs, {}, False)
    assert catalog.workspace("ws").inputs == inputs


def test_updates_touch_only_the_named_fields_and_refuse_fixed_ones(catalog):
    job = full_job(state=JobState.STARTING, finished=None, reason=None)
    catalog.add_job(job)
    catalog.update_job(job.id, state=JobState.SUCCESS, finished=9.0)
    assert catalog.job(job.id) == replace(job, state=JobState.SUCCESS, finished=9.0)
    with pytest.raises(ValueError, match="source"):
        catalog.update_job(job.id, source=D)
    catalog.add_job(full_job(id="k" * 32), [Model("k" * 32, 0, "t", None, JobState.STARTING)])
    catalog.update_model("k" * 32, 0, metrics={"loss": 1.0}, node="n")
    (model,) = catalog.models("k" * 32)
    assert model.metrics == {"loss": 1.0} and model.node == "n" and model.params is None


def test_endpoints_and_revisions_round_trip(catalog):
    endpoint = Endpoint(
        "ws", "api", EndpointState.RUNNING, None, "-loss", ServeOptions(replicas=2), 1.0
    )
    catalog.put_endpoint(endpoint)
    assert catalog.endpoint("ws", "api") == endpoint
    revision = catalog.add_revision(
        Revision(0, "ws", "api", "aaaaa_bbbbb:cccccc", RevisionState.STARTING, Cause.FOLLOW, 2.0)
    )
    assert revision.id > 0 and revision.cause is Cause.FOLLOW
    catalog.update_revision(revision.id, stats={"requests": 3}, port=8080)
    assert catalog.revision(revision.id) == replace(revision, stats={"requests": 3}, port=8080)


def test_referenced_trees_come_from_inputs_jobs_images_and_outputs(catalog):
    catalog.record_deploy("ws", "ana", TrainingInputs(S, D), {}, False)
    catalog.add_job(full_job(source="e" * 32, data=None, lock=None))
    catalog.set_image(Image(S, "local", ImageState.READY, "j" * 32, "env", L))
    assert catalog.referenced_trees() == {S, D, "e" * 32, L}
