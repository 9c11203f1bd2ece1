"""The serving manager: moves endpoint pointers and keeps their revision processes alive.

Decisions about *which* model to serve come from `follow` (pure) and the catalog; this module
only carries them out: a new revision is started on a free 127.0.0.1 port and gets traffic only
once it answers /ping; the old one drains (no request through the kaos route is in flight, then
the process finishes its own) before it stops. A crashed process is restarted on its port up to
MAX_RESTARTS times, then the endpoint is FAILED with the reason. After a server restart every
RUNNING endpoint is started again from the catalog.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from kaos.errors import KaosError, NotFound, NotServing, ObjectNotFound, ServeError
from kaos.executors.process import kill_leftover
from kaos.pipeline.bundles import serve_bundle_name, source_bundle_name
from kaos.pipeline.catalog import SqlCatalog
from kaos.pipeline.executor import BuildRequest, BuiltImage, Cancel
from kaos.pipeline.inputs import Resources, memory_bytes
from kaos.pipeline.logs import LogWriter
from kaos.pipeline.records import Model
from kaos.pipeline.states import JobState
from kaos.serving import process
from kaos.serving.follow import Metric, best
from kaos.serving.process import Address, Handle, Launch
from kaos.serving.records import (
    Cause,
    Endpoint,
    EndpointState,
    Revision,
    RevisionState,
    ServeOptions,
    numbers,
)
from kaos.store import ContentStore, Tree

MAX_RESTARTS = 3
READY_TIMEOUT_S = 60.0
DRAIN_TIMEOUT_S = 30.0
DIRECT_GRACE_S = 0.3  # for clients of the old revision's own port, after the route moved
FOLLOW_EVERY_S = 1.0
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class Environment:
    """What a revision runs in: the model's own, never changed by serving."""

    python: Path | None = None  # local: the environment's interpreter
    image: str | None = None  # docker: the image it trained in
    ray: dict[str, Any] | None = None  # ray: how a node makes it again (the stored lock)


@dataclass
class _Live:
    """A revision's process (or Ray replicas) as this server runs it."""

    revision: int
    proc: Handle
    port: int | None  # the first replica's (None until it answers)
    launch: Launch
    inflight: int = 0
    stopping: bool = False
    turn: int = 0  # round robin over the replicas


class ServingManager:
    def __init__(
        self,
        catalog: SqlCatalog,
        store: ContentStore,
        executor: Any,
        home: Path,
        peers: Callable[[], int] = lambda: 0,
        lock_wait_s: float | None = None,
    ):
        self.catalog = catalog
        self.lock_wait_s = lock_wait_s  # for a workspace's lock (None: as long as it takes)
        # Other live server replicas on this catalog: an endpoint lives with the replica it was
        # deployed through, so a replica starting beside others brings back none of theirs.
        self.peers = peers
        self.store = store
        self.executor = executor
        self.root = Path(home) / "serving"
        self._lock = threading.RLock()  # guards _live, _routes, _restarts
        self._live: dict[int, _Live] = {}
        self._routes: dict[tuple[str, str], int] = {}  # (workspace, name) -> serving revision
        self._restarts: dict[tuple[str, str], int] = {}
        self._endpoint_locks: dict[tuple[str, str], threading.Lock] = {}
        self._serve_images: dict[str, BuiltImage] = {}  # serve source digest -> its build
        self._closed = threading.Event()
        self._threads = [
            threading.Thread(target=self._watch_processes, name="serve-monitor", daemon=True),
            threading.Thread(target=self._follow_loop, name="serve-follow", daemon=True),
        ]

    # -- life cycle -----------------------------------------------------------------------------
    def start(self) -> None:
        """Bring back what served before a restart, then watch processes and followed metrics."""
        threading.Thread(target=self.restore, name="serve-restore", daemon=True).start()
        for thread in self._threads:
            thread.start()

    def restore(self) -> int:
        restored = 0
        if self.peers():
            return 0  # the endpoints are served by the live replicas that deployed them
        if self.executor.kind == "docker" and shutil.which("docker"):
            process.remove_containers(process.leftover_containers(str(self.root)))
        for endpoint in self.catalog.endpoints():
            for revision in self.catalog.revisions(endpoint.workspace, endpoint.name):
                kill_leftover(self._rev_dir(revision.id) / "pid")
                if revision.state in (RevisionState.STARTING, RevisionState.DRAINING):
                    self._end_revision(revision.id, RevisionState.STOPPED, "the server restarted")
            if endpoint.state not in (EndpointState.RUNNING, EndpointState.STARTING):
                continue
            if endpoint.revision is None:
                continue
            key = (endpoint.workspace, endpoint.name)
            with self._endpoint_lock(key):
                revision = self.catalog.revision(endpoint.revision)
                try:
                    self._bring_up(revision, endpoint.options, prefer_port=revision.port)
                except KaosError as exc:
                    self._fail(endpoint, f"could not restart after a server restart: {exc}")
                    continue
                self._route(key, revision.id)
                self.catalog.put_endpoint(replace(endpoint, state=EndpointState.RUNNING))
                restored += 1
        return restored

    def close(self) -> None:
        """Stop every process (endpoints stay RUNNING in the catalog, to come back at start)."""
        self._closed.set()
        with self._lock:
            lives = list(self._live.values())
            for live in lives:
                live.stopping = True
        for live in lives:
            live.proc.stop(grace=5)

    # -- moving the pointer ---------------------------------------------------------------------
    def deploy(
        self,
        workspace: str,
        name: str,
        model_prefix: str | None,
        follow: str | None = None,
        options: ServeOptions | None = None,
        unset: Collection[str] = (),
        recheck: Callable[[], object] | None = None,
    ) -> Endpoint:
        """Serve a model on the endpoint (a new one, or a swap). The options named in `unset`
        were left out of the request: a redeploy keeps the endpoint's (its replicas, batching,
        resources), a new endpoint takes the defaults. `recheck` runs under the workspace's
        lock, before the endpoint is recorded: the caller's access, asked again (as a train
        deploy does: the workspace may have been deleted, or made anew by someone else)."""
        options = options or ServeOptions()
        self.catalog.workspace(workspace)
        current = self.catalog.endpoint(workspace, name)
        if current is not None:
            options = replace(options, **{k: getattr(current.options, k) for k in unset})
        if not NAME_PATTERN.match(name):
            raise ServeError(
                f"invalid endpoint name {name!r}", "use letters, digits, '.', '_' or '-'"
            )
        metric = _parse_metric(follow) if follow else None
        if model_prefix:
            model = self._find_model(model_prefix)
            if metric is not None and metric.name not in model.metrics:
                raise ServeError(  # a typo would follow nothing, silently
                    f"model {model.model_id} reports no metric {metric.name!r}",
                    "follow one it reports: " + (", ".join(sorted(model.metrics)) or "none"),
                )
        elif metric is not None:
            model = self._best_in(workspace, metric)
        else:
            raise ServeError("which model?", "pass -m MODEL_ID (or --follow METRIC)")
        self._check_options(options)
        self._servable(model, options)
        with self._endpoint_lock((workspace, name)):
            endpoint = self._record(workspace, name, follow, options, recheck)
            return self._move(endpoint, model, Cause.DEPLOY, parent=endpoint.revision)

    def _record(
        self,
        workspace: str,
        name: str,
        follow: str | None,
        options: ServeOptions,
        recheck: Callable[[], object] | None,
    ) -> Endpoint:
        """The endpoint as a deploy leaves it (a new one recorded as STARTING), under the
        workspace's lock, which deleting it takes too: a deploy that passed its checks records
        into the workspace it checked, or finds it gone; once recorded, the workspace cannot
        be deleted under it. The caller holds the endpoint's lock."""
        with self.catalog.workspace_lock(workspace, self.lock_wait_s):
            if recheck is not None:
                recheck()  # reads the workspace (404 once gone) and the caller's access to it
            else:
                self.catalog.workspace(workspace)
            current = self.catalog.endpoint(workspace, name)
            live = current is not None and current.state == EndpointState.RUNNING
            if options.port is not None and not (live and self._port_of(current) == options.port):
                self._check_port(options.port)
            endpoint = Endpoint(
                workspace,
                name,
                EndpointState.RUNNING if live else EndpointState.STARTING,
                current.revision if current else None,
                follow,
                options,
                current.created if current else time.time(),
            )
            if not live:
                self.catalog.put_endpoint(endpoint)
            return endpoint

    def rollback(self, workspace: str, name: str) -> Endpoint:
        key = (workspace, name)
        with self._endpoint_lock(key):
            endpoint = self.endpoint(workspace, name)
            if endpoint.state == EndpointState.KILLED:  # a rollback must not revive it
                raise ServeError(
                    f"endpoint {name!r} is stopped",
                    f"serve a model on it again with 'kaos serve deploy -m MODEL_ID -n {name}'",
                )
            if endpoint.revision is None:
                raise ServeError(f"endpoint {name!r} has no revision to roll back from")
            current = self.catalog.revision(endpoint.revision)
            if current.parent is None:  # the start of the chain rollbacks walk back along
                raise ServeError(
                    f"endpoint {name!r} has nothing to roll back to: revision "
                    f"{self.number(current)} serves {current.model_id}, the first model it served",
                    f"serve another with 'kaos serve deploy -m MODEL_ID -n {name}'",
                )
            target = self.catalog.revision(current.parent)
            model = self._find_model(target.model_id)
            return self._move(endpoint, model, Cause.ROLLBACK, parent=target.parent)

    def kill(self, workspace: str, name: str) -> Endpoint:
        key = (workspace, name)
        with self._endpoint_lock(key):
            endpoint = self.endpoint(workspace, name)
            if endpoint.state == EndpointState.KILLED:
                raise ServeError(f"endpoint {name!r} is already stopped")
            with self._lock:
                self._routes.pop(key, None)
            killed = replace(endpoint, state=EndpointState.KILLED, reason="killed on request")
            self.catalog.put_endpoint(killed)
            if endpoint.revision is not None:
                self._drain(endpoint.revision)
            return killed

    def endpoint(self, workspace: str, name: str) -> Endpoint:
        endpoint = self.catalog.endpoint(workspace, name)
        if endpoint is None:
            raise NotFound(
                f"no endpoint {name!r} in workspace {workspace!r}",
                "list them with 'kaos serve list'",
            )
        return endpoint

    def _move(self, endpoint: Endpoint, model: Model, cause: Cause, parent: int | None,
              **swap: Any) -> Endpoint:  # fmt: skip
        """Start a revision of `model`; once it answers, point the endpoint at it and drain
        the old one. A revision that never answers fails alone: traffic stays where it was."""
        assert model.model_id is not None
        revision = self.catalog.add_revision(
            Revision(0, endpoint.workspace, endpoint.name, model.model_id,
                     RevisionState.STARTING, cause, time.time(), parent, **swap)
        )  # fmt: skip
        try:
            self._bring_up(revision, endpoint.options, prefer_port=endpoint.options.port)
        except KaosError as exc:
            if endpoint.state != EndpointState.RUNNING:
                self._fail(endpoint, str(exc))
            raise
        old = endpoint.revision if endpoint.state == EndpointState.RUNNING else None
        moved = replace(endpoint, state=EndpointState.RUNNING, revision=revision.id, reason=None)
        self.catalog.put_endpoint(moved)
        self._route((endpoint.workspace, endpoint.name), revision.id)
        with self._lock:  # each revision put in (deploy, rollback, follow) restarts on its own
            self._restarts.pop((endpoint.workspace, endpoint.name), None)
        if old is not None and old != revision.id:
            threading.Thread(target=self._drain, args=(old,), daemon=True).start()
        return moved

    # -- processes ------------------------------------------------------------------------------
    def _bring_up(
        self, revision: Revision, options: ServeOptions, prefer_port: int | None = None
    ) -> None:
        """Materialise the revision and start its process; return once it answers /ping."""
        try:
            launch = self._launch(revision, options)
        except KaosError as exc:
            self._end_revision(revision.id, RevisionState.FAILED, str(exc))
            raise
        port = prefer_port if prefer_port and process.port_free(prefer_port) else None
        live = self._spawn(revision.id, launch, port or process.free_port())
        problem = live.proc.wait_ready(READY_TIMEOUT_S)
        if problem is not None:
            with self._lock:
                live.stopping = True
                self._live.pop(revision.id, None)
            live.proc.stop(grace=2)
            reason = _with_log(problem, launch.log)
            self._end_revision(revision.id, RevisionState.FAILED, reason)
            raise ServeError(reason, f"see 'kaos serve logs -n {revision.name}'")
        live.port = live.proc.addresses[0][1]
        self.catalog.update_revision(
            revision.id, state=RevisionState.SERVING, started=time.time(), reason=None,
            port=live.port, pid=live.proc.pid,
        )  # fmt: skip

    def _spawn(self, revision_id: int, launch: Launch, port: int) -> _Live:
        proc = process.start(launch, port)
        if proc.pid is not None:
            (self._rev_dir(revision_id) / "pid").write_text(str(proc.pid))
        live = _Live(revision_id, proc, None, launch)
        with self._lock:
            self._live[revision_id] = live
        return live

    def _launch(self, revision: Revision, options: ServeOptions) -> Launch:
        """Check the model is servable and lay out its code and files for the runtime."""
        model = self._find_model(revision.model_id)
        source, bundle, environment = self._servable(model, options)
        assert model.output_tree
        folder = self._rev_dir(revision.id)
        folder.mkdir(parents=True, exist_ok=True)
        self.log_path(revision.id).parent.mkdir(parents=True, exist_ok=True)
        if environment.ray is None and not (folder / "ready").exists():
            shutil.rmtree(folder, ignore_errors=True)
            self.store.checkout(source, folder / "source")
            self.store.checkout(model.output_tree, folder / "output")
            (folder / "output" / "model").mkdir(parents=True, exist_ok=True)
            (folder / "ready").touch()
        # --cpu/--memory: docker's container flags, the kernel's limits on a local process
        # (cpus, memory), Ray's scheduler for replicas (the replica spec)
        resources = options.resources
        limits: list[str] = []
        if resources.get("cpu"):
            limits += ["--cpus", str(resources["cpu"])]
        if resources.get("memory"):
            limits += ["--memory", str(resources["memory"])]
        local = environment.python is not None
        memory = resources.get("memory")
        return Launch(
            folder=folder,
            code_dir=folder / "source" / bundle / "model",
            model_dir=folder / "output" / "model",
            model_id=model.model_id or revision.model_id,
            log=self.log_path(revision.id),
            python=environment.python,
            image=environment.image,
            container=f"kaos-serve-{revision.id}-{uuid.uuid4().hex[:8]}"
            if environment.image
            else None,
            label=str(self.root),
            max_batch_size=options.max_batch_size,
            max_latency_ms=options.max_latency_ms,
            gpu=int(resources.get("gpu") or 0),
            limits=tuple(limits),
            cpus=process.cpu_set(resources.get("cpu"), revision.id, os.sched_getaffinity(0))
            if local
            else (),
            memory=memory_bytes(memory) if local and memory else None,
            serve_script=options.serve_source is not None,
            replicas=options.replicas,
            ray=_replica_spec(environment, model, resources) if environment.ray else None,
        )

    def _servable(self, model: Model, options: ServeOptions) -> tuple[Tree, str, Environment]:
        """The code to serve with (the model's source, or a serve source), its bundle name and
        environment, or why it cannot be served (checked before anything changes)."""
        if options.serve_source:
            return self._serve_source(options.serve_source)
        job = self.catalog.job(model.job_id)
        source = self.store.get_tree(job.source or "")
        bundle = source_bundle_name(source)
        if source.get(f"{bundle}/model/predict.py") is None:
            raise ServeError(
                f"model {model.model_id}'s source has no {bundle}/model/predict.py",
                "add model/predict.py with load(model_dir) and predict(model, rows)",
            )
        ray = {"source": job.source, "bundle": bundle, "lock": job.lock,
               "job_id": f"serve-{model.model_id}"}  # fmt: skip
        return source, bundle, self._environment(job.image or "", ray)

    def _serve_source(self, digest: str) -> tuple[Tree, str, Environment]:
        """The kaos 1.0 path: a bundle whose model/serve listens on $PORT, in an environment
        built from its own requirements (or Dockerfile) by the executor, once per source."""
        try:
            tree = self.store.get_tree(digest)
        except ObjectNotFound:
            raise ServeError(
                f"the serve source {digest[:5]} was never uploaded", "pass -s SERVE_SOURCE"
            ) from None
        if self.store.missing(tree.digests()):
            raise ServeError(f"the serve source {digest[:5]} is incomplete", "deploy it again")
        bundle = serve_bundle_name(tree)
        with self._lock:
            built = self._serve_images.get(digest)
        if built is None:
            log_path = self.root / "logs" / f"build-{digest}.log"
            log_path.parent.mkdir(parents=True, exist_ok=True)
            log = LogWriter(log_path, threading.Lock())
            request = BuildRequest(f"serve-{digest[:12]}", digest, bundle)
            try:
                built = self.executor.build(request, log, Cancel())
            except KaosError as exc:
                raise ServeError(
                    f"the serve source's environment did not build: {exc.message}",
                    f"see {log_path}",
                ) from None
            with self._lock:
                self._serve_images[digest] = built
        ray = {"source": digest, "bundle": bundle, "lock": built.lock,
               "job_id": f"serve-{digest[:12]}"}  # fmt: skip
        return tree, bundle, self._environment(built.ref, ray)

    def _environment(self, image: str, ray: dict[str, Any] | None = None) -> Environment:
        """Where the model trained: a local environment's Python, a docker image, or (ray)
        the lock each replica's node makes it from."""
        kind = self.executor.kind
        if kind == "local":
            return Environment(python=Path(self.executor.python_of(image)))
        if kind == "docker":
            if shutil.which("docker") is None:
                raise ServeError("serving on docker needs the docker command", "install docker")
            if not self.executor.image_exists(image):
                raise ServeError(f"image {image} is gone", "deploy the model's source again")
            return Environment(image=image)
        if kind == "ray" and ray is not None:
            node = {**self.executor.node_spec(), "relay": self.executor.relay,
                    "host": self.executor.replica_host}  # fmt: skip
            return Environment(ray={**node, **ray})
        raise ServeError(
            f"serving on the {kind} executor is not available yet",
            "serve from a server started with --executor local or docker",
        )

    def _drain(self, revision_id: int) -> None:
        """Wait until nothing routed to the revision is in flight, then stop its process."""
        with self._lock:
            live = self._live.get(revision_id)
            if live is not None:
                live.stopping = True
        if live is None:
            self._end_revision(revision_id, RevisionState.STOPPED, None)
            return
        self.catalog.update_revision(revision_id, state=RevisionState.DRAINING)
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while live.inflight and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(DIRECT_GRACE_S)
        stats = self._stats(live.proc.addresses)
        live.proc.stop(grace=DRAIN_TIMEOUT_S)
        with self._lock:
            self._live.pop(revision_id, None)
        if stats:
            self.catalog.update_revision(revision_id, stats=stats)
        self._end_revision(revision_id, RevisionState.STOPPED, None)

    def _end_revision(self, revision_id: int, state: RevisionState, reason: str | None) -> None:
        self.catalog.update_revision(revision_id, state=state, stopped=time.time(), reason=reason)
        shutil.rmtree(self._rev_dir(revision_id), ignore_errors=True)

    def _fail(self, endpoint: Endpoint, reason: str) -> None:
        with self._lock:
            self._routes.pop((endpoint.workspace, endpoint.name), None)
        self.catalog.put_endpoint(replace(endpoint, state=EndpointState.FAILED, reason=reason))

    def _watch_processes(self) -> None:
        """Restart a revision whose process died (MAX_RESTARTS times), then fail the endpoint."""
        while not self._closed.wait(0.2):
            with self._lock:
                dead = [
                    live
                    for live in self._live.values()
                    if not live.stopping and live.proc.poll() is not None
                ]
            for live in dead:
                self._restart(live)

    def _restart(self, live: _Live) -> None:
        revision = self.catalog.revision(live.revision)
        key = (revision.workspace, revision.name)
        with self._endpoint_lock(key):
            if live.stopping or self._closed.is_set():
                return
            code = live.proc.poll()
            live.proc.stop(grace=2)  # Ray: the other replicas of the revision
            count = self._restarts.get(key, 0) + 1
            self._restarts[key] = count
            with self._lock:
                self._live.pop(live.revision, None)
            note = f"kaos: the endpoint process exited with code {code}"
            with open(live.launch.log, "a") as log:
                log.write(f"{note}; restart {count} of {MAX_RESTARTS}\n")
            endpoint = self.endpoint(*key)
            if count > MAX_RESTARTS:
                reason = _with_log(f"{note}; restarted {MAX_RESTARTS} times", live.launch.log)
                self._end_revision(live.revision, RevisionState.FAILED, reason)
                self._fail(endpoint, reason)
                return
            with contextlib.suppress(KaosError):
                self._bring_up(revision, endpoint.options, prefer_port=live.port)

    # -- following a metric ---------------------------------------------------------------------
    def _follow_loop(self) -> None:
        while not self._closed.wait(FOLLOW_EVERY_S):
            for endpoint in self.catalog.endpoints():
                if (endpoint.workspace, endpoint.name) not in self._routes:
                    continue  # not served here (another replica's, or not back yet)
                if endpoint.follow and endpoint.state == EndpointState.RUNNING:
                    with contextlib.suppress(KaosError):
                        self.follow_once(endpoint.workspace, endpoint.name)

    def follow_once(self, workspace: str, name: str) -> Endpoint | None:
        """Swap to a model that finished after the serving revision started, if better."""
        key = (workspace, name)
        with self._endpoint_lock(key):
            endpoint = self.endpoint(workspace, name)
            if not endpoint.follow or endpoint.revision is None:
                return None
            if endpoint.state != EndpointState.RUNNING:
                return None
            metric = _parse_metric(endpoint.follow)
            current = self.catalog.revision(endpoint.revision)
            serving = self._find_model(current.model_id)
            since = current.created
            fresh = [
                (m.model_id or "", m.metrics)
                for m in self._workspace_models(workspace, finished_after=since)
                if m.model_id != current.model_id
            ]
            chosen = best(metric, fresh)
            now_value = metric.value(serving.metrics)
            if chosen is None or not metric.better(chosen[1], now_value):
                return None
            model = self._find_model(chosen[0])
            return self._move(
                endpoint, model, Cause.FOLLOW, parent=endpoint.revision,
                previous_model=current.model_id, metric=metric.name, value=chosen[1],
                previous_value=now_value,
            )  # fmt: skip

    def _workspace_models(self, workspace: str, finished_after: float = 0.0) -> list[Model]:
        found = []
        for job in self.catalog.jobs(workspace, "train"):
            if job.finished is not None and job.finished < finished_after:
                continue
            found += [
                m
                for m in self.catalog.models(job.id)
                if m.state == JobState.SUCCESS and (m.finished or 0) >= finished_after
            ]
        return found

    def _best_in(self, workspace: str, metric: Metric) -> Model:
        chosen = best(
            metric, ((m.model_id or "", m.metrics) for m in self._workspace_models(workspace))
        )
        if chosen is None:
            raise ServeError(
                f"no model in workspace {workspace!r} reports {metric.name}",
                "train one first, or pass -m MODEL_ID",
            )
        return self._find_model(chosen[0])

    # -- the kaos route -------------------------------------------------------------------------
    @contextmanager
    def routed(self, workspace: str, name: str) -> Iterator[Address]:
        """Where to send a request for the endpoint: its serving revision (the next replica,
        round robin), counted as in flight while in use."""
        key = (workspace, name)
        with self._lock:
            revision = self._routes.get(key)
            live = self._live.get(revision) if revision is not None else None
            if live is not None:
                live.inflight += 1
                addresses = live.proc.addresses
                address = addresses[live.turn % len(addresses)]
                live.turn += 1
        if live is None:
            endpoint = self.endpoint(workspace, name)
            reason = f": {endpoint.reason}" if endpoint.reason else ""
            state = endpoint.state.value.lower()
            if endpoint.state == EndpointState.RUNNING and self.peers():
                raise NotServing(
                    f"endpoint {name!r} is served by another kaos server replica, not this one",
                    "send its requests to the server it was deployed through",
                )
            if endpoint.state == EndpointState.RUNNING:  # coming back after a server restart
                state, reason = "starting", " (its revision does not answer yet)"
            raise NotServing(f"endpoint {name!r} is {state}{reason}",
                             f"see 'kaos serve info -n {name}'")  # fmt: skip
        try:
            yield address
        finally:
            with self._lock:
                live.inflight -= 1

    # -- reading --------------------------------------------------------------------------------
    def live_address(self, revision_id: int | None) -> Address | None:
        """The (first replica's) address of a revision that answers."""
        with self._lock:
            live = self._live.get(revision_id) if revision_id is not None else None
            return live.proc.addresses[0] if live and live.port else None

    def stats(self, revision: Revision) -> dict[str, Any]:
        with self._lock:
            live = self._live.get(revision.id)
        return (self._stats(live.proc.addresses) if live else None) or revision.stats

    def number(self, revision: Revision) -> int:
        """The revision's number on its endpoint (what users see; its id is the catalog's)."""
        return numbers(self.catalog.revisions(revision.workspace, revision.name))[revision.id]

    def log_path(self, revision_id: int) -> Path:
        return self.root / "logs" / f"revision-{revision_id}.log"

    def serve_build_log(self, endpoint: Endpoint) -> Path | None:
        """Where the build of the endpoint's serve source logged (None: it serves with the
        model's own source, whose build is a job)."""
        digest = endpoint.options.serve_source
        return self.root / "logs" / f"build-{digest}.log" if digest else None

    def build_job(self, model_id: str) -> str | None:
        job = self.catalog.job(self._find_model(model_id).job_id)
        image = self.catalog.image(job.source or "", self.executor.kind)
        return image.job_id if image else None

    # -- helpers --------------------------------------------------------------------------------
    def _stats(self, addresses: list[Address]) -> dict[str, Any] | None:
        """The revision's /stats; over replicas: counts summed, the slowest one's latencies."""
        found = []
        for address in addresses:
            with contextlib.suppress(OSError, ValueError):
                status, payload = process.get_json(address, "/stats", timeout=1.0)
                if status == 200 and isinstance(payload, dict):
                    found.append(payload)
        if len(found) <= 1:
            return found[0] if found else None
        merged: dict[str, Any] = {k: sum(int(s.get(k) or 0) for s in found)
                                  for k in ("requests", "errors")}  # fmt: skip
        for k in ("p50_ms", "p99_ms"):
            merged[k] = max((s[k] for s in found if s.get(k) is not None), default=None)
        return merged

    def _route(self, key: tuple[str, str], revision_id: int) -> None:
        with self._lock:
            self._routes[key] = revision_id

    def _port_of(self, endpoint: Endpoint | None) -> int | None:
        address = self.live_address(endpoint.revision) if endpoint else None
        return address[1] if address else None

    def _rev_dir(self, revision_id: int) -> Path:
        return self.root / "revisions" / str(revision_id)

    def _endpoint_lock(self, key: tuple[str, str]) -> threading.Lock:
        with self._lock:
            return self._endpoint_locks.setdefault(key, threading.Lock())

    def _find_model(self, prefix: str) -> Model:
        try:
            return self.catalog.find_model(prefix)
        except NotFound:
            raise ServeError(
                f"no successfully trained model {prefix!r}",
                "pick one from 'kaos train info' (failed models cannot be served)",
            ) from None

    def _check_options(self, options: ServeOptions) -> None:
        if self.executor.kind != "ray" and options.replicas != 1:
            raise ServeError(
                f"the {self.executor.kind} executor runs one process per revision",
                "leave out --replicas (it applies to the ray executor)",
            )
        if options.replicas < 1:
            raise ServeError(f"--replicas {options.replicas} is not a count of replicas",
                             "pass --replicas 1 or more")  # fmt: skip
        if self.executor.kind == "ray" and options.port is not None:
            raise ServeError("ray replicas listen on ports their nodes pick",
                             "leave out --port and use the kaos route")  # fmt: skip
        if options.max_batch_size < 0 or options.max_latency_ms < 0:
            raise ServeError("--max-batch-size and --max-latency-ms must not be negative")
        Resources.from_json(options.resources)  # e.g. --memory lots: refused as for a train

    def _check_port(self, port: int) -> None:
        if not 1024 <= port <= 65535:
            raise ServeError(f"port {port} is out of range", "pick one in 1024-65535")
        if not process.port_free(port):
            raise ServeError(
                f"port {port} is taken on 127.0.0.1", "pick another with --port or leave it out"
            )


def _replica_spec(environment: Environment, model: Model, resources: dict[str, Any]
                  ) -> dict[str, Any]:  # fmt: skip
    """What each Ray replica needs to lay the revision out on its node (replicas.py)."""
    memory = resources.get("memory")
    return {**(environment.ray or {}), "output": model.output_tree, "token": uuid.uuid4().hex[:8],
            "cpu": float(resources.get("cpu") or 0), "ready_timeout": READY_TIMEOUT_S,
            "memory": memory_bytes(memory) if memory else None}  # fmt: skip


def _parse_metric(spec: str) -> Metric:
    try:
        return Metric.parse(spec)
    except ValueError as exc:
        raise ServeError(str(exc)) from None


def _with_log(problem: str, log: Path) -> str:
    last = process.last_line(log)
    return f"{problem}: {last}" if last else problem
