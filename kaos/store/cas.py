"""The content-addressed store: one facade over index, writer, reader, checkout, gc, verify."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from kaos.errors import InputError, IntegrityError, ObjectNotFound
from kaos.store.backends.base import Backend
from kaos.store.backends.local import LocalBackend
from kaos.store.backends.url import backend_from_url
from kaos.store.checkout import checkout
from kaos.store.chunking import FILE_CHUNKS, TREE_CHUNKS
from kaos.store.filecache import FileCache
from kaos.store.gc import GcReport, collect_garbage
from kaos.store.hashing import hash_bytes
from kaos.store.inbox import Delivery, inbox_folder
from kaos.store.index import INDEX_PREFIX, PACK_PREFIX, PackIndex
from kaos.store.locks import StoreLocks
from kaos.store.pack import KIND_BLOB
from kaos.store.progress import Progress
from kaos.store.reader import StoreReader
from kaos.store.receive import verify_pack
from kaos.store.refs import Refs
from kaos.store.repair import repair_packs
from kaos.store.scan import ScannedFolder, scan_folder
from kaos.store.state import HashCache
from kaos.store.transfer import PushReport, push
from kaos.store.tree import Row, Tree, TreeEntry, iter_entries, iter_rows
from kaos.store.verify import VerifyReport, verify_store
from kaos.store.writer import StoreWriter


class ContentStore:
    """Blobs and trees by content on a backend, with a local file cache for checkouts.

    It is a transfer `Destination` (it answers `missing` and stores packs), so a local push is
    the same `push` a client makes to a server.

    `home` (usually KAOS_HOME) holds the local caches: the file cache used for hardlinked
    checkouts and, for remote backends, copies of the pack indexes.
    """

    def __init__(
        self,
        backend: Backend,
        home: Path | None = None,
        uploads: int = 4,
        cache_max: int | None = None,
    ) -> None:
        self.backend = backend
        self.home = Path(home) if home else None
        index_cache = None
        if self.home is not None and not isinstance(backend, LocalBackend):
            index_cache = self.home / "index-cache" / hash_bytes(backend.location.encode())[:16]
        self.index = PackIndex(backend, index_cache)
        self.reader = StoreReader(backend, self.index)
        self.locks = StoreLocks(backend)
        self.refs = Refs(backend)
        self.file_cache = FileCache(self.home / "cache" / "files", cache_max) if self.home else None
        self._uploads = uploads
        # trees with every object stored (until a gc), with their top-level names
        self._complete: dict[str, list[str]] = {}
        self.reader.on_corrupt = lambda _digest: self._complete.clear()
        self.index.on_gone = self._complete.clear  # another replica's gc: ask again

    @classmethod
    def from_url(
        cls,
        url: str,
        home: Path | None = None,
        endpoint_url: str | None = None,
        cache_max: int | None = None,
    ) -> ContentStore:
        return cls(backend_from_url(url, endpoint_url=endpoint_url), home, cache_max=cache_max)

    # -- queries -------------------------------------------------------------------------
    def missing(self, digests: Iterable[str]) -> set[str]:
        """The digests the store does not hold (after picking up other writers' packs)."""
        absent = self.index.absent(set(digests))
        if absent:
            self.index.refresh()
            absent = self.index.absent(absent)
        return absent

    def lacking(self, digests: Sequence[bytes]) -> list[bytes]:
        """The raw (16-byte) digests the store does not hold, in the order asked (after
        picking up other writers' packs): `missing` without a string per digest."""
        absent = self.index.lacking(digests)
        if absent:
            self.index.refresh()
            absent = self.index.lacking(absent)
        return absent

    def __contains__(self, digest: str) -> bool:
        return not self.missing([digest])

    def complete(self, tree_digest: str) -> bool:
        """Whether the tree and every object it names are stored (a tree not in the index is
        answered without a refresh: a push that follows asks `missing`, which refreshes)."""
        if tree_digest not in self.index:
            return False
        try:
            return not self.absent_from(tree_digest)
        except ObjectNotFound:
            return False

    def absent_from(self, tree_digest: str) -> set[str]:
        """The objects a stored tree names that the store lacks (raises ObjectNotFound for an
        unknown tree). A complete tree is remembered, so asking again (an unchanged redeploy)
        reads nothing; only gc can make it incomplete again, and gc forgets them all.

        The tree is read as a stream, so a million-file tree costs a block of lines, not a
        million entries; a complete tree must also be true to the sizes of its files. Its
        top-level names are remembered with it (`top_level`), so a deploy reads it once."""
        if tree_digest in self._complete:
            return set()
        lacking: dict[str, int] = {}  # digest -> declared size, of what the index lacks
        liars = _SizeProblems(tree_digest)
        tops: set[str] = set()
        fromhex = bytes.fromhex
        for rows in iter_rows(self.reader.tree_pieces(tree_digest)):
            tops |= _top_names(rows)
            held = self.index.held([fromhex(row[0]) for row in rows])
            for (digest, size, _x, _path), found in zip(rows, held, strict=True):
                if found is None:
                    lacking[digest] = int(size)
                elif found[0] != KIND_BLOB:  # a chunk list: its content's size is in the list
                    liars.check(digest, int(size), self.stored_size(digest))
                elif found[1] != int(size):
                    liars.check(digest, int(size), found[1])
        absent = self.missing(lacking)  # picks up other writers' packs first
        if absent:
            return absent
        for digest, declared in lacking.items():
            liars.check(digest, declared, self.stored_size(digest))
        liars.raise_any()
        self._complete[tree_digest] = sorted(tops)
        return set()

    def top_level(self, tree_digest: str) -> list[str]:
        """A stored tree's top-level names, sorted, folders with a trailing '/' (what names a
        bundle), remembered for a complete tree by the check that found it complete."""
        tops = self._complete.get(tree_digest)
        if tops is not None:
            return tops
        found: set[str] = set()
        for rows in iter_rows(self.reader.tree_pieces(tree_digest)):
            found |= _top_names(rows)
        return sorted(found)

    def tree_entries(self, tree_digest: str) -> Iterator[TreeEntry]:
        """A stored tree's entries, validated and streamed (one line in memory at a time)."""
        return iter_entries(self.reader.tree_pieces(tree_digest))

    # -- writing -------------------------------------------------------------------------
    def store_pack(self, pack_id: str, data: bytes | bytearray, index: bytes) -> None:
        """Pack first, index second: an index that is visible always names a complete pack."""
        self.backend.put(PACK_PREFIX + pack_id, data)
        self._publish_index(pack_id, index)

    def _publish_index(self, pack_id: str, index: bytes) -> None:
        """Make a stored pack's objects visible (to this process and, by the file, others)."""
        self.backend.put(INDEX_PREFIX + pack_id, index)
        self.index.remember(pack_id, index)

    def writer(self) -> StoreWriter:
        """A write session holding the store's shared lock (so gc waits for it)."""
        return StoreWriter(self, self.index, self.locks, self._uploads)

    def put_bytes(self, data: bytes) -> str:
        with self.writer() as w:
            return w.put_bytes(data)

    def put_tree(self, tree: Tree, writer: StoreWriter | None = None) -> str:
        if writer is not None:
            return writer.put_bytes(tree.serialize(), TREE_CHUNKS)
        with self.writer() as w:
            return w.put_bytes(tree.serialize(), TREE_CHUNKS)

    def push(
        self,
        scanned: ScannedFolder,
        progress: Progress | None = None,
        writer: StoreWriter | None = None,
    ) -> PushReport:
        """Store every file of a scanned folder the store lacks, then the tree itself."""
        if writer is None:
            with self.writer() as session:
                return push(scanned, self, progress, session)
        return push(scanned, self, progress, writer)

    def add_folder(
        self, folder: str | Path, cache: HashCache | None = None, progress: Progress | None = None
    ) -> Tree:
        """Hash and store a folder in one pass: files read for hashing are stored right away."""
        self.index.refresh()
        with self.writer() as w:

            def keep(digest: str, data: bytes) -> None:
                if len(data) <= FILE_CHUNKS.threshold and not w.has(digest):  # larger: chunked
                    w.add_raw(digest, KIND_BLOB, data)

            scanned = scan_folder(folder, cache, progress, on_content=keep)
            return self.push(scanned, progress, w).tree

    # -- reading -------------------------------------------------------------------------
    def get_bytes(self, digest: str) -> bytes:
        return self.reader.get_bytes(digest)

    def get_tree(self, digest: str) -> Tree:
        return Tree.parse(self.reader.get_tree_bytes(digest), digest)

    def tree_bytes(self, digest: str) -> bytes:
        """A stored tree's serialization, checked as `get_tree` checks it but one entry at a
        time: serving a million-file tree costs its bytes, not a million entries."""
        data = self.reader.get_tree_bytes(digest)
        for _rows in iter_rows([data]):
            pass
        return data

    def stored_size(self, digest: str) -> int | None:
        """The size of a stored object, None if the store lacks it."""
        return self.reader.size(digest) if digest in self.index else None

    def checkout(
        self,
        tree: Tree | str,
        dest: str | Path,
        link: bool = True,
        progress: Progress | None = None,
    ) -> Path:
        if isinstance(tree, str):
            tree = self.get_tree(tree)
        done = checkout(tree, Path(dest), self.reader, self.file_cache, link, progress)
        if self.file_cache is not None:
            self.file_cache.trim()  # what this checkout linked stays linked
        return done

    # -- maintenance ---------------------------------------------------------------------
    def gc(
        self, keep: Iterable[str], grace_seconds: float = 3600, dry_run: bool = False
    ) -> GcReport:
        """Remove what neither `keep` nor a ref reaches, and stale temporary files."""
        keep = {*keep, *self.refs.targets()}
        self._complete.clear()
        with (
            self.locks.hold(exclusive=True),
            StoreWriter(self, self.index, None, self._uploads) as writer,
        ):
            try:
                return collect_garbage(
                    self.backend, self.index, self.reader, writer, keep, grace_seconds, dry_run
                )
            finally:
                self._complete.clear()

    def receive_pack(self, data: bytes | bytearray) -> list[str]:
        """Store a pack uploaded by a client, once every object in it is verified."""
        with self.locks.hold(exclusive=False):
            pack_id, index, digests = verify_pack(data, self.reader.contents, self.stored_size)
            self.store_pack(pack_id, data, index)
            return [digest.hex() for digest in digests]

    def adopt_pack(self, name: str, max_bytes: int) -> list[str]:
        """Store a pack a client on this machine left in the inbox (`kaos.store.inbox`), once
        every object in it is verified as `receive_pack` verifies an upload: the same checks,
        the same pack then index. The inbox file is gone afterwards, stored or refused."""
        if not isinstance(self.backend, LocalBackend):
            raise InputError("this store has no inbox", "send packs with POST /objects/packs")
        folder = inbox_folder(self.backend.root)
        with Delivery(folder, name, max_bytes) as delivery, self.locks.hold(exclusive=False):
            pack_id, index, digests = verify_pack(
                delivery.view, self.reader.contents, self.stored_size
            )
            if delivery.copy is not None:  # not leased: the bytes verified are those stored
                self.store_pack(pack_id, delivery.copy, index)
            else:
                delivery.adopt(self.backend, PACK_PREFIX + pack_id)
                self._publish_index(pack_id, index)
            return [digest.hex() for digest in digests]

    def verify(
        self, trees: Iterable[str] = (), progress: Progress | None = None, repair: bool = False
    ) -> VerifyReport:
        """Check everything; with `repair`, drop what is lost or corrupt from the index so the
        next push of that content uploads it again (intact objects of a damaged pack stay)."""
        report = verify_store(self.backend, self.index, self.reader, trees, progress)
        if repair and report.damaged:
            self._complete.clear()
            with (
                self.locks.hold(exclusive=True),
                StoreWriter(self, self.index, None, self._uploads) as writer,
            ):
                report.dropped = repair_packs(
                    self.backend, self.index, self.reader, writer, report.damaged
                )
            self._complete.clear()
        return report


def _top_names(rows: list[Row]) -> set[str]:
    """The top-level names of a block of a tree's rows, folders with a trailing '/'. Rows are
    sorted, so when the first and last are in one top folder, so is every row between."""
    first, last = rows[0][3], rows[-1][3]
    top = first[: first.find("/") + 1]
    if top and last.startswith(top):
        return {top}
    return {path[: path.find("/") + 1] or path for _d, _s, _x, path in rows}


class _SizeProblems:
    """Entries whose declared size differs from the stored object's: counted as they come,
    reported as the first one and how many more (objects not stored pass)."""

    def __init__(self, tree_digest: str) -> None:
        self._tree = tree_digest
        self._first: str | None = None
        self._more = 0

    def check(self, digest: str, declared: int, stored: int | None) -> None:
        if stored is None or stored == declared:
            return
        if self._first is None:
            self._first = f"{digest} is declared as {declared} bytes but holds {stored}"
        else:
            self._more += 1

    def raise_any(self) -> None:
        if self._first is not None:
            more = f" (and {self._more} more)" if self._more else ""
            raise IntegrityError(
                f"tree {self._tree} lies about sizes: {self._first}{more}", self._tree
            )
