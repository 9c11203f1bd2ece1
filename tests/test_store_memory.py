"""A push and a deploy's checks stay within bounded memory, whatever the folder's size.

The bounds are a fraction of the content involved, so holding it all (every uploaded pack, every
tree entry) cannot pass: traced with tracemalloc, which counts every thread's allocations.
"""

from __future__ import annotations

import os
import tracemalloc

import pytest

from kaos.client.http import KaosClient
from kaos.pipeline.bundles import data_bundle_name
from kaos.store import ContentStore, Tree, TreeEntry, transfer
from kaos.store import pack as pack_format
from kaos.store.backends import LocalBackend
from kaos.store.hashing import hash_bytes

MiB = 1 << 20


def traced_peak(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_uploaded_packs_are_freed_as_they_land(kaos_server, tmp_path, monkeypatch):
    """48 MiB of new files go to a real server in 1 MiB packs: at most a few packs are alive
    at once (two uploads in flight; the next pack waits for a slot)."""
    monkeypatch.setattr(pack_format, "PACK_TARGET", MiB)
    monkeypatch.setattr(transfer._Offer, "_BYTES", MiB)
    folder = tmp_path / "data" / "features"
    folder.mkdir(parents=True)
    for i in range(48):
        (folder / f"part{i:02d}.bin").write_bytes(os.urandom(MiB))  # incompressible
    client = KaosClient(kaos_server.url)
    try:
        reports = []
        peak = traced_peak(lambda: reports.append(client.push_folder(tmp_path / "data")))
    finally:
        client.close()
    assert reports[0].files_sent == 48
    assert reports[0].bytes_uploaded > 48 * MiB
    assert peak < 16 * MiB, f"peak {peak / MiB:.1f} MiB for 48 MiB pushed"


def test_a_deploy_checks_names_and_serves_a_large_tree_without_holding_its_entries(tmp_path):
    store = ContentStore(LocalBackend(tmp_path / "store"))
    blob = store.put_bytes(b"one row\n")
    tree = Tree.of(TreeEntry(f"features/f{i:06d}.csv", blob, 8) for i in range(100_000))
    digest = store.put_tree(tree)
    size = len(tree.serialize())
    assert size > 5 * MiB
    del tree

    def check_and_name() -> None:
        assert store.absent_from(digest) == set()
        assert data_bundle_name(store.top_level(digest)) == "features"  # what a deploy asks
        assert data_bundle_name(e.path for e in store.tree_entries(digest)) == "features"

    peak = traced_peak(check_and_name)
    assert peak < size / 3, f"peak {peak / MiB:.1f} MiB for a {size / MiB:.1f} MiB tree"

    served: list[bytes] = []
    peak = traced_peak(lambda: served.append(store.tree_bytes(digest)))  # GET /trees/{digest}
    assert hash_bytes(served[0]) == digest
    assert peak < 3 * size, f"peak {peak / MiB:.1f} MiB to serve a {size / MiB:.1f} MiB tree"


def test_a_tree_that_lies_about_sizes_is_refused_as_it_streams(tmp_path):
    store = ContentStore(LocalBackend(tmp_path / "store"))
    blob = store.put_bytes(b"one row\n")
    entries = [TreeEntry(f"features/f{i:05d}.csv", blob, 8) for i in range(20_000)]
    entries[12_345] = entries[12_345]._replace(size=9)
    entries[17_000] = entries[17_000]._replace(size=10)
    digest = store.put_tree(Tree.of(entries))
    with pytest.raises(Exception, match=r"lies about sizes: .* declared as 9 .* \(and 1 more\)"):
        store.absent_from(digest)


def test_a_streamed_tree_is_stored_as_the_same_chunks_as_a_whole_one(tmp_path):
    """Byte compatibility: a push streams the tree into its chunks, a local put chunks the
    joined bytes; both give the same chunk list (so they deduplicate against each other)."""
    from kaos.store.chunking import TREE_CHUNKS

    blob = hash_bytes(b"x")
    tree = Tree.of(TreeEntry(f"d/f{i:05d}", blob, 1) for i in range(5_000))
    data = tree.serialize()
    whole = ContentStore(LocalBackend(tmp_path / "whole"))
    streamed = ContentStore(LocalBackend(tmp_path / "streamed"))
    assert whole.put_tree(tree) == tree.digest
    with streamed.writer() as writer:
        pieces = [data[i : i + 1000] for i in range(0, len(data), 1000)]
        assert writer.put_stream(pieces, TREE_CHUNKS) == tree.digest
    chunks = whole.reader.chunk_digests(tree.digest)
    assert len(chunks) > 10
    assert streamed.reader.chunk_digests(tree.digest) == chunks
    assert streamed.get_tree(tree.digest) == tree
