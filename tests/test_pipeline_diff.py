"""The model diff's pure parts: file changes between trees, text diffs, appended CSV rows,
locked versions."""

from __future__ import annotations

import gzip

from kaos.pipeline.diff import (
    MAX_CSV_COMPARE,
    appended_rows,
    diff_trees,
    locked_versions,
    value_changes,
)
from kaos.store.hashing import hash_bytes
from kaos.store.tree import Tree, TreeEntry


def tree_of(files: dict[str, bytes]) -> tuple[Tree, dict[str, bytes]]:
    blobs = {hash_bytes(v): v for v in files.values()}
    return Tree.of(TreeEntry(p, hash_bytes(v), len(v)) for p, v in files.items()), blobs


def test_files_added_removed_and_changed_with_a_unified_diff_for_text():
    a, blobs_a = tree_of({"m/train": b"KERNEL = 'poly'\nx = 1\n", "m/old.txt": b"gone\n"})
    b, blobs_b = tree_of({"m/train": b"KERNEL = 'linear'\nx = 1\n", "m/new.txt": b"here\n"})
    blobs = {**blobs_a, **blobs_b}
    d = diff_trees(a, b, blobs.__getitem__, text_diffs=True)
    assert not d.same
    assert [(f.path, f.change) for f in d.files] == [
        ("m/new.txt", "added"),
        ("m/old.txt", "removed"),
        ("m/train", "changed"),
    ]
    changed = d.files[2]
    assert "-KERNEL = 'poly'\n" in changed.diff and "+KERNEL = 'linear'\n" in changed.diff
    assert changed.diff.startswith("--- a/m/train\n+++ b/m/train\n")
    assert changed.size_a == 22 and changed.size_b == 24


def test_identical_trees_have_no_changes_and_binary_files_get_no_text_diff():
    a, blobs = tree_of({"f.bin": b"\0\1\2"})
    assert diff_trees(a, a, blobs.__getitem__, True).files == []
    b, more = tree_of({"f.bin": b"\0\1\3"})
    (change,) = diff_trees(a, b, {**blobs, **more}.__getitem__, True).files
    assert change.change == "changed" and change.diff is None


def test_appended_gzip_members_count_as_rows_appended():
    old = gzip.compress(b"1,2\n3,4\n")
    new = old + gzip.compress(b"5,6\n7,8\n9,0\n")  # `cat extra.csv.gz >> training.csv.gz`
    assert appended_rows("t/training.csv.gz", old, new) == 3
    assert appended_rows("t/x.csv", b"a\nb\n", b"a\nb\nc") == 1


def test_rewritten_csv_is_not_an_append():
    assert appended_rows("x.csv", b"a\nb\n", b"a\nc\nd\n") is None
    assert appended_rows("x.csv", b"a\nb", b"a\nbc\n") is None  # the last row was extended
    assert appended_rows("x.csv.gz", b"not gzip", b"not gzip either") is None


def test_csv_append_is_reported_in_the_tree_diff_without_a_text_diff():
    a, blobs_a = tree_of({"f/train.csv": b"1,2\n"})
    b, blobs_b = tree_of({"f/train.csv": b"1,2\n3,4\n"})
    (change,) = diff_trees(a, b, {**blobs_a, **blobs_b}.__getitem__, False).files
    assert change.rows_appended == 1 and change.diff is None


def test_locked_versions_from_requirements_locks_and_pylock():
    lock = (
        "numpy==2.1.3 \\\n    --hash=sha256:aa\n"
        "Scikit_Learn==1.5.2 ; python_version >= '3.9' \\\n    --hash=sha256:bb\n"
        "    # via -r requirements.txt\n"
    )
    assert locked_versions(lock) == {"numpy": "2.1.3", "scikit-learn": "1.5.2"}
    pylock = 'lock-version = "1.0"\n[[packages]]\nname = "NumPy"\nversion = "2.1.3"\n'
    assert locked_versions(pylock) == {"numpy": "2.1.3"}
    assert locked_versions(None) == {}


def test_value_changes_keep_both_sides_and_every_name():
    changes = value_changes({"acc": 0.8, "f1": 0.7}, {"acc": 0.9, "loss": 0.1})
    assert [(c.name, c.a, c.b) for c in changes] == [
        ("acc", 0.8, 0.9),
        ("f1", 0.7, None),
        ("loss", None, 0.1),
    ]


def test_a_csv_too_big_to_hold_in_memory_is_compared_by_size_only():
    def never(digest: str) -> bytes:
        raise AssertionError(f"read {digest} whole into memory")

    big = MAX_CSV_COMPARE + 1
    a = Tree.of([TreeEntry("f/training.csv", "1" * 32, big)])
    b = Tree.of([TreeEntry("f/training.csv", "2" * 32, big + 10)])
    (change,) = diff_trees(a, b, never, text_diffs=False).files
    assert (change.size_a, change.size_b, change.rows_appended) == (big, big + 10, None)
