"""Locks as objects in the store: a small tree holding the lock file and `python-version` (the
interpreter it was resolved for). Its digest is what image records, jobs and provenance pin."""

from __future__ import annotations

import re
from dataclasses import dataclass

from kaos.errors import LockError
from kaos.pipeline.bundles import source_bundle_name
from kaos.pipeline.diff import locked_versions, normalize
from kaos.pipeline.envspec import LOCK_NAMES, check_lock, env_spec, logical_lines
from kaos.store import ContentStore, Tree, TreeEntry
from kaos.store.hashing import hash_bytes

PYTHON_FILE = "python-version"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class EnvLock:
    digest: str  # the lock's tree in the store
    file: str  # the lock file's name in that tree: requirements.lock | pylock.toml
    text: str
    python: str  # "3.11"
    origin: str = "stored"  # shipped | stored | resolved (how a build came by it)

    def versions(self) -> dict[str, str]:
        return locked_versions(self.text)


def store_lock(store: ContentStore, file: str, text: str, python: str, origin: str) -> EnvLock:
    data, version = text.encode(), f"{python}\n".encode()
    tree = Tree.of(
        [
            TreeEntry(file, hash_bytes(data), len(data)),
            TreeEntry(PYTHON_FILE, hash_bytes(version), len(version)),
        ]
    )
    with store.writer() as writer:
        for blob in (data, version):
            if not writer.has(hash_bytes(blob)):
                writer.put_bytes(blob)
        store.put_tree(tree, writer)
    return EnvLock(tree.digest, file, text, python, origin)


def read_lock(store: ContentStore, digest: str) -> EnvLock:
    """A stored lock, checked again: one that does not parse is refused, naming it."""
    tree = store.get_tree(digest)
    files = [e for e in tree if e.path in LOCK_NAMES]
    python = tree.get(PYTHON_FILE)
    if len(files) != 1 or python is None:
        raise LockError(f"lock {digest[:12]} in the store is not a lock tree")
    text = check_lock(f"lock {digest[:12]}/{files[0].path}", store.get_bytes(files[0].digest))
    version = store.get_bytes(python.digest).decode("ascii", "replace").strip()
    return EnvLock(digest, files[0].path, text, version)


@dataclass(frozen=True)
class EnvSummary:
    """What provenance shows of an environment."""

    lock: str
    file: str
    python: str
    packages: dict[str, str]  # the requirements' top-level packages -> locked version
    locked: int  # every package the lock installs


def summarize(store: ContentStore, lock: str, source: str) -> EnvSummary:
    """The lock's Python and the locked versions of what the source's requirements name (of
    every locked package when the source shipped its lock and has no requirements file)."""
    env = read_lock(store, lock)
    versions = env.versions()
    tree = store.get_tree(source)
    spec = env_spec(tree, source_bundle_name(tree))
    entry = tree.get(spec.requirements_path) if spec.requirements_path else None
    if entry is None:
        top = versions
    else:
        names = top_level_names(store.get_bytes(entry.digest).decode("utf-8", "replace"))
        top = {n: versions.get(n, "?") for n in names}
    return EnvSummary(lock, env.file, env.python, top, len(versions))


def top_level_names(requirements: str) -> list[str]:
    """The packages a requirements file names itself (options and includes left out)."""
    names = []
    for _number, line in logical_lines(requirements):
        found = _NAME.match(line)
        if found and not line.startswith("-"):
            names.append(normalize(found.group(0)))
    return list(dict.fromkeys(names))
