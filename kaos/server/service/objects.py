"""Content transfer: which digests are missing, verified packs, trees and object downloads.
Each call names the user asking (reading content by hash is what access checks guard)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from kaos.errors import InputError, NotFound
from kaos.net import is_loopback
from kaos.server.schemas import MAX_DIGESTS, CompleteOut, MissingOut, PackOut
from kaos.server.service.parts import Parts
from kaos.store.backends.local import LocalBackend
from kaos.store.inbox import inbox_folder, is_inbox
from kaos.store.stream import encode_stream

RAW_DIGEST = 16


class ObjectService:
    def __init__(self, parts: Parts) -> None:
        self._parts = parts

    @property
    def max_upload_bytes(self) -> int:
        return self._parts.settings.max_upload_bytes

    def missing(self, user: str, digests: list[str]) -> MissingOut:
        # built unvalidated: every digest in it was validated on the way in
        return MissingOut.model_construct(missing=sorted(self._parts.store.missing(digests)))

    def missing_raw(self, user: str, body: bytes) -> bytes:
        """`missing` in 16 bytes a digest each way (`POST /objects/missing/raw`): the body is
        the digests asked about, the answer those the store lacks, in the order asked."""
        if len(body) % RAW_DIGEST:
            raise InputError(
                f"the body must be whole {RAW_DIGEST}-byte digests ({len(body)} bytes)",
                "send the raw digests, concatenated",
            )
        if len(body) > MAX_DIGESTS * RAW_DIGEST:
            raise InputError(f"at most {MAX_DIGESTS} digests per request", "ask in batches")
        view = memoryview(body)
        digests = [bytes(view[i : i + RAW_DIGEST]) for i in range(0, len(body), RAW_DIGEST)]
        return b"".join(self._parts.store.lacking(list(dict.fromkeys(digests))))

    def receive_pack(self, user: str, pack: bytes | bytearray) -> PackOut:
        """A pack built by the client (docs/store-format.md); stored only if fully verified."""
        return PackOut(stored=len(self._parts.store.receive_pack(pack)))

    def inbox(self, local: bool) -> str | None:
        """The inbox folder, told only to a client on this machine (`is_local`) of a server
        whose store is a local folder; None when off or for anyone else."""
        if not self._parts.settings.inbox or not local:
            return None
        backend = self._parts.store.backend
        if not isinstance(backend, LocalBackend):
            return None
        folder = inbox_folder(backend.root)
        return str(folder) if is_inbox(folder) else None

    def adopt_pack(self, user: str, name: str, local: bool) -> PackOut:
        """A pack a client on this machine left in the inbox: verified as an upload is, then
        moved into the store; removed if refused."""
        if not self._parts.settings.inbox:
            raise NotFound("this server's inbox is off", "send packs with POST /objects/packs")
        if not local:
            raise NotFound(
                "the inbox is for clients on the server's machine",
                "send packs with POST /objects/packs",
            )
        return PackOut(stored=len(self._parts.store.adopt_pack(name, self.max_upload_bytes)))

    def complete(self, user: str, digest: str) -> CompleteOut:
        """Whether the tree and every object it names are stored (remembered, so cheap)."""
        return CompleteOut(complete=self._parts.store.complete(digest))

    def tree(self, user: str, digest: str) -> bytes:
        """A tree, for whoever can read a workspace naming it (a hash alone opens nothing)."""
        self._parts.guard.tree(user, digest)
        return self._parts.store.tree_bytes(digest)

    def fetch(self, user: str, digests: list[str], tree: str | None = None) -> Iterator[bytes]:
        """Objects in the frames of `kaos.store.stream`, if they belong to `tree` and `user`
        can read it; unknown digests fail here, before the stream starts (the client
        re-verifies every object)."""
        self._parts.guard.objects(user, tree, digests)
        reader = self._parts.store.reader
        for digest in digests:
            reader.locate(digest)
        return encode_stream(digests, reader.open_content)


# Headers a reverse proxy adds: behind one, the client may be anywhere. uvicorn replaces the
# address by X-Forwarded-For's (from a proxy on 127.0.0.1); Forwarded (RFC 7239) or nginx's
# X-Real-IP would leave the proxy's own loopback address.
PROXY_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")


def is_local(host: str | None, headers: Mapping[str, str]) -> bool:
    """Whether a request came from this machine: from a loopback address, not via a proxy."""
    return is_loopback(host) and not any(name in headers for name in PROXY_HEADERS)
