"""The in-memory index of every pack: which copy of an object is served, and what it costs."""

from __future__ import annotations

import os
import tracemalloc

from kaos.store.backends import LocalBackend
from kaos.store.index import INDEX_PREFIX, PackIndex
from kaos.store.pack import encode_index


def index_of(entries):
    return encode_index([(d, 0, 1, off, 100, 0, size) for d, off, size in entries])


def test_the_newest_copy_is_served_and_a_forgotten_pack_falls_back_to_another(tmp_path):
    backend = LocalBackend(tmp_path / "store")
    a, b, only_a = "a" * 32, "b" * 32, "c" * 32
    backend.put(INDEX_PREFIX + "p1", index_of([(a, 10, 1), (b, 20, 2), (only_a, 30, 3)]))
    index = PackIndex(backend, None)
    index.remember("p2", index_of([(a, 40, 4)]))
    assert index.locate(a).pack == "p2" and index.locate(a).frame_offset == 40
    assert index.locate(b) == ("p1", 0, 1, 20, 100, 0, 2)
    index.forget("p2")
    assert index.locate(a).pack == "p1"
    index.forget("p1")
    assert a not in index and index.locate(only_a) is None
    assert "not a digest" not in index and index.locate("zz" * 16) is None


def test_a_corrupt_copy_is_not_served_again_even_after_a_refresh(tmp_path):
    backend = LocalBackend(tmp_path / "store")
    digest = "d" * 32
    backend.put(INDEX_PREFIX + "p1", index_of([(digest, 10, 1)]))
    index = PackIndex(backend, None)
    index.discard(digest, "p1")
    assert digest not in index and index.was_discarded(digest)
    index.remember("p2", index_of([(digest, 50, 1)]))  # uploaded again
    assert index.locate(digest).pack == "p2" and not index.was_discarded(digest)
    index.forget("p2")
    index.refresh()  # p1's index is still listed, its copy still bad
    assert digest not in index
    assert index.packs() == {"p1": [digest]}


def test_a_hundred_thousand_objects_cost_a_fraction_of_decoded_locations(tmp_path):
    """100,000 objects indexed within 24 MiB (as decoded tuples: 33)."""
    backend = LocalBackend(tmp_path / "store")
    tables = [
        index_of([(os.urandom(16).hex(), i * 100, 5000) for i in range(10_000)]) for _ in range(10)
    ]
    tracemalloc.start()
    try:
        index = PackIndex(backend, None)
        for n, table in enumerate(tables):
            index.remember(f"pack{n}", table)
        peak = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(index.digests()) == 100_000
    assert peak < 24 << 20, f"{peak / (1 << 20):.0f} MiB"


class _ListingWhileStored(LocalBackend):
    """A backend whose listing is overtaken by another thread's upload: `during` runs between
    the listing's start and its end (a pack stored and remembered meanwhile)."""

    during = None

    def list(self, prefix):
        listed = list(super().list(prefix))
        if self.during is not None:
            during, self.during = self.during, None
            during()
        yield from listed


def test_a_pack_stored_while_a_refresh_lists_the_backend_is_not_forgotten(tmp_path):
    """A first deploy asks 'missing' (a refresh) while its packs are received: a pack stored
    during the listing was taken for deleted and its objects reported missing."""
    backend = _ListingWhileStored(tmp_path / "store")
    digest = "e" * 32
    index = PackIndex(backend, None)
    table = index_of([(digest, 10, 1)])

    def store():
        backend.put(INDEX_PREFIX + "p1", table)
        index.remember("p1", table)

    backend.during = store
    index.refresh()
    assert digest in index and index.locate(digest).pack == "p1"
    index.refresh()  # the next listing has it: still known
    assert index.packs() == {"p1": [digest]}
    backend.delete(INDEX_PREFIX + "p1")
    index.refresh()  # deleted for real: forgotten
    assert digest not in index
