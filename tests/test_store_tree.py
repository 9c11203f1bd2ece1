import os
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kaos.errors import BundleError, UnsafePathError
from kaos.store import NullStatCache, StatCache, Tree, TreeEntry, scan_folder
from kaos.store import scan as scan_module
from kaos.store import tree as tree_module
from kaos.store.tree import HEADER, iter_entries

names = st.text(
    alphabet=string.ascii_letters + string.digits + "_-.", min_size=1, max_size=12
).filter(lambda s: s not in (".", "..", ".kaosignore"))  # ignore rules are tested on their own
file_maps = st.dictionaries(
    st.lists(names, min_size=1, max_size=3).map("/".join),
    st.binary(max_size=300),
    min_size=1,
    max_size=12,
).filter(lambda files: not _file_dir_clash(files))


def _file_dir_clash(files: dict[str, bytes]) -> bool:
    dirs = {"/".join(p.split("/")[:i]) for p in files for i in range(1, p.count("/") + 1)}
    return bool(dirs & set(files))


def write_files(root: Path, files: dict[str, bytes], order: list[str] | None = None) -> None:
    for rel in order or list(files):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(files[rel])


common = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@common
@given(files=file_maps, data=st.data())
def test_tree_hash_ignores_creation_order_and_mtime(tmp_path_factory, files, data):
    a = tmp_path_factory.mktemp("a")
    b = tmp_path_factory.mktemp("b")
    write_files(a, files)
    write_files(b, files, data.draw(st.permutations(list(files))))
    for i, rel in enumerate(files):
        os.utime(b / rel, (1_000_000 + i, 1_000_000 + i))
    assert scan_folder(a).tree.digest == scan_folder(b).tree.digest


@common
@given(files=file_maps, data=st.data())
def test_any_byte_change_changes_the_tree_hash(tmp_path_factory, files, data):
    root = tmp_path_factory.mktemp("t")
    write_files(root, files)
    before = scan_folder(root).tree.digest
    rel = data.draw(st.sampled_from(sorted(files)))
    content = bytearray(files[rel])
    if content:
        pos = data.draw(st.integers(0, len(content) - 1))
        content[pos] ^= data.draw(st.integers(1, 255))
    else:
        content = bytearray(b"x")
    (root / rel).write_bytes(bytes(content))
    assert scan_folder(root).tree.digest != before


def test_executable_bit_is_part_of_the_tree(tmp_path):
    (tmp_path / "train").write_text("#!/bin/sh\n")
    plain = scan_folder(tmp_path).tree
    os.chmod(tmp_path / "train", 0o755)
    executable = scan_folder(tmp_path).tree
    assert executable.digest != plain.digest
    assert executable.get("train").executable


def test_serialization_round_trips_and_is_verified():
    tree = Tree.of([TreeEntry("b/x", "0" * 32, 3), TreeEntry("a", "f" * 32, 0, True)])
    assert [e.path for e in tree] == ["a", "b/x"]
    assert Tree.parse(tree.serialize(), tree.digest) == tree
    with pytest.raises(Exception, match="corrupt"):
        Tree.parse(tree.serialize().replace(b"b/x", b"b/y"), tree.digest)


@pytest.mark.parametrize("bad", ["../etc/passwd", "/abs", "a/../../b", "a//b", "./a", "a\nb"])
def test_unsafe_paths_are_refused_in_trees(bad):
    with pytest.raises(UnsafePathError):
        Tree.of([TreeEntry(bad, "0" * 32, 1)])


def test_file_and_folder_with_the_same_name_is_refused():
    with pytest.raises(BundleError, match="both a file and a folder"):
        Tree.of([TreeEntry("a", "0" * 32, 1), TreeEntry("a/b", "0" * 32, 1)])


def test_kaosignore_and_default_ignores(tmp_path):
    (tmp_path / "keep.py").write_text("x")
    (tmp_path / "notes.tmp").write_text("x")
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "a.log").write_text("x")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("x")
    (tmp_path / "pkg" / "__pycache__").mkdir(parents=True)
    (tmp_path / "pkg" / "__pycache__" / "m.pyc").write_text("x")
    (tmp_path / ".kaosignore").write_text("*.tmp\nlogs/\n")
    paths = [e.path for e in scan_folder(tmp_path).tree]
    assert paths == [".kaosignore", "keep.py"]


def test_symlink_inside_bundle_is_stored_as_its_content(tmp_path):
    (tmp_path / "real.txt").write_text("data")
    (tmp_path / "link.txt").symlink_to("real.txt")
    tree = scan_folder(tmp_path).tree
    assert tree.get("link.txt").digest == tree.get("real.txt").digest


def test_symlink_pointing_outside_the_bundle_is_refused(tmp_path):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (tmp_path / "secret").write_text("s")
    (bundle / "leak").symlink_to(tmp_path / "secret")
    with pytest.raises(UnsafePathError, match="outside the bundle"):
        scan_folder(bundle)


def test_non_utf8_file_names_are_refused(tmp_path):
    with open(os.path.join(os.fsencode(tmp_path), b"bad\xff.txt"), "wb") as f:
        f.write(b"x")
    with pytest.raises(BundleError, match="not valid UTF-8"):
        scan_folder(tmp_path)


def test_missing_and_empty_bundles_are_refused(tmp_path):
    with pytest.raises(BundleError, match="path not found"):
        scan_folder(tmp_path / "nope")
    with pytest.raises(BundleError, match="empty"):
        scan_folder(tmp_path, NullStatCache())


def test_an_ignore_file_that_is_not_utf8_is_refused_with_the_fix(tmp_path):
    (tmp_path / "a.txt").write_text("a")
    (tmp_path / ".kaosignore").write_bytes(b"\x80*.tmp\n")
    with pytest.raises(BundleError, match="not UTF-8"):
        scan_folder(tmp_path)


def test_a_tree_streamed_in_any_pieces_parses_as_a_whole(tmp_path):
    bundle = tmp_path / "bundle"
    for i in range(300):
        (bundle / f"d{i % 7}" / f"f{i}.txt").parent.mkdir(parents=True, exist_ok=True)
        (bundle / f"d{i % 7}" / f"f{i}.txt").write_text(f"file {i % 3}")
        os.utime(bundle / f"d{i % 7}" / f"f{i}.txt", (1e9, 1e9))  # not racily clean
    scanned = scan_folder(bundle)
    data = scanned.tree.serialize()
    assert b"".join(scanned.serialized()) == data  # what a push uploads, kept from the hashing
    assert b"".join(scanned.serialized()) == data  # and again: the kept pieces are not used up
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(scan_module, "_KEEP_TREE", 299)  # too many files to keep as made
        compressed = scan_folder(bundle)
    assert b"".join(compressed.serialized()) == data  # kept compressed, unpacked on demand
    assert b"".join(compressed.serialized()) == data
    cache = StatCache(tmp_path / "home" / "state.db")
    scan_folder(bundle, cache)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(scan_module, "_hash_one", None)  # answered by the snapshot: nothing read
        unchanged = scan_folder(bundle, cache)
    assert b"".join(unchanged.serialized()) == data  # made from the arrays
    cache.close()
    for size in (1, 7, 64, 4096, len(data)):
        pieces = [data[i : i + size] for i in range(0, len(data), size)]
        assert tuple(iter_entries(pieces)) == scanned.tree.entries


def _serialized(*lines: str) -> bytes:
    return HEADER + "".join(line + "\n" for line in lines).encode()


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"not a tree\n", "bad header"),
        (_serialized(f"{'0' * 32} 1 - b", f"{'0' * 32} 1 - a"), "out of order"),
        (_serialized(f"{'0' * 32} 1 - a", f"{'0' * 32} 1 - a"), "duplicate path"),
        (_serialized(f"{'0' * 32} 1 - a", f"{'0' * 32} 1 - a-b", f"{'0' * 32} 1 - a/b"), "both"),
        (_serialized(f"{'0' * 32} 01 - a"), "canonical"),
        (_serialized(f"{'0' * 32} 1 y a"), "canonical"),
        (_serialized(f"{'0' * 32} -1 - a"), "negative size"),
        (_serialized(f"{'g' * 32} 1 - a"), "bad digest"),
        (_serialized("garbage"), "malformed"),
        (_serialized(f"{'0' * 32} 1 - a")[:-1], "no line end"),
        (HEADER + b"0" * 32 + b" 1 - \xff\n", "not valid UTF-8"),
    ],
)
def test_a_streamed_tree_is_refused_as_a_parsed_one_is(data, error):
    for pieces in ([data], [data[i : i + 5] for i in range(0, len(data), 5)]):
        with pytest.raises(BundleError, match=error):
            list(iter_entries(pieces))
        with pytest.raises(BundleError, match=error):
            Tree.parse(data)


def test_a_streamed_tree_refuses_unsafe_paths():
    with pytest.raises(UnsafePathError):
        list(iter_entries([_serialized(f"{'0' * 32} 1 - ../etc/passwd")]))


tricky_paths = st.lists(  # components, mostly clean, joined by '/' (so '//' is an empty one)
    st.sampled_from(
        ["a", "b", "a b", "a-b", "é", ".a", "a."] * 3 + ["", ".", "..", "c:", "\\", "\r", "\0"]
    ),
    min_size=1,
    max_size=4,
).map("/".join)
tricky_lines = st.tuples(  # mostly well-formed fields, so paths and order get tested
    st.sampled_from(["0" * 32] * 8 + ["F" * 32, "0" * 31, "g" * 32]),
    st.sampled_from(["0", "1", "5000"] * 4 + ["01", "-1", "+1", " 1"]),
    st.sampled_from(["-", "x"] * 4 + ["y"]),
    tricky_paths,
).map(" ".join)


def _outcome(pieces):
    try:
        return [row for rows in tree_module.iter_rows(pieces) for row in rows]
    except BundleError as exc:
        return type(exc), str(exc)


@settings(max_examples=400, deadline=None)
@given(
    lines=st.lists(tricky_lines, max_size=5),
    sort=st.booleans(),
    size=st.integers(1, 40),
)
def test_a_block_checked_whole_agrees_with_the_line_by_line_check(lines, sort, size):
    """A block is checked whole when it can be; the result (rows, or the first error) is
    always what the line-by-line check gives, however the stream is cut."""
    if sort:
        lines = sorted(lines, key=lambda line: line.split(" ", 3)[-1])
    data = _serialized(*lines)
    whole = _outcome([data])
    pieces = [data[i : i + size] for i in range(0, len(data), size)]
    assert _outcome(pieces) == whole
    checker = tree_module._Checker
    original = checker._whole
    checker._whole = lambda self, block: None  # every block line by line
    try:
        assert _outcome([data]) == whole
    finally:
        checker._whole = original


def test_blocks_carry_the_order_and_folder_checks_across_them(monkeypatch):
    """A file and a later path inside it may sit in different blocks (a million-file tree is
    checked a block at a time)."""
    monkeypatch.setattr(tree_module, "_BLOCK", 64)
    head = [f"{'0' * 32} 1 - a"] + [f"{'0' * 32} 1 - a {i:03}" for i in range(20)]
    with pytest.raises(BundleError, match="both a file and a folder: 'a'"):
        list(iter_entries([_serialized(*head, f"{'0' * 32} 1 - a/b")]))
    with pytest.raises(BundleError, match="out of order"):
        list(iter_entries([_serialized(*head, f"{'0' * 32} 1 - a 000 0")]))
    assert len(list(iter_entries([_serialized(*head, f"{'0' * 32} 1 - b/c")]))) == 22


UNSAFE_PATHS = [
    *("a//b", "/a", "a/", "./a", "../a", "a/./b", "a/../b", "a/.", "a/..", ".", ".."),
    *("c:/x", "c:", "a\\b", "a\rb", "a\0b", ""),
]


@pytest.mark.parametrize("path", UNSAFE_PATHS)
def test_a_block_of_otherwise_clean_lines_refuses_an_unsafe_path(path):
    clean = [f"{'0' * 32} 1 - {name}" for name in ("0", "1")]  # sort before every case
    with pytest.raises(BundleError, match=r"unsafe path|malformed"):
        list(iter_entries([_serialized(*clean, f"{'0' * 32} 1 - {path}")]))


def test_paths_that_only_look_unsafe_are_accepted():
    paths = sorted([".a", "a..b", "a/.b/c", "a /b", "ab:", "a/c:d", "b./x", "é/..é"])
    entries = list(iter_entries([_serialized(*(f"{'0' * 32} 1 - {p}" for p in paths))]))
    assert [e.path for e in entries] == paths


def test_a_line_without_end_is_refused_once_longer_than_any_path_could_make_it():
    """A hostile object of many pieces with no line end is refused after about a MiB, not
    joined piece by piece to its end (quadratic in its size)."""
    seen = []

    def pieces():
        yield HEADER + b"0" * 32 + b" 1 - "
        for _ in range(100_000):  # 3 GiB if read to the end
            seen.append(1)
            yield b"a" * 32768

    with pytest.raises(BundleError, match="no line end"):
        list(iter_entries(pieces()))
    assert len(seen) < 40
