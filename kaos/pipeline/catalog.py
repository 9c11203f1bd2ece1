"""The catalog: workspaces, deploys, images, jobs, models, endpoints and revisions, in SQLite
(the embedded default: one file, WAL) or PostgreSQL (a team's: several servers, one catalog).

`Catalog` is the small interface the engine uses; `SqlCatalog` implements it once for both
databases (`db.py` hides their differences, `migrations/` holds the one schema).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Collection, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol, cast

from kaos.errors import ConfigError, LockBusy, NotFound, WorkspaceBusy
from kaos.pipeline.browse import Column, ModelQuery, ModelRow
from kaos.pipeline.db import (
    Args,
    PostgresDatabase,
    Row,
    SqliteDatabase,
    Tx,
)
from kaos.pipeline.ids import resolve_prefix
from kaos.pipeline.inputs import TrainingInputs
from kaos.pipeline.leases import Claim, Renewal, Replica
from kaos.pipeline.migrations import migrate
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

# A metric's or parameter's JSON value by path (`$."name"`, the argument): NULL when absent
# or null, numbers as numbers. PostgreSQL compares JSON with JSON, so the value given is made one.
_JSON_VALUE = {
    "sqlite": "json_extract({column}, ?)",
    "postgresql": "NULLIF(jsonb_path_query_first(CAST({column} AS jsonb), CAST(? AS jsonpath)),"
    " 'null')",
}
_JSON_COMPARED = {  # [is the value a number]
    "sqlite": {True: "?", False: "?"},
    "postgresql": {
        True: "to_jsonb(CAST(? AS DOUBLE PRECISION))",
        False: "to_jsonb(CAST(? AS TEXT))",
    },
}
# Every key of a JSON column ({group}) over a workspace's models: how many distinct values,
# how many models have it, how many of its values are not numbers, the numbers' range.
_COLUMNS_SQL = {
    "sqlite": """
            SELECT '{group}' AS grp, e.key AS name, COUNT(DISTINCT e.value) AS distinct_values,
                COUNT(*) AS present, SUM(e.type NOT IN ('integer', 'real')) AS non_numeric,
                MIN(CASE WHEN e.type IN ('integer', 'real') THEN e.value END) AS low,
                MAX(CASE WHEN e.type IN ('integer', 'real') THEN e.value END) AS high
            FROM models m JOIN jobs j ON j.id = m.job_id, json_each(m.{group}) e
            WHERE j.workspace = ? AND json_type(m.{group}) = 'object' GROUP BY e.key""",
    "postgresql": """
            SELECT '{group}' AS grp, e.key AS name, COUNT(DISTINCT e.value) AS distinct_values,
                COUNT(*) AS present,
                SUM(CASE WHEN jsonb_typeof(e.value) = 'number' THEN 0 ELSE 1 END) AS non_numeric,
                MIN(CASE WHEN jsonb_typeof(e.value) = 'number'
                    THEN CAST(e.value AS DOUBLE PRECISION) END) AS low,
                MAX(CASE WHEN jsonb_typeof(e.value) = 'number'
                    THEN CAST(e.value AS DOUBLE PRECISION) END) AS high
            FROM models m JOIN jobs j ON j.id = m.job_id
            CROSS JOIN LATERAL jsonb_each(CASE WHEN jsonb_typeof(CAST(m.{group} AS jsonb))
                = 'object' THEN CAST(m.{group} AS jsonb) ELSE '{{}}' END) e
            WHERE j.workspace = ? GROUP BY e.key""",
}

# What may change after a row is written (everything else is fixed at insert).
UPDATABLE = {
    "jobs": {"state", "started", "finished", "image", "reason", "lock"},
    "models": {"state", "model_id", "output_tree", "metrics", "started", "finished", "reason"}
    | {"node"},
    "revisions": {"state", "started", "stopped", "port", "pid", "reason", "stats"},
}


class Catalog(Protocol):
    def create_workspace(self, name: str, owner: str | None = None) -> Workspace: ...
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
    def update_job(self, job_id: str, fence: str | None = None, **fields: Any) -> None: ...
    def job(self, job_id: str) -> Job: ...
    def find_job(self, prefix: str, among: Collection[str] | None = None) -> Job: ...
    def jobs(self, workspace: str, kind: str | None = None) -> list[Job]: ...
    def update_model(
        self, job_id: str, index: int, fence: str | None = None, **fields: Any
    ) -> None: ...
    def models(self, job_id: str) -> list[Model]: ...
    def find_model(self, model_id_prefix: str, among: Collection[str] | None = None) -> Model: ...
    def workspaces_using_source(self, source: str) -> list[Workspace]: ...
    def name_bundles(self, names: dict[str, str]) -> None: ...
    def bundle_name(self, digest: str) -> str | None: ...
    def fail_abandoned(self, owners: Sequence[str], reason: str) -> int: ...
    def register_replica(self, replica: Replica) -> None: ...
    def replicas(self) -> list[Replica]: ...
    def replica(self, replica_id: str) -> Replica | None: ...
    def claim_job(self, replica: str, now: float, until: float) -> Claim | None: ...
    def renew_leases(
        self, replica: str, job_ids: Sequence[str], now: float, until: float
    ) -> Renewal: ...
    def request_kill(self, job_id: str, now: float, reason: str) -> bool: ...
    def release_jobs(self, replica: str, job_ids: Sequence[str]) -> None: ...
    def append_log(self, job_id: str, start: int, data: bytes) -> None: ...
    def read_log(self, job_id: str, start: int, limit: int) -> bytes: ...
    def log_size(self, job_id: str) -> int: ...
    def check_integrity(self) -> list[str]: ...
    def referenced_trees(self) -> set[str]: ...
    def transaction(self) -> AbstractContextManager[Tx]: ...
    def workspace_lock(
        self, name: str, wait_s: float | None = None
    ) -> AbstractContextManager[None]: ...


class SqlCatalog:
    """The catalog on either database (see db.py): the same queries, one schema (migrations/),
    brought up to date when opened."""

    def __init__(self, db: SqliteDatabase | PostgresDatabase) -> None:
        self.db = db
        try:
            migrate(db)
        except BaseException:  # refused or failed: let go of the connections
            db.close()
            raise

    def transaction(self) -> AbstractContextManager[Tx]:
        """One write transaction (SQLite: every other writer waits; PostgreSQL: rows are
        locked with SELECT ... FOR UPDATE [SKIP LOCKED], which SQLite ignores)."""
        return cast(AbstractContextManager[Tx], self.db.transaction())

    @contextmanager
    def workspace_lock(self, name: str, wait_s: float | None = None) -> Iterator[None]:
        """Held while a deploy plans and records: one at a time per workspace, across every
        server process on this catalog (PostgreSQL: an advisory lock; SQLite: a file lock).
        A request waits `wait_s` at most (LockBusy): its client gives up after a while, and a
        deploy that went on after that would happen unseen."""
        entered = False
        try:
            with self.db.lock(f"workspace:{name}", wait_s):
                entered = True
                yield
        except LockBusy:
            if entered:  # another lock, taken inside
                raise
            raise LockBusy(
                f"workspace {name!r} is busy: another deploy or delete holds it",
                "try again in a moment",
            ) from None

    def close(self) -> None:
        self.db.close()

    def _query(self, sql: str, args: Args = ()) -> list[Row]:
        with self.db.reading() as tx:
            return tx.rows(sql, args)

    # -- workspaces and deploys ----------------------------------------------------------------
    def create_workspace(self, name: str, owner: str | None = None) -> Workspace:
        """The workspace of that name, made (owned by `owner`) unless it exists already."""
        with self.transaction() as db:
            made = Workspace(name, time.time(), owner=owner)
            WORKSPACES.insert(db, [made], on_conflict="DO NOTHING")
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
        with self.transaction() as db:
            db.execute("SELECT name FROM workspaces WHERE name = ? FOR UPDATE", (name,))
            active = db.value(
                f"SELECT COUNT(*) FROM jobs WHERE workspace = ? AND state IN ({marks})",
                (name, *ACTIVE_STATES),
            )
            if active:
                raise WorkspaceBusy(
                    f"workspace {name!r} has {active} running jobs",
                    "kill them first with 'kaos train kill -j JOB'",
                )
            serving = db.value(
                "SELECT COUNT(*) FROM endpoints WHERE workspace = ? AND state IN (?, ?)",
                (name, EndpointState.STARTING.value, EndpointState.RUNNING.value),
            )
            if serving:
                raise WorkspaceBusy(
                    f"workspace {name!r} still serves {serving} endpoint(s)",
                    "stop them first with 'kaos serve kill -n NAME'",
                )
            db.execute("DELETE FROM revisions WHERE workspace = ?", (name,))
            db.execute("DELETE FROM endpoints WHERE workspace = ?", (name,))
            for table in ("models", "job_logs"):
                db.execute(
                    f"DELETE FROM {table} WHERE job_id IN"
                    " (SELECT id FROM jobs WHERE workspace = ?)",
                    (name,),
                )
            db.execute("DELETE FROM jobs WHERE workspace = ?", (name,))
            db.execute("DELETE FROM deploys WHERE workspace = ?", (name,))
            db.execute("DELETE FROM shares WHERE workspace = ?", (name,))
            db.execute("DELETE FROM workspaces WHERE name = ?", (name,))

    # -- sharing: who besides the owner may read or write a workspace -------------------------
    def shares(self, workspace: str | None = None) -> dict[str, dict[str, str]]:
        """workspace -> {member: role}, for one workspace or all (one query for a listing)."""
        sql, args = "SELECT * FROM shares", tuple[str, ...]()
        if workspace is not None:
            sql, args = sql + " WHERE workspace = ?", (workspace,)
        found: dict[str, dict[str, str]] = {}
        for r in self._query(sql + " ORDER BY workspace, member", args):
            found.setdefault(r["workspace"], {})[r["member"]] = r["role"]
        return found

    def share(self, workspace: str, member: str, role: str) -> None:
        """Give `member` a role on the workspace (replacing the one they had)."""
        self.workspace(workspace)
        with self.transaction() as db:
            db.execute(
                "INSERT INTO shares (workspace, member, role) VALUES (?, ?, ?)"
                " ON CONFLICT (workspace, member) DO UPDATE SET role = excluded.role",
                (workspace, member, role),
            )

    def unshare(self, workspace: str, member: str) -> bool:
        """Take the member's role away; False if they had none."""
        self.workspace(workspace)
        with self.transaction() as db:
            changed = db.execute(
                "DELETE FROM shares WHERE workspace = ? AND member = ?", (workspace, member)
            )
        return changed > 0

    def workspaces_referencing(self, digest: str) -> set[str]:
        """The workspaces whose jobs, models, inputs or endpoints name this tree (a source,
        data, lock, output or serve source): who may read it by hash. Jobs and models are
        looked up by index; workspaces and endpoints are few."""
        found = {
            r[0]
            for r in self._query(
                "SELECT workspace FROM jobs WHERE source = ? OR data = ? OR lock = ?"
                " UNION SELECT j.workspace FROM models m JOIN jobs j ON j.id = m.job_id"
                " WHERE m.output_tree = ?",
                (digest, digest, digest, digest),
            )
        }
        for r in self._query(  # current inputs not yet used by a job (a data-only deploy)
            "SELECT * FROM workspaces WHERE inputs LIKE ?", (f"%{digest}%",)
        ):
            inputs = WORKSPACES.of(r).inputs
            if digest in (inputs.source, inputs.data):
                found.add(r["name"])
        found.update(e.workspace for e in self.endpoints() if e.options.serve_source == digest)
        return found

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
        with self.transaction() as db:
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
        with self.transaction() as db:
            db.executemany(
                "INSERT INTO bundles VALUES (?, ?) ON CONFLICT DO NOTHING", list(names.items())
            )

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
        with self.transaction() as db:
            IMAGES.insert(db, [image], on_conflict="REPLACE")

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
        with self.transaction() as db:
            JOBS.insert(db, [job])
            MODELS.insert(db, models)

    def update_job(self, job_id: str, fence: str | None = None, **fields: Any) -> None:
        """`fence`: write only while that replica owns the job (a lost lease writes nothing)."""
        owned = " AND owner = :fence" if fence else ""
        self._update(JOBS, {"id": job_id}, fields, owned, fence)

    def job(self, job_id: str) -> Job:
        rows = self._query("SELECT * FROM jobs WHERE id = ?", (job_id,))
        if not rows:
            raise NotFound(f"no job {job_id}", "list jobs with 'kaos train list'")
        return JOBS.of(rows[0])

    def find_job(self, prefix: str, among: Collection[str] | None = None) -> Job:
        """The job whose id starts with `prefix`, of the workspaces `among` if given."""
        like = prefix.strip().lower().replace("%", "").replace("_", "") + "%"
        sql, args = _among("SELECT id FROM jobs WHERE id LIKE ?", [like], "workspace", among)
        ids = [r["id"] for r in self._query(sql, args)]
        return self.job(resolve_prefix(prefix, ids, "job"))

    def jobs(self, workspace: str, kind: str | None = None) -> list[Job]:
        sql = "SELECT * FROM jobs WHERE workspace = ?" + (" AND kind = ?" if kind else "")
        args = (workspace, kind) if kind else (workspace,)
        return [JOBS.of(r) for r in self._query(sql + " ORDER BY created DESC, rowid DESC", args)]

    def update_model(
        self, job_id: str, index: int, fence: str | None = None, **fields: Any
    ) -> None:
        owned = " AND job_id IN (SELECT id FROM jobs WHERE owner = :fence)" if fence else ""
        self._update(MODELS, {"job_id": job_id, "index": index}, fields, owned, fence)

    def models(self, job_id: str) -> list[Model]:
        return [
            MODELS.of(r)
            for r in self._query("SELECT * FROM models WHERE job_id = ? ORDER BY ind", (job_id,))
        ]

    def find_model(self, model_id_prefix: str, among: Collection[str] | None = None) -> Model:
        """The successful model whose id starts with the prefix, of the workspaces `among` if
        given."""
        like = model_id_prefix.strip().lower().replace("%", "") + "%"
        sql, args = _among(
            "SELECT m.* FROM models m JOIN jobs j ON j.id = m.job_id"
            " WHERE m.model_id LIKE ? AND m.state = ?",
            [like, JobState.SUCCESS.value],
            "j.workspace",
            among,
        )
        rows = self._query(sql + " ORDER BY m.finished DESC", args)
        by_id = {r["model_id"]: r for r in rows}
        return MODELS.of(by_id[resolve_prefix(model_id_prefix, by_id, "model")])

    # -- serving: endpoints point at revisions, revisions at models ----------------------------
    def put_endpoint(self, endpoint: Endpoint) -> None:
        with self.transaction() as db:
            ENDPOINTS.insert(db, [endpoint], on_conflict="REPLACE")

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
        with self.transaction() as db:
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
            value = _JSON_VALUE[self.db.dialect.name].format(column=f"m.{f.field.group}")
            compared = _JSON_COMPARED[self.db.dialect.name][isinstance(f.value, float)]
            where.append(f"{value} {f.op} {compared}")
            args += [f.field.json_path, f.value]
        sql_from = " FROM models m JOIN jobs j ON j.id = m.job_id WHERE " + " AND ".join(where)
        total = self._query("SELECT COUNT(*)" + sql_from, args)[0][0]
        field, direction = query.sort, "DESC" if query.descending else "ASC"
        order_args: list[Any] = []
        if field.group:
            key = _JSON_VALUE[self.db.dialect.name].format(column=f"m.{field.group}")
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
        the database's JSON functions in one pass, so 1,000 models cost milliseconds."""
        per_group = _COLUMNS_SQL[self.db.dialect.name]
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

    def _update(
        self,
        table: Table[Any],
        key: dict[str, Any],
        changes: dict[str, Any],
        extra_where: str = "",
        fence: str | None = None,
    ) -> None:
        """Set a few fields of one row; only those that change after insert may."""
        unknown = set(changes) - UPDATABLE[table.name]
        if unknown:
            raise ValueError(f"cannot update {sorted(unknown)} of {table.name}")
        values = table.values(changes)
        keys = {f"key_{column}": value for column, value in table.values(key).items()}
        sets = ", ".join(f"{column} = :{column}" for column in values)
        where = " AND ".join(f"{name[4:]} = :{name}" for name in keys)
        args = {**values, **keys, **({"fence": fence} if fence else {})}
        with self.transaction() as db:
            db.execute(f"UPDATE {table.name} SET {sets} WHERE {where}{extra_where}", args)

    # -- recovery and checks ------------------------------------------------------------------
    def fail_abandoned(self, owners: Sequence[str], reason: str) -> int:
        """Fail the active jobs of replicas known dead (earlier runs of this server), and jobs
        running without an owner (recorded before leases existed); their unfinished models and
        images being built go with them. Queued jobs stay, to be claimed."""
        now = time.time()
        marks = ",".join("?" * len(ACTIVE_STATES))
        owned = f"owner IN ({','.join('?' * len(owners))})" if owners else "1 = 0"
        with self.transaction() as db:
            ids = [
                r[0]
                for r in db.rows(
                    f"SELECT id FROM jobs WHERE state IN ({marks})"
                    f" AND ({owned} OR (owner IS NULL AND state = ?))",
                    (*ACTIVE_STATES, *owners, JobState.RUNNING.value),
                )
            ]
            for start in range(0, len(ids), 500):
                batch = ids[start : start + 500]
                these = ",".join("?" * len(batch))
                db.execute(
                    f"UPDATE models SET state = ?, reason = ?, finished = ?"
                    f" WHERE job_id IN ({these}) AND state IN ({marks})",
                    (JobState.FAILURE.value, reason, now, *batch, *ACTIVE_STATES),
                )
                db.execute(
                    f"UPDATE jobs SET state = ?, reason = ?, finished = ? WHERE id IN ({these})",
                    (JobState.FAILURE.value, reason, now, *batch),
                )
                db.execute(
                    f"DELETE FROM images WHERE state = ? AND job_id IN ({these})",
                    (ImageState.BUILDING.value, *batch),
                )
            if owners:  # known dead: forgotten
                db.execute(f"DELETE FROM replicas WHERE {owned.replace('owner', 'id')}", owners)
        return len(ids)

    # -- replicas: leases on jobs and kill requests (see kaos/pipeline/leases.py) ------------
    def register_replica(self, replica: Replica) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO replicas (id, host, pid, home, started, seen)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET seen = excluded.seen",
                (replica.id, replica.host, replica.pid, replica.home, replica.started,
                 replica.seen),
            )  # fmt: skip

    def replicas(self) -> list[Replica]:
        return [_replica(r) for r in self._query("SELECT * FROM replicas ORDER BY started")]

    def replica(self, replica_id: str) -> Replica | None:
        rows = self._query("SELECT * FROM replicas WHERE id = ?", (replica_id,))
        return _replica(rows[0]) if rows else None

    def claim_job(self, replica: str, now: float, until: float) -> Claim | None:
        """Take the oldest job nobody holds (queued, or its owner's lease expired) for
        `replica`, in one transaction: two replicas never claim the same job (SQLite: one
        writer at a time; PostgreSQL: the row locked, and skipped by other claimers). A job
        running without an owner was left by a server from before leases: start-up fails it."""
        marks = ",".join("?" * len(ACTIVE_STATES))
        where = (
            f"state IN ({marks})"
            " AND ((owner IS NULL AND state = ?) OR (owner IS NOT NULL AND lease_until < ?))"
        )
        args = (*ACTIVE_STATES, JobState.STARTING.value, now)
        if not self._query(f"SELECT 1 FROM jobs WHERE {where} LIMIT 1", args):
            return None  # the common case, answered without a write transaction
        with self.transaction() as db:
            row = db.one(
                f"SELECT id, owner, kill_requested FROM jobs WHERE {where}"
                " ORDER BY created, id LIMIT 1 FOR UPDATE SKIP LOCKED",
                args,
            )
            if row is None:
                return None
            db.execute(
                "UPDATE jobs SET owner = ?, lease_until = ? WHERE id = ?",
                (replica, until, row["id"]),
            )
        return Claim(row["id"], row["owner"], bool(row["kill_requested"]))

    def renew_leases(
        self, replica: str, job_ids: Sequence[str], now: float, until: float
    ) -> Renewal:
        """Extend the leases `replica` holds on `job_ids`; say which were asked to die and
        which are no longer its own."""
        ids = list(job_ids)
        marks = ",".join("?" * len(ids))
        with self.transaction() as db:
            db.execute("UPDATE replicas SET seen = ? WHERE id = ?", (now, replica))
            if ids:
                db.execute(
                    f"UPDATE jobs SET lease_until = ? WHERE owner = ? AND id IN ({marks})",
                    (until, replica, *ids),
                )
        if not ids:
            return Renewal(frozenset(), frozenset())
        rows = self._query(
            f"SELECT id, owner, state, kill_requested FROM jobs WHERE id IN ({marks})", ids
        )
        return Renewal(
            frozenset(r["id"] for r in rows if r["kill_requested"]),
            frozenset(
                r["id"] for r in rows if r["owner"] != replica or r["state"] not in ACTIVE_STATES
            ),
        )

    def release_jobs(self, replica: str, job_ids: Sequence[str]) -> None:
        """A stopping replica's jobs, claimable by the others at once (its lease ends now)."""
        if not job_ids:
            return
        marks = ",".join("?" * len(job_ids))
        with self.transaction() as db:
            db.execute(
                f"UPDATE jobs SET lease_until = 0 WHERE owner = ? AND id IN ({marks})",
                (replica, *job_ids),
            )

    def request_kill(self, job_id: str, now: float, reason: str) -> bool:
        """Ask the owner to kill a job; a job nobody holds (queued, or its owner's lease
        expired) is recorded killed at once. Whether it was."""
        marks = ",".join("?" * len(ACTIVE_STATES))
        with self.transaction() as db:
            held = db.one(
                f"SELECT id FROM jobs WHERE id = ? AND state IN ({marks})"
                " AND owner IS NOT NULL AND lease_until >= ? FOR UPDATE",
                (job_id, *ACTIVE_STATES, now),
            )
            if held is not None:
                db.execute("UPDATE jobs SET kill_requested = 1 WHERE id = ?", (job_id,))
                return False
            for table, key in (("models", "job_id"), ("jobs", "id")):
                db.execute(
                    f"UPDATE {table} SET state = ?, finished = ?, reason = ?"
                    f" WHERE {key} = ? AND state IN ({marks})",
                    (JobState.KILLED.value, now, reason, job_id, *ACTIVE_STATES),
                )
            db.execute(
                "DELETE FROM images WHERE state = ? AND job_id = ?",
                (ImageState.BUILDING.value, job_id),
            )
        return True

    # -- job logs, in chunks every replica can read -------------------------------------------
    def append_log(self, job_id: str, start: int, data: bytes) -> None:
        """Store the bytes at `start` of a job's log (once: a second writer there is ignored)."""
        with self.transaction() as db:
            db.execute(
                "INSERT INTO job_logs (job_id, start, data) VALUES (?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                (job_id, start, data),
            )

    def read_log(self, job_id: str, start: int, limit: int) -> bytes:
        """Up to `limit` bytes of a job's log from byte `start`."""
        rows = self._query(
            "SELECT start, data FROM job_logs WHERE job_id = ? AND start + length(data) > ?"
            " ORDER BY start LIMIT 256",
            (job_id, start),
        )
        out = bytearray()
        for row in rows:
            at = start + len(out)
            if row["start"] > at or len(out) >= limit:
                break  # a gap (a chunk still being written) ends this read
            out += bytes(row["data"])[at - row["start"] :]
        return bytes(out[:limit])

    def log_size(self, job_id: str) -> int:
        rows = self._query(
            "SELECT MAX(start + length(data)) FROM job_logs WHERE job_id = ?", (job_id,)
        )
        return int(rows[0][0] or 0)

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
        """SQLite's own checks of its file; PostgreSQL checks as it writes (and is backed up
        and checked by its administrators' tools)."""
        if self.db.dialect.name != "sqlite":
            return []
        problems = [r[0] for r in self._query("PRAGMA integrity_check") if r[0] != "ok"]
        problems += [f"foreign key: {tuple(r)}" for r in self._query("PRAGMA foreign_key_check")]
        return problems


def _replica(r: Row) -> Replica:
    return Replica(r["id"], r["host"], r["pid"], r["home"], r["started"], r["seen"])


def _model_row(r: Row) -> ModelRow:
    return ModelRow(
        MODELS.of(r),
        r["workspace"],
        r["deploy_id"],
        r["job_created"],
        r["source"],
        r["data"],
        r["author"],
    )


class SqliteCatalog(SqlCatalog):
    """The embedded default: one SQLite file beside one server."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:  # a folder, another kind of file, no right to write: one line, not a traceback
            super().__init__(SqliteDatabase(self.path))
        except (sqlite3.DatabaseError, OSError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            where = getattr(exc, "filename", None)  # its lock folder, say, not the file itself
            if where is not None and Path(where) != self.path:
                reason = f"{where}: {reason}"
            raise ConfigError(
                f"cannot open the SQLite catalog {self.path}: {reason}",
                "pass --catalog (KAOS_CATALOG) a file kaos may create and write, "
                "or postgresql://USER:PASSWORD@HOST:PORT/DB",
            ) from None


class PostgresCatalog(SqlCatalog):
    """A team's catalog: any number of servers on one PostgreSQL database."""

    def __init__(self, url: str) -> None:
        db = PostgresDatabase(url)  # first: it says so when psycopg is missing
        import psycopg

        try:
            super().__init__(db)
        except psycopg.errors.InsufficientPrivilege as exc:  # one line, not a traceback
            user = psycopg.conninfo.conninfo_to_dict(url).get("user") or "USER"
            raise ConfigError(
                "the PostgreSQL catalog's user cannot set it up: "
                + (str(exc).strip().splitlines() or [type(exc).__name__])[0],
                f"give it a database it owns: CREATE DATABASE kaos OWNER {user}",
            ) from None


def open_catalog(location: str | Path) -> SqlCatalog:
    """`postgresql://USER:PASSWORD@HOST:PORT/DB` (or postgres://), else a SQLite file's path."""
    text = str(location)
    if text.startswith(("postgresql://", "postgres://")):
        return PostgresCatalog(text)
    if "://" in text:
        raise ConfigError(
            f"unknown catalog {text.split('://')[0]}://...",
            "use a file path (SQLite) or postgresql://USER:PASSWORD@HOST:PORT/DB",
        )
    return SqliteCatalog(Path(text))


def _among(
    sql: str, args: list[Any], column: str, among: Collection[str] | None
) -> tuple[str, list[Any]]:
    """`sql` narrowed to rows whose `column` is one of `among` (None: no narrowing)."""
    if among is None:
        return sql, args
    if not among:
        return sql + " AND 1 = 0", args
    return f"{sql} AND {column} IN ({','.join('?' * len(among))})", [*args, *among]
