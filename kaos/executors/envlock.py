"""Locked environments: a source's requirements are resolved once per store into a lock (exact
versions and hashes), and environments are made from locks only, never from a loose file.

Where a source's environment comes from, looked up in `<name>/` and then `<name>/model/` (the
kaos 1.0 layout):
  pylock.toml or requirements.lock   a lock the source ships: checked, then used as is;
  requirements.txt                   resolved with `uv pip compile --generate-hashes`. The lock
                                     is stored, and the ref `refs/env-locks/<requirements hash>-
                                     py<X.Y>` points at it, so every later build of the same
                                     requirements on this store, by any server sharing it, reuses
                                     it until a fresh resolve is asked for (`--refresh-env`);
  neither                            no lock: the environment has only the base interpreter.

A lock is a small tree in the store (see `kaos.pipeline.lockstore`).
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path

from kaos.errors import BuildFailed, Killed
from kaos.executors.process import LogTail, run_logged
from kaos.pipeline.envspec import (
    REQUIREMENTS,
    base_only_note,
    check_lock,
    env_spec,
    resolver_reason,
)
from kaos.pipeline.executor import BuildRequest, Cancel, JobLog
from kaos.pipeline.lockstore import EnvLock, read_lock, store_lock
from kaos.store import ContentStore, Tree
from kaos.store.hashing import hash_bytes

KAOS_LOCK = "requirements.lock"  # what kaos writes: pip-compatible, with --hash lines
REF_PREFIX = "env-locks/"


class Locker:
    """Finds, resolves and stores locks; one per executor (resolving runs uv on this host)."""

    def __init__(self, store: ContentStore, uv: str, uv_env: Mapping[str, str], python: str):
        self.store = store
        self.uv = uv
        self.uv_env = dict(uv_env)
        self.python = python  # "3.11": what locks are resolved for

    def lock(
        self, tree: Tree, name: str, log: JobLog, cancel: Cancel, refresh: bool = False
    ) -> EnvLock | None:
        """The source's lock: shipped, stored for the same requirements, or resolved now."""
        spec = env_spec(tree, name)
        if spec.lock_path is not None:
            entry = tree.get(spec.lock_path)
            assert entry is not None
            data = self.store.get_bytes(entry.digest)
            text = check_lock(spec.lock_path, data)
            lock = self._store(spec.lock_path.rsplit("/", 1)[1], text, "shipped")
            log.write(f"kaos: using the lock the source ships, {spec.lock_path}\n")
            return lock
        if spec.requirements_path is None:
            log.write(f"kaos: {base_only_note(spec)}\n")
            return None
        entry = tree.get(spec.requirements_path)
        assert entry is not None
        requirements = self.store.get_bytes(entry.digest)
        if not requirements.strip():
            log.write(f"kaos: {spec.requirements_path} is empty: {base_only_note(spec)}\n")
            return None
        ref = f"{REF_PREFIX}{hash_bytes(requirements)}-py{self.python}"
        stored = None if refresh else self.store.refs.get(ref)
        if stored is not None and stored in self.store:
            lock = self.read(stored)
            log.write(
                f"kaos: reusing lock {stored[:12]} resolved earlier for the same "
                f"{spec.requirements_path} ({len(lock.versions())} packages)\n"
            )
            return lock
        lock = self._resolve(spec.requirements_path, requirements, log, cancel)
        self.store.refs.set(ref, lock.digest)
        return lock

    def for_build(self, request: BuildRequest, log: JobLog, cancel: Cancel) -> EnvLock | None:
        """The lock a build makes its environment from: the one the request names (a retrain or
        a reproduction), else the source's, resolved or reused (one rule for every executor)."""
        if request.lock is not None:
            return self.read(request.lock)
        tree = self.store.get_tree(request.source)
        return self.lock(tree, request.bundle_name, log, cancel, request.refresh_env)

    def read(self, digest: str) -> EnvLock:
        return read_lock(self.store, digest)

    def _resolve(self, path: str, requirements: bytes, log: JobLog, cancel: Cancel) -> EnvLock:
        log.write(f"kaos: resolving {path} into a lock for Python {self.python}\n")
        tail = LogTail(log)
        with tempfile.TemporaryDirectory(prefix="kaos-lock-") as tmp:
            (Path(tmp) / REQUIREMENTS).write_bytes(requirements)
            cmd = [
                self.uv, "pip", "compile", REQUIREMENTS, "--generate-hashes", "--no-header",
                "--python-version", self.python, "--output-file", KAOS_LOCK, "--quiet",
            ]  # fmt: skip
            code = run_logged(cmd, tail, cancel, Path(tmp), {**self.uv_env, "NO_COLOR": "1"})
            if cancel.killed:
                raise Killed()
            if code != 0:
                raise BuildFailed(f"{path} does not resolve: {resolver_reason(tail.lines)}")
            text = (Path(tmp) / KAOS_LOCK).read_text()
        lock = self._store(KAOS_LOCK, check_lock(path, text.encode()), "resolved")
        log.write(f"kaos: locked {len(lock.versions())} packages as {lock.digest[:12]}\n")
        return lock

    def _store(self, file: str, text: str, origin: str) -> EnvLock:
        return store_lock(self.store, file, text, self.python, origin)
