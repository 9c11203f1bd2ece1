"""The Docker executor: the source's Dockerfile becomes an image; each model trains in a
container showing the same view as the local sandbox (`kaos.executors.view`: data read-only,
output writable, /pfs for kaos 1.0 scripts), with network none unless the deploy asks for it.

Images are made from the source's lock (see `envlock`): the requirements file in the build
context is replaced by the lock, whose `--hash` lines make pip install exactly the locked
files. Images are tagged `build-train-<name>:<5 hex>` and labelled with the full source and
lock hashes, so an unchanged source is found by its tag and never sent to the engine again.
The source checkout is mounted into the container and run from there: every executor runs
exactly the same code, and the image only provides the environment.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kaos.errors import BuildFailed, ConfigError, Killed, TrainFailed
from kaos.executors.environment import child_env
from kaos.executors.envlock import KAOS_LOCK, Locker
from kaos.executors.local import (
    BuildSettings,
    python_version,
    recover_job_dirs,
    train_exit_failure,
    uv_binary,
)
from kaos.executors.process import LogTail
from kaos.executors.view import inside_dirs, job_mounts
from kaos.executors.workdir import TrainDirs, collect, prepare
from kaos.pipeline.envspec import env_spec
from kaos.pipeline.executor import (
    BuildRequest,
    BuiltImage,
    Cancel,
    JobLog,
    TrainOutcome,
    TrainRequest,
)
from kaos.pipeline.ids import image_name
from kaos.pipeline.inputs import Resources, memory_bytes
from kaos.pipeline.lockstore import EnvLock
from kaos.store import ContentStore
from kaos.store.hashing import hash_bytes

SOURCE_LABEL = "kaos.source"
LOCK_LABEL = "kaos.lock"
JOB_LABEL = "kaos.job"
OWNER_LABEL = "kaos.owner"  # which server's home started it: recovery ends only its own
CA_FILE = ".kaos-ca.crt"


@dataclass(frozen=True)
class DockerSettings:
    """Build settings from the server's settings, never hard-coded paths."""

    base_image: str | None = None  # passed as the BASE_IMAGE build argument
    build_args: dict[str, str] = field(default_factory=dict)
    ca_bundle: str | None = None  # a CA file added to builds (TLS-intercepting networks)
    index_url: str | None = None
    extra_index_url: str | None = None
    build_network: str = "host"


class DockerExecutor:
    kind = "docker"

    def __init__(
        self,
        store: ContentStore,
        home: Path,
        settings: DockerSettings | None = None,
        client: Any = None,
    ) -> None:
        self.store = store
        self.jobs = Path(home) / "jobs"
        self.owner = _owner(home)
        self.settings = settings or DockerSettings()
        self.client = client or connect()
        s = self.settings
        uv_env = child_env(
            BuildSettings(s.index_url, s.extra_index_url, s.ca_bundle).env(), build=True
        )
        self.locker = Locker(store, uv_binary(), uv_env, python_version())

    # -- build ------------------------------------------------------------------------------
    def image_exists(self, image: str) -> bool:
        import docker.errors

        try:
            self.client.images.get(image)
            return True
        except docker.errors.ImageNotFound:
            return False

    def build(self, request: BuildRequest, log: JobLog, cancel: Cancel) -> BuiltImage:
        lock = self.locker.for_build(request, log, cancel)
        digest = lock.digest if lock else None
        labels = {SOURCE_LABEL: request.source, LOCK_LABEL: digest or "-"}
        tag = image_name(request.bundle_name, request.source)
        if self._labels(tag) == labels:
            log.write(f"kaos: reusing image {tag} (same source and lock)\n")
            return BuiltImage(tag, digest)
        if request.lock is not None and digest:  # another lock than the tag's (a reproduce)
            tag = f"{tag}-{digest[:5]}"
            if self._labels(tag) == labels:
                log.write(f"kaos: reusing image {tag} (same source and lock)\n")
                return BuiltImage(tag, digest)
        with tempfile.TemporaryDirectory(prefix="kaos-build-") as tmp:
            context, dockerfile = self._context(request, Path(tmp), lock, log)
            self._run_build(context, dockerfile, tag, labels, log, cancel)
        return BuiltImage(tag, digest)

    def _labels(self, tag: str) -> dict[str, str] | None:
        import docker.errors

        try:
            labels = self.client.images.get(tag).labels or {}
        except docker.errors.ImageNotFound:
            return None
        return {k: labels.get(k, "") for k in (SOURCE_LABEL, LOCK_LABEL)}

    def _context(
        self, request: BuildRequest, tmp: Path, lock: EnvLock | None, log: JobLog
    ) -> tuple[Path, Path]:
        """The build context and the Dockerfile: the bundle's folder, or `<name>/model` in
        kaos 1.0's layout (`-f <name>/Dockerfile <name>/model`). The requirements file in it
        is replaced by the lock; with a CA bundle set, the Dockerfile is given the CA right
        after each FROM (the user's files in the store are not changed)."""
        checkout = self.store.checkout(request.source, tmp / "source", link=False)
        spec = env_spec(self.store.get_tree(request.source), request.bundle_name)
        context = checkout / spec.build_context
        dockerfile = checkout / request.bundle_name / "Dockerfile"
        if lock is not None and lock.file == KAOS_LOCK and spec.requirements_path:
            (checkout / spec.requirements_path).write_text(lock.text)
            log.write(
                f"kaos: the image installs lock {lock.digest[:12]} as {spec.requirements_path}\n"
            )
        if self.settings.ca_bundle:
            shutil.copyfile(self.settings.ca_bundle, context / CA_FILE)
            dockerfile.write_text(_with_ca(dockerfile.read_text()))
        return context, dockerfile

    def _run_build(
        self,
        context: Path,
        dockerfile: Path,
        tag: str,
        labels: dict[str, str],
        log: JobLog,
        cancel: Cancel,
    ) -> None:
        args = dict(self.settings.build_args)
        if self.settings.base_image:
            args["BASE_IMAGE"] = self.settings.base_image
        if self.settings.index_url:
            args["PIP_INDEX_URL"] = self.settings.index_url
        if self.settings.extra_index_url:
            args["PIP_EXTRA_INDEX_URL"] = self.settings.extra_index_url
        stream = self.client.api.build(
            path=str(context),
            dockerfile=str(dockerfile),  # outside the context in kaos 1.0's layout
            tag=tag,
            buildargs=args,
            labels=labels,
            network_mode=self.settings.build_network,
            rm=True,
            forcerm=True,  # no containers left behind, even when a step fails
            decode=True,
        )
        cancel.on_kill(stream.close)
        try:
            for chunk in stream:
                if cancel.killed:
                    raise Killed()
                if "stream" in chunk:
                    log.write(chunk["stream"])
                elif "error" in chunk:
                    log.write(chunk["error"] + "\n")
                    raise BuildFailed(f"docker build failed: {_last_line(chunk['error'])}")
        except Exception as exc:
            if cancel.killed:
                raise Killed() from None
            if isinstance(exc, BuildFailed | Killed):
                raise
            raise BuildFailed(f"docker build failed: {exc}") from None
        if cancel.killed:
            raise Killed()

    def recover(self, home: Path | None = None) -> None:
        """After a crash: remove containers kaos left running, and their job folders (this
        server's, or those of the dead replica with `home`)."""
        owner = self.owner if home is None else _owner(home)
        mine = {"label": [JOB_LABEL, f"{OWNER_LABEL}={owner}"]}  # not other servers' jobs
        for container in self.client.containers.list(all=True, filters=mine):
            _remove(container)
        recover_job_dirs(self.jobs if home is None else Path(home) / "jobs")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()

    # -- train ------------------------------------------------------------------------------
    def train(self, request: TrainRequest, log: JobLog, cancel: Cancel) -> TrainOutcome:
        import docker.errors

        root = self.jobs / f"{request.job_id}-{request.index}-{uuid.uuid4().hex[:6]}"
        container = None
        try:
            dirs = prepare(self.store, request, root)
            inside = inside_dirs(dirs)
            container = self.client.containers.run(
                request.image,
                command=[str(inside.model_dir / "train"), str(inside.output)],
                working_dir=str(inside.model_dir),
                environment={
                    **dirs.contract_env(inside),
                    "PYTHONUNBUFFERED": "1",
                    "HOME": "/tmp",  # as in the sandbox: only the output and /tmp are writable
                    "TMPDIR": "/tmp",
                },
                mounts=_mounts(dirs),
                read_only=True,
                tmpfs={"/tmp": "exec"},
                network_mode="host" if request.resources.network else "none",
                init=True,
                detach=True,
                labels={JOB_LABEL: request.job_id, OWNER_LABEL: self.owner},
                **_limits(request.resources),
            )
            cancel.on_kill(lambda: _kill(container))
            tail = LogTail(log)
            for line in container.logs(stream=True, follow=True):
                tail.write(line.decode("utf-8", errors="replace"))
            code = container.wait().get("StatusCode", -1)
            container.reload()
            if cancel.killed:
                raise Killed()
            if container.attrs.get("State", {}).get("OOMKilled"):
                limit = request.resources.memory
                raise TrainFailed(
                    f"out of memory: the train script exceeded its memory limit ({limit})"
                )
            if code != 0:
                raise train_exit_failure(code, tail.lines, self.store, request)
            return collect(self.store, dirs, log)
        except docker.errors.ImageNotFound:
            raise TrainFailed(
                f"image {request.image} is gone", "deploy again to rebuild it"
            ) from None
        except docker.errors.APIError as exc:
            raise TrainFailed(
                f"docker could not run the container: {exc.explanation or exc}"
            ) from None
        finally:
            if container is not None:
                _remove(container)
            shutil.rmtree(root, ignore_errors=True)


def connect() -> Any:
    try:
        import docker
    except ImportError:
        raise ConfigError(
            "the docker executor needs the docker package", "pip install 'kaos[docker]'"
        ) from None
    try:
        client = docker.from_env()
        client.ping()
        return client
    except Exception as exc:
        raise ConfigError(
            f"cannot reach the Docker engine ({type(exc).__name__})",
            "start dockerd (or set DOCKER_HOST), or use --executor local",
        ) from None


def _with_ca(dockerfile: str) -> str:
    inject = (
        f"COPY {CA_FILE} /usr/local/share/kaos-ca.crt\n"
        "ENV PIP_CERT=/usr/local/share/kaos-ca.crt SSL_CERT_FILE=/usr/local/share/kaos-ca.crt "
        "REQUESTS_CA_BUNDLE=/usr/local/share/kaos-ca.crt\n"
    )
    return re.sub(r"(?im)^(FROM\s.+)$", lambda m: m.group(1) + "\n" + inject, dockerfile)


def _mounts(dirs: TrainDirs) -> list[Any]:
    """The job's view (`kaos.executors.view`) as bind mounts, the same paths bwrap shows."""
    import docker.types

    return [
        docker.types.Mount(str(m.inside), str(m.host), type="bind", read_only=not m.writable)
        for m in job_mounts(dirs)
    ]


def _limits(resources: Resources) -> dict[str, Any]:
    limits: dict[str, Any] = {}
    if resources.cpu:
        limits["nano_cpus"] = int(resources.cpu * 1e9)
    if resources.memory:
        limit = memory_bytes(resources.memory)
        limits["mem_limit"] = limit
        limits["memswap_limit"] = limit  # no swap: exceeding the limit is an OOM kill
    if resources.gpu:
        import docker.types

        limits["device_requests"] = [
            docker.types.DeviceRequest(count=resources.gpu, capabilities=[["gpu"]])
        ]
    return limits


def _kill(container: Any) -> None:
    with contextlib.suppress(Exception):  # already gone
        container.kill()


def _remove(container: Any) -> None:
    with contextlib.suppress(Exception):
        container.remove(force=True)


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "unknown error"


def _owner(home: Path) -> str:
    """Which server's home started a container (its label)."""
    return hash_bytes(str(Path(home).resolve()).encode())[:16]
