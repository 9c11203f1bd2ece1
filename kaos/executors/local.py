"""The local executor: a Python environment per requirements, the train script as a process.

Builds are keyed by the hash of `requirements.txt` (and the Python version), so every source
with the same requirements shares one environment: after a code-only change the "build" is a
lookup. Environments are made with uv, which installs from its cache in about a second.
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

from kaos.executors.base import (
    BuildFailed,
    BuildRequest,
    Cancel,
    Killed,
    TrainFailed,
    TrainOutcome,
    TrainRequest,
)
from kaos.executors.process import kill_leftover, run_logged
from kaos.executors.workdir import collect, prepare
from kaos.pipeline.logs import LogWriter
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
        self, store: ContentStore, home: Path, settings: BuildSettings | None = None
    ) -> None:
        self.store = store
        self.envs = Path(home) / "envs"
        self.jobs = Path(home) / "jobs"
        self.settings = settings or BuildSettings()
        self.python = sys.executable

    # -- build ------------------------------------------------------------------------------
    def env_key(self, requirements: bytes) -> str:
        version = f"{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"
        return hash_bytes(b"python " + version.encode() + b"\n" + requirements)

    def build(self, request: BuildRequest, log: LogWriter, cancel: Cancel) -> str:
        tree = self.store.get_tree(request.source)
        entry = tree.get(f"{request.bundle_name}/requirements.txt")
        requirements = self.store.get_bytes(entry.digest) if entry else b""
        key = self.env_key(requirements)
        env_dir = self.envs / key
        with _env_lock(self.envs, key):
            if (env_dir / READY_MARK).exists():
                log.write(f"kaos: reusing environment {key[:12]} (same requirements.txt)\n")
                return key
            shutil.rmtree(env_dir, ignore_errors=True)
            try:
                self._make_env(env_dir, requirements, log, cancel)
            except BaseException:
                shutil.rmtree(env_dir, ignore_errors=True)
                raise
            (env_dir / READY_MARK).write_text(request.source + "\n")
        return key

    def _make_env(self, env_dir: Path, requirements: bytes, log: LogWriter, cancel: Cancel) -> None:
        uv = _uv_binary()
        env = {**os.environ, **self.settings.env(), "NO_COLOR": "1"}
        log.write(f"kaos: creating environment {env_dir.name[:12]} with uv\n")
        code = run_logged([uv, "venv", "--python", self.python, str(env_dir)], log, cancel, env=env)
        _check_step(code, cancel, "could not create the Python environment")
        if not requirements.strip():
            log.write("kaos: no requirements.txt; the environment has no extra packages\n")
            return
        req_file = env_dir / "requirements.txt"
        req_file.write_bytes(requirements)
        cmd = [
            uv,
            "pip",
            "install",
            "--python",
            str(env_dir / "bin" / "python"),
            "-r",
            str(req_file),
        ]
        code = run_logged(cmd, log, cancel, env=env)
        _check_step(code, cancel, "installing requirements.txt failed (see the build logs)")

    def image_exists(self, image: str) -> bool:
        return (self.envs / image / READY_MARK).exists()

    def python_of(self, image: str) -> Path:
        """The interpreter of an image's environment: what serving runs a model with."""
        if not self.image_exists(image):
            raise BuildFailed(
                f"environment {image[:12]} is gone", "deploy the model's source again to rebuild it"
            )
        return self.envs / image / "bin" / "python"

    def recover(self) -> None:
        recover_job_dirs(self.jobs)

    # -- train ------------------------------------------------------------------------------
    def train(self, request: TrainRequest, log: LogWriter, cancel: Cancel) -> TrainOutcome:
        env_dir = self.envs / request.image
        if not self.image_exists(request.image):
            raise TrainFailed(
                f"environment {request.image[:12]} is gone", "deploy again to rebuild it"
            )
        root = self.jobs / f"{request.job_id}-{request.index}-{uuid.uuid4().hex[:6]}"
        try:
            dirs = prepare(self.store, request, root)
            env = {
                **os.environ,
                **dirs.contract_env(),
                "VIRTUAL_ENV": str(env_dir),
                "PATH": f"{env_dir / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
                "PYTHONUNBUFFERED": "1",
            }
            env.pop("PYTHONHOME", None)
            if request.resources.gpu == 0:
                env["CUDA_VISIBLE_DEVICES"] = ""
            code = run_logged(
                [str(dirs.model_dir / "train"), str(dirs.output)], log, cancel, dirs.model_dir, env
            )
            if cancel.killed:
                raise Killed("killed on request")
            if code != 0:
                raise TrainFailed(f"the train script exited with code {code} (see the logs)")
            return collect(self.store, dirs, log)
        finally:
            shutil.rmtree(root, ignore_errors=True)


def recover_job_dirs(jobs: Path) -> int:
    """After a crash: end train processes left running and remove their job folders."""
    if not jobs.is_dir():
        return 0
    count = 0
    for folder in jobs.iterdir():
        kill_leftover(folder / "pid")
        shutil.rmtree(folder, ignore_errors=True)
        count += 1
    return count


def _check_step(code: int, cancel: Cancel, message: str) -> None:
    if cancel.killed:
        raise Killed("killed on request")
    if code != 0:
        raise BuildFailed(message)


def _uv_binary() -> str:
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
