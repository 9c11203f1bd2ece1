"""Browsing a workspace's history: model queries run by the catalog, the progress curve, and
the column summaries behind "only columns that differ" (pure logic, and real SQLite and
PostgreSQL catalogs)."""

from __future__ import annotations

import pytest

from kaos.pipeline.browse import (
    Field,
    Filter,
    ModelQuery,
    ModelRow,
    QueryError,
    goal_of,
    progress,
)
from kaos.pipeline.catalog import SqlCatalog
from kaos.pipeline.inputs import TrainingInputs
from kaos.pipeline.records import Job, Model
from kaos.pipeline.states import JobState

SRC_A, SRC_B, DATA_A, DATA_B = ("a" * 32, "b" * 32, "c" * 32, "d" * 32)


def row(source: str, data: str, accuracy: float | None, **params) -> ModelRow:
    metrics = {} if accuracy is None else {"accuracy": accuracy}
    model = Model("job", 0, "key", params or None, JobState.SUCCESS, "m", None, metrics)
    return ModelRow(model, "ws", 1, 0.0, source, data, "alice")


def test_progress_marks_each_new_best_and_names_what_changed():
    rows = [
        row(SRC_A, DATA_A, 0.867, C=1),
        row(SRC_B, DATA_A, 0.893, C=1),
        row(SRC_B, DATA_A, 0.88, C=10),
        row(SRC_B, DATA_B, 0.959, C=10),
    ]
    points = progress(rows, "accuracy", "max")
    assert [p.value for p in points] == [0.867, 0.893, 0.88, 0.959]
    assert [p.best for p in points] == [True, True, False, True]
    assert points[0].changes == ()
    assert [c.what for c in points[1].changes] == ["source"]
    assert [(c.what, c.before, c.after) for c in points[2].changes] == [("params.C", 1, 10)]
    assert [c.what for c in points[3].changes] == ["data"]


def test_progress_for_a_loss_counts_lower_as_better_and_skips_missing_values():
    points = progress(
        [row(SRC_A, DATA_A, 0.5), row(SRC_A, DATA_A, None), row(SRC_A, DATA_A, 0.4)],
        "accuracy",
        "min",
    )
    assert [p.value for p in points] == [0.5, None, 0.4]
    assert [p.best for p in points] == [True, False, True]
    assert goal_of("val_loss") == "min" and goal_of("accuracy_test") == "max"
    assert goal_of("accuracy_test", "min") == "min"


def test_columns_say_which_values_differ(catalog_place):
    catalog = catalog_place.open()
    catalog.create_workspace("ws")
    job = Job("job", "train", "ws", None, JobState.SUCCESS, 1.0)
    values = [
        ({"acc": 0.9, "tag": "x", "seed": 1}, {"C": 1, "kernel": "rbf"}),
        ({"acc": 0.8, "tag": "x", "seed": 1}, {"C": 10, "kernel": "rbf"}),
        ({"acc": 0.7, "seed": 1}, {"C": 10, "kernel": "rbf"}),
        ({"acc": 0.6, "seed": 1}, None),  # no grid: no hyperparameters at all
    ]
    catalog.add_job(
        job,
        [
            Model("job", i, f"k{i}", params, JobState.SUCCESS, None, None, metrics)
            for i, (metrics, params) in enumerate(values)
        ],
    )
    summary = {(c.group, c.name): c for c in catalog.model_columns("ws")}
    assert set(summary) == {("metrics", "acc"), ("metrics", "seed"), ("metrics", "tag"),
                            ("params", "C"), ("params", "kernel")}  # fmt: skip
    assert not summary["metrics", "seed"].differs and summary["metrics", "seed"].numeric
    assert summary["metrics", "acc"].differs and summary["metrics", "acc"].numeric
    assert (summary["metrics", "acc"].low, summary["metrics", "acc"].high) == (0.6, 0.9)
    assert summary["metrics", "tag"].differs  # missing on one model
    assert summary["params", "C"].differs and summary["params", "C"].numeric
    assert summary["params", "kernel"].differs  # absent on the model without a grid
    assert not summary["params", "kernel"].numeric
    assert catalog.model_columns("nobody") == []


@pytest.mark.parametrize(
    "text",
    [
        "bogus",
        "created>1",
        'metrics.a"b>1',
        "metrics.>1",
        "params.x=",
        "params.x",
        "metrics.a>=",
        "metrics.a==1",
        "metrics.a>=abc",
        "metrics.a<nan",
    ],
)
def test_bad_filters_are_refused_with_the_fix(text):
    with pytest.raises(QueryError) as caught:
        Filter.parse(text)
    assert caught.value.fix


def test_query_parsing():
    query = ModelQuery.parse("-metrics.accuracy test", 10, 20, filters=["params.kernel = linear"])
    assert query.sort == Field("metrics", "accuracy test") and query.descending
    assert query.filters == (Filter(Field("params", "kernel"), "=", "linear"),)
    assert Filter.parse("metrics.acc>=0.9").value == 0.9
    with pytest.raises(QueryError):
        ModelQuery.parse("size")
    with pytest.raises(QueryError):
        ModelQuery.parse(limit=5000)


@pytest.fixture
def catalog(catalog_place) -> SqlCatalog:
    """Two deploys: a grid of three C values, then a data change with one model still running."""
    catalog = catalog_place.open()
    catalog.create_workspace("ws")
    catalog.create_workspace("other")
    for n, (data, results) in enumerate(
        [(DATA_A, [(1, 0.80), (10, 0.92), (100, 0.85)]), (DATA_B, [(10, 0.95), (100, None)])]
    ):
        deploy = catalog.record_deploy(
            "ws", "alice", TrainingInputs(SRC_A, data), {"data": data}, False
        )
        job = Job(
            f"job{n}",
            "train",
            "ws",
            deploy.id,
            JobState.RUNNING,
            100.0 + n,
            source=SRC_A,
            data=data,
            author="alice",
        )
        catalog.add_job(
            job,
            [
                Model(
                    job.id,
                    i,
                    f"k{n}{i}",
                    {"C": c},
                    JobState.SUCCESS if acc is not None else JobState.RUNNING,
                    f"{SRC_A[:5]}_{data[:5]}:{n}{i}0000" if acc is not None else None,
                    None,
                    {"accuracy_test": acc} if acc is not None else {},
                )
                for i, (c, acc) in enumerate(results)
            ],
        )
    return catalog


def ids(rows: list[ModelRow]) -> list[str | None]:
    return [r.model.model_id for r in rows]


def test_catalog_ranks_pages_and_filters_across_jobs(catalog):
    total, rows = catalog.model_rows("ws", ModelQuery.parse("-metrics.accuracy_test", limit=2))
    assert total == 5
    assert [r.model.metrics["accuracy_test"] for r in rows] == [0.95, 0.92]
    _, rest = catalog.model_rows("ws", ModelQuery.parse("-metrics.accuracy_test", 2, 2))
    assert [r.model.metrics.get("accuracy_test") for r in rest] == [0.85, 0.80]
    _, last = catalog.model_rows("ws", ModelQuery.parse("-metrics.accuracy_test", 2, 4))
    assert last[0].model.model_id is None  # no value sorts last, whichever the direction
    _, ascending = catalog.model_rows("ws", ModelQuery.parse("metrics.accuracy_test"))
    assert (
        ascending[0].model.metrics["accuracy_test"] == 0.80 and ascending[-1].model.model_id is None
    )

    total, rows = catalog.model_rows(
        "ws", ModelQuery.parse(filters=["params.C>=10", "metrics.accuracy_test>0.9"])
    )
    assert total == 2 and {r.model.metrics["accuracy_test"] for r in rows} == {0.92, 0.95}
    total, rows = catalog.model_rows("ws", ModelQuery.parse(states=["JOB_RUNNING"]))
    assert total == 1 and rows[0].model.params == {"C": 100} and rows[0].data == DATA_B
    _, ordered = catalog.model_rows("ws", ModelQuery.parse("created"))
    assert [r.deploy_id for r in ordered] == [1, 1, 1, 2, 2]
    assert catalog.model_rows("other", ModelQuery.parse()) == (0, [])


def test_catalog_timeline_pages_newest_first_with_the_jobs_started(catalog):
    total, deploys = catalog.deploys_page("ws", 1, 0)
    assert total == 2 and [d.id for d in deploys] == [2]
    assert deploys[0].changed == {"data": DATA_B}
    jobs = catalog.jobs_of_deploys([1, 2])
    assert [j.id for j in jobs[1]] == ["job0"] and [j.id for j in jobs[2]] == ["job1"]
