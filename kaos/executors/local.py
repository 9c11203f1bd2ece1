"""The local executor: a Python environment per lock, the train script as a process.

A build finds the source's lock (see `envlock`: shipped, stored for the same requirements, or
resolved now) and makes the environment from the lock alone with `uv pip sync`. Environments
are keyed by the lock (and the Python version), so every source with the same requirements
shares one: after a code-only change the "build" is a lookup. uv installs from its cache in
about a second.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from kaos.errors import BuildFailed, Killed, TrainFailed
from kaos.executors.environment import child_env
from kaos.executors.envlock import Locker
from kaos.executors.host import SandboxStatus, host_layout, python_folders, sandbox_status
from kaos.executors.process import LogTail, end_recorded, kill_leftover, run_logged
from kaos.executors.sandbox import Sandbox, bwrap_argv
from kaos.executors.view import inside_dirs, job_mounts
from kaos.executors.workdir import TrainDirs, collect, prepare
from kaos.pipeline.envspec import env_spec, missing_module_hint
from kaos.pipeline.executor import (
    BuildRequest,
    BuiltImage,
    Cancel,
    JobLog,
    TrainOutcome,
    TrainRequest,
)
from kaos.pipeline.lockstore import EnvLock
from kaos.store import ContentStore
from kaos.store.hashing import hash_bytes

READY_MARK = ".kaos-ready"


@dataclass(frozen=True)
class BuildSettings:
    """Where packages come from, for networks that intercept TLS or mirror PyPI."""

    index_url: str | None = None
    extra_index_url: str | None = None
    ca_bundle: str | None = None

    def env(self) -> dict[str, str]:
        env = {}
        if self.index_url:
            env["UV_INDEX_URL"] = env["PIP_INDEX_URL"] = self.index_url
        if self.extra_index_url:
            env["UV_EXTRA_INDEX_URL"] = env["PIP_EXTRA_INDEX_URL"] = self.extra_index_url
        if self.ca_bundle:
            env["SSL_CERT_FILE"] = env["PIP_CERT"] = self.ca_bundle
        else:
            env["UV_NATIVE_TLS"] = "1"  # trust the system's CAs, as pip does
        return env


class LocalExecutor:
    kind = "local"

    def __init__(
        self,
        store: ContentStore,
        home: Path,
        settings: BuildSettings | None = None,
        sandbox: bool = True,
        running: Path | None = None,
    ) -> None:
        self.store = store
        self.envs = Path(home) / "envs"
        self.jobs = Path(home) / "jobs"
        # One pid file per process group running now, outside the job folders (which train
        # scripts can write to): what recover() ends after a crash.
        self.running = running or Path(home) / "running"
        self.settings = settings or BuildSettings()
        self.python = sys.executable
        self.locker = Locker(store, uv_binary(), self._uv_env(), python_version())
        self.sandbox: SandboxStatus = sandbox_status(sandbox)  # probed once, told at start-up

    def _uv_env(self) -> dict[str, str]:
        return child_env({**self.settings.env(), "NO_COLOR": "1"}, build=True)

    # -- build ------------------------------------------------------------------------------
    def env_key(self, lock: str | None) -> str:
        version = ".".join(map(str, sys.version_info[:3]))
        return hash_bytes(f"python {version}\nlock {lock or '-'}\n".encode())

    def build(self, request: BuildRequest, log: JobLog, cancel: Cancel) -> BuiltImage:
        lock = self.locker.for_build(request, log, cancel)
        digest = lock.digest if lock else None
        key = self.env_key(digest)
        env_dir = self.envs / key
        with _env_lock(self.envs, key):
            if (env_dir / READY_MARK).exists():
                log.write(f"kaos: reusing environment {key[:12]} (made from the same lock)\n")
                return BuiltImage(key, digest)
            shutil.rmtree(env_dir, ignore_errors=True)
            try:
                self._make_env(env_dir, lock, log, cancel)
            except BaseException:
                shutil.rmtree(env_dir, ignore_errors=True)
                raise
            (env_dir / READY_MARK).write_text(f"{digest or '-'}\n")
        return BuiltImage(key, digest)

    def _make_env(self, env_dir: Path, lock: EnvLock | None, log: JobLog, cancel: Cancel) -> None:
        uv, env = self.locker.uv, self._uv_env()
        log.write(f"kaos: creating environment {env_dir.name[:12]} with uv\n")
        code = run_logged(
            [uv, "venv", "--python", self.python, str(env_dir)], log, cancel, None, env,
            self._pid_file(),
        )  # fmt: skip
        _check_step(code, cancel, "could not create the Python environment")
        if lock is None:
            return
        lock_file = env_dir / lock.file
        lock_file.write_text(lock.text)
        cmd = [uv, "pip", "sync", "--python", str(env_dir / "bin" / "python"), str(lock_file)]
        if "--hash=" in lock.text:
            cmd.append("--require-hashes")
        code = run_logged(cmd, log, cancel, None, env, self._pid_file())
        _check_step(code, cancel, f"installing lock {lock.digest[:12]} failed (see the build logs)")

    def image_exists(self, image: str) -> bool:
        return (self.envs / image / READY_MARK).exists()

    def python_of(self, image: str) -> Path:
        """The interpreter of an image's environment: what serving runs a model with."""
        if not self.image_exists(image):
            raise BuildFailed(
                f"environment {image[:12]} is gone", "deploy the model's source again to rebuild it"
            )
        return self.envs / image / "bin" / "python"

    def recover(self, home: Path | None = None) -> None:
        """End the builds and trains a crashed server (this one's home, or another dead
        replica's on this machine) left running, then remove their folders."""
        if home is None:
            end_recorded(self.running)
            recover_job_dirs(self.jobs)
        else:
            end_recorded(Path(home) / "running")
            recover_job_dirs(Path(home) / "jobs")

    def _pid_file(self) -> Path:
        return self.running / uuid.uuid4().hex

    def close(self) -> None:
        """Nothing to let go of: every process ends with its job."""

    # -- train ------------------------------------------------------------------------------
    def train(self, request: TrainRequest, log: JobLog, cancel: Cancel) -> TrainOutcome:
        env_dir = self.envs / request.image
        if self.sandbox.enabled and self.sandbox.problem:
            raise TrainFailed(
                f"trains run sandboxed, and bubblewrap cannot run here ({self.sandbox.problem})",
                "install bubblewrap, or start the server with --no-sandbox",
            )
        if not self.image_exists(request.image):
            raise TrainFailed(
                f"environment {request.image[:12]} is gone", "deploy again to rebuild it"
            )
        root = self.jobs / f"{request.job_id}-{request.index}-{uuid.uuid4().hex[:6]}"
        try:
            dirs = prepare(self.store, request, root)
            seen = inside_dirs(dirs) if self.sandbox.usable else dirs
            env = child_env(
                {
                    **dirs.contract_env(seen),
                    "VIRTUAL_ENV": str(env_dir),
                    "PATH": f"{env_dir / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
                    "PYTHONUNBUFFERED": "1",
                }
            )
            if request.resources.gpu == 0:
                env["CUDA_VISIBLE_DEVICES"] = ""
            tail = LogTail(log)
            command = [str(seen.model_dir / "train"), str(seen.output)]
            if self.sandbox.usable:
                env.update(HOME="/tmp", TMPDIR="/tmp")  # the only writable places inside
                command = sandboxed(dirs, env_dir, command, request.resources.network)
            code = run_logged(command, tail, cancel, dirs.model_dir, env, self._pid_file())
            if cancel.killed:
                raise Killed()
            if code != 0:
                raise train_exit_failure(
                    code, tail.lines, self.store, request, sandboxed=self.sandbox.usable
                )
            return collect(self.store, dirs, log)
        finally:
            shutil.rmtree(root, ignore_errors=True)


def train_exit_failure(
    code: int, lines: list[str], store: ContentStore, request: TrainRequest, sandboxed: bool = True
) -> TrainFailed:
    """A failed train script's one line; an import error names the module and where the
    environment's requirements are read from; a kaos 1.0 script run without the sandbox, that
    /pfs is the sandbox's."""
    if not sandboxed and any("/pfs/" in line for line in lines):
        return TrainFailed(
            f"the train script exited with code {code}: it reads /pfs, which only the sandbox "
            "shows (this server runs --no-sandbox)",
            "read KAOS_DATA_DIR and KAOS_HYPERPARAMS instead, or start the server without "
            "--no-sandbox",
        )
    spec = env_spec(store.get_tree(request.source), request.bundle_name)
    hint = missing_module_hint(lines, spec)
    if hint:
        return TrainFailed(f"the train script exited with code {code}: {hint}")
    return TrainFailed(f"the train script exited with code {code} (see the logs)")


def sandboxed(dirs: TrainDirs, env_dir: Path, command: list[str], network: bool) -> list[str]:
    """`command` wrapped in the job's sandbox: its view, its environment and Python read-only."""
    layout = host_layout().with_folders(python_folders(env_dir / "bin" / "python"))
    sandbox = Sandbox(layout, job_mounts(dirs), str(inside_dirs(dirs).model_dir), network)
    return bwrap_argv(sandbox, command, bwrap=shutil.which("bwrap") or "bwrap")


def recover_job_dirs(jobs: Path) -> int:
    """After a crash: end train processes left running and remove their job folders.

    Train scripts run as the server's user and can write next to their own folder, so anything
    may be found here (a plain file, a symlink): it is removed, never followed, never fatal.
    """
    if not jobs.is_dir():
        return 0
    count = 0
    for entry in jobs.iterdir():
        try:
            if entry.is_symlink() or not entry.is_dir():
                entry.unlink()
                continue
            kill_leftover(entry / "pid")
            shutil.rmtree(entry, ignore_errors=True)
            count += 1
        except OSError:
            continue
    return count


def _check_step(code: int, cancel: Cancel, message: str) -> None:
    if cancel.killed:
        raise Killed()
    if code != 0:
        raise BuildFailed(message)


def python_version() -> str:
    """The `X.Y` locks are resolved for: this server's interpreter (also the base images')."""
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def uv_binary() -> str:
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if found is None:
            raise BuildFailed("uv is not installed", "pip install uv") from None
        return found


@contextmanager
def _env_lock(envs: Path, key: str) -> Iterator[None]:
    """One builder per environment, across threads and processes."""
    envs.mkdir(parents=True, exist_ok=True)
    with open(envs / f"{key}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
