"""Catalog rows <-> records, mapped by field name: a column is named after the record's field
(`index` is stored as `ind`), so adding a field never shifts the others.

Each table lists only the fields that need converting (enums, JSON, booleans); every other
field is stored as it is.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from enum import Enum
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from kaos.pipeline.db import Row, Tx
from kaos.pipeline.inputs import TrainingInputs
from kaos.pipeline.records import Deploy, Image, Job, Model, Workspace
from kaos.pipeline.states import ImageState, JobKind, JobState
from kaos.serving.records import (
    Cause,
    Endpoint,
    EndpointState,
    Revision,
    RevisionState,
    ServeOptions,
)

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

R = TypeVar("R", bound="DataclassInstance")
Convert = Callable[[Any], Any]

_COLUMN = {"index": "ind"}  # field -> column, where SQL needs another name


def _inputs_in(value: TrainingInputs) -> str:
    return json.dumps(value.to_json())


def _inputs_out(text: str) -> TrainingInputs:
    return TrainingInputs.from_json(json.loads(text))


@dataclass(frozen=True)
class Table(Generic[R]):
    name: str
    record: type[R]
    fields: tuple[str, ...]
    encode: Mapping[str, Convert]
    decode: Mapping[str, Convert]
    generated: frozenset[str] = frozenset()  # made by the database at insert (an id)
    key: tuple[str, ...] = ()  # the primary key's fields, for inserts that replace a row

    def column(self, field: str) -> str:
        return _COLUMN.get(field, field)

    def values(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Column -> stored value, for the fields given (all of them, or an update's few)."""
        unknown = set(changes) - set(self.fields)
        if unknown:
            raise ValueError(f"{self.name} has no {sorted(unknown)}")
        return {self.column(name): self._stored(name, value) for name, value in changes.items()}

    def row(self, record: R) -> dict[str, Any]:
        return self.values({name: getattr(record, name) for name in self.fields})

    def of(self, row: Row) -> R:
        return self.record(
            **{name: self.decode.get(name, _same)(row[self.column(name)]) for name in self.fields}
        )

    def insert_sql(self, on_conflict: str | None = None) -> str:
        """INSERT of every field but the generated ones; `on_conflict` is "DO NOTHING" or
        "REPLACE" (update the row with the same key), in SQL both databases speak."""
        columns = [self.column(name) for name in self.fields if name not in self.generated]
        sql = (
            f"INSERT INTO {self.name} ({', '.join(columns)})"
            f" VALUES ({', '.join(':' + c for c in columns)})"
        )
        if on_conflict == "REPLACE":
            keys = [self.column(name) for name in self.key]
            sets = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in keys)
            return f"{sql} ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {sets}"
        return f"{sql} ON CONFLICT {on_conflict}" if on_conflict else sql

    def insert(self, db: Tx, records: Iterable[R], on_conflict: str | None = None) -> None:
        db.executemany(self.insert_sql(on_conflict), [self.row(r) for r in records])

    def insert_one(self, db: Tx, record: R) -> int:
        """Insert one record; the id the database gave it (its generated field is ignored)."""
        (generated,) = self.generated
        return int(db.value(f"{self.insert_sql()} RETURNING {generated}", self.row(record)))

    def _stored(self, name: str, value: Any) -> Any:
        if name in self.encode:
            return self.encode[name](value)
        return value.value if isinstance(value, Enum) else value


def _same(value: Any) -> Any:
    return value


def _table(
    name: str,
    record: type[R],
    encode: Mapping[str, Convert] | None = None,
    decode: Mapping[str, Convert] | None = None,
    generated: frozenset[str] = frozenset(),
    key: tuple[str, ...] = (),
) -> Table[R]:
    names = tuple(f.name for f in fields(record))
    return Table(name, record, names, encode or {}, decode or {}, generated, key)


WORKSPACES: Table[Workspace] = _table(
    "workspaces", Workspace, {"inputs": _inputs_in}, {"inputs": _inputs_out}
)
DEPLOYS: Table[Deploy] = _table(
    "deploys",
    Deploy,
    {"inputs": _inputs_in, "changed": json.dumps, "force": int},
    {"inputs": _inputs_out, "changed": json.loads, "force": bool},
    generated=frozenset({"id"}),
)
IMAGES: Table[Image] = _table(
    "images", Image, decode={"state": ImageState}, key=("source", "builder")
)
JOBS: Table[Job] = _table(
    "jobs",
    Job,
    {"hyperopt": int},
    {"kind": JobKind, "state": JobState, "hyperopt": bool},
)
MODELS: Table[Model] = _table(
    "models",
    Model,
    {"params": json.dumps, "metrics": json.dumps},
    {"state": JobState, "params": json.loads, "metrics": json.loads},
)
ENDPOINTS: Table[Endpoint] = _table(
    "endpoints",
    Endpoint,
    {"options": lambda options: json.dumps(options.to_json())},
    {"state": EndpointState, "options": lambda text: ServeOptions.from_json(json.loads(text))},
    key=("workspace", "name"),
)
REVISIONS: Table[Revision] = _table(
    "revisions",
    Revision,
    {"stats": json.dumps},
    {"state": RevisionState, "cause": Cause, "stats": lambda text: json.loads(text or "{}")},
    generated=frozenset({"id"}),
)
