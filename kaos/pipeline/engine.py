"""The engine: turns deploys into jobs by the plan, runs them in the background, answers
for their state. Decisions come from `plan` (pure); this module only carries them out.

Jobs are recorded queued and run by whichever replica claims them (see `leases`): the one
that recorded them claims at once while it has a free slot; a heartbeat renews the leases of
what runs here, passes on kill requests and ships logs, and claims what other replicas left
(queued while they were busy, or held by one that died).
"""

from __future__ import annotations

import contextlib
import functools
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from kaos.errors import (
    BuildFailed,
    ConfigError,
    JobFinished,
    KaosError,
    Killed,
    LockBusy,
    LockError,
    ObjectNotFound,
)
from kaos.pipeline.bundles import data_bundle_name, source_bundle_name
from kaos.pipeline.catalog import Catalog
from kaos.pipeline.db import acquire_by, deadline_after, seconds_left
from kaos.pipeline.envspec import base_only_note, env_spec
from kaos.pipeline.executor import BuildRequest, Cancel, Executor, JobLog, TrainRequest
from kaos.pipeline.ids import image_name, model_id, new_job_id
from kaos.pipeline.inputs import InputsChange, TrainingInputs, train_seed
from kaos.pipeline.leases import Claim, Leases, Replica
from kaos.pipeline.logs import JobLogs
from kaos.pipeline.manifest import parse_manifest
from kaos.pipeline.plan import Plan, TrainTask, plan, tasks_for
from kaos.pipeline.records import Deploy, Image, Job, Model
from kaos.pipeline.remote_data import fetch_manifest
from kaos.pipeline.reproduce import ReproducePlan, plan_reproduce, resume_reproduce
from kaos.pipeline.states import ImageState, JobKind, JobState, overall_state
from kaos.store import ContentStore

RESTART_REASON = "the server stopped while this job was running; deploy again to retry"


@dataclass(frozen=True)
class DeployResult:
    deploy: Deploy
    plan: Plan
    image: Image | None
    build_job: Job | None = None
    train_job: Job | None = None
    names: dict[str, str] = field(default_factory=dict)  # "source"/"data" -> bundle folder name
    notes: tuple[str, ...] = ()  # what the user should know, e.g. an environment without packages


class Pipeline:
    def __init__(
        self,
        catalog: Catalog,
        store: ContentStore,
        executor: Executor,
        logs: JobLogs,
        max_parallel: int = 2,
        tmp: Path | None = None,
        leases: Leases | None = None,
        replica: Replica | None = None,
        lock_wait_s: float | None = None,
    ) -> None:
        self.catalog = catalog
        self.store = store
        self.executor = executor
        self.logs = logs
        self.tmp = tmp or Path(tempfile.gettempdir()) / "kaos"  # downloads land here first
        self.leases = leases or Leases()
        self.replica = replica or Replica.here(str(self.tmp), time.time())
        self.max_parallel = max(1, max_parallel)
        self._slots = threading.BoundedSemaphore(self.max_parallel)
        self._deploy_lock = threading.RLock()
        self.lock_wait_s = lock_wait_s  # a deploy's wait for the locks (None: as long as it takes)
        self._claim_lock = threading.RLock()  # guards _cancels and _threads with claiming
        self._cancels: dict[str, Cancel] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._stopping = threading.Event()
        self._heartbeat: threading.Thread | None = None
        self._ended: set[str] = set()  # dead replicas whose leftovers were ended here
        self._lost: set[str] = set()  # running here, but their lease went to another replica

    def recover(self) -> int:
        """At start-up: jobs an earlier run of this server (same machine and home) left running
        are failed, with the reason recorded, and what they left behind (processes,
        containers, folders) is ended. Other replicas' jobs are left to them, or to the claim
        of whoever sees their lease expire. Refused while that earlier run still lives."""
        now = time.time()
        earlier = [
            r for r in self.catalog.replicas()
            if r.id != self.replica.id and r.same_place(self.replica)
        ]  # fmt: skip
        alive = [r for r in earlier if not r.gone(now, self.leases.lease_s)]
        if alive:
            raise ConfigError(
                f"another kaos server (pid {alive[0].pid}) runs with this home",
                "give every replica its own KAOS_HOME (they share the catalog and the store)",
            )
        self.catalog.register_replica(self.replica)
        self.executor.recover()
        return self.catalog.fail_abandoned([r.id for r in earlier], RESTART_REASON)

    def live_peers(self) -> int:
        """How many other replicas on this catalog are alive."""
        now = time.time()
        return sum(
            1
            for r in self.catalog.replicas()
            if r.id != self.replica.id and not r.gone(now, self.leases.lease_s)
        )

    def start(self) -> None:
        """Start the heartbeat: leases, kill requests, log shipping, claiming others' jobs."""
        with self._claim_lock:
            if self._heartbeat is None and not self._stopping.is_set():
                self._heartbeat = threading.Thread(
                    target=self._beat_loop, name="kaos-heartbeat", daemon=True
                )
                self._heartbeat.start()

    # -- deploys ----------------------------------------------------------------------------
    def deploy(
        self,
        workspace: str,
        change: InputsChange,
        author: str,
        force: bool = False,
        parallelism: int = 1,
        refresh_env: bool = False,
        manifest: str | None = None,
        recheck: Callable[[], object] | None = None,
    ) -> DeployResult:
        """Record the deploy and start what it invalidates. `refresh_env` resolves the
        source's requirements again (a new lock, so a new environment) and retrains; a
        `manifest` (JSON lines of url, path) is downloaded into the store as the data.
        `recheck` runs under the workspace's lock, before anything is recorded: the caller's
        access, asked again (the workspace may have been deleted, or made anew by someone
        else, while its data downloaded)."""
        force = force or refresh_env
        if manifest is not None and change.data is not None:
            raise KaosError("deploy either a data folder (-d) or a manifest (-m), not both")
        if change.empty and manifest is None and not force:
            raise KaosError("nothing to deploy", "pass -s SOURCE, -d DATA and/or -h GRID")
        if parallelism < 1:
            raise KaosError("parallelism (-p) must be at least 1")
        self.catalog.workspace(workspace)  # an unknown workspace is the first thing to report
        if manifest is not None:
            tree = fetch_manifest(self.store, parse_manifest(manifest), self.tmp)
            change = replace(change, data=tree.digest)
        names = self._bundle_names(change)
        self.catalog.name_bundles({getattr(change, kind): name for kind, name in names.items()})
        with self._deploying(workspace):
            if recheck is not None:
                recheck()
            current = self.catalog.workspace(workspace).inputs
            if change.empty and manifest is None and not (current.source or current.data):
                raise KaosError(  # --force or --refresh-env alone: there is nothing to redo
                    "nothing to deploy: the workspace has no source or data yet",
                    "pass -s SOURCE and -d DATA",
                )
            inputs = current.merged(change)
            changed: dict[str, Any] = {
                "source": change.source,
                "data": change.data,
                "grid": change.grid.to_json() if change.grid else None,
                "resources": change.resources.to_json() if change.resources else None,
                "parallelism": parallelism,
            }
            if refresh_env:
                changed["refresh_env"] = True
            deploy = self.catalog.record_deploy(workspace, author, inputs, changed, force)
            result = self._advance(
                workspace, inputs, deploy, force, parallelism, names, refresh_env
            )
        return replace(result, notes=self._notes(change, names))

    def _notes(self, change: InputsChange, names: dict[str, str]) -> tuple[str, ...]:
        if change.source is None:
            return ()
        spec = env_spec(self.store.get_tree(change.source), names["source"])
        return (base_only_note(spec),) if spec.empty else ()

    def _bundle_names(self, change: InputsChange) -> dict[str, str]:
        """Validate the deployed bundles (complete in the store, right shape); their names."""
        names = {}
        if change.source:
            self._check_complete(change.source, "source")
            names["source"] = self._bundle_name(change.source, "source")
        if change.data:
            self._check_complete(change.data, "data")
            names["data"] = self._bundle_name(change.data, "data")
        return names

    @contextlib.contextmanager
    def _deploying(self, workspace: str) -> Iterator[None]:
        """This server's deploy lock, then the workspace's (every server's), both within one
        wait of `lock_wait_s`: a deploy past its client's patience would happen unseen."""
        deadline = deadline_after(self.lock_wait_s)
        if not acquire_by(self._deploy_lock, deadline):
            raise LockBusy(
                "this server is busy: another deploy holds its deploy lock",
                "try again in a moment",
            )
        try:  # one wait for both locks, not one each: the client's patience is for the request
            with self.catalog.workspace_lock(workspace, seconds_left(deadline)):
                yield
        finally:
            self._deploy_lock.release()

    def _check_complete(self, digest: str, kind: str) -> None:
        try:
            absent = self.store.absent_from(digest)
        except ObjectNotFound:
            raise KaosError(
                f"the {kind} bundle {digest[:5]} was never uploaded",
                f"deploy it from its folder with {'-s' if kind == 'source' else '-d'}",
            ) from None
        if absent:
            raise KaosError(
                f"the {kind} bundle {digest[:5]} is incomplete: "
                f"{len(absent)} files were not uploaded",
                "deploy again to upload them",
            )

    @functools.lru_cache(maxsize=1024)  # noqa: B019 (one engine per server; names are pure)
    def _bundle_name(self, digest: str, kind: str) -> str:
        """A bundle's folder name (and shape check): a function of its tree, so asked once."""
        if kind == "source":
            return source_bundle_name(self.store.get_tree(digest))
        # A data tree may list a million files: named by its top-level names, which the store
        # remembers from the completeness check (`_check_complete`), so it is read once.
        return data_bundle_name(self.store.top_level(digest))

    def _advance(
        self,
        workspace: str,
        inputs: TrainingInputs,
        deploy: Deploy,
        force: bool,
        parallelism: int,
        names: dict[str, str] | None = None,
        refresh_env: bool = False,
    ) -> DeployResult:
        """Plan against the catalog and start what the plan says (under the deploy lock)."""
        names = dict(names or {})
        if inputs.source and "source" not in names:
            names["source"] = self._bundle_name(inputs.source, "source")
        self._forget_vanished_image(inputs.source)
        view = self.catalog.view(self.executor.kind, [t.key for t in tasks_for(inputs)])
        decided = plan(inputs, view, force, rebuild=refresh_env)
        build_job = train_job = None
        if decided.build:
            build_job = self._start_build(
                workspace, deploy, decided.build, names["source"], refresh_env
            )
        image = self.catalog.image(inputs.source, self.executor.kind) if inputs.source else None
        if decided.train and image is not None and image.ref:
            train_job = self._start_train(
                workspace, deploy, inputs, decided.train, image, names, parallelism
            )
        if build_job is None and image is not None and image.state == ImageState.BUILDING:
            build_job = self.catalog.job(image.job_id)
        return DeployResult(deploy, decided, image, build_job, train_job, names)

    def _forget_vanished_image(self, source: str | None) -> None:
        if source is None:
            return
        image = self.catalog.image(source, self.executor.kind)
        if (
            image
            and image.state == ImageState.READY
            and not self.executor.image_exists(image.ref or "")
        ):
            self.catalog.set_image(
                Image(source, image.builder, ImageState.FAILED, image.job_id, None)
            )

    # -- builds -----------------------------------------------------------------------------
    def _start_build(
        self, workspace: str, deploy: Deploy, source: str, name: str, refresh_env: bool = False
    ) -> Job:
        job = Job(
            new_job_id(),
            JobKind.BUILD,
            workspace,
            deploy.id,
            JobState.STARTING,
            time.time(),
            source=source,
            author=deploy.author,
            image=image_name(name, source),
        )
        self.catalog.add_job(job)
        self.catalog.set_image(Image(source, self.executor.kind, ImageState.BUILDING, job.id, None))
        self._claim_more()
        return job

    def _run_build(self, job: Job, name: str, refresh_env: bool, cancel: Cancel) -> None:
        log = self.logs.writer(job.id)
        assert job.source is not None
        with self._slots:
            if cancel.killed:
                self._end_build(job, JobState.KILLED, "killed before it started")
                return
            self._update_job(job.id, state=JobState.RUNNING, started=time.time())
            try:
                request = BuildRequest(job.id, job.source, name, refresh_env=refresh_env)
                built = self.executor.build(request, log, cancel)
            except Killed:
                self._end_build(job, JobState.KILLED, "killed on request")
                return
            except (BuildFailed, LockError) as exc:  # a bad shipped lock is the user's, no crash
                log.write(f"kaos: build failed: {exc}\n")
                self._end_build(job, JobState.FAILURE, str(exc))
                return
            except Exception as exc:  # an executor bug must not leave the job running forever
                log.write(f"kaos: build crashed: {exc!r}\n")
                self._end_build(job, JobState.FAILURE, f"build crashed: {exc!r}")
                return
        if not self._owned(job.id):
            return  # taken over while building: the new owner records the image
        # The image is ready and the waiting trains exist before the build reads as finished,
        # so whoever follows this deploy never sees "all done" in between.
        self.catalog.set_image(
            Image(job.source, self.executor.kind, ImageState.READY, job.id, built.ref, built.lock)
        )
        self._update_job(job.id, lock=built.lock)
        self._start_waiting_trains(job.source)
        self._finish_job(job.id, state=JobState.SUCCESS, finished=time.time())

    def _end_build(self, job: Job, state: JobState, reason: str) -> None:
        """A build that made no image: the failure is recorded, never cached (plan retries)."""
        assert job.source is not None
        if not self._owned(job.id):
            return
        self.catalog.set_image(
            Image(job.source, self.executor.kind, ImageState.FAILED, job.id, None)
        )
        self._finish_job(job.id, state=state, finished=time.time(), reason=reason)

    def _start_waiting_trains(self, source: str) -> None:
        """A finished build starts the trains of every workspace whose current source it is."""
        with self._deploy_lock:
            for name in [w.name for w in self.catalog.workspaces_using_source(source)]:
                with self.catalog.workspace_lock(name):
                    ws = self.catalog.workspace(name)
                    deploys = self.catalog.deploys(ws.name)
                    if ws.inputs.source != source or not deploys or ws.inputs.data is None:
                        continue
                    last = deploys[-1]
                    parallelism = int(last.changed.get("parallelism") or 1)
                    # a forced deploy (--force, --refresh-env) whose trains waited for this
                    # build retrains them in the new image instead of answering with old models
                    self._advance(ws.name, ws.inputs, last, last.force, parallelism)

    # -- trains -----------------------------------------------------------------------------
    def _start_train(
        self,
        workspace: str,
        deploy: Deploy,
        inputs: TrainingInputs,
        tasks: tuple[TrainTask, ...],
        image: Image,
        names: dict[str, str],
        parallelism: int,
    ) -> Job:
        assert inputs.source and inputs.data
        job = Job(
            new_job_id(),
            JobKind.TRAIN,
            workspace,
            deploy.id,
            JobState.STARTING,
            time.time(),
            source=inputs.source,
            data=inputs.data,
            image=image.ref,
            author=deploy.author,
            hyperopt=inputs.grid is not None,
            parallelism=parallelism,
            lock=image.lock,
        )
        models = [
            Model(job.id, i, t.key, dict(t.params) if t.params else None, JobState.STARTING)
            for i, t in enumerate(tasks)
        ]
        self.catalog.add_job(job, models)
        self._claim_more()
        return job

    def _run_train(self, job: Job, inputs: TrainingInputs, name: str, cancel: Cancel) -> None:
        """Train every model of the job not yet finished (a job taken over keeps the models
        its earlier run finished)."""
        log = self.logs.writer(job.id)
        models = [m for m in self.catalog.models(job.id) if not m.state.finished]
        several = len(self.catalog.models(job.id)) > 1
        job = self._with_image(job, name, log, cancel)
        if models:
            with ThreadPoolExecutor(max_workers=min(job.parallelism, len(models))) as pool:
                for model in models:
                    model_log = log.with_prefix(f"[{model.index}] ") if several else log
                    pool.submit(self._run_model, job, model, inputs, name, model_log, cancel)
        if not self._owned(job.id):
            return
        states = [m.state for m in self.catalog.models(job.id)]
        final = overall_state(states, cancel.killed)
        reason = None
        if final == JobState.FAILURE:
            failed = [m for m in self.catalog.models(job.id) if m.state == JobState.FAILURE]
            reason = (
                failed[0].reason
                if len(failed) == 1
                else f"{len(failed)} of {len(states)} models failed"
            )
        self._finish_job(job.id, state=final, finished=time.time(), reason=reason)

    def _with_image(self, job: Job, name: str, log: JobLog, cancel: Cancel) -> Job:
        """The job, with an image this replica has: one built elsewhere (another replica's
        home) is made again here from its stored lock, a lookup when it exists."""
        if not job.image or not job.source or self.executor.image_exists(job.image):
            return job
        log.write("kaos: making the environment on this replica from its stored lock\n")
        try:
            with self._slots:
                request = BuildRequest(job.id, job.source, name, lock=job.lock)
                built = self.executor.build(request, log, cancel)
        except Exception as exc:  # the models fail with it, each saying why
            log.write(f"kaos: could not make the environment here: {exc}\n")
            return job
        return replace(job, image=built.ref)

    def _run_model(
        self,
        job: Job,
        model: Model,
        inputs: TrainingInputs,
        name: str,
        log: JobLog,
        cancel: Cancel,
    ) -> None:
        with self._slots:
            if cancel.killed:
                self._end_model(job, model, JobState.KILLED, "killed before it started")
                return
            now = time.time()
            self._update_model(job.id, model.index, state=JobState.RUNNING, started=now)
            if self.catalog.job(job.id).started is None:
                self._update_job(job.id, state=JobState.RUNNING, started=now)
            request = TrainRequest(
                job.id, model.index, job.source or "", job.data or "", name, job.image or "",
                model.params, inputs.resources, job.lock, train_seed(model.train_key),
            )  # fmt: skip
            try:
                outcome = self.executor.train(request, log, cancel)
            except Killed:
                self._end_model(job, model, JobState.KILLED, "killed on request")
                return
            except KaosError as exc:  # TrainFailed, or a store error while collecting outputs
                log.write(f"kaos: train failed: {exc}\n")
                self._end_model(job, model, JobState.FAILURE, str(exc))
                return
            except Exception as exc:  # an executor bug must not leave a model running forever
                log.write(f"kaos: train crashed: {exc!r}\n")
                self._end_model(job, model, JobState.FAILURE, f"train crashed: {exc!r}")
                return
        self._update_model(
            job.id,
            model.index,
            state=JobState.SUCCESS,
            finished=time.time(),
            model_id=model_id(request.source, request.data, outcome.output_tree),
            output_tree=outcome.output_tree,
            metrics=outcome.metrics,
            node=outcome.node,
        )

    def _end_model(self, job: Job, model: Model, state: JobState, reason: str) -> None:
        self._update_model(job.id, model.index, state=state, finished=time.time(), reason=reason)

    # -- reproducing ---------------------------------------------------------------------------
    def reproduce(self, model_prefix: str, author: str) -> Job:
        """Retrain a model from what was stored for it, in the background (see `reproduce`)."""
        todo = plan_reproduce(self.catalog, self.store, model_prefix, author)
        self.catalog.add_job(todo.job, [todo.model])
        self._claim_more()
        return todo.job

    def _run_reproduce(self, todo: ReproducePlan, cancel: Cancel) -> None:
        job, log = todo.job, self.logs.writer(todo.job.id)
        assert job.source and job.data
        log.write(f"kaos: reproducing model {todo.original.model_id}\n")
        with self._slots:
            now = time.time()
            self._update_job(job.id, state=JobState.RUNNING, started=now)
            self._update_model(job.id, 0, state=JobState.RUNNING, started=now)
            state, reason = JobState.SUCCESS, None
            try:
                build = BuildRequest(job.id, job.source, todo.bundle_name, lock=job.lock)
                built = self.executor.build(build, log, cancel)
                request = TrainRequest(
                    job.id, 0, job.source, job.data, todo.bundle_name, built.ref,
                    todo.original.params, todo.resources, built.lock,
                    train_seed(todo.original.train_key),
                )  # fmt: skip
                outcome = self.executor.train(request, log, cancel)
            except Killed:
                state, reason = JobState.KILLED, "killed on request"
            except KaosError as exc:
                state, reason = JobState.FAILURE, str(exc)
            except Exception as exc:  # an executor bug must not leave the job running forever
                state, reason = JobState.FAILURE, f"reproduce crashed: {exc!r}"
        now = time.time()
        if state == JobState.SUCCESS:
            self._update_model(
                job.id, 0, state=state, finished=now, output_tree=outcome.output_tree,
                metrics=outcome.metrics, node=outcome.node,
            )  # fmt: skip
        else:
            log.write(f"kaos: reproduce failed: {reason}\n")
            self._update_model(job.id, 0, state=state, finished=now, reason=reason)
        self._finish_job(job.id, state=state, finished=now, reason=reason)

    # -- claiming and running ------------------------------------------------------------------
    def _claim_more(self) -> None:
        """Claim queued (or abandoned) jobs while this replica has free slots, and run each in
        its own thread. Called where work appears here (a deploy, a job's end) and on every
        heartbeat, for what other replicas left."""
        with self._claim_lock:
            while not self._stopping.is_set() and len(self._threads) < self.max_parallel:
                now = time.time()
                claim = self.catalog.claim_job(self.replica.id, now, now + self.leases.lease_s)
                if claim is None:
                    return
                self._spawn(claim.job_id, self._run_claimed, claim)
        self.start()

    def _run_claimed(self, claim: Claim, cancel: Cancel) -> None:
        """Run a claimed job from what the catalog holds for it (so any replica can)."""
        job = self.catalog.job(claim.job_id)
        try:
            if claim.previous_owner is not None:
                self._take_over(job, claim.previous_owner)
            if claim.kill_requested:
                cancel.kill()  # asked to die while its owner was dying: end it the usual way
            if job.kind == JobKind.BUILD:
                assert job.source is not None
                refresh = bool(job.deploy_id and self._deploy_changed(job, "refresh_env"))
                self._run_build(job, self._source_name(job.source), refresh, cancel)
            elif job.kind == JobKind.TRAIN:
                assert job.source is not None and job.deploy_id is not None
                inputs = self.catalog.deploy(job.deploy_id).inputs
                self._run_train(job, inputs, self._source_name(job.source), cancel)
            else:
                self._run_reproduce(resume_reproduce(self.catalog, self.store, job), cancel)
        except Exception as exc:  # a job that cannot even start must not stay claimed forever
            print(f"kaos: job {job.id} could not run: {exc!r}", file=sys.stderr, flush=True)
            self._finish_job(job.id, state=JobState.FAILURE, finished=time.time(), reason=f"{exc}")

    def _take_over(self, job: Job, previous: str) -> None:
        """A job whose owner let it go (stopping) or stopped renewing its lease: say so in its
        log, end what a dead owner left running if it ran on this machine, and run the
        unfinished models again."""
        log = self.logs.writer(job.id)
        log.write(
            f"kaos: replica {previous} no longer holds this job (it stopped, or stopped "
            f"renewing its lease); replica {self.replica.id} runs it again\n"
        )
        self.logs.ship(job.id)
        dead = self.catalog.replica(previous)
        if (
            dead is not None
            and dead.id not in self._ended
            and dead.gone(time.time(), self.leases.lease_s)
            and dead.host == self.replica.host
            and dead.home != self.replica.home
        ):
            self._ended.add(dead.id)
            self.executor.recover(Path(dead.home))  # its processes, containers, folders
        for model in self.catalog.models(job.id):
            if not model.state.finished:
                self._update_model(
                    job.id, model.index, state=JobState.STARTING, started=None, finished=None
                )

    def _deploy_changed(self, job: Job, key: str) -> Any:
        assert job.deploy_id is not None
        return self.catalog.deploy(job.deploy_id).changed.get(key)

    def _source_name(self, source: str) -> str:
        return self.catalog.bundle_name(source) or self._bundle_name(source, "source")

    def _owned(self, job_id: str) -> bool:
        return job_id not in self._lost

    def _update_job(self, job_id: str, **fields: Any) -> None:
        if self._owned(job_id):
            self.catalog.update_job(job_id, fence=self.replica.id, **fields)

    def _update_model(self, job_id: str, index: int, **fields: Any) -> None:
        if self._owned(job_id):
            self.catalog.update_model(job_id, index, fence=self.replica.id, **fields)

    def _finish_job(self, job_id: str, **fields: Any) -> None:
        """The job's last record: its log shipped first, so a reader who sees it finished
        has every line."""
        self.logs.close(job_id, ship=self._owned(job_id))
        self._update_job(job_id, **fields)

    # -- the heartbeat ----------------------------------------------------------------------------
    def _beat_loop(self) -> None:
        while not self._stopping.wait(self.leases.heartbeat_s):
            try:
                self.beat()
            except Exception as exc:  # a catalog hiccup: the next beat tries again
                print(f"kaos: heartbeat failed: {exc!r}", file=sys.stderr, flush=True)

    def beat(self) -> None:
        """Ship logs, renew the leases of what runs here, act on kill requests and lost
        leases, then claim what is waiting."""
        with self._claim_lock:
            running = dict(self._cancels)
        self.logs.ship_all()
        now = time.time()
        renewal = self.catalog.renew_leases(
            self.replica.id, list(running), now, now + self.leases.lease_s
        )
        for job_id in renewal.lost & running.keys():
            with self._claim_lock:
                if job_id not in self._cancels:
                    continue  # it has just ended here
                self._lost.add(job_id)
            self.logs.close(job_id, ship=False)
            running[job_id].kill()
        for job_id in renewal.kill & running.keys():
            running[job_id].kill()
        self._claim_more()

    # -- running, killing, waiting ------------------------------------------------------------
    def _spawn(self, job_id: str, target: Callable[..., None], *args: Any) -> None:
        """Run a job in its own thread (under the claim lock); it is forgotten here once it
        has recorded its end, so a long-lived server holds only the jobs that run, and its
        slot goes to the next waiting job at once."""
        cancel = Cancel()

        def run() -> None:
            try:
                target(*args, cancel)
            finally:
                with self._claim_lock:
                    self._cancels.pop(job_id, None)
                    self._threads.pop(job_id, None)
                    self._lost.discard(job_id)
                with contextlib.suppress(Exception):  # the heartbeat claims it later
                    self._claim_more()

        thread = threading.Thread(target=run, name=f"kaos-job-{job_id[:8]}", daemon=True)
        self._cancels[job_id] = cancel
        self._threads[job_id] = thread
        thread.start()

    def kill(self, job_id_prefix: str) -> Job:
        """Kill a job wherever it runs: here at once; on another replica through the
        catalog, which its heartbeat reads within a second; queued, or held by a dead
        replica, recorded killed at once."""
        job = self.catalog.find_job(job_id_prefix)
        if job.state.finished:
            raise JobFinished(
                f"job {job.id} has already finished ({job.state.value}); nothing to kill"
            )
        cancel = self._cancels.get(job.id)
        if cancel is not None:
            cancel.kill()
        else:
            self.catalog.request_kill(job.id, time.time(), "killed on request")
        return job

    def shutdown(self, timeout: float = 15) -> None:
        """Stop what still runs (its processes too) so nothing outlives the server unrecorded:
        handed over to the other replicas when some are alive (they run it again at once, as
        after a lease), else recorded killed."""
        self._stopping.set()
        with self._claim_lock:
            running = dict(self._cancels)
        handing_over = bool(running) and self.live_peers() > 0
        for job_id, cancel in running.items():
            if handing_over:
                self.logs.ship(job_id)
                self.logs.writer(job_id).write(
                    f"kaos: replica {self.replica.id} is stopping; another replica runs this "
                    "job again\n"
                )
                self.logs.close(job_id)
                self._lost.add(job_id)  # its run writes nothing more
            cancel.kill()
        deadline = time.time() + timeout
        for thread in list(self._threads.values()):
            thread.join(max(0.0, deadline - time.time()))
        if handing_over:
            self.catalog.release_jobs(self.replica.id, list(running))
        if self._heartbeat is not None:
            self._heartbeat.join(max(0.0, deadline - time.time()))

    def wait(self, job_id: str, timeout: float | None = None) -> Job:
        thread = self._threads.get(job_id)
        if thread is not None:
            thread.join(timeout)
        return self.catalog.job(job_id)

    def wait_all(self, timeout: float = 600) -> None:
        """Until nothing runs here and nothing waits that this replica could claim."""
        deadline = time.time() + timeout
        while True:
            with self._claim_lock:
                alive = [t for t in self._threads.values() if t.is_alive()]
            if not alive:
                self._claim_more()
                with self._claim_lock:
                    if not self._threads:
                        return
                continue
            alive[0].join(max(0.0, deadline - time.time()))
            if time.time() >= deadline:
                raise TimeoutError("jobs still running")
