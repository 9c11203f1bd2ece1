"""Reproduce a model: train it again from its stored source, data, hyperparameters and lock, in
a fresh work folder, and compare output trees. The workspace's inputs are never touched.

A reproduction is a job of kind `reproduce` (not listed among the workspace's train jobs) with
one model row whose train key is `reproduce:<job id>:<index>` of the original, so the planner
never takes it for a trained model of those inputs, and whose model id stays empty.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from kaos.errors import KaosError, NotFound
from kaos.pipeline.bundles import source_bundle_name
from kaos.pipeline.catalog import Catalog
from kaos.pipeline.diff import FileChange, diff_trees
from kaos.pipeline.ids import model_id, new_job_id
from kaos.pipeline.inputs import Resources
from kaos.pipeline.records import Job, Model
from kaos.pipeline.states import JobKind, JobState
from kaos.store import ContentStore

KEY_PREFIX = "reproduce:"


@dataclass(frozen=True)
class ReproducePlan:
    """The reproduction job and model to record, and what the run needs."""

    job: Job
    model: Model
    original: Model
    bundle_name: str
    resources: Resources


def plan_reproduce(
    catalog: Catalog, store: ContentStore, model_prefix: str, author: str
) -> ReproducePlan:
    original = catalog.find_model(model_prefix)  # trained models only: failed ones have no id
    trained = catalog.job(original.job_id)
    if not (trained.source and trained.data and original.output_tree):
        raise KaosError(f"model {original.model_id} has no stored inputs to train from")
    resources = Resources()
    if trained.deploy_id is not None:
        resources = catalog.deploy(trained.deploy_id).inputs.resources
    job = Job(
        new_job_id(),
        JobKind.REPRODUCE,
        trained.workspace,
        None,
        JobState.STARTING,
        time.time(),
        source=trained.source,
        data=trained.data,
        author=author,
        lock=trained.lock,
    )
    key = f"{KEY_PREFIX}{original.job_id}:{original.index}"
    model = Model(job.id, 0, key, original.params, JobState.STARTING)
    name = source_bundle_name(store.get_tree(trained.source))
    return ReproducePlan(job, model, original, name, resources)


def resume_reproduce(catalog: Catalog, store: ContentStore, job: Job) -> ReproducePlan:
    """The plan of a recorded reproduction, from the catalog alone (any replica runs it)."""
    (model,) = catalog.models(job.id)
    original_job, index = model.train_key[len(KEY_PREFIX) :].rsplit(":", 1)
    original = next(m for m in catalog.models(original_job) if m.index == int(index))
    trained = catalog.job(original_job)
    resources = Resources()
    if trained.deploy_id is not None:
        resources = catalog.deploy(trained.deploy_id).inputs.resources
    assert job.source is not None
    name = catalog.bundle_name(job.source) or source_bundle_name(store.get_tree(job.source))
    return ReproducePlan(job, model, original, name, resources)


@dataclass(frozen=True)
class Reproduction:
    job: Job
    original: Model
    reproduced_tree: str | None
    reproduced_id: str | None  # the model id the retrain would carry
    files: list[FileChange]  # output files that differ (empty when identical)

    @property
    def identical(self) -> bool:
        return (
            self.reproduced_tree is not None and self.reproduced_tree == self.original.output_tree
        )


def reproduction(catalog: Catalog, store: ContentStore, job_prefix: str) -> Reproduction:
    """The state of a reproduction and, once it trained, how its output compares."""
    job = catalog.find_job(job_prefix)
    models = catalog.models(job.id)
    if (
        job.kind != JobKind.REPRODUCE
        or len(models) != 1
        or not models[0].train_key.startswith(KEY_PREFIX)
    ):
        raise NotFound(
            f"job {job.id} is not a reproduction", "start one with 'kaos train reproduce'"
        )
    (again,) = models
    job_id, index = again.train_key[len(KEY_PREFIX) :].rsplit(":", 1)
    original = next(m for m in catalog.models(job_id) if m.index == int(index))
    tree, files, new_id = again.output_tree, [], None
    if tree is not None and original.output_tree is not None and job.source and job.data:
        new_id = model_id(job.source, job.data, tree)
    if new_id is not None and tree != original.output_tree:
        assert tree is not None and original.output_tree is not None
        store.missing([tree])  # a Ray node stored it: see the packs written since
        files = diff_trees(
            store.get_tree(original.output_tree), store.get_tree(tree), store.get_bytes, False
        ).files
    return Reproduction(job, original, tree, new_id, files)
