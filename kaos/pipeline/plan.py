"""What a deploy must run, decided from hashes and the catalog alone: no I/O, table-tested.

Rules (see the pipeline issue):
- build only when no image exists for the source and none is building; a failed build is not
  an image, so redeploying retries it;
- train each combination whose (source, data, combination, resources) has no successful model,
  once the image exists and data is present; a failed train is not a model, so it is retried;
- identical inputs start nothing and answer with the existing models (`force` retrains);
- data without a source waits: nothing runs until a source arrives.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from kaos.pipeline.inputs import Scalar, TrainingInputs, train_key
from kaos.pipeline.states import ImageState


@dataclass(frozen=True)
class CatalogView:
    """The little a plan needs to know of the catalog."""

    images: Mapping[str, ImageState] = field(default_factory=dict)  # source -> state
    models: Mapping[str, str] = field(default_factory=dict)  # train key -> model id
    training: frozenset[str] = frozenset()  # train keys queued or running


@dataclass(frozen=True)
class TrainTask:
    index: int
    key: str
    params: Mapping[str, Scalar] | None


@dataclass(frozen=True)
class Plan:
    inputs: TrainingInputs
    build: str | None = None  # source to build now
    train: tuple[TrainTask, ...] = ()  # to start now
    waiting: tuple[TrainTask, ...] = ()  # to start once the image is built
    reused: tuple[tuple[TrainTask, str], ...] = ()  # answered by an existing model id
    in_progress: tuple[TrainTask, ...] = ()  # already queued or running

    @property
    def starts_nothing(self) -> bool:
        return self.build is None and not self.train


def tasks_for(inputs: TrainingInputs) -> list[TrainTask]:
    """One task per combination of the grid (one task without a grid)."""
    if inputs.source is None or inputs.data is None:
        return []
    combos: Sequence[Mapping[str, Scalar] | None] = (
        inputs.grid.combinations() if inputs.grid else [None]
    )
    return [
        TrainTask(i, train_key(inputs.source, inputs.data, params, inputs.resources), params)
        for i, params in enumerate(combos)
    ]


def plan(
    inputs: TrainingInputs, view: CatalogView, force: bool = False, rebuild: bool = False
) -> Plan:
    """`rebuild` (a fresh resolve of the environment) builds even where an image exists, and
    the trains wait for the new one."""
    if inputs.source is None:
        return Plan(inputs)  # data (or a grid) alone waits for a source
    image = view.images.get(inputs.source)
    if rebuild and image != ImageState.BUILDING:
        image = None
    build = inputs.source if image is None else None
    image_ready = image == ImageState.READY
    train: list[TrainTask] = []
    waiting: list[TrainTask] = []
    reused: list[tuple[TrainTask, str]] = []
    in_progress: list[TrainTask] = []
    for task in tasks_for(inputs):
        if task.key in view.training:
            in_progress.append(task)
        elif task.key in view.models and not force:
            reused.append((task, view.models[task.key]))
        elif image_ready:
            train.append(task)
        else:
            waiting.append(task)
    return Plan(inputs, build, tuple(train), tuple(waiting), tuple(reused), tuple(in_progress))
