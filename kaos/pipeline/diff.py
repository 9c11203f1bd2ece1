"""What changed between two models, from their stored trees alone (pure: bytes come from a
reader the caller passes in).

- files: added / removed / changed, with sizes; a unified diff for text files of the source;
  for CSV files (also `.csv.gz`) whose new content only appends rows to the old, the count;
- values: hyperparameters, locked package versions and metrics, side by side.
"""

from __future__ import annotations

import difflib
import gzip
import io
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kaos.store.tree import Tree, TreeEntry

Reader = Callable[[str], bytes]

MAX_TEXT_DIFF = 512 * 1024  # bigger text files are reported by size only
MAX_CSV_COMPARE = 512 * 1024 * 1024  # decompressed bytes read to count appended rows


@dataclass(frozen=True)
class FileChange:
    path: str
    change: str  # added | removed | changed
    size_a: int | None
    size_b: int | None
    diff: str | None = None  # unified diff, for text files where asked
    rows_appended: int | None = None  # CSV files where B only appends rows to A


@dataclass(frozen=True)
class ValueChange:
    name: str
    a: Any
    b: Any

    @property
    def changed(self) -> bool:
        return bool(self.a != self.b)


@dataclass(frozen=True)
class TreeDiff:
    a: str | None
    b: str | None
    files: list[FileChange] = field(default_factory=list)

    @property
    def same(self) -> bool:
        return self.a == self.b


def diff_trees(a: Tree | None, b: Tree | None, read: Reader, text_diffs: bool) -> TreeDiff:
    """Files added, removed and changed from tree `a` to tree `b` (sorted by path)."""
    if a is not None and b is not None and a.digest == b.digest:
        return TreeDiff(a.digest, b.digest)
    old = {e.path: e for e in a} if a is not None else {}
    new = {e.path: e for e in b} if b is not None else {}
    changes = []
    for path in sorted(old.keys() | new.keys()):
        before, after = old.get(path), new.get(path)
        if before is None and after is not None:
            changes.append(FileChange(path, "added", None, after.size))
        elif after is None and before is not None:
            changes.append(FileChange(path, "removed", before.size, None))
        elif before is not None and after is not None and before.digest != after.digest:
            changes.append(_changed(before, after, read, text_diffs))
    return TreeDiff(a.digest if a else None, b.digest if b else None, changes)


def _changed(before: TreeEntry, after: TreeEntry, read: Reader, text_diffs: bool) -> FileChange:
    path = before.path
    diff = rows = None
    if _is_csv(path) and before.size <= after.size <= MAX_CSV_COMPARE:
        # Bigger files are reported by size only: both sides are read whole into memory.
        rows = appended_rows(path, read(before.digest), read(after.digest))
    elif text_diffs and max(before.size, after.size) <= MAX_TEXT_DIFF:
        diff = text_diff(path, read(before.digest), read(after.digest))
    return FileChange(path, "changed", before.size, after.size, diff, rows)


def text_diff(path: str, a: bytes, b: bytes) -> str | None:
    """A unified diff of two text files; None when either is not text."""
    old, new = _text(a), _text(b)
    if old is None or new is None:
        return None
    lines = difflib.unified_diff(
        old.splitlines(keepends=True),
        new.splitlines(keepends=True),
        fromfile=f"a/{path}",
        tofile=f"b/{path}",
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def appended_rows(path: str, a: bytes, b: bytes) -> int | None:
    """How many rows `b` adds when it is `a` with rows appended; None when it is not."""
    old, new = _decoded(path, a), _decoded(path, b)
    if old is None or new is None or not new.startswith(old):
        return None
    if old and not old.endswith(b"\n"):
        return None  # the last old row was extended, not appended to
    tail = new[len(old) :]
    return tail.count(b"\n") + (1 if tail and not tail.endswith(b"\n") else 0)


def value_changes(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> list[ValueChange]:
    """Every name of either side, with both values (None where a side lacks it)."""
    a, b = a or {}, b or {}
    names = list(a) + [n for n in b if n not in a]
    return [ValueChange(n, a.get(n), b.get(n)) for n in names]


def locked_versions(lock_text: str | None) -> dict[str, str]:
    """`name -> version` from a requirements-style lock (`name==version`, hashes ignored) or a
    PEP 751 pylock.toml (`[[packages]]` with name and version)."""
    if not lock_text:
        return {}
    if "[[packages]]" in lock_text:
        return _pylock_versions(lock_text)
    versions = {}
    for raw in lock_text.splitlines():
        line = raw.split("#", 1)[0].strip().rstrip("\\").strip()
        if not line or line.startswith("-") or "==" not in line:
            continue
        name, version = line.split("==", 1)
        name = name.split("[", 1)[0].split(";", 1)[0].strip()
        versions[normalize(name)] = version.split(";", 1)[0].split()[0].strip()
    return dict(sorted(versions.items()))


def _pylock_versions(text: str) -> dict[str, str]:
    import tomllib

    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return {}
    packages = doc.get("packages", [])
    return dict(
        sorted(
            (normalize(str(p["name"])), str(p.get("version", "")))
            for p in packages
            if isinstance(p, dict) and "name" in p
        )
    )


def normalize(name: str) -> str:
    """PEP 503 names: `Scikit_Learn` and `scikit-learn` are one package."""
    out = "".join("-" if c in "_." else c for c in name.strip().lower())
    while "--" in out:
        out = out.replace("--", "-")
    return out


def _is_csv(path: str) -> bool:
    lower = path.lower()
    return lower.endswith(".csv") or lower.endswith(".csv.gz")


def _decoded(path: str, data: bytes) -> bytes | None:
    if not path.lower().endswith(".gz"):
        return data
    try:
        # Concatenated gzip members (`cat more.csv.gz >> all.csv.gz`) are one gzip file.
        reader = gzip.GzipFile(fileobj=io.BytesIO(data))
        out = reader.read(MAX_CSV_COMPARE + 1)
    except (OSError, EOFError, zlib.error):
        return None
    return out if len(out) <= MAX_CSV_COMPARE else None


def _text(data: bytes) -> str | None:
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None
