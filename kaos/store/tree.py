"""A bundle folder as a tree: sorted (path, executable, size, hash) entries with one hash.

The canonical serialization is plain text, one entry per line, sorted by the UTF-8 bytes of the
path, so the same content gives the same tree hash whatever the file order, mtime or machine:

    kaos-tree 1
    <hash> <size> <x|-> <path>
"""

from __future__ import annotations

import bisect
import operator
import re
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


Row = tuple[str, str, str, str]  # digest, size (canonical decimal), "x" or "-", path


def iter_entries(pieces: Iterable[bytes]) -> Iterator[TreeEntry]:
    """The entries of a serialized tree given as a stream of pieces, each checked as it comes
    (canonical line, safe path, strictly sorted, no file that is also a folder): what
    `Tree.parse` accepts, with a block of lines in memory at a time, so a server reads a
    million-file tree to check or name it without holding its entries."""
    for rows in iter_rows(pieces):
        for digest, size, mode, path in rows:
            yield TreeEntry(path, digest, int(size), mode == "x")


def iter_rows(pieces: Iterable[bytes]) -> Iterator[list[Row]]:
    """A serialized tree's lines as checked rows, a block (up to about 256 KiB) at a time: the
    same checks and errors as `iter_entries`, for callers that look at a million entries and
    want no object per entry."""
    blocks = _blocks(pieces)
    first = next(blocks, b"")
    if not first.startswith(HEADER):
        raise BundleError("not a kaos tree (bad header)")
    checker = _Checker()
    rest = first[len(HEADER) :]
    if rest:
        yield checker.rows(rest)
    for block in blocks:
        yield checker.rows(block)


_BLOCK = 256 << 10
LONGEST_LINE = 1 << 20
# A whole line, as `entry_line` writes it, for a path that does not start unsafely (absolute,
# a drive, a `.` or `..` component); the rest of `check_relative_path` is checked per block.
_LINE = re.compile(
    r"^([0-9a-f]{32}) (0|[1-9][0-9]*) ([x-]) (?![A-Za-z]:|/|\.\.?(?:/|$))([^\n]+)\n", re.M
)
_UNSAFE = ("//", "/\n", "/./", "/../", "/.\n", "/..\n")  # each begins with `_SLASH`
_SLASH = re.compile(r"/[/.\n]")  # one scan for them all (a hidden file, `a/.x`, also matches)


def _blocks(pieces: Iterable[bytes]) -> Iterator[bytes]:
    """Whole lines (each ending in a line end), in blocks of about `_BLOCK` bytes; the stream's
    last line must have its line end, and none may be longer than `LONGEST_LINE` (a path is at
    most a few KiB; an object of hundreds of MB without a line end would otherwise be joined
    piece by piece, in time quadratic in its size)."""
    rest = b""
    for piece in pieces:
        data = rest + piece if rest else bytes(piece)
        start = 0
        while len(data) - start > _BLOCK:
            cut = data.rfind(b"\n", start, start + _BLOCK) + 1 or data.find(b"\n", start) + 1
            if not cut:
                break
            yield data[start:cut]
            start = cut
        cut = data.rfind(b"\n", start) + 1
        if cut:
            yield data[start:cut]
            start = cut
        rest = data[start:]
        if len(rest) > LONGEST_LINE:
            break
    if rest:
        raise BundleError(f"malformed tree line: {rest[:200]!r} (no line end)")


class _Checker:
    """The checks that span lines (sorted, no file that is also a folder), carried from block
    to block. A block is checked whole by C-speed string and regex operations; if anything in
    it is off (or only looks off: a path with a backslash), it is checked again line by line,
    so errors are exactly those of the line-by-line check, and the first one is raised."""

    def __init__(self) -> None:
        self.previous = ""
        self.files: list[str] = []  # earlier paths that are prefixes of `previous` (a chain)

    def rows(self, block: bytes) -> list[Row]:
        rows = self._whole(block)
        return rows if rows is not None else self._by_line(block)

    def _whole(self, block: bytes) -> list[Row] | None:
        try:
            text = block.decode("utf-8")
        except UnicodeDecodeError:
            return None
        rows: list[Row] = _LINE.findall(text)
        if len(rows) != text.count("\n") or _unsafe(text):
            return None
        paths = [row[3] for row in rows]
        if paths[0] <= self.previous or not all(map(operator.lt, paths, paths[1:])):
            return None
        earlier = set(self.files)
        for folder in _folders(paths):
            if folder in earlier or _holds(paths, folder):
                return None
        last = paths[-1]
        self.files = [p for p in self.files if last.startswith(p)]
        self.files += [p for p in paths if last.startswith(p)]
        self.previous = last
        return rows

    def _by_line(self, block: bytes) -> list[Row]:
        rows = []
        for raw in block.split(b"\n")[:-1]:
            entry = _entry(raw)
            path = entry.path
            if path <= self.previous:
                if path == self.previous:
                    raise BundleError(f"duplicate path in tree: {path!r}")
                raise BundleError("tree is not in canonical form (entries out of order)")
            # Paths that start with a file's path sort right after it, so only a chain of
            # such prefixes can still clash with a later path.
            files = self.files
            while files and not path.startswith(files[-1]):
                files.pop()
            if files and path.startswith(files[-1] + "/"):
                raise BundleError(f"path is both a file and a folder: {files[-1]!r}")
            files.append(path)
            self.previous = path
            rows.append((entry.digest, str(entry.size), "x" if entry.executable else "-", path))
        return rows


def _unsafe(text: str) -> bool:
    """Whether a block's paths may break `check_relative_path`'s rules the line pattern does
    not check (a true answer only sends the block to the line-by-line check)."""
    if "\\" in text or "\x00" in text or "\r" in text:
        return True
    return _SLASH.search(text) is not None and any(bad in text for bad in _UNSAFE)


def _folders(paths: list[str]) -> set[str]:
    """Every folder the paths are in (all their proper prefixes that end at a '/')."""
    todo = {p.rpartition("/")[0] for p in paths}
    folders: set[str] = set()
    while todo:
        todo.discard("")
        folders |= todo
        todo = {f.rpartition("/")[0] for f in todo} - folders
    return folders


def _holds(ordered: list[str], path: str) -> bool:
    i = bisect.bisect_left(ordered, path)
    return i < len(ordered) and ordered[i] == path


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
