"""One endpoint process: started with the model environment's Python, probed, stopped.

The runtime is a stdlib-only script run as `<env python> -I -u runtime.py ...`: isolated mode
keeps the server's own PYTHONPATH and user site out, so the model sees only its environment.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import math
import os
import resource
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

RUNTIME = Path(__file__).with_name("runtime.py")


IN_CONTAINER = Path("/kaos")
SERVE_LABEL = "kaos.serve"  # value: the serving root, so servers sharing an engine stay apart


@dataclass(frozen=True)
class Launch:
    """Everything needed to start (or restart) a revision's process.

    Local: the environment's `python` runs the runtime. Docker: `docker run` runs it in the
    model's `image` on the host network, the revision folder and the runtime mounted read-only.
    """

    folder: Path  # the revision's folder: source/ and output/ checkouts
    code_dir: Path  # the source bundle's model/ folder, with predict.py
    model_dir: Path  # what the train script wrote under <output>/model/
    model_id: str
    log: Path
    python: Path | None = None
    image: str | None = None
    container: str | None = None
    label: str = ""
    max_batch_size: int = 0
    max_latency_ms: float = 5.0
    gpu: int = 0
    limits: tuple[str, ...] = ()  # docker run flags (--cpus, --memory)
    cpus: tuple[int, ...] = ()  # local: the CPUs the process may run on (--cpu; none: all)
    memory: int | None = None  # local: its data size cap in bytes (--memory)
    serve_script: bool = False  # kaos 1.0: run code_dir/serve with PORT and KAOS_MODEL_DIR
    host: str = "127.0.0.1"  # what the runtime binds (a Ray replica: its node's address)
    replicas: int = 1
    ray: dict[str, Any] | None = None  # ray: what a replica needs to make all this on its node

    def command(self, port: int) -> list[str]:
        if self.image is None:
            if self.serve_script:
                return [str(self.code_dir / "serve")]
            assert self.python is not None
            return [str(self.python), "-I", "-u", str(RUNTIME),
                    *self._args(self.code_dir, self.model_dir, port)]  # fmt: skip
        inside = IN_CONTAINER / "revision"
        code = inside / self.code_dir.relative_to(self.folder)
        model = inside / self.model_dir.relative_to(self.folder)
        run = [
            "docker", "run", "--rm", "--name", str(self.container),
            "--label", f"{SERVE_LABEL}={self.label}", "--network", "host",
            "-v", f"{self.folder}:{inside}:ro", "-v", f"{RUNTIME.parent}:{IN_CONTAINER}/serving:ro",
            "-w", str(code), *self.limits,
        ]  # fmt: skip
        if self.serve_script:
            env = self.script_env(port, model)
            return [*run, *(f"-e{k}={v}" for k, v in env.items()), self.image, str(code / "serve")]
        return [*run, self.image, "python3", "-I", "-u", f"{IN_CONTAINER}/serving/{RUNTIME.name}",
                *self._args(code, model, port)]  # fmt: skip

    def script_env(self, port: int, model_dir: Path | None = None) -> dict[str, str]:
        """What a kaos 1.0 `model/serve` is given: its port (and the address to bind, a Ray
        node's on a cluster) and the model's files."""
        return {"PORT": str(port), "KAOS_HOST": self.host,
                "KAOS_MODEL_DIR": str(model_dir or self.model_dir),
                "KAOS_MODEL_ID": self.model_id}  # fmt: skip

    def _args(self, code: Path, model: Path, port: int) -> list[str]:
        return [
            "--code", str(code), "--model", str(model), "--port", str(port),
            "--model-id", self.model_id, "--max-batch-size", str(self.max_batch_size),
            "--max-latency-ms", str(self.max_latency_ms), "--host", self.host,
        ]  # fmt: skip


Address = tuple[str, int]  # (host, port) of one process answering for a revision


class Handle(Protocol):
    """A revision's running processes, however they run (a process, a container, Ray actors)."""

    @property
    def pid(self) -> int | None: ...

    @property
    def addresses(self) -> list[Address]: ...

    def poll(self) -> int | None: ...

    def wait_ready(self, timeout: float) -> str | None: ...

    def stop(self, grace: float) -> None: ...


class Proc:
    """Local and docker: one process on this host (`docker run` for a container)."""

    def __init__(self, launch: Launch, port: int) -> None:
        self.proc = spawn(launch, port)
        self.launch = launch
        self.addresses = [(launch.host, port)]

    @property
    def pid(self) -> int | None:
        return self.proc.pid

    def poll(self) -> int | None:
        return self.proc.poll()

    def wait_ready(self, timeout: float) -> str | None:
        return wait_ready(self.proc, self.addresses[0], timeout)

    def stop(self, grace: float) -> None:
        stop(self.proc, grace, container=self.launch.container)


def start(launch: Launch, port: int) -> Handle:
    """Start a revision: Ray replicas when the launch says so, else one process here."""
    if launch.ray is not None:
        from kaos.serving.replicas import RayReplicas

        return RayReplicas(launch)
    return Proc(launch, port)


def spawn(launch: Launch, port: int, stdout: Any = None, **popen: Any) -> subprocess.Popen[bytes]:
    """The runtime (or a kaos 1.0 serve script) as a process of its own, logging to
    `launch.log` (or to `stdout` when given), confined to the launch's CPUs and memory."""
    confined = confine(launch.cpus, launch.memory, popen.pop("preexec_fn", None))
    if confined is not None:
        popen["preexec_fn"] = confined
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    if launch.python is not None:
        env["VIRTUAL_ENV"] = str(launch.python.parent.parent)
        env["PATH"] = f"{launch.python.parent}{os.pathsep}{env.get('PATH', '')}"
    if launch.gpu == 0:
        env["CUDA_VISIBLE_DEVICES"] = ""
    if launch.serve_script:
        env.update(launch.script_env(port))
        env["PYTHONUNBUFFERED"] = "1"
    if stdout is not None:
        return subprocess.Popen(
            launch.command(port), cwd=launch.code_dir, env=env, stdin=subprocess.DEVNULL,
            stdout=stdout, stderr=subprocess.STDOUT, start_new_session=True, **popen,
        )  # fmt: skip
    launch.log.parent.mkdir(parents=True, exist_ok=True)
    with open(launch.log, "ab") as log:
        return subprocess.Popen(
            launch.command(port), cwd=launch.code_dir, env=env, stdin=subprocess.DEVNULL,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, **popen,
        )  # fmt: skip


def cpu_set(cpu: float | None, seed: int, allowed: Iterable[int]) -> tuple[int, ...]:
    """The CPUs a local process may use for `--cpu N`: N rounded up to whole CPUs (a process
    has no fractions of one without cgroups) of the `allowed` ones, starting at `seed` so
    endpoints spread over the machine; none (no limit) when N covers them all."""
    cores = sorted(allowed)
    count = math.ceil(cpu or 0)
    if not count or count >= len(cores):
        return ()
    return tuple(sorted(cores[(seed + i) % len(cores)] for i in range(count)))


def confine(
    cpus: tuple[int, ...], memory: int | None, then: Callable[[], None] | None = None
) -> Callable[[], None] | None:
    """What the child runs between fork and exec: its CPU affinity and RLIMIT_DATA (heap and
    private memory: beyond it an allocation fails, a MemoryError in Python), then `then`."""
    if not cpus and memory is None:
        return then

    def apply() -> None:
        if cpus:
            os.sched_setaffinity(0, cpus)
        if memory is not None:
            resource.setrlimit(resource.RLIMIT_DATA, (memory, memory))
        if then is not None:
            then()

    return apply


def get_json(address: Address, path: str, timeout: float = 2.0) -> tuple[int, Any]:
    conn = http.client.HTTPConnection(*address, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        return response.status, json.loads(body or b"null")
    finally:
        conn.close()


def wait_ready(proc: subprocess.Popen[bytes], address: Address, timeout: float) -> str | None:
    """None once the process answers /ping; otherwise why it never will."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return f"the endpoint process exited with code {proc.returncode} before answering"
        with contextlib.suppress(OSError, ValueError, http.client.HTTPException):
            if get_json(address, "/ping", timeout=1.0)[0] == 200:
                return None
        time.sleep(0.02)
    return f"the endpoint did not answer /ping within {timeout:.0f}s"


def stop(proc: subprocess.Popen[bytes], grace: float, container: str | None = None) -> None:
    """SIGTERM (the runtime lets requests in flight finish; `docker run` passes it on), then
    SIGKILL after `grace`, and a container that outlived its `docker run` is removed."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    if container is not None:
        remove_containers([container])


def remove_containers(names: list[str]) -> None:
    if names:
        subprocess.run(["docker", "rm", "-f", *names], capture_output=True, check=False)


def leftover_containers(label: str) -> list[str]:
    """Serving containers a crashed server of this home left behind."""
    found = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label={SERVE_LABEL}={label}"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return found.stdout.split()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def last_line(log: Path) -> str | None:
    """The log's last non-empty line: the likeliest reason a process died."""
    try:
        with open(log, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 4096))
            lines = [x for x in f.read().decode("utf-8", "replace").splitlines() if x.strip()]
    except OSError:
        return None
    return lines[-1].strip()[:300] if lines else None
