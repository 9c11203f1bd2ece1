"""The Ray executor: every model of a train job is one Ray task, placed and queued by Ray.

Tasks carry hashes and store settings only; on its node a task fetches the source and data
trees from the store itself, makes the environment from the lock the server's build stored
(cached per node by the lock, like the local executor), runs the train script per the
contract, stores the output tree and returns its hash with the metrics. The server never ships
bundle bytes to nodes. Logs stream back through a small actor pinned to the server's node.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from kaos.errors import ConfigError, Killed, TrainFailed
from kaos.executors.local import BuildSettings, LocalExecutor
from kaos.executors.process import end_recorded
from kaos.pipeline.executor import (
    BuildRequest,
    BuiltImage,
    Cancel,
    JobLog,
    TrainOutcome,
    TrainRequest,
)
from kaos.pipeline.inputs import memory_bytes
from kaos.store import ContentStore
from kaos.store.backends.local import LocalBackend
from kaos.store.hashing import hash_bytes

# How long a killed task has to end itself (its train's group gets KILL_GRACE_S, its log
# pump as long) before its worker is killed instead.
FORCE_AFTER_S = 30.0


@dataclass(frozen=True)
class RaySettings:
    address: str | None = None  # None: start a local Ray instance
    node_home: str = "/tmp/kaos-ray-node"  # on every node: environments and file caches
    num_cpus: int | None = None  # for the local instance only


class RayExecutor:
    kind = "ray"

    def __init__(
        self,
        store: ContentStore,
        home: Path,
        store_url: str,
        s3_endpoint_url: str | None,
        settings: RaySettings | None = None,
        build: BuildSettings | None = None,
        sandbox: bool = True,
    ) -> None:
        ray = _ray()
        self.settings = settings or RaySettings()
        self.store = store
        self.store_url = store_url
        self.s3_endpoint_url = s3_endpoint_url
        self.build_settings = build or BuildSettings()
        # Probed here for the start-up message; every node probes again before its first train.
        self.local = LocalExecutor(store, home, self.build_settings, sandbox)
        self.owner = hash_bytes(str(Path(home).resolve()).encode())[:16]  # this server's tasks
        self.sandbox = self.local.sandbox
        if not ray.is_initialized():
            _init(ray, self.settings)
        self._check_store_reaches_nodes(ray)
        here = ray.get_runtime_context().get_node_id()
        self._relay = (
            _log_relay(ray)
            .options(scheduling_strategy=_pinned(here), name=None, lifetime=None)
            .remote()
        )

    def _check_store_reaches_nodes(self, ray: Any) -> None:
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        if len(nodes) > 1 and isinstance(self.store.backend, LocalBackend):
            raise ConfigError(
                f"a local store cannot serve a Ray cluster of {len(nodes)} nodes "
                "(the other nodes cannot read it)",
                "start the server with an S3 store: --store s3://BUCKET/PREFIX",
            )

    # -- build: validated on the server; every node makes the same environment on first use -----
    def build(self, request: BuildRequest, log: JobLog, cancel: Cancel) -> BuiltImage:
        """The lock is found or resolved here, once; nodes make their environment from it."""
        return self.local.build(request, log, cancel)

    def image_exists(self, image: str) -> bool:
        return self.local.image_exists(image)

    def recover(self, home: Path | None = None) -> None:
        """End what a crashed server left running here and, through one task pinned to each
        live node, the train processes its Ray tasks left there (Ray ends the tasks' workers
        with their driver, but not the process groups they started). With `home`: what the
        dead replica with that home started."""
        self.local.recover(home)
        owner = self.owner if home is None else hash_bytes(str(Path(home).resolve()).encode())[:16]
        self._end_on_nodes(owner)

    def _end_on_nodes(self, owner: str, task: str | None = None) -> None:
        """End, on every live node, the processes recorded for `owner`'s tasks (or one task)."""
        ray = _ray()
        end = ray.remote(num_cpus=0)(end_on_node)
        nodes = [n["NodeID"] for n in ray.nodes() if n.get("Alive")]
        refs = [
            end.options(scheduling_strategy=_pinned(node)).remote(
                self.settings.node_home, owner, task
            )
            for node in nodes
        ]
        ray.get(refs, timeout=60)

    # -- train --------------------------------------------------------------------------------
    def train(self, request: TrainRequest, log: JobLog, cancel: Cancel) -> TrainOutcome:
        ray = _ray()
        exceptions = ray.exceptions
        spec = {
            "request": {
                **asdict(request),
                "params": dict(request.params) if request.params else None,
            },
            **self.node_spec(),
            "owner": self.owner,
            "task": uuid.uuid4().hex,  # names the folder where the task records its processes
            "sandbox": self.sandbox.enabled,
            "log_path": str(log.path),
            "log_prefix": log.prefix,
        }
        options: dict[str, Any] = {"num_cpus": request.resources.cpu or 1, "max_retries": 0}
        if request.resources.gpu:
            options["num_gpus"] = request.resources.gpu
        if request.resources.memory:
            options["memory"] = memory_bytes(request.resources.memory)
        ref = _train_task(ray).options(**options).remote(spec, self._relay)
        cancel.on_kill(lambda: self.cancel(ref, spec["task"]))
        try:
            result = ray.get(ref)
        except exceptions.TaskCancelledError:
            raise Killed() from None
        except exceptions.RayTaskError as exc:
            if cancel.killed:
                raise Killed() from None
            cause = exc.cause if hasattr(exc, "cause") else None
            message = getattr(cause, "message", None) or str(cause or exc).strip().splitlines()[-1]
            raise TrainFailed(message) from None
        except (
            exceptions.WorkerCrashedError,
            exceptions.NodeDiedError,
            exceptions.ObjectLostError,
        ) as exc:
            if cancel.killed:
                raise Killed() from None
            raise TrainFailed(
                f"the Ray node running this model was lost ({type(exc).__name__})"
            ) from None
        except exceptions.RayError as exc:
            if cancel.killed:
                raise Killed() from None
            raise TrainFailed(
                f"ray could not run this model ({type(exc).__name__}: {exc})"
            ) from None
        return TrainOutcome(result["output_tree"], result["metrics"], result["node"])

    def cancel(self, ref: Any, task: str, force_after: float = FORCE_AFTER_S) -> None:
        """Interrupt a train task, which then ends its train's process group itself; if it has
        not ended after `force_after` seconds (it could not take the interrupt), kill its
        worker and end the processes it recorded, which live on in their own sessions."""
        ray = _ray()
        ray.cancel(ref, force=False)

        def force() -> None:
            try:
                if ray.wait([ref], timeout=force_after, fetch_local=False)[0]:
                    return
                ray.cancel(ref, force=True)
                ray.wait([ref], timeout=30, fetch_local=False)  # its worker is gone: no new ones
                self._end_on_nodes(self.owner, task)
            except Exception:  # Ray shut down with the server: the next one's recover ends it
                return

        threading.Thread(target=force, name="kaos-ray-cancel", daemon=True).start()

    def node_spec(self) -> dict[str, Any]:
        """What a task or actor needs to reach the store and make environments on its node."""
        return {
            "store_url": self.store_url,
            "s3_endpoint_url": self.s3_endpoint_url,
            "cache_max": self.store.file_cache.max_bytes if self.store.file_cache else None,
            "node_home": self.settings.node_home,
            "build": asdict(self.build_settings),
        }

    @property
    def replica_host(self) -> str | None:
        """What serving replicas bind: 127.0.0.1 when every node is this host (a local
        instance, or a cluster on 127.0.0.1); None: each node's address in the cluster."""
        address = self.settings.address
        if address is None or urlparse(f"ray://{address}").hostname in ("127.0.0.1", "localhost"):
            return "127.0.0.1"
        return None

    @property
    def relay(self) -> Any:
        """The log relay actor on the server's node (serving replicas log through it too)."""
        return self._relay

    def close(self) -> None:
        ray = _ray()
        if ray.is_initialized():
            ray.shutdown()


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("the ray executor needs Ray", "pip install 'kaos[ray]'") from None
    return ray


def _init(ray: Any, settings: RaySettings) -> None:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        if settings.address:
            host = urlparse(f"ray://{settings.address}").hostname
            extra = {"_node_ip_address": host} if host in ("127.0.0.1", "localhost") else {}
            ray.init(
                address=settings.address, logging_level="WARNING", log_to_driver=False, **extra
            )
        else:
            ray.init(
                num_cpus=settings.num_cpus,
                include_dashboard=False,
                _node_ip_address="127.0.0.1",
                logging_level="WARNING",
                log_to_driver=False,
                object_store_memory=200 * 1024 * 1024,
            )
    except Exception as exc:
        raise ConfigError(
            f"cannot start or reach Ray at {settings.address or 'a local instance'}: {exc}",
            "check --ray-address, or start a cluster with 'ray start --head'",
        ) from None


def _pinned(node_id: str) -> Any:
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return NodeAffinitySchedulingStrategy(node_id=node_id, soft=False)


_REMOTES: dict[str, Any] = {}


def _log_relay(ray: Any) -> Any:
    if "relay" not in _REMOTES:
        _REMOTES["relay"] = ray.remote(num_cpus=0)(LogRelay)
    return _REMOTES["relay"]


def _train_task(ray: Any) -> Any:
    if "train" not in _REMOTES:
        _REMOTES["train"] = ray.remote(train_on_node)
    return _REMOTES["train"]


def replica_actor(ray: Any) -> Any:
    """The serving replica actor class (kaos/serving/replicas.py)."""
    if "replica" not in _REMOTES:
        from kaos.serving.replicas import ServeReplica

        _REMOTES["replica"] = ray.remote(ServeReplica)
    return _REMOTES["replica"]


class LogRelay:
    """Runs on the server's node and appends what tasks print to the job's log file."""

    def write(self, path: str, prefix: str, text: str) -> None:
        lines = text.splitlines(keepends=True)
        with open(path, "a", encoding="utf-8", errors="replace") as f:
            f.write(
                "".join(
                    prefix + line if line.endswith("\n") else prefix + line + "\n" for line in lines
                )
            )


class _RelayLog:
    """The job log a task writes to: fire-and-forget calls to the relay actor."""

    def __init__(self, relay: Any, path: str, prefix: str) -> None:
        self._relay, self._path, self._prefix = relay, Path(path), prefix

    @property
    def path(self) -> Path:
        return self._path

    @property
    def prefix(self) -> str:
        return self._prefix

    def write(self, text: str) -> None:
        if text:
            self._relay.write.remote(str(self._path), self._prefix, text)


def train_on_node(spec: dict[str, Any], relay: Any) -> dict[str, Any]:
    """The Ray task: fetch, prepare, train, store; returns hashes, metrics and the node id."""
    import ray

    from kaos.pipeline.inputs import Resources

    take_interrupts()

    home = Path(spec["node_home"])
    store = ContentStore.from_url(
        spec["store_url"], home, spec["s3_endpoint_url"], spec.get("cache_max")
    )
    running = _running(home, spec["owner"], spec["task"])
    executor = LocalExecutor(store, home, BuildSettings(**spec["build"]), spec["sandbox"], running)
    log = _RelayLog(relay, spec["log_path"], spec["log_prefix"])
    fields = dict(spec["request"])
    fields["resources"] = Resources(**fields["resources"])
    request = TrainRequest(**fields)
    cancel = Cancel()
    try:
        built = executor.build(
            BuildRequest(request.job_id, request.source, request.bundle_name, lock=request.lock),
            log,
            cancel,
        )
        outcome = executor.train(TrainRequest(**{**fields, "image": built.ref}), log, cancel)
    finally:
        with contextlib.suppress(OSError):
            running.rmdir()  # empty: every process recorded there has ended
    return {
        "output_tree": outcome.output_tree,
        "metrics": outcome.metrics,
        "node": ray.get_runtime_context().get_node_id(),
    }


def take_interrupts() -> None:
    """Let a kill reach this task: `ray.cancel` interrupts a running task by simulating SIGINT
    in its worker (a KeyboardInterrupt, which `run_logged` answers by ending the train's process
    group), and Python drops that while SIGINT is ignored. Workers inherit SIG_IGN from the
    Ray processes when these were started so (`ray start --head &` in a script, or a driver
    that ignores SIGINT starting a local instance), so restore the handler a worker has when
    Ray is started from a terminal. No terminal Ctrl-C reaches the worker through it: Ray
    starts its processes with SIGINT blocked."""
    if (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    ):
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _running(node_home: Path, owner: str, task: str | None = None) -> Path:
    """Where a node records the train processes of one server's tasks (servers may share it),
    a folder per task."""
    folder = node_home / "running" / owner
    return folder / task if task else folder


def end_on_node(node_home: str, owner: str, task: str | None = None) -> int:
    """The Ray task recovery (and a forced kill) runs on every node: end one server's (one
    task's) recorded train processes."""
    folder = _running(Path(node_home), owner, task)
    ended = end_recorded(folder)
    if task:
        with contextlib.suppress(OSError):
            folder.rmdir()
    return ended
