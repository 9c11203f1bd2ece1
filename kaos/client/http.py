"""The HTTP API of a kaos server: one method per endpoint, returning the server's JSON.

It is also a transfer destination (it asks the server which objects it lacks and uploads only
those, packed and compressed, in the store's own pack format); downloads are verified against
their digests before anything is written. `kaos.client.Client` builds the use cases on it.
"""

from __future__ import annotations

import contextlib
import getpass
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast
from urllib.parse import quote

import xxhash

from kaos.client.transport import CutShort, Response, Transport, TransportError
from kaos.errors import InputError, IntegrityError, ServerError, ServerUnreachable
from kaos.store.hashing import hash_bytes

if TYPE_CHECKING:  # the store's transfer parts load with the first push or download
    from kaos.store.pack import Piece
    from kaos.store.progress import Progress
    from kaos.store.scan import PathsHook, ScannedFolder
    from kaos.store.state import HashCache
    from kaos.store.transfer import PushReport
    from kaos.store.tree import Tree

_MISSING_BATCH = 20_000
# Deploys, rollbacks and workspace deletions: the server may wait KAOS_LOCK_WAIT_S (60 s) for a
# workspace another request holds, and a serve deploy starts a process; the default is 60 s.
_DEPLOY_S = 180
_FETCH_BATCH = 5_000


def _seg(value: str) -> str:
    """A user's name or id as one URL path segment: quoted, so a '?' or '#' in it never
    reaches another route or query. Every path is made of these, so '.' and '..' (which the URL
    would resolve away: `serve kill -n ..` would become DELETE /workspaces/WS) and a '/' are
    refused here, before anything is sent."""
    if not value.strip() or value in (".", "..") or "/" in value:
        raise InputError(
            f"{value!r} is not a valid name or id",
            "copy it from 'kaos train list' or 'kaos workspace list'",
        )
    return quote(value, safe="")


class KaosClient:
    def __init__(
        self,
        endpoint: str,
        token: str | None = None,
        author: str | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        headers = {"X-Kaos-Author": author or _user()}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._raw_missing = True  # until a server says it has no raw `missing` route
        # the health of a server on this machine, asked once a pack is to be sent
        self._here: dict[str, Any] | None = None
        self._inbox_off = False  # its inbox failed this client: packs go over HTTP from then
        try:
            self._http = Transport(self.endpoint, headers, timeout)
        except ValueError:
            raise InputError(
                f"not a server URL: {endpoint!r}", "pass one like http://127.0.0.1:8000"
            ) from None

    def close(self) -> None:
        self._http.close()

    # -- plumbing ---------------------------------------------------------------------------
    def _request(self, method: str, path: str, **kwargs: Any) -> Response:
        response = self._send(method, path, **kwargs)
        _raise_for_error(response)
        return response

    def _send(self, method: str, path: str, **kwargs: Any) -> Response:
        """The server's answer, whatever its status."""
        try:
            return self._http.request(method, path, **kwargs)
        except TransportError as exc:
            raise ServerUnreachable(
                f"cannot reach the kaos server at {self.endpoint} ({exc})",
                "start one with 'kaos server start' or point to one with 'kaos init -e URL'",
            ) from None

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """A JSON object answer (the server's schemas)."""
        return cast(dict[str, Any], self._request(method, path, **kwargs).json())

    def _json_list(self, method: str, path: str, **kwargs: Any) -> list[dict[str, Any]]:
        """A JSON array answer (listings)."""
        return cast(list[dict[str, Any]], self._request(method, path, **kwargs).json())

    # -- simple resources -------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        return self._json("GET", "/health")

    def create_workspace(self, name: str) -> dict[str, Any]:
        return self._json("POST", "/workspaces", json={"name": name})

    def workspaces(self) -> list[dict[str, Any]]:
        return self._json_list("GET", "/workspaces")

    def workspace(self, name: str) -> dict[str, Any]:
        return self._json("GET", f"/workspaces/{_seg(name)}")

    def delete_workspace(self, name: str) -> None:
        self._request("DELETE", f"/workspaces/{_seg(name)}", timeout=_DEPLOY_S)

    def share(self, workspace: str, member: str, role: str) -> dict[str, Any]:
        """Give a user a role (reader or writer) on a workspace; returns the workspace."""
        body = {"member": member, "role": role}
        return self._json("POST", f"/workspaces/{_seg(workspace)}/shares", json=body)

    def unshare(self, workspace: str, member: str) -> dict[str, Any]:
        return self._json("DELETE", f"/workspaces/{_seg(workspace)}/shares/{_seg(member)}")

    def deploy(self, workspace: str, **body: Any) -> dict[str, Any]:
        return self._json(
            "POST", f"/workspaces/{_seg(workspace)}/deploy", json=body, timeout=_DEPLOY_S
        )

    def jobs(self, workspace: str, kind: str | None = None) -> list[dict[str, Any]]:
        params = {"kind": kind} if kind else {}
        return self._json_list("GET", f"/workspaces/{_seg(workspace)}/jobs", params=params)

    def job(self, job_id: str) -> dict[str, Any]:
        return self._json("GET", f"/jobs/{_seg(job_id)}")

    def logs(self, job_id: str, offset: int = 0) -> dict[str, Any]:
        return self._json("GET", f"/jobs/{_seg(job_id)}/logs", params={"offset": offset})

    def kill(self, job_id: str) -> dict[str, Any]:
        return self._json("POST", f"/jobs/{_seg(job_id)}/kill")

    def verify_store(self, repair: bool = False) -> dict[str, Any]:
        params = {"repair": "true"} if repair else None
        return self._json("POST", "/store/verify", params=params, timeout=3600)

    def gc_store(self, dry_run: bool = False) -> dict[str, Any]:
        return self._json("POST", "/store/gc", json={"dry_run": dry_run}, timeout=3600)

    def provenance(self, model_id: str) -> dict[str, Any]:
        return self._json("GET", f"/models/{_seg(model_id)}")

    def reproduce(self, model_id: str) -> dict[str, Any]:
        """Start retraining a model from what was stored for it; returns the job."""
        return self._json("POST", f"/models/{_seg(model_id)}/reproduce")

    def reproduction(self, job_id: str) -> dict[str, Any]:
        """A reproduction's state and, once trained, whether its output is identical."""
        return self._json("GET", f"/reproductions/{_seg(job_id)}")

    def diff(self, a: str, b: str) -> dict[str, Any]:
        """What changed from model `a` to model `b` (a `ModelDiff`)."""
        _seg(a)  # refused like b, rather than a server's message about a query parameter
        return self._json("GET", f"/models/{_seg(b)}/diff", params={"against": a})

    # -- serving ----------------------------------------------------------------------------
    def serve_deploy(self, workspace: str, **body: Any) -> dict[str, Any]:
        """Point an endpoint at a model; returns once its new revision answers (or fails)."""
        return self._json(
            "POST", f"/workspaces/{_seg(workspace)}/endpoints", json=body, timeout=_DEPLOY_S
        )

    def endpoints(self, workspace: str) -> list[dict[str, Any]]:
        return self._json_list("GET", f"/workspaces/{_seg(workspace)}/endpoints")

    def endpoint_detail(self, workspace: str, name: str) -> dict[str, Any]:
        return self._json("GET", f"/workspaces/{_seg(workspace)}/endpoints/{_seg(name)}")

    def serve_rollback(self, workspace: str, name: str) -> dict[str, Any]:
        return self._json(
            "POST",
            f"/workspaces/{_seg(workspace)}/endpoints/{_seg(name)}/rollback",
            timeout=_DEPLOY_S,
        )

    def serve_kill(self, workspace: str, name: str) -> dict[str, Any]:
        return self._json(
            "DELETE", f"/workspaces/{_seg(workspace)}/endpoints/{_seg(name)}", timeout=120
        )

    def serve_logs(self, workspace: str, name: str, offset: int = 0) -> dict[str, Any]:
        return self._json(
            "GET",
            f"/workspaces/{_seg(workspace)}/endpoints/{_seg(name)}/logs",
            params={"offset": offset},
        )

    def serve_build_logs(self, workspace: str, name: str) -> dict[str, Any]:
        return self._json("GET", f"/workspaces/{_seg(workspace)}/endpoints/{_seg(name)}/build-logs")

    def predict(
        self, workspace: str, name: str, body: bytes, content_type: str = "application/json"
    ) -> dict[str, Any]:
        """POST a request body to the endpoint's /invocations through the kaos route."""
        return self._json(
            "POST",
            f"/serve/{_seg(workspace)}/{_seg(name)}/invocations",
            content=body,
            headers={"Content-Type": content_type},
        )

    def dashboard_url(self, workspace: str | None = None) -> str:
        """Where the server's dashboard is (checked to answer), on `workspace` if given."""
        self.health()
        return f"{self.endpoint}/" + (f"#/w/{quote(workspace, safe='')}" if workspace else "")

    # -- uploads ----------------------------------------------------------------------------
    def missing(self, digests: Iterable[str]) -> set[str]:
        """The digests the server lacks, asked in raw 16-byte digests (no JSON string per
        digest either way); a server without that route is asked in JSON."""
        wanted = sorted(set(digests))
        if any(len(d) != 32 for d in wanted):
            raise InputError("not a digest among those asked about", "pass 32 hex digits each")
        absent: set[str] = set()
        for start in range(0, len(wanted), _MISSING_BATCH):
            batch = wanted[start : start + _MISSING_BATCH]
            if self._raw_missing:
                answer = self._missing_raw(batch)
                if answer is not None:
                    absent.update(answer[i : i + 32] for i in range(0, len(answer), 32))
                    continue
                self._raw_missing = False  # an older server: JSON from now on
            found = self._json("POST", "/objects/missing", json={"digests": batch})["missing"]
            absent.update(found)
        return absent

    def _missing_raw(self, batch: list[str]) -> str | None:
        """Those of `batch` the server lacks, as one hex string; None if it has no raw route."""
        try:
            body = bytes.fromhex("".join(batch))
        except ValueError:
            raise InputError("not a digest among those asked about", "pass hex digits") from None
        response = self._send(
            "POST",
            "/objects/missing/raw",
            content=body,
            headers={"Content-Type": "application/octet-stream"},
        )
        if response.status_code in (404, 405):
            return None
        _raise_for_error(response)
        return response.content.hex()

    def store_pack(self, pack_id: str, data: bytes, index: bytes) -> None:
        """Upload one sealed pack; the server verifies it before storing it."""
        self.store_pack_pieces(pack_id, [data], index)

    def store_pack_pieces(self, pack_id: str, pieces: Sequence[Piece], index: bytes) -> None:
        """Upload a sealed pack given as its pieces, sent as they come (never joined whole),
        or leave it in the inbox of a server on this machine that has one."""
        folder = self._inbox()
        if folder is not None and self._leave_in_inbox(folder, pack_id, pieces):
            return
        self._request(
            "POST",
            "/objects/packs",
            content=pieces,
            headers={"Content-Type": "application/octet-stream"},
            timeout=300,
        )

    @property
    def pack_level(self) -> int | None:
        """How packs are compressed on their way: not at all to a server on this machine
        whose store is on its disk (loopback moves bytes faster than zstd makes fewer of them,
        and the disk keeps them as DVC's cache does), zstd level 1 otherwise (a remote server,
        or one storing in S3). Asked of the server once, when the first pack is sealed, so an
        unchanged deploy never asks."""
        if not self._http.loopback:
            return 1
        return None if self._server_here().get("store_on_disk", True) else 1

    def _server_here(self) -> dict[str, Any]:
        """The health of a server on this machine, asked once (when the first pack is sent)."""
        if self._here is None:
            self._here = self.health()
        return self._here

    def _inbox(self) -> str | None:
        """The folder a server on this machine takes packs in as files (`kaos.store.inbox`),
        if it told one and it has not failed this client."""
        if self._inbox_off or not self._http.loopback:
            return None
        folder = self._server_here().get("inbox")
        return folder if isinstance(folder, str) and folder else None

    def _leave_in_inbox(self, folder: str, pack_id: str, pieces: Sequence[Piece]) -> bool:
        """Write the pack into the server's inbox and have the server adopt it (it verifies
        every byte, as for an upload). False, and the inbox off for this client, when it
        cannot write there or the server does not see the file (another mount namespace, a
        proxy in front of another machine): the caller uploads the pack instead. The file
        never outlives a pack the server did not take."""
        from kaos.client.inbox import write_pack

        try:
            name = write_pack(folder, pack_id, pieces)
        except OSError:
            self._inbox_off = True
            return False
        adopted = False
        try:
            response = self._send("POST", "/objects/packs/inbox", json={"name": name}, timeout=300)
            if response.status_code == 404:
                self._inbox_off = True
                return False
            _raise_for_error(response)
            adopted = True
            return True
        finally:
            if not adopted:
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(folder, name))

    def complete(self, tree_digest: str) -> bool:
        """Whether the server holds this tree and every object it names (one request)."""
        return bool(self._json("GET", f"/trees/{_seg(tree_digest)}/complete")["complete"])

    def push(self, scanned: ScannedFolder, progress: Progress | None = None) -> PushReport:
        """Upload what the server lacks of a scanned folder (two uploads at once)."""
        from kaos.store.transfer import push
        from kaos.store.writer import StoreWriter

        with StoreWriter(self, uploads=2, level=lambda: self.pack_level) as writer:
            return push(scanned, self, progress, writer)

    def push_folder(
        self,
        folder: str | Path,
        cache: HashCache | None = None,
        progress: Progress | None = None,
        vet: PathsHook | None = None,
    ) -> PushReport:
        """Scan and upload a folder in one pass (each new file read once); `vet(names)` may
        refuse it before anything is read or sent."""
        from kaos.store.transfer import scan_and_push

        return scan_and_push(folder, self, cache, progress, vet, level=lambda: self.pack_level)

    # -- downloads --------------------------------------------------------------------------
    def get_tree(self, digest: str) -> Tree:
        from kaos.store.tree import Tree

        return Tree.parse(self._request("GET", f"/trees/{_seg(digest)}").content, digest)

    def checkout(self, digest: str, dest: str | Path, progress: Progress | None = None) -> Path:
        """Write a stored tree into `dest` as plain files (all verified; nothing outside dest)."""
        from kaos.store.checkout import checkout

        return checkout(
            self.get_tree(digest), Path(dest), RemoteObjects(self, digest), None, False, progress
        )

    def fetch(
        self, digests: list[str], tree: str | None = None
    ) -> Iterator[tuple[str, int, Iterator[bytes]]]:
        """Stream objects: (digest, size, pieces); the caller must consume pieces in order.
        `tree` names the tree they belong to: with tokens on, the server sends only objects
        of a tree the user may read."""
        body: dict[str, Any] = {"digests": digests}
        if tree is not None:
            body["tree"] = tree
        from kaos.store.stream import decode_stream

        try:
            with self._http.stream("POST", "/objects/fetch", json=body, timeout=300) as response:
                if response.status_code >= 400:
                    _raise_for_error(response.read())
                yield from decode_stream(response.iter_bytes(), len(dict.fromkeys(digests)))
        except CutShort:
            raise IntegrityError(
                "the download was cut short: the server stopped sending (see 'kaos store verify')"
            ) from None
        except TransportError as exc:
            raise ServerUnreachable(f"download from {self.endpoint} failed ({exc})") from None


class RemoteObjects:
    """An `ObjectSource` for checkout, reading one tree's objects from the server and verifying
    every object."""

    def __init__(self, client: KaosClient, tree: str | None = None) -> None:
        self._client = client
        self._tree = tree

    def iter_blobs(self, digests: Iterable[str]) -> Iterator[tuple[str, bytes]]:
        wanted = list(dict.fromkeys(digests))
        for start in range(0, len(wanted), _FETCH_BATCH):
            batch = wanted[start : start + _FETCH_BATCH]
            for digest, _size, pieces in self._client.fetch(batch, self._tree):
                data = b"".join(pieces)
                if hash_bytes(data) != digest:
                    raise IntegrityError(f"downloaded object {digest} is corrupt", digest)
                yield digest, data

    def write_to(self, digest: str, out: BinaryIO) -> int:
        hasher = xxhash.xxh3_128()
        written = 0
        for got, _size, pieces in self._client.fetch([digest], self._tree):
            for piece in pieces:
                hasher.update(piece)
                out.write(piece)
                written += len(piece)
            if got != digest or hasher.hexdigest() != digest:
                raise IntegrityError(f"downloaded object {digest} is corrupt", digest)
        return written


def _raise_for_error(response: Response) -> None:
    if response.status_code < 400:
        return
    try:
        body = response.json()
        detail, fix = body.get("detail") or body.get("message"), body.get("fix")
    except ValueError:
        detail, fix = response.text.strip()[:200], None
    if isinstance(detail, list):  # FastAPI's own validation shape
        detail = "; ".join(str(d.get("msg", d)) for d in detail)
    if response.status_code == 401:
        fix = fix or "log in with 'kaos init -e URL -t TOKEN'"
    raise ServerError(
        str(detail or f"server answered {response.status_code}"), fix, response.status_code
    )


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "anonymous"
