"""The planner, case by case, without any I/O: each row is (inputs, catalog, force) -> actions."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from kaos.errors import InputError
from kaos.pipeline.inputs import Grid, InputsChange, Resources, TrainingInputs, train_key
from kaos.pipeline.plan import CatalogView, plan, tasks_for
from kaos.pipeline.states import ImageState

S1, S2, D1, D2 = "a" * 32, "b" * 32, "c" * 32, "d" * 32
READY, BUILDING = ImageState.READY, ImageState.BUILDING
GRID = Grid.from_json({"gamma": [0.1, 0.01], "kernel": ["poly", "linear"]})


def key(source=S1, data=D1, params=None, resources=None):
    return train_key(source, data, params, resources or Resources())


@dataclass
class Case:
    name: str
    inputs: TrainingInputs
    view: CatalogView
    build: str | None
    train: int
    waiting: int = 0
    reused: int = 0
    in_progress: int = 0
    force: bool = False


CASES = [
    Case(
        "first deploy builds, train waits for the image",
        TrainingInputs(S1, D1),
        CatalogView(),
        S1,
        0,
        waiting=1,
    ),
    Case(
        "source only: build, nothing to train yet", TrainingInputs(S1, None), CatalogView(), S1, 0
    ),
    Case(
        "data before any source waits: nothing runs",
        TrainingInputs(None, D1),
        CatalogView(),
        None,
        0,
    ),
    Case("grid before any source waits", TrainingInputs(None, None, GRID), CatalogView(), None, 0),
    Case(
        "image ready, no model: train only",
        TrainingInputs(S1, D1),
        CatalogView({S1: READY}),
        None,
        1,
    ),
    Case(
        "identical inputs start nothing and reuse the model",
        TrainingInputs(S1, D1),
        CatalogView({S1: READY}, {key(): "aaaaa_ccccc:123456"}),
        None,
        0,
        reused=1,
    ),
    Case(
        "force retrains identical inputs",
        TrainingInputs(S1, D1),
        CatalogView({S1: READY}, {key(): "aaaaa_ccccc:123456"}),
        None,
        1,
        force=True,
    ),
    Case(
        "new data with a ready image: train, no build",
        TrainingInputs(S1, D2),
        CatalogView({S1: READY}, {key(): "m"}),
        None,
        1,
    ),
    Case(
        "new source: build even if the old one is ready",
        TrainingInputs(S2, D1),
        CatalogView({S1: READY}, {key(): "m"}),
        S2,
        0,
        waiting=1,
    ),
    Case(
        "a build in progress is not started twice",
        TrainingInputs(S1, D1),
        CatalogView({S1: BUILDING}),
        None,
        0,
        waiting=1,
    ),
    Case(
        "a train in progress is not started twice",
        TrainingInputs(S1, D1),
        CatalogView({S1: READY}, training=frozenset({key()})),
        None,
        0,
        in_progress=1,
    ),
    Case(
        "a failed build is not cached (absent from the view): retried",
        TrainingInputs(S1, D1),
        CatalogView({}),
        S1,
        0,
        waiting=1,
    ),
    Case(
        "a grid trains one model per combination",
        TrainingInputs(S1, D1, GRID),
        CatalogView({S1: READY}),
        None,
        4,
    ),
    Case(
        "an extended grid trains only the new combinations",
        TrainingInputs(S1, D1, GRID),
        CatalogView(
            {S1: READY},
            {
                key(params={"gamma": 0.1, "kernel": "poly"}): "m1",
                key(params={"gamma": 0.01, "kernel": "poly"}): "m2",
            },
        ),
        None,
        2,
        reused=2,
    ),
    Case(
        "other resources are another model",
        TrainingInputs(S1, D1, None, Resources(cpu=2)),
        CatalogView({S1: READY}, {key(): "m"}),
        None,
        1,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_plan(case: Case) -> None:
    result = plan(case.inputs, case.view, case.force)
    assert result.build == case.build
    assert len(result.train) == case.train
    assert len(result.waiting) == case.waiting
    assert len(result.reused) == case.reused
    assert len(result.in_progress) == case.in_progress


def test_reused_models_answer_with_their_ids():
    result = plan(TrainingInputs(S1, D1), CatalogView({S1: READY}, {key(): "aaaaa_ccccc:123456"}))
    assert [model for _, model in result.reused] == ["aaaaa_ccccc:123456"]
    assert result.starts_nothing


def test_a_failed_train_is_not_cached_so_redeploy_retries():
    # A failed model is neither a model nor in progress: the view simply does not list it.
    result = plan(TrainingInputs(S1, D1), CatalogView({S1: READY}))
    assert len(result.train) == 1


def test_merging_keeps_what_a_deploy_does_not_name():
    current = TrainingInputs(S1, D1, GRID, Resources(cpu=1))
    assert current.merged(InputsChange(data=D2)) == TrainingInputs(S1, D2, GRID, Resources(cpu=1))
    assert current.merged(InputsChange(source=S2)).data == D1


def test_train_keys_depend_on_every_input():
    base = key()
    assert (
        len(
            {
                base,
                key(source=S2),
                key(data=D2),
                key(params={"a": 1}),
                key(resources=Resources(gpu=1)),
            }
        )
        == 5
    )
    assert key(params={"a": 1, "b": 2}) == key(params={"b": 2, "a": 1})


def test_network_is_an_input_that_leaves_earlier_keys_alone():
    assert key(resources=Resources(network=True)) != key()
    assert Resources().to_json() == {"cpu": None, "memory": None, "gpu": 0}  # as before it existed
    assert Resources.from_json(Resources(network=True).to_json()).network


def test_tasks_follow_the_grid_order():
    tasks = tasks_for(TrainingInputs(S1, D1, GRID))
    assert [t.params for t in tasks][:2] == [
        {"gamma": 0.1, "kernel": "poly"},
        {"gamma": 0.1, "kernel": "linear"},
    ]


@pytest.mark.parametrize(
    "grid, message",
    [
        ({}, "non-empty"),
        ({"a": []}, "empty list"),
        ({"a": [{"x": 1}]}, "non-scalar"),
        ({"a": [1, 1]}, "twice"),
        ({"a": list(range(40)), "b": list(range(30))}, "more than the limit"),
        ([1, 2], "non-empty JSON object"),
    ],
)
def test_bad_grids_are_refused(grid, message):
    with pytest.raises(InputError, match=message):
        Grid.from_json(grid, max_combinations=1000)
