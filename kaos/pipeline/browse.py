"""Browsing a workspace's history: model queries (sort, filter, page) and the progress curve.

Pure values and functions: the catalog runs a `ModelQuery`, and `progress` turns models in
deploy order into the points of a metric-over-models curve, each saying what changed from the
model before it. The dashboard and any script read both through the API.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard

from kaos.errors import QueryError
from kaos.pipeline.records import Model

MAX_PAGE = 1000
MAX_OFFSET = 2**31  # SQLite takes 64-bit integers; no history is longer than this
_KEY = re.compile(r'^[^"\\\x00-\x1f]{1,128}$')  # any metric or hyperparameter name, unquoted
_FILTER = re.compile(r"^\s*(?P<field>[^<>=!]+?)\s*(?P<op>>=|<=|!=|=|>|<)\s*(?P<value>.+?)\s*$")
PLAIN_SORTS = ("created", "finished", "model_id")
_MINIMISED = re.compile(r"loss|err|mse|mae|rmse|perplexity|latency", re.IGNORECASE)


@dataclass(frozen=True)
class Field:
    """A sortable or filterable value of a model: `created`, `metrics.NAME`, `params.NAME`."""

    group: str  # "" for plain columns, "metrics" or "params"
    name: str

    @classmethod
    def parse(cls, text: str) -> Field:
        text = text.strip()
        if text in PLAIN_SORTS:
            return cls("", text)
        group, _, name = text.partition(".")
        if group in ("metrics", "params") and _KEY.match(name):
            return cls(group, name)
        raise QueryError(
            f"cannot sort or filter by {text!r}",
            "use created, finished, model_id, metrics.NAME or params.NAME",
        )

    @property
    def json_path(self) -> str:
        return f'$."{self.name}"'


@dataclass(frozen=True)
class Filter:
    field: Field
    op: str  # one of OPS
    value: float | str

    OPS = {"=": "=", "!=": "!=", ">": ">", ">=": ">=", "<": "<", "<=": "<="}

    @classmethod
    def parse(cls, text: str) -> Filter:
        """`metrics.accuracy_test>=0.9`, `params.kernel=linear`: numbers compare as numbers."""
        match = _FILTER.match(text)
        if not match:
            raise QueryError(
                f"bad filter {text!r}", "write FIELD OP VALUE, e.g. metrics.accuracy_test>=0.9"
            )
        field = Field.parse(match["field"])
        if not field.group:
            raise QueryError(f"cannot filter by {field.name!r}", "filter by metrics.* or params.*")
        raw, op = match["value"], match["op"]
        try:
            value: float | str = float(raw)
        except ValueError:
            value = raw
        if raw[0] in "<>=!" or (isinstance(value, float) and not math.isfinite(value)):
            raise QueryError(f"bad value {raw!r} in filter {text!r}", "compare with one value")
        if op not in ("=", "!=") and not isinstance(value, float):
            raise QueryError(
                f"{op} needs a number, got {raw!r} in filter {text!r}", "use = or != for text"
            )
        return cls(field, op, value)


@dataclass(frozen=True)
class ModelQuery:
    """One page of a workspace's models, ordered and filtered; finished models by default."""

    sort: Field = Field("", "created")
    descending: bool = False
    limit: int = 50
    offset: int = 0
    states: tuple[str, ...] = ()  # JobState values; empty: every state
    filters: tuple[Filter, ...] = ()

    @classmethod
    def parse(
        cls,
        sort: str = "created",
        limit: int = 50,
        offset: int = 0,
        states: Sequence[str] = (),
        filters: Sequence[str] = (),
    ) -> ModelQuery:
        """`sort` is a field, `-field` for descending (as `-metrics.accuracy_test`)."""
        descending = sort.startswith("-")
        if not 1 <= limit <= MAX_PAGE:
            raise QueryError(f"limit must be 1..{MAX_PAGE}, got {limit}")
        if not 0 <= offset <= MAX_OFFSET:
            raise QueryError(f"offset must be 0..{MAX_OFFSET}, got {offset}")
        return cls(
            Field.parse(sort.lstrip("-")),
            descending,
            limit,
            offset,
            tuple(states),
            tuple(Filter.parse(f) for f in filters),
        )


@dataclass(frozen=True)
class ModelRow:
    """A model with what it came from: its job's inputs and the deploy that started it."""

    model: Model
    workspace: str
    deploy_id: int | None
    created: float  # the job's creation: deploy order
    source: str | None
    data: str | None
    author: str


@dataclass(frozen=True)
class Column:
    """A metric or hyperparameter over a set of models: does it vary, and its numeric range."""

    group: str
    name: str
    differs: bool
    numeric: bool
    low: float | None
    high: float | None


def goal_of(metric: str, goal: str | None = None) -> str:
    """Whether higher (`max`) or lower (`min`) is better: as asked, else from the name."""
    if goal in ("max", "min"):
        return goal
    if goal not in (None, "", "auto"):
        raise QueryError(f"goal must be max, min or auto, got {goal!r}")
    return "min" if _MINIMISED.search(metric) else "max"


@dataclass(frozen=True)
class Change:
    """One difference from the previous model: source, data or a hyperparameter."""

    what: str  # "source" | "data" | "params.NAME"
    before: Any
    after: Any


@dataclass(frozen=True)
class Point:
    row: ModelRow
    value: float | None
    best: bool  # the best so far when it landed
    changes: tuple[Change, ...]


def progress(rows: Sequence[ModelRow], metric: str, goal: str) -> list[Point]:
    """Models in deploy order as points of `metric`; each names what differs from the one
    before (the first: nothing), and whether it beat every earlier model."""
    points: list[Point] = []
    best: float | None = None
    previous: ModelRow | None = None
    for row in rows:
        raw: Any = row.model.metrics.get(metric)
        value = float(raw) if _is_number(raw) else None
        is_best = value is not None and (
            best is None or (value > best if goal == "max" else value < best)
        )
        if is_best:
            best = value
        points.append(Point(row, value, is_best, changes(previous, row) if previous else ()))
        previous = row
    return points


def changes(before: ModelRow, after: ModelRow) -> tuple[Change, ...]:
    found = [
        Change(what, old, new)
        for what, old, new in (
            ("source", before.source, after.source),
            ("data", before.data, after.data),
        )
        if old != new
    ]
    old_params, new_params = before.model.params or {}, after.model.params or {}
    for name in sorted(set(old_params) | set(new_params)):
        if old_params.get(name) != new_params.get(name):
            found.append(Change(f"params.{name}", old_params.get(name), new_params.get(name)))
    return tuple(found)


def _is_number(value: Any) -> TypeGuard[int | float]:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )
