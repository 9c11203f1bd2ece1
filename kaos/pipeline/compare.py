"""Compare two trained models by what the catalog and the store hold for them."""

from __future__ import annotations

from dataclasses import dataclass

from kaos.errors import KaosError
from kaos.pipeline.catalog import Catalog
from kaos.pipeline.diff import (
    TreeDiff,
    ValueChange,
    diff_trees,
    value_changes,
)
from kaos.pipeline.lockstore import read_lock
from kaos.pipeline.records import Job, Model
from kaos.store import ContentStore, Tree


@dataclass(frozen=True)
class ModelSide:
    model_id: str
    job_id: str
    index: int
    source: str
    data: str
    lock: str | None
    output_tree: str


@dataclass(frozen=True)
class ModelComparison:
    a: ModelSide
    b: ModelSide
    source: TreeDiff
    data: TreeDiff
    hyperparams: list[ValueChange]
    packages: list[ValueChange]  # locked versions that differ
    metrics: list[ValueChange]  # every metric of either model


def compare_models(catalog: Catalog, store: ContentStore, a: str, b: str) -> ModelComparison:
    """What changed from model `a` to model `b` (any unique id prefixes)."""
    model_a, model_b = catalog.find_model(a), catalog.find_model(b)
    job_a, job_b = catalog.job(model_a.job_id), catalog.job(model_b.job_id)
    side_a, side_b = _side(model_a, job_a), _side(model_b, job_b)
    read = store.get_bytes
    packages = value_changes(_versions(store, side_a.lock), _versions(store, side_b.lock))
    return ModelComparison(
        side_a,
        side_b,
        diff_trees(_tree(store, side_a.source), _tree(store, side_b.source), read, True),
        diff_trees(_tree(store, side_a.data), _tree(store, side_b.data), read, False),
        [c for c in value_changes(model_a.params, model_b.params) if c.changed],
        [c for c in packages if c.changed],
        value_changes(model_a.metrics, model_b.metrics),
    )


def _side(model: Model, job: Job) -> ModelSide:
    if not (model.model_id and model.output_tree and job.source and job.data):
        raise KaosError(f"model {model.model_id} has no stored output to compare")
    return ModelSide(
        model.model_id,
        job.id,
        model.index,
        job.source,
        job.data,
        job.lock,
        model.output_tree,
    )


def _tree(store: ContentStore, digest: str) -> Tree:
    return store.get_tree(digest)


def _versions(store: ContentStore, lock: str | None) -> dict[str, str]:
    if lock is None:
        return {}
    return read_lock(store, lock).versions()
