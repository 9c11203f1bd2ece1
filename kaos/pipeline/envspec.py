"""Where a source's environment comes from, what counts as a lock, and what a failure on a
missing module means: pure checks on a source tree and on text (the `Locker` in
`kaos.executors.envlock` does the I/O).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass

from kaos.errors import LockError
from kaos.store.tree import Tree

LOCK_NAMES = ("pylock.toml", "requirements.lock")  # what a source may ship
REQUIREMENTS = "requirements.txt"
PLACES = ("", "model/")


@dataclass(frozen=True)
class EnvSpec:
    """What a source's tree says about its environment (pure)."""

    name: str
    lock_path: str | None  # a shipped lock, e.g. mnist/model/pylock.toml
    requirements_path: str | None  # e.g. mnist/requirements.txt

    @property
    def empty(self) -> bool:
        return self.lock_path is None and self.requirements_path is None

    @property
    def build_context(self) -> str:
        """Where docker builds from: `<name>/model` when requirements are read from there
        (kaos 1.0's layout, `-f <name>/Dockerfile <name>/model`), else `<name>`."""
        legacy = f"{self.name}/model/"
        return (
            legacy.rstrip("/") if (self.requirements_path or "").startswith(legacy) else self.name
        )

    def where(self) -> str:
        """Where requirements are read from, for messages."""
        return f"{self.name}/{REQUIREMENTS} or {self.name}/model/{REQUIREMENTS}"


def env_spec(tree: Tree, name: str) -> EnvSpec:
    lock = req = None
    for place in PLACES:
        for lock_name in LOCK_NAMES:
            path = f"{name}/{place}{lock_name}"
            if lock is None and tree.get(path) is not None:
                lock = path
        path = f"{name}/{place}{REQUIREMENTS}"
        if req is None and tree.get(path) is not None:
            req = path
    return EnvSpec(name, lock, req)


def base_only_note(spec: EnvSpec) -> str:
    return (
        f"no requirements in /{spec.name} (read from {spec.where()}, or a pylock.toml / "
        "requirements.lock beside them): the environment has only the base interpreter"
    )


def check_lock(path: str, data: bytes) -> str:
    """The lock's text, or a LockError naming `path` and what is wrong with it."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise LockError(f"{path} is not a valid lock: it is not UTF-8 text") from None
    if path.endswith(".toml"):
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise LockError(f"{path} is not a valid lock: {exc}") from None
        packages = doc.get("packages")
        if "lock-version" not in doc or not isinstance(packages, list):
            raise LockError(f"{path} is not a valid lock: no lock-version or [[packages]]")
        if not all(isinstance(p, dict) and p.get("name") for p in packages):
            raise LockError(f"{path} is not a valid lock: a package has no name")
        return text
    for number, line in logical_lines(text):
        if line.startswith("-"):
            continue  # options (--hash is attached to its requirement line)
        if "==" not in line.split(";", 1)[0] or "*" in line.split(";", 1)[0]:
            raise LockError(
                f"{path} is not a valid lock: line {number} ({line.split()[0]}) is not pinned "
                "to one version (name==version)",
                f"regenerate it with 'uv pip compile --generate-hashes' or delete {path}",
            )
    return text


def logical_lines(text: str) -> list[tuple[int, str]]:
    """Requirement lines with backslash continuations joined and comments dropped."""
    out: list[tuple[int, str]] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(" #", 1)[0] if not raw.lstrip().startswith("#") else ""
        if not pending:
            start = number
        pending += line.strip().removesuffix("\\") + " "
        if not line.rstrip().endswith("\\"):
            if pending.strip():
                out.append((start, pending.strip()))
            pending = ""
    if pending.strip():
        out.append((start, pending.strip()))
    return out


def resolver_reason(lines: list[str]) -> str:
    """uv's own word on a failed resolve: its last `error:` with the `cause:` lines under it
    (a parse error ends with the echoed line and a caret, which alone say nothing)."""
    clean = [line.strip().lstrip("\u00d7\u2570\u2500\u25b6\u2502 ").strip() for line in lines]
    errors = [i for i, line in enumerate(clean) if line.startswith("error:")]
    if errors:
        said = [clean[errors[-1]].removeprefix("error:").strip().rstrip(":")]
        said += [
            c.removeprefix("cause:").strip() for c in clean[errors[-1] :] if c.startswith("cause:")
        ]
        return ": ".join(said)
    for line in reversed(clean):  # uv's box art, without an `error:` line
        if line and not line.startswith("hint"):
            return line
    return "the resolver gave no reason (see the build logs)"


_MISSING = re.compile(r"(?:ModuleNotFoundError|ImportError): No module named '([^']+)'")


def missing_module_hint(lines: list[str], spec: EnvSpec) -> str | None:
    """For a train that died on an import: which module, and where requirements come from."""
    for line in reversed(lines):
        found = _MISSING.search(line)
        if found:
            module = found.group(1).split(".")[0]
            if spec.empty:
                return (
                    f"no module named {module!r}: the source has no requirements, so the "
                    f"environment has only the base interpreter (add them to {spec.where()})"
                )
            where = spec.lock_path or spec.requirements_path
            return (
                f"no module named {module!r}: add the package that provides it to {where} "
                f"(requirements are read from {spec.where()})"
            )
    return None
