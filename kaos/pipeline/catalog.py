"""The catalog: workspaces, deploys, images, jobs and models in SQLite (WAL, busy timeout).

`Catalog` is the small interface the engine uses; `SqliteCatalog` is its only implementation
today, so another database can replace it without touching the engine.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from kaos.errors import NotFound, WorkspaceBusy
from kaos.pipeline.browse import Column, ModelQuery, ModelRow
from kaos.pipeline.ids import resolve_prefix
from kaos.pipeline.inputs import TrainingInputs
from kaos.pipeline.plan import CatalogView
from kaos.pipeline.records import Deploy, Image, Job, Model, Workspace
from kaos.pipeline.rows import (
    DEPLOYS,
    ENDPOINTS,
    IMAGES,
    JOBS,
    MODELS,
    REVISIONS,
    WORKSPACES,
    Table,
)
from kaos.pipeline.states import ACTIVE_STATES, ImageState, JobState
from kaos.serving.records import Endpoint, EndpointState, Revision

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
CREATE TABLE IF NOT EXISTS bundles (digest TEXT PRIMARY KEY, name TEXT NOT NULL);
"""
ADDED_COLUMNS = (("images", "lock"), ("jobs", "lock"))  # added after catalogs were in use

# What may change after a row is written (everything else is fixed at insert).
UPDATABLE = {
    "jobs": {"state", "started", "finished", "image", "reason", "lock"},
    "models": {"state", "model_id", "output_tree", "metrics", "started", "finished", "reason"}
    | {"node"},
    "revisions": {"state", "started", "stopped", "port", "pid", "reason", "stats"},
}


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
    def add_job(self, job: Job, models: Sequence[Model] = ...) -> None: ...
    def update_job(self, job_id: str, **fields: Any) -> None: ...
    def job(self, job_id: str) -> Job: ...
    def find_job(self, prefix: str) -> Job: ...
    def jobs(self, workspace: str, kind: str | None = None) -> list[Job]: ...
    def update_model(self, job_id: str, index: int, **fields: Any) -> None: ...
    def models(self, job_id: str) -> list[Model]: ...
    def find_model(self, model_id_prefix: str) -> Model: ...
    def workspaces_using_source(self, source: str) -> list[Workspace]: ...
    def name_bundles(self, names: dict[str, str]) -> None: ...
    def bundle_name(self, digest: str) -> str | None: ...
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
        for table, column in ADDED_COLUMNS:
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
                WORKSPACES.insert(db, [Workspace(name, time.time())])
        return self.workspace(name)

    def workspace(self, name: str) -> Workspace:
        rows = self._query("SELECT * FROM workspaces WHERE name = ?", (name,))
        if not rows:
            raise NotFound(
                f"no workspace named {name!r}", "create it with 'kaos workspace create -n NAME'"
            )
        return WORKSPACES.of(rows[0])

    def workspaces(self) -> list[Workspace]:
        return [WORKSPACES.of(r) for r in self._query("SELECT * FROM workspaces ORDER BY name")]

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
        deploy = Deploy(0, workspace, author, time.time(), inputs, changed, force)
        with self._tx() as db:
            deploy_id = DEPLOYS.insert_one(db, deploy)
            db.execute(
                "UPDATE workspaces SET inputs = :inputs WHERE name = :name",
                WORKSPACES.values({"inputs": inputs, "name": workspace}),
            )
        return replace(deploy, id=deploy_id)

    def deploys(self, workspace: str) -> list[Deploy]:
        rows = self._query("SELECT * FROM deploys WHERE workspace = ? ORDER BY id", (workspace,))
        return [DEPLOYS.of(r) for r in rows]

    def deploy(self, deploy_id: int) -> Deploy:
        rows = self._query("SELECT * FROM deploys WHERE id = ?", (deploy_id,))
        if not rows:
            raise NotFound(f"no deploy {deploy_id}")
        return DEPLOYS.of(rows[0])

    def workspaces_using_source(self, source: str) -> list[Workspace]:
        return [w for w in self.workspaces() if w.inputs.source == source]

    # -- bundle names: recorded at deploy, so listings never read a tree for a name ----------
    def name_bundles(self, names: dict[str, str]) -> None:
        """Remember each deployed bundle's folder name (a digest always has the same one)."""
        with self._tx() as db:
            db.executemany("INSERT OR IGNORE INTO bundles VALUES (?, ?)", names.items())

    def bundle_name(self, digest: str) -> str | None:
        rows = self._query("SELECT name FROM bundles WHERE digest = ?", (digest,))
        return str(rows[0]["name"]) if rows else None

    # -- images -------------------------------------------------------------------------------
    def image(self, source: str, builder: str) -> Image | None:
        rows = self._query(
            "SELECT * FROM images WHERE source = ? AND builder = ?", (source, builder)
        )
        return IMAGES.of(rows[0]) if rows else None

    def set_image(self, image: Image) -> None:
        with self._tx() as db:
            IMAGES.insert(db, [image], verb="INSERT OR REPLACE")

    def view(self, builder: str, train_keys: list[str]) -> CatalogView:
        images = {
            r["source"]: ImageState(r["state"])
            for r in self._query(
                "SELECT source, state FROM images WHERE builder = ? AND state != ?",
                (builder, ImageState.FAILED.value),
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
    def add_job(self, job: Job, models: Sequence[Model] = ()) -> None:
        with self._tx() as db:
            JOBS.insert(db, [job])
            MODELS.insert(db, models)

    def update_job(self, job_id: str, **fields: Any) -> None:
        self._update(JOBS, {"id": job_id}, fields)

    def job(self, job_id: str) -> Job:
        rows = self._query("SELECT * FROM jobs WHERE id = ?", (job_id,))
        if not rows:
            raise NotFound(f"no job {job_id}", "list jobs with 'kaos train list'")
        return JOBS.of(rows[0])

    def find_job(self, prefix: str) -> Job:
        like = prefix.strip().lower().replace("%", "").replace("_", "") + "%"
        ids = [r["id"] for r in self._query("SELECT id FROM jobs WHERE id LIKE ?", (like,))]
        return self.job(resolve_prefix(prefix, ids, "job"))

    def jobs(self, workspace: str, kind: str | None = None) -> list[Job]:
        sql = "SELECT * FROM jobs WHERE workspace = ?" + (" AND kind = ?" if kind else "")
        args = (workspace, kind) if kind else (workspace,)
        return [JOBS.of(r) for r in self._query(sql + " ORDER BY created DESC, rowid DESC", args)]

    def update_model(self, job_id: str, index: int, **fields: Any) -> None:
        self._update(MODELS, {"job_id": job_id, "index": index}, fields)

    def models(self, job_id: str) -> list[Model]:
        return [
            MODELS.of(r)
            for r in self._query("SELECT * FROM models WHERE job_id = ? ORDER BY ind", (job_id,))
        ]

    def find_model(self, model_id_prefix: str) -> Model:
        like = model_id_prefix.strip().lower().replace("%", "") + "%"
        rows = self._query(
            "SELECT * FROM models WHERE model_id LIKE ? AND state = ? ORDER BY finished DESC",
            (like, JobState.SUCCESS.value),
        )
        by_id = {r["model_id"]: r for r in rows}
        return MODELS.of(by_id[resolve_prefix(model_id_prefix, by_id, "model")])

    # -- serving: endpoints point at revisions, revisions at models ----------------------------
    def put_endpoint(self, endpoint: Endpoint) -> None:
        with self._tx() as db:
            ENDPOINTS.insert(db, [endpoint], verb="INSERT OR REPLACE")

    def endpoint(self, workspace: str, name: str) -> Endpoint | None:
        rows = self._query(
            "SELECT * FROM endpoints WHERE workspace = ? AND name = ?", (workspace, name)
        )
        return ENDPOINTS.of(rows[0]) if rows else None

    def endpoints(self, workspace: str | None = None) -> list[Endpoint]:
        if workspace is None:
            return [ENDPOINTS.of(r) for r in self._query("SELECT * FROM endpoints ORDER BY name")]
        rows = self._query(
            "SELECT * FROM endpoints WHERE workspace = ? ORDER BY name", (workspace,)
        )
        return [ENDPOINTS.of(r) for r in rows]

    def add_revision(self, revision: Revision) -> Revision:
        """Store a new revision; its id is the catalog's (the one given is ignored)."""
        with self._tx() as db:
            revision_id = REVISIONS.insert_one(db, revision)
        return self.revision(revision_id)

    def update_revision(self, revision_id: int, **fields: Any) -> None:
        self._update(REVISIONS, {"id": revision_id}, fields)

    def revision(self, revision_id: int) -> Revision:
        rows = self._query("SELECT * FROM revisions WHERE id = ?", (revision_id,))
        if not rows:
            raise NotFound(f"no revision {revision_id}")
        return REVISIONS.of(rows[0])

    def revisions(self, workspace: str, name: str) -> list[Revision]:
        rows = self._query(
            "SELECT * FROM revisions WHERE workspace = ? AND name = ? ORDER BY id",
            (workspace, name),
        )
        return [REVISIONS.of(r) for r in rows]

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

    def model_columns(self, workspace: str) -> list[Column]:
        """Every metric and hyperparameter of the workspace's models: does it differ between
        them (a value missing on some models counts), is it numeric, its range. Summed up by
        SQLite's json_each in one pass, so 1,000 models cost milliseconds."""
        per_group = """
            SELECT '{group}' AS grp, e.key AS name, COUNT(DISTINCT e.value) AS distinct_values,
                COUNT(*) AS present, SUM(e.type NOT IN ('integer', 'real')) AS non_numeric,
                MIN(CASE WHEN e.type IN ('integer', 'real') THEN e.value END) AS low,
                MAX(CASE WHEN e.type IN ('integer', 'real') THEN e.value END) AS high
            FROM models m JOIN jobs j ON j.id = m.job_id, json_each(m.{group}) e
            WHERE j.workspace = ? AND json_type(m.{group}) = 'object' GROUP BY e.key"""
        total = self._query(
            "SELECT COUNT(*) FROM models m JOIN jobs j ON j.id = m.job_id WHERE j.workspace = ?",
            (workspace,),
        )[0][0]
        rows = self._query(
            per_group.format(group="metrics")
            + " UNION ALL "
            + per_group.format(group="params")
            + " ORDER BY grp, name",
            (workspace, workspace),
        )
        return [
            Column(
                r["grp"],
                r["name"],
                r["distinct_values"] > 1 or r["present"] < total,
                not r["non_numeric"],
                r["low"],
                r["high"],
            )
            for r in rows
        ]

    def deploys_page(self, workspace: str, limit: int, offset: int) -> tuple[int, list[Deploy]]:
        """(how many, one page of them newest first)."""
        total = self._query("SELECT COUNT(*) FROM deploys WHERE workspace = ?", (workspace,))[0][0]
        rows = self._query(
            "SELECT * FROM deploys WHERE workspace = ? ORDER BY id DESC LIMIT ? OFFSET ?",
            (workspace, limit, offset),
        )
        return total, [DEPLOYS.of(r) for r in rows]

    def jobs_of_deploys(self, deploy_ids: list[int]) -> dict[int, list[Job]]:
        found: dict[int, list[Job]] = {i: [] for i in deploy_ids}
        if deploy_ids:
            marks = ",".join("?" * len(deploy_ids))
            for r in self._query(
                f"SELECT * FROM jobs WHERE deploy_id IN ({marks}) ORDER BY created, rowid",
                tuple(deploy_ids),
            ):
                found[r["deploy_id"]].append(JOBS.of(r))
        return found

    def _update(self, table: Table[Any], key: dict[str, Any], changes: dict[str, Any]) -> None:
        """Set a few fields of one row; only those that change after insert may."""
        unknown = set(changes) - UPDATABLE[table.name]
        if unknown:
            raise ValueError(f"cannot update {sorted(unknown)} of {table.name}")
        values = table.values(changes)
        keys = {f"key_{column}": value for column, value in table.values(key).items()}
        sets = ", ".join(f"{column} = :{column}" for column in values)
        where = " AND ".join(f"{name[4:]} = :{name}" for name in keys)
        with self._tx() as db:
            db.execute(f"UPDATE {table.name} SET {sets} WHERE {where}", {**values, **keys})

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
            "SELECT source, data, lock FROM jobs UNION SELECT lock, NULL, NULL FROM images"
        ):
            trees.update(t for t in row if t)
        for deploy in self._query("SELECT * FROM deploys"):
            inputs = DEPLOYS.of(deploy).inputs
            trees.update(t for t in (inputs.source, inputs.data) if t)
        trees.update(
            r[0]
            for r in self._query("SELECT output_tree FROM models WHERE output_tree IS NOT NULL")
        )
        return trees

    def check_integrity(self) -> list[str]:
        problems = [r[0] for r in self._query("PRAGMA integrity_check") if r[0] != "ok"]
        problems += [f"foreign key: {tuple(r)}" for r in self._query("PRAGMA foreign_key_check")]
        return problems


def _model_row(r: sqlite3.Row) -> ModelRow:
    return ModelRow(
        MODELS.of(r),
        r["workspace"],
        r["deploy_id"],
        r["job_created"],
        r["source"],
        r["data"],
        r["author"],
    )
