"""Ray replicas: a revision served by N Ray actors, each running the stdlib runtime on its node.

An actor makes the model's environment on its node from the stored lock (as a Ray train task
does, cached per node), checks out the source and the model's files from the store, and runs
`runtime.py` with that environment's Python on a free port: of 127.0.0.1 when the cluster is
this host, else of the node's cluster address (the kaos server must reach it). Its output
goes to the revision's log on the server through the executor's log relay. The kaos server
balances the route over the replicas' addresses; a replica that exits ends the revision (the
manager restarts it whole, as it does a local process).
"""

from __future__ import annotations

import contextlib
import ctypes
import shutil
import signal
import subprocess
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

from kaos.serving import process
from kaos.serving.process import Address, Launch

STOP_TIMEOUT_S = 60.0


class RayReplicas:
    """The process.Handle of a Ray revision: its actors, started at once, ready when all are."""

    def __init__(self, launch: Launch) -> None:
        import ray

        from kaos.executors.ray import replica_actor

        assert launch.ray is not None
        self._ray = ray
        spec = launch.ray
        options: dict[str, Any] = {
            "num_cpus": spec["cpu"],
            "max_concurrency": 4,  # wait() blocks while stop() runs
            "scheduling_strategy": "SPREAD",
        }
        if launch.gpu:
            options["num_gpus"] = launch.gpu
        if spec.get("memory"):
            options["memory"] = spec["memory"]  # as a Ray train task: what Ray places by
        actor = replica_actor(ray)
        self._actors = [actor.options(**options).remote() for _ in range(launch.replicas)]
        self._starts = [a.start.remote(launch, i) for i, a in enumerate(self._actors)]
        self._exits: list[Any] = []
        self.addresses: list[Address] = []
        self.pids: list[int] = []
        self.returncode: int | None = None

    @property
    def pid(self) -> int | None:
        return None  # on the replicas' nodes: they end with their actors, not by a pid file

    def wait_ready(self, timeout: float) -> str | None:
        ray = self._ray
        try:
            started = ray.get(self._starts, timeout=timeout)
        except ray.exceptions.GetTimeoutError:
            return f"the Ray replicas did not answer /ping within {timeout:.0f}s"
        except ray.exceptions.RayError as exc:
            cause = getattr(exc, "cause", None) or exc
            return f"a Ray replica did not start: {str(cause).strip().splitlines()[-1]}"
        self.addresses = [(s["host"], s["port"]) for s in started]
        self.pids = [s["pid"] for s in started]
        self._exits = [a.wait.remote() for a in self._actors]
        return None

    def poll(self) -> int | None:
        if self.returncode is None and self._exits:
            done, _ = self._ray.wait(self._exits, num_returns=1, timeout=0)
            if done:
                try:
                    self.returncode = int(self._ray.get(done[0]))
                except self._ray.exceptions.RayError:
                    self.returncode = -1  # the actor (or its node) died with the process
        return self.returncode

    def stop(self, grace: float) -> None:
        """SIGTERM every replica (they drain), then remove the actors."""
        ray = self._ray
        with contextlib.suppress(ray.exceptions.RayError):
            ray.get([a.stop.remote(grace) for a in self._actors], timeout=grace + STOP_TIMEOUT_S)
        for actor in self._actors:
            with contextlib.suppress(ray.exceptions.RayError):
                ray.kill(actor)


class ServeReplica:
    """The Ray actor: one runtime process on this node."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.folder: Path | None = None
        self.ready = threading.Event()

    def start(self, launch: Launch, index: int) -> dict[str, Any]:
        import ray

        from kaos.executors.local import BuildSettings, LocalExecutor
        from kaos.executors.ray import _RelayLog
        from kaos.pipeline.executor import BuildRequest, Cancel
        from kaos.store import ContentStore

        spec = dict(launch.ray or {})
        home = Path(spec["node_home"])
        store = ContentStore.from_url(
            spec["store_url"], home, spec["s3_endpoint_url"], spec.get("cache_max")
        )
        log = _RelayLog(spec["relay"], str(launch.log), f"[replica {index}] ")
        executor = LocalExecutor(store, home, BuildSettings(**spec["build"]), sandbox=False)
        request = BuildRequest(spec["job_id"], spec["source"], spec["bundle"], lock=spec["lock"])
        built = executor.build(request, log, Cancel())
        self.folder = home / "serving" / f"{launch.folder.name}-{index}-{spec['token']}"
        shutil.rmtree(self.folder, ignore_errors=True)
        store.checkout(store.get_tree(spec["source"]), self.folder / "source")
        store.checkout(store.get_tree(spec["output"]), self.folder / "output")
        (self.folder / "output" / "model").mkdir(parents=True, exist_ok=True)
        host = spec["host"] or _node_address(ray)
        here = replace(
            launch,
            folder=self.folder,
            code_dir=self.folder / launch.code_dir.relative_to(launch.folder),
            model_dir=self.folder / launch.model_dir.relative_to(launch.folder),
            python=executor.python_of(built.ref),
            host=host,
            ray=None,
        )
        port = process.free_port(host)
        self.proc = process.spawn(here, port, stdout=subprocess.PIPE, preexec_fn=_die_with_parent)
        threading.Thread(target=_relay, args=(self.proc, log), daemon=True).start()
        problem = process.wait_ready(self.proc, (host, port), spec["ready_timeout"])
        if problem is not None:
            raise RuntimeError(problem)
        self.ready.set()
        return {"host": host, "port": port, "pid": self.proc.pid}

    def wait(self) -> int:
        self.ready.wait()
        assert self.proc is not None
        return self.proc.wait()

    def stop(self, grace: float) -> None:
        if self.proc is not None:
            process.stop(self.proc, grace)
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)


def _node_address(ray: Any) -> str:
    """The address the cluster knows this node by: where the server reaches the replica."""
    here = ray.get_runtime_context().get_node_id()
    for node in ray.nodes():
        if node.get("NodeID") == here:
            return str(node["NodeManagerAddress"])
    return str(ray.util.get_node_ip_address())


def _relay(proc: subprocess.Popen[bytes], log: Any) -> None:
    """The runtime's output, line by line, to the revision's log on the server."""
    assert proc.stdout is not None
    for line in proc.stdout:
        log.write(line.decode("utf-8", "replace"))


def _die_with_parent() -> None:
    """The runtime gets SIGTERM when its actor's worker dies (a crashed or stopped server)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
