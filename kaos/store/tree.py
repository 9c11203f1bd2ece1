"""A bundle folder as a tree: sorted (path, executable, size, hash) entries with one hash.

The canonical serialization is plain text, one entry per line, sorted by the UTF-8 bytes of the
path, so the same content gives the same tree hash whatever the file order, mtime or machine:

    kaos-tree 1
    <hash> <size> <x|-> <path>
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from operator import itemgetter
from typing import NamedTuple

from kaos.errors import BundleError, IntegrityError
from kaos.store.hashing import hash_bytes, is_digest
from kaos.store.paths import check_relative_path

HEADER = b"kaos-tree 1\n"


class TreeEntry(NamedTuple):
    """One file of a tree (a tuple: cheap to make by the 100k)."""

    path: str
    digest: str
    size: int
    executable: bool = False

    def line(self) -> str:
        return entry_line(self.path, self.digest, self.size, self.executable)


def entry_line(path: str, digest: str, size: int, executable: bool) -> str:
    """One entry of the canonical serialization (the one place its shape is written)."""
    return f"{digest} {size} {'x' if executable else '-'} {path}\n"


@dataclass(frozen=True)
class Tree:
    """An immutable, validated, sorted set of entries. Build with `Tree.of(entries)`."""

    entries: tuple[TreeEntry, ...]
    _by_path: dict[str, TreeEntry] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def of(cls, entries: Iterable[TreeEntry]) -> Tree:
        """Validate and sort entries from anywhere (uploads, parsed trees, callers)."""
        ordered = sorted(entries, key=_by_path)
        by_path: dict[str, TreeEntry] = {}
        for entry in ordered:
            check_relative_path(entry.path)
            if not is_digest(entry.digest):
                raise BundleError(f"bad digest {entry.digest!r} for {entry.path!r}")
            if entry.size < 0:
                raise BundleError(f"negative size for {entry.path!r}")
            if entry.path in by_path:
                raise BundleError(f"duplicate path in tree: {entry.path!r}")
            by_path[entry.path] = entry
        _check_no_file_dir_clash(by_path)
        return cls(tuple(ordered), by_path)

    @classmethod
    def from_scan(cls, entries: Iterable[TreeEntry], digest: str | None = None) -> Tree:
        """Entries made by walking a real folder: names were checked one by one during the walk,
        and a file system cannot hold a file and a folder of the same name, so only sort.
        `digest`, when the scan already serialized and hashed these entries, is kept as is."""
        ordered = sorted(entries, key=_by_path)
        tree = cls(tuple(ordered), {e.path: e for e in ordered})
        if digest is not None:
            vars(tree)["digest"] = digest  # seeds the cached_property (frozen dataclass)
        return tree

    def serialize(self) -> bytes:
        return HEADER + "".join(e.line() for e in self.entries).encode("utf-8")

    @cached_property
    def digest(self) -> str:
        return hash_bytes(self.serialize())

    @property
    def total_size(self) -> int:
        return sum(e.size for e in self.entries)

    def __iter__(self) -> Iterator[TreeEntry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, path: str) -> TreeEntry | None:
        return self._by_path.get(path)

    def digests(self) -> set[str]:
        return {e.digest for e in self.entries}

    def size_problems(self, stored_size: Callable[[str], int | None]) -> list[str]:
        """Entries whose declared size differs from the stored object's (unknown ones pass)."""
        return size_problems(((e.digest, e.size) for e in self.entries), stored_size)

    def top_level_names(self) -> list[str]:
        return sorted({e.path.split("/", 1)[0] for e in self.entries})

    @classmethod
    def parse(cls, data: bytes, expected_digest: str | None = None) -> Tree:
        """Parse a serialized tree, verifying it against `expected_digest` when given."""
        if expected_digest is not None and hash_bytes(data) != expected_digest:
            raise IntegrityError(f"tree {expected_digest} is corrupt", expected_digest)
        entries = tuple(iter_entries([data]))
        return cls(entries, {e.path: e for e in entries})


def iter_entries(pieces: Iterable[bytes]) -> Iterator[TreeEntry]:
    """The entries of a serialized tree given as a stream of pieces, each checked as it comes
    (canonical line, safe path, strictly sorted, no file that is also a folder): what
    `Tree.parse` accepts, with one line in memory at a time, so a server reads a million-file
    tree to check or name it without holding its entries."""
    lines = _lines(pieces)
    if next(lines, None) != HEADER[:-1]:
        raise BundleError("not a kaos tree (bad header)")
    previous = ""
    files: list[str] = []  # earlier paths that are prefixes of the current one (a chain)
    for raw in lines:
        entry = _entry(raw)
        path = entry.path
        if path <= previous:
            if path == previous:
                raise BundleError(f"duplicate path in tree: {path!r}")
            raise BundleError("tree is not in canonical form (entries out of order)")
        # Paths that start with a file's path sort right after it, so only a chain of such
        # prefixes can still clash with a later path.
        while files and not path.startswith(files[-1]):
            files.pop()
        if files and path.startswith(files[-1] + "/"):
            raise BundleError(f"path is both a file and a folder: {files[-1]!r}")
        files.append(path)
        previous = path
        yield entry


def _lines(pieces: Iterable[bytes]) -> Iterator[bytes]:
    """The lines of a stream of pieces, without their line ends; the last must have one."""
    rest = b""
    for piece in pieces:
        parts = (rest + piece).split(b"\n")
        rest = parts.pop()
        yield from parts
    if rest:
        raise BundleError(f"malformed tree line: {rest[:200]!r} (no line end)")


def _entry(raw: bytes) -> TreeEntry:
    """One line, refused unless it is exactly what `entry_line` writes for a safe path."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BundleError("not a kaos tree (its paths are not valid UTF-8)") from None
    try:
        digest, size_text, mode, path = text.split(" ", 3)
        size = int(size_text)
    except ValueError:
        raise BundleError(f"malformed tree line: {text[:200]!r}") from None
    check_relative_path(path)
    if not is_digest(digest):
        raise BundleError(f"bad digest {digest!r} for {path!r}")
    if size < 0:
        raise BundleError(f"negative size for {path!r}")
    if mode not in ("x", "-") or str(size) != size_text:  # the line `entry_line` would write
        raise BundleError("tree is not in canonical form")
    return TreeEntry(path, digest, size, mode == "x")


def size_problems(
    declared: Iterable[tuple[str, int]], stored_size: Callable[[str], int | None]
) -> list[str]:
    """Where a declared size differs from the stored object's (objects not stored pass)."""
    problems = []
    for digest, size in declared:
        actual = stored_size(digest)
        if actual is not None and actual != size:
            problems.append(f"{digest} is declared as {size} bytes but holds {actual}")
    return problems


# Code point order equals UTF-8 byte order, so sorting the strings is canonical.
_by_path = itemgetter(0)


def _check_no_file_dir_clash(by_path: dict[str, TreeEntry]) -> None:
    """A path cannot be both a file and a folder (`a` and `a/b`): checkout could not honour it."""
    for path in by_path:
        parts = path.split("/")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in by_path:
                raise BundleError(f"path is both a file and a folder: {'/'.join(parts[:i])!r}")
