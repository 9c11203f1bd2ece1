"""The catalog: workspaces, deploys, images, jobs and models in SQLite (WAL, busy timeout).

`Catalog` is the small interface the engine uses; `SqliteCatalog` is its only implementation
today, so another database can replace it without touching the engine.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from kaos.errors import KaosError
from kaos.pipeline.browse import ModelQuery, ModelRow
from kaos.pipeline.ids import NotFound, resolve_prefix
from kaos.pipeline.inputs import TrainingInputs
from kaos.pipeline.plan import CatalogView, ImageState
from kaos.pipeline.records import Deploy, Image, Job, Model, Workspace
from kaos.pipeline.states import ACTIVE_STATES, JobState
from kaos.serving.records import (
    Cause,
    Endpoint,
    EndpointState,
    Revision,
    RevisionState,
    ServeOptions,
)


class WorkspaceBusy(KaosError):
    http_status = 409


SCHEMA = """
CREATE TABLE IF NOT EXISTS workspaces (
    name TEXT PRIMARY KEY, created REAL NOT NULL, inputs TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS deploys (
    id INTEGER PRIMARY KEY AUTOINCREMENT, workspace TEXT NOT NULL REFERENCES workspaces(name),
    author TEXT NOT NULL, time REAL NOT NULL, inputs TEXT NOT NULL, changed TEXT NOT NULL,
    force INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS images (
    source TEXT NOT NULL, builder TEXT NOT NULL, state TEXT NOT NULL, job_id TEXT NOT NULL,
    ref TEXT, lock TEXT, PRIMARY KEY (source, builder));
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, workspace TEXT NOT NULL, deploy_id INTEGER,
    state TEXT NOT NULL, created REAL NOT NULL, started REAL, finished REAL, source TEXT,
    data TEXT, image TEXT, author TEXT NOT NULL, hyperopt INTEGER NOT NULL,
    parallelism INTEGER NOT NULL, reason TEXT, lock TEXT);
CREATE INDEX IF NOT EXISTS jobs_by_workspace ON jobs (workspace, kind, created);
CREATE TABLE IF NOT EXISTS models (
    job_id TEXT NOT NULL REFERENCES jobs(id), ind INTEGER NOT NULL, train_key TEXT NOT NULL,
    params TEXT, state TEXT NOT NULL, model_id TEXT, output_tree TEXT, metrics TEXT NOT NULL,
    started REAL, finished REAL, reason TEXT, node TEXT, PRIMARY KEY (job_id, ind));
CREATE INDEX IF NOT EXISTS models_by_key ON models (train_key, state);
CREATE INDEX IF NOT EXISTS models_by_id ON models (model_id);
CREATE TABLE IF NOT EXISTS endpoints (
    workspace TEXT NOT NULL, name TEXT NOT NULL, state TEXT NOT NULL, revision INTEGER,
    follow TEXT, options TEXT NOT NULL, created REAL NOT NULL, reason TEXT,
    PRIMARY KEY (workspace, name));
CREATE TABLE IF NOT EXISTS revisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT, workspace TEXT NOT NULL, name TEXT NOT NULL,
    model_id TEXT NOT NULL, state TEXT NOT NULL, cause TEXT NOT NULL, created REAL NOT NULL,
    parent INTEGER, started REAL, stopped REAL, port INTEGER, pid INTEGER,
    previous_model TEXT, metric TEXT, value REAL, previous_value REAL, reason TEXT,
    stats TEXT NOT NULL DEFAULT '{}');
CREATE INDEX IF NOT EXISTS revisions_by_endpoint ON revisions (workspace, name, id);
"""


class Catalog(Protocol):
    def create_workspace(self, name: str) -> Workspace: ...
    def workspace(self, name: str) -> Workspace: ...
    def workspaces(self) -> list[Workspace]: ...
    def delete_workspace(self, name: str) -> None: ...
    def record_deploy(
        self,
        workspace: str,
        author: str,
        inputs: TrainingInputs,
        changed: dict[str, Any],
        force: bool,
    ) -> Deploy: ...
    def deploys(self, workspace: str) -> list[Deploy]: ...
    def deploy(self, deploy_id: int) -> Deploy: ...
    def image(self, source: str, builder: str) -> Image | None: ...
    def set_image(self, image: Image) -> None: ...
    def view(self, builder: str, train_keys: list[str]) -> CatalogView: ...
    def add_job(self, job: Job, models: list[Model] = ...) -> None: ...
    def update_job(self, job_id: str, **fields: Any) -> None: ...
    def job(self, job_id: str) -> Job: ...
    def find_job(self, prefix: str) -> Job: ...
    def jobs(self, workspace: str, kind: str | None = None) -> list[Job]: ...
    def update_model(self, job_id: str, index: int, **fields: Any) -> None: ...
    def models(self, job_id: str) -> list[Model]: ...
    def find_model(self, model_id_prefix: str) -> Model: ...
    def workspaces_using_source(self, source: str) -> list[Workspace]: ...
    def fail_interrupted(self, reason: str) -> int: ...
    def check_integrity(self) -> list[str]: ...
    def referenced_trees(self) -> set[str]: ...


class SqliteCatalog:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._db().executescript(SCHEMA)  # executescript commits by itself: no _tx() here
        self._add_missing_columns()

    def _add_missing_columns(self) -> None:
        """Catalogs made before a column existed get it (NULL for their old rows)."""
        for table, column in _ADDED_COLUMNS:
            names = {r["name"] for r in self._query(f"PRAGMA table_info({table})")}
            if column not in names:
                self._db().execute(f"ALTER TABLE {table} ADD COLUMN {column} TEXT")

    # -- connection handling: one connection per thread, WAL, a generous busy timeout ---------
    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=30000")
            db.execute("PRAGMA foreign_keys=ON")
            db.row_factory = sqlite3.Row
            self._local.db = db
        return db

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction taken up front (BEGIN IMMEDIATE), so writers queue, not fail."""
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        return self._db().execute(sql, args).fetchall()

    # -- workspaces and deploys ----------------------------------------------------------------
    def create_workspace(self, name: str) -> Workspace:
        with self._tx() as db:
            row = db.execute("SELECT * FROM workspaces WHERE name = ?", (name,)).fetchone()
            if row is None:
                db.execute(
                    "INSERT INTO workspaces VALUES (?, ?, ?)",
                    (name, time.time(), json.dumps(TrainingInputs().to_json())),
                )
        return self.workspace(name)

    def workspace(self, name: str) -> Workspace:
        rows = self._query("SELECT * FROM workspaces WHERE name = ?", (name,))
        if not rows:
            raise NotFound(
                f"no workspace named {name!r}", "create it with 'kaos workspace create -n NAME'"
            )
        return _workspace(rows[0])

    def workspaces(self) -> list[Workspace]:
        return [_workspace(r) for r in self._query("SELECT * FROM workspaces ORDER BY name")]

    def delete_workspace(self, name: str) -> None:
        """Forget a workspace and its history (stored content stays until gc). Refused while
        one of its jobs is active, so nothing runs unrecorded."""
        self.workspace(name)
        marks = ",".join("?" * len(ACTIVE_STATES))
        with self._tx() as db:
            active = db.execute(
                f"SELECT COUNT(*) FROM jobs WHERE workspace = ? AND state IN ({marks})",
                (name, *ACTIVE_STATES),
            ).fetchone()[0]
            if active:
                raise WorkspaceBusy(
                    f"workspace {name!r} has {active} running jobs",
                    "kill them first with 'kaos train kill -j JOB'",
                )
            serving = db.execute(
                "SELECT COUNT(*) FROM endpoints WHERE workspace = ? AND state IN (?, ?)",
                (name, EndpointState.STARTING.value, EndpointState.RUNNING.value),
            ).fetchone()[0]
            if serving:
                raise WorkspaceBusy(
                    f"workspace {name!r} still serves {serving} endpoint(s)",
                    "stop them first with 'kaos serve kill -n NAME'",
                )
            db.execute("DELETE FROM revisions WHERE workspace = ?", (name,))
            db.execute("DELETE FROM endpoints WHERE workspace = ?", (name,))
            db.execute(
                "DELETE FROM models WHERE job_id IN (SELECT id FROM jobs WHERE workspace = ?)",
                (name,),
            )
            db.execute("DELETE FROM jobs WHERE workspace = ?", (name,))
            db.execute("DELETE FROM deploys WHERE workspace = ?", (name,))
            db.execute("DELETE FROM workspaces WHERE name = ?", (name,))

    def record_deploy(
        self,
        workspace: str,
        author: str,
        inputs: TrainingInputs,
        changed: dict[str, Any],
        force: bool,
    ) -> Deploy:
        """Record the deploy and make its inputs the workspace's current ones, atomically."""
        now = time.time()
        payload = json.dumps(inputs.to_json())
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO deploys (workspace, author, time, inputs, changed, force)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (workspace, author, now, payload, json.dumps(changed), int(force)),
            )
            db.execute("UPDATE workspaces SET inputs = ? WHERE name = ?", (payload, workspace))
            deploy_id = cur.lastrowid
        return Deploy(deploy_id or 0, workspace, author, now, inputs, changed, force)

    def deploys(self, workspace: str) -> list[Deploy]:
        rows = self._query("SELECT * FROM deploys WHERE workspace = ? ORDER BY id", (workspace,))
        return [_deploy(r) for r in rows]

    def deploy(self, deploy_id: int) -> Deploy:
        rows = self._query("SELECT * FROM deploys WHERE id = ?", (deploy_id,))
        if not rows:
            raise NotFound(f"no deploy {deploy_id}")
        return _deploy(rows[0])

    def workspaces_using_source(self, source: str) -> list[Workspace]:
        return [w for w in self.workspaces() if w.inputs.source == source]

    # -- images -------------------------------------------------------------------------------
    def image(self, source: str, builder: str) -> Image | None:
        rows = self._query(
            "SELECT * FROM images WHERE source = ? AND builder = ?", (source, builder)
        )
        return Image(**dict(rows[0])) if rows else None

    def set_image(self, image: Image) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO images (source, builder, state, job_id, ref, lock)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (image.source, image.builder, image.state, image.job_id, image.ref, image.lock),
            )

    def view(self, builder: str, train_keys: list[str]) -> CatalogView:
        images = {
            r["source"]: ImageState(r["state"])
            for r in self._query(
                "SELECT source, state FROM images WHERE builder = ? AND state != 'failed'",
                (builder,),
            )
        }
        models: dict[str, str] = {}
        training: set[str] = set()
        for start in range(0, len(train_keys), 500):
            batch = train_keys[start : start + 500]
            marks = ",".join("?" * len(batch))
            for r in self._query(
                f"SELECT train_key, state, model_id FROM models WHERE train_key IN ({marks})"
                " ORDER BY finished",
                tuple(batch),
            ):
                if r["state"] == JobState.SUCCESS:
                    models[r["train_key"]] = r["model_id"]
                elif r["state"] in ACTIVE_STATES:
                    training.add(r["train_key"])
        return CatalogView(images, models, frozenset(training))

    # -- jobs and models ----------------------------------------------------------------------
    def add_job(self, job: Job, models: list[Model] = ()) -> None:  # type: ignore[assignment]
        with self._tx() as db:
            db.execute(
                "INSERT INTO jobs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    job.id,
                    job.kind,
                    job.workspace,
                    job.deploy_id,
                    job.state.value,
                    job.created,
                    job.started,
                    job.finished,
                    job.source,
                    job.data,
                    job.image,
                    job.author,
                    int(job.hyperopt),
                    job.parallelism,
                    job.reason,
                    job.lock,
                ),
            )
            db.executemany(
                "INSERT INTO models VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                [
                    (
                        m.job_id,
                        m.index,
                        m.train_key,
                        json.dumps(m.params),
                        m.state.value,
                        m.model_id,
                        m.output_tree,
                        json.dumps(m.metrics),
                        m.started,
                        m.finished,
                        m.reason,
                        m.node,
                    )
                    for m in models
                ],
            )

    def update_job(self, job_id: str, **fields: Any) -> None:
        _update(self, "jobs", "id = ?", (job_id,), fields)

    def job(self, job_id: str) -> Job:
        rows = self._query("SELECT * FROM jobs WHERE id = ?", (job_id,))
        if not rows:
            raise NotFound(f"no job {job_id}", "list jobs with 'kaos train list'")
        return _job(rows[0])

    def find_job(self, prefix: str) -> Job:
        like = prefix.strip().lower().replace("%", "").replace("_", "") + "%"
        ids = [r["id"] for r in self._query("SELECT id FROM jobs WHERE id LIKE ?", (like,))]
        return self.job(resolve_prefix(prefix, ids, "job"))

    def jobs(self, workspace: str, kind: str | None = None) -> list[Job]:
        sql = "SELECT * FROM jobs WHERE workspace = ?" + (" AND kind = ?" if kind else "")
        args = (workspace, kind) if kind else (workspace,)
        return [_job(r) for r in self._query(sql + " ORDER BY created DESC, rowid DESC", args)]

    def update_model(self, job_id: str, index: int, **fields: Any) -> None:
        _update(self, "models", "job_id = ? AND ind = ?", (job_id, index), fields)

    def models(self, job_id: str) -> list[Model]:
        return [
            _model(r)
            for r in self._query("SELECT * FROM models WHERE job_id = ? ORDER BY ind", (job_id,))
        ]

    def find_model(self, model_id_prefix: str) -> Model:
        like = model_id_prefix.strip().lower().replace("%", "") + "%"
        rows = self._query(
            "SELECT * FROM models WHERE model_id LIKE ? AND state = ? ORDER BY finished DESC",
            (like, JobState.SUCCESS.value),
        )
        by_id = {r["model_id"]: r for r in rows}
        return _model(by_id[resolve_prefix(model_id_prefix, by_id, "model")])

    # -- serving: endpoints point at revisions, revisions at models ----------------------------
    def put_endpoint(self, endpoint: Endpoint) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO endpoints"
                " (workspace, name, state, revision, follow, options, created, reason)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    endpoint.workspace,
                    endpoint.name,
                    endpoint.state.value,
                    endpoint.revision,
                    endpoint.follow,
                    json.dumps(endpoint.options.to_json()),
                    endpoint.created,
                    endpoint.reason,
                ),
            )

    def endpoint(self, workspace: str, name: str) -> Endpoint | None:
        rows = self._query(
            "SELECT * FROM endpoints WHERE workspace = ? AND name = ?", (workspace, name)
        )
        return _endpoint(rows[0]) if rows else None

    def endpoints(self, workspace: str | None = None) -> list[Endpoint]:
        if workspace is None:
            return [_endpoint(r) for r in self._query("SELECT * FROM endpoints ORDER BY name")]
        rows = self._query(
            "SELECT * FROM endpoints WHERE workspace = ? ORDER BY name", (workspace,)
        )
        return [_endpoint(r) for r in rows]

    def add_revision(self, revision: Revision) -> Revision:
        """Store a new revision; its id is the catalog's (the one given is ignored)."""
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO revisions (workspace, name, model_id, state, cause, created, parent,"
                " previous_model, metric, value, previous_value)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    revision.workspace,
                    revision.name,
                    revision.model_id,
                    revision.state.value,
                    revision.cause.value,
                    revision.created,
                    revision.parent,
                    revision.previous_model,
                    revision.metric,
                    revision.value,
                    revision.previous_value,
                ),
            )
        return self.revision(cur.lastrowid or 0)

    def update_revision(self, revision_id: int, **fields: Any) -> None:
        unknown = set(fields) - _REVISION_COLUMNS
        if unknown:
            raise ValueError(f"cannot update {sorted(unknown)} of revisions")
        values = [
            v.value if isinstance(v, RevisionState) else json.dumps(v) if isinstance(v, dict) else v
            for v in fields.values()
        ]
        sets = ", ".join(f"{name} = ?" for name in fields)
        with self._tx() as db:
            db.execute(f"UPDATE revisions SET {sets} WHERE id = ?", (*values, revision_id))

    def revision(self, revision_id: int) -> Revision:
        rows = self._query("SELECT * FROM revisions WHERE id = ?", (revision_id,))
        if not rows:
            raise NotFound(f"no revision {revision_id}")
        return _revision(rows[0])

    def revisions(self, workspace: str, name: str) -> list[Revision]:
        rows = self._query(
            "SELECT * FROM revisions WHERE workspace = ? AND name = ? ORDER BY id",
            (workspace, name),
        )
        return [_revision(r) for r in rows]

    # -- browsing (the dashboard and scripts): pages of a workspace's history -----------------
    def model_rows(self, workspace: str, query: ModelQuery) -> tuple[int, list[ModelRow]]:
        """(how many match, one page of them) across the workspace's jobs, ordered in SQL so a
        page of thousands of models costs one indexed query."""
        where = ["j.workspace = ?"]
        args: list[Any] = [workspace]
        if query.states:
            where.append(f"m.state IN ({','.join('?' * len(query.states))})")
            args += query.states
        for f in query.filters:
            where.append(f"json_extract(m.{f.field.group}, ?) {f.op} ?")
            args += [f.field.json_path, f.value]
        sql_from = " FROM models m JOIN jobs j ON j.id = m.job_id WHERE " + " AND ".join(where)
        total = self._db().execute("SELECT COUNT(*)" + sql_from, args).fetchone()[0]
        field, direction = query.sort, "DESC" if query.descending else "ASC"
        order_args: list[Any] = []
        if field.group:
            key = f"json_extract(m.{field.group}, ?)"
            order_args = [field.json_path, field.json_path]
        else:
            key = {"created": "j.created", "finished": "m.finished", "model_id": "m.model_id"}[
                field.name
            ]
        rows = self._query(
            "SELECT m.*, j.workspace AS workspace, j.deploy_id AS deploy_id, "
            "j.created AS job_created, j.source AS source, j.data AS data, j.author AS author"
            + sql_from
            + f" ORDER BY ({key} IS NULL), {key} {direction}, j.created {direction},"
            f" j.rowid {direction}, m.ind {direction} LIMIT ? OFFSET ?",
            (*args, *order_args, query.limit, query.offset),
        )
        return total, [_model_row(r) for r in rows]

    def model_values(self, workspace: str) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
        """Every model's (metrics, params) in a workspace: what the column summaries need."""
        rows = self._query(
            "SELECT m.metrics, m.params FROM models m JOIN jobs j ON j.id = m.job_id"
            " WHERE j.workspace = ?",
            (workspace,),
        )
        return [(json.loads(r["metrics"]), json.loads(r["params"])) for r in rows]

    def deploys_page(self, workspace: str, limit: int, offset: int) -> tuple[int, list[Deploy]]:
        """(how many, one page of them newest first)."""
        total = self._query("SELECT COUNT(*) FROM deploys WHERE workspace = ?", (workspace,))[0][0]
        rows = self._query(
            "SELECT * FROM deploys WHERE workspace = ? ORDER BY id DESC LIMIT ? OFFSET ?",
            (workspace, limit, offset),
        )
        return total, [_deploy(r) for r in rows]

    def jobs_of_deploys(self, deploy_ids: list[int]) -> dict[int, list[Job]]:
        found: dict[int, list[Job]] = {i: [] for i in deploy_ids}
        if deploy_ids:
            marks = ",".join("?" * len(deploy_ids))
            for r in self._query(
                f"SELECT * FROM jobs WHERE deploy_id IN ({marks}) ORDER BY created, rowid",
                tuple(deploy_ids),
            ):
                found[r["deploy_id"]].append(_job(r))
        return found

    # -- recovery and checks ------------------------------------------------------------------
    def fail_interrupted(self, reason: str) -> int:
        """After a restart nothing is running: mark what was left active as failed."""
        now = time.time()
        with self._tx() as db:
            marks = ",".join("?" * len(ACTIVE_STATES))
            db.execute(
                f"UPDATE models SET state = ?, reason = ?, finished = ? WHERE state IN ({marks})",
                (JobState.FAILURE.value, reason, now, *ACTIVE_STATES),
            )
            cur = db.execute(
                f"UPDATE jobs SET state = ?, reason = ?, finished = ? WHERE state IN ({marks})",
                (JobState.FAILURE.value, reason, now, *ACTIVE_STATES),
            )
            db.execute("DELETE FROM images WHERE state = ?", (ImageState.BUILDING.value,))
            return cur.rowcount

    def referenced_trees(self) -> set[str]:
        """Every tree the catalog points at: what gc keeps and verify checks."""
        trees: set[str] = set()
        for ws in self.workspaces():
            trees.update(t for t in (ws.inputs.source, ws.inputs.data) if t)
        for row in self._query(
            "SELECT source, data FROM jobs UNION SELECT inputs, NULL FROM deploys"
            " UNION SELECT lock, NULL FROM jobs UNION SELECT lock, NULL FROM images"
        ):
            for value in row:
                if value and value.startswith("{"):
                    inputs = TrainingInputs.from_json(json.loads(value))
                    trees.update(t for t in (inputs.source, inputs.data) if t)
                elif value:
                    trees.add(value)
        trees.update(
            r[0]
            for r in self._query("SELECT output_tree FROM models WHERE output_tree IS NOT NULL")
        )
        return trees

    def check_integrity(self) -> list[str]:
        problems = [r[0] for r in self._query("PRAGMA integrity_check") if r[0] != "ok"]
        problems += [f"foreign key: {tuple(r)}" for r in self._query("PRAGMA foreign_key_check")]
        return problems


_ADDED_COLUMNS = (("images", "lock"), ("jobs", "lock"))
_JOB_COLUMNS = {"state", "started", "finished", "image", "reason", "lock"}
_MODEL_COLUMNS = {
    "state",
    "model_id",
    "output_tree",
    "metrics",
    "started",
    "finished",
    "reason",
    "node",
}


_REVISION_COLUMNS = {"state", "started", "stopped", "port", "pid", "reason", "stats"}


def _update(
    catalog: SqliteCatalog, table: str, where: str, key: tuple[Any, ...], fields: dict[str, Any]
) -> None:
    allowed = _JOB_COLUMNS if table == "jobs" else _MODEL_COLUMNS
    unknown = set(fields) - allowed
    if unknown:
        raise ValueError(f"cannot update {sorted(unknown)} of {table}")
    values = [
        v.value if isinstance(v, JobState) else json.dumps(v) if isinstance(v, dict) else v
        for v in fields.values()
    ]
    sets = ", ".join(f"{name} = ?" for name in fields)
    with catalog._tx() as db:
        db.execute(f"UPDATE {table} SET {sets} WHERE {where}", (*values, *key))


def _column_value(value: Any) -> Any:
    if isinstance(value, JobState):
        return value.value
    return json.dumps(value) if isinstance(value, dict) else value


def _workspace(r: sqlite3.Row) -> Workspace:
    return Workspace(r["name"], r["created"], TrainingInputs.from_json(json.loads(r["inputs"])))


def _deploy(r: sqlite3.Row) -> Deploy:
    return Deploy(
        r["id"],
        r["workspace"],
        r["author"],
        r["time"],
        TrainingInputs.from_json(json.loads(r["inputs"])),
        json.loads(r["changed"]),
        bool(r["force"]),
    )


def _job(r: sqlite3.Row) -> Job:
    return Job(
        r["id"],
        r["kind"],
        r["workspace"],
        r["deploy_id"],
        JobState(r["state"]),
        r["created"],
        r["started"],
        r["finished"],
        r["source"],
        r["data"],
        r["image"],
        r["author"],
        bool(r["hyperopt"]),
        r["parallelism"],
        r["reason"],
        r["lock"],
    )


def _model(r: sqlite3.Row) -> Model:
    return Model(
        r["job_id"],
        r["ind"],
        r["train_key"],
        json.loads(r["params"]),
        JobState(r["state"]),
        r["model_id"],
        r["output_tree"],
        json.loads(r["metrics"]),
        r["started"],
        r["finished"],
        r["reason"],
        r["node"],
    )


def _endpoint(r: sqlite3.Row) -> Endpoint:
    return Endpoint(
        workspace=r["workspace"],
        name=r["name"],
        state=EndpointState(r["state"]),
        revision=r["revision"],
        follow=r["follow"],
        options=ServeOptions.from_json(json.loads(r["options"])),
        created=r["created"],
        reason=r["reason"],
    )


def _revision(r: sqlite3.Row) -> Revision:
    return Revision(
        id=r["id"],
        workspace=r["workspace"],
        name=r["name"],
        model_id=r["model_id"],
        state=RevisionState(r["state"]),
        cause=Cause(r["cause"]),
        created=r["created"],
        parent=r["parent"],
        started=r["started"],
        stopped=r["stopped"],
        port=r["port"],
        pid=r["pid"],
        previous_model=r["previous_model"],
        metric=r["metric"],
        value=r["value"],
        previous_value=r["previous_value"],
        reason=r["reason"],
        stats=json.loads(r["stats"] or "{}"),
    )


def _model_row(r: sqlite3.Row) -> ModelRow:
    return ModelRow(
        _model(r),
        r["workspace"],
        r["deploy_id"],
        r["job_created"],
        r["source"],
        r["data"],
        r["author"],
    )
