"""Locks: where a source's environment comes from, what counts as a lock, and the store's
lock reuse (a real `uv pip compile` against the package index)."""

from __future__ import annotations

import os

import pytest

from kaos.errors import BuildFailed, IntegrityError, LockError
from kaos.executors.envlock import Locker
from kaos.executors.local import BuildSettings, uv_binary
from kaos.pipeline.envspec import check_lock, env_spec
from kaos.pipeline.executor import Cancel
from kaos.store import ContentStore
from kaos.store.backends import LocalBackend
from kaos.store.hashing import hash_bytes
from kaos.store.tree import Tree, TreeEntry

LOCK = "numpy==2.1.3 \\\n    --hash=sha256:aa\n    # via -r requirements.txt\n"


class Log:
    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> None:
        self.text += text


def tree_of(*paths: str) -> Tree:
    return Tree.of(TreeEntry(p, hash_bytes(p.encode()), 1) for p in paths)


def test_requirements_and_locks_are_found_in_the_bundle_or_in_model():
    flat = env_spec(tree_of("m/requirements.txt", "m/model/train"), "m")
    assert (flat.requirements_path, flat.lock_path) == ("m/requirements.txt", None)
    old = env_spec(tree_of("m/model/requirements.txt", "m/model/pylock.toml"), "m")
    assert (old.requirements_path, old.lock_path) == (
        "m/model/requirements.txt",
        "m/model/pylock.toml",
    )
    both = env_spec(tree_of("m/requirements.lock", "m/model/requirements.txt"), "m")
    assert both.lock_path == "m/requirements.lock"
    none = env_spec(tree_of("m/model/train"), "m")
    assert none.empty and "m/requirements.txt or m/model/requirements.txt" in none.where()


def test_kaos_1_layout_builds_with_model_as_docker_context():
    assert env_spec(tree_of("m/model/requirements.txt"), "m").build_context == "m/model"
    assert env_spec(tree_of("m/requirements.txt", "m/model/x"), "m").build_context == "m"
    assert env_spec(tree_of("m/model/train"), "m").build_context == "m"


def test_a_lock_must_pin_every_package_and_parse():
    assert check_lock("m/requirements.lock", LOCK.encode()) == LOCK
    with pytest.raises(
        LockError, match=r"m/requirements.lock is not a valid lock: line 1 \(numpy>=1\)"
    ):
        check_lock("m/requirements.lock", b"numpy>=1\n")
    with pytest.raises(LockError, match=r"m/pylock\.toml is not a valid lock"):
        check_lock("m/pylock.toml", b"[[packages]\nname=")
    with pytest.raises(LockError, match="no lock-version"):
        check_lock("m/pylock.toml", b'[[packages]]\nname = "x"\n')
    with pytest.raises(LockError, match="not UTF-8"):
        check_lock("m/requirements.lock", b"\xff\xfe")


@pytest.fixture
def store(tmp_path) -> ContentStore:
    return ContentStore(LocalBackend(tmp_path / "store"), tmp_path / "home")


def locker(store: ContentStore) -> Locker:
    env = {**os.environ, **BuildSettings().env()}
    return Locker(store, uv_binary(), env, "3.11")


def source(store: ContentStore, files: dict[str, bytes]) -> Tree:
    with store.writer() as w:
        for data in files.values():
            w.put_bytes(data)
    tree = Tree.of(TreeEntry(p, hash_bytes(d), len(d)) for p, d in files.items())
    store.put_tree(tree)
    return tree


@pytest.mark.slow
def test_the_first_build_resolves_and_later_builds_reuse_the_stored_lock(store, tmp_path):
    tree = source(store, {"m/requirements.txt": b"six\n", "m/model/train": b"x"})
    first_log = Log()
    first = locker(store).lock(tree, "m", first_log, Cancel())
    assert first is not None and first.origin == "resolved" and "resolving" in first_log.text
    assert "six" in first.versions() and "--hash=sha256:" in first.text
    # another server sharing the store (a fresh Locker, other caches) gets the same lock
    other = ContentStore(LocalBackend(tmp_path / "store"), tmp_path / "other-home")
    again_log = Log()
    again = locker(other).lock(tree, "m", again_log, Cancel())
    assert again is not None and again.digest == first.digest and "reusing lock" in again_log.text
    fresh = locker(store).lock(tree, "m", Log(), Cancel(), refresh=True)
    assert fresh is not None and fresh.origin == "resolved"


@pytest.mark.slow
def test_requirements_that_do_not_resolve_fail_with_the_resolvers_reason(store):
    tree = source(store, {"m/requirements.txt": b"kaos-no-such-package-xyz==0.0.1\n"})
    with pytest.raises(BuildFailed, match=r"m/requirements.txt does not resolve: .*kaos-no-such"):
        locker(store).lock(tree, "m", Log(), Cancel())
    assert not list(store.backend.list("refs/"))


def test_a_requirement_that_does_not_parse_fails_naming_the_problem_not_a_caret(store):
    tree = source(store, {"m/requirements.txt": b"this is not [valid\n"})
    with pytest.raises(BuildFailed) as failed:
        locker(store).lock(tree, "m", Log(), Cancel())
    message = str(failed.value)
    assert "m/requirements.txt does not resolve: " in message
    assert "parse requirement" in message and "found `i`" in message, message
    assert not list(store.backend.list("refs/"))


def test_a_shipped_lock_is_used_as_is_and_a_bad_one_is_refused_with_its_path(store):
    tree = source(
        store, {"m/model/requirements.lock": LOCK.encode(), "m/requirements.txt": b"six\n"}
    )
    log = Log()
    lock = locker(store).lock(tree, "m", log, Cancel())
    assert lock is not None and lock.origin == "shipped" and lock.text == LOCK
    assert locker(store).read(lock.digest).versions() == {"numpy": "2.1.3"}
    bad = source(store, {"m/pylock.toml": b"not = [toml"})
    with pytest.raises(LockError, match=r"m/pylock\.toml is not a valid lock"):
        locker(store).lock(bad, "m", Log(), Cancel())


def test_a_source_without_requirements_has_no_lock_and_says_so(store):
    log = Log()
    assert locker(store).lock(source(store, {"m/model/train": b"x"}), "m", log, Cancel()) is None
    assert "the environment has only the base interpreter" in log.text


def test_refs_point_at_digests_and_a_corrupt_ref_is_refused_naming_it(store):
    assert store.refs.get("env-locks/abc-py3.11") is None
    digest = hash_bytes(b"x")
    store.refs.set("env-locks/abc-py3.11", digest)
    assert store.refs.get("env-locks/abc-py3.11") == digest
    store.backend.put("refs/env-locks/bad-py3.11", b"not a digest\n")
    with pytest.raises(
        IntegrityError, match=r"ref refs/env-locks/bad-py3\.11 in the store is corrupt"
    ):
        store.refs.get("env-locks/bad-py3.11")
    with pytest.raises(ValueError, match="bad ref name"):
        store.refs.set("../escape", digest)
