"""The catalog's records: plain frozen values that travel between catalog, engine and API."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kaos.pipeline.inputs import TrainingInputs
from kaos.pipeline.states import ImageState, JobKind, JobState


@dataclass(frozen=True)
class Workspace:
    name: str
    created: float
    inputs: TrainingInputs = field(default_factory=TrainingInputs)
    owner: str | None = None  # who created it (None: made before ownership, admins only)


@dataclass(frozen=True)
class Deploy:
    id: int
    workspace: str
    author: str
    time: float
    inputs: TrainingInputs
    changed: dict[str, Any]
    force: bool


@dataclass(frozen=True)
class Image:
    source: str
    builder: str
    state: ImageState
    job_id: str
    ref: str | None  # what the executor runs: an environment key, a docker tag
    lock: str | None = None  # the lock tree it was made from (None: base interpreter only)


@dataclass(frozen=True)
class Job:
    id: str
    kind: JobKind
    workspace: str
    deploy_id: int | None
    state: JobState
    created: float
    started: float | None = None
    finished: float | None = None
    source: str | None = None
    data: str | None = None
    image: str | None = None
    author: str = ""
    hyperopt: bool = False
    parallelism: int = 1
    reason: str | None = None
    lock: str | None = None  # build: the lock it made the image from; train: the image's lock

    @property
    def duration(self) -> float | None:
        if self.started is None:
            return None
        return (self.finished or 0) - self.started if self.finished else None


@dataclass(frozen=True)
class Model:
    job_id: str
    index: int
    train_key: str
    params: dict[str, Any] | None
    state: JobState
    model_id: str | None = None
    output_tree: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    started: float | None = None
    finished: float | None = None
    reason: str | None = None
    node: str | None = None  # where it ran (a Ray node id, a host)
