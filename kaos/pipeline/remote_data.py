"""Fetch a manifest's files into the store as one data bundle (bounded, retried, verified)."""

from __future__ import annotations

import ipaddress
import shutil
import socket
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from kaos.errors import ManifestError
from kaos.pipeline.manifest import ManifestEntry
from kaos.store import ContentStore, Tree
from kaos.store.scan import scan_folder

CONCURRENCY = 4
ATTEMPTS = 3
TIMEOUT = httpx.Timeout(30.0, connect=10.0)
# The AWS metadata service's IPv6 address (its IPv4 one, like GCP's and Azure's, is link-local)
_METADATA = ipaddress.ip_address("fd00:ec2::254")


class _Refused(Exception):
    """A URL (or a redirect) leading where kaos never fetches from."""

    def __init__(self, address: str) -> None:
        self.address = address


def _refuse_metadata(request: httpx.Request) -> None:
    """Before every request, redirects included: never to a link-local address. A manifest is
    any user's, and there a cloud machine's metadata service hands out the server's own
    credentials (those of the store every workspace shares)."""
    host = request.url.host
    try:
        found = {str(info[4][0]) for info in socket.getaddrinfo(host, None)}
    except OSError:
        return  # the request itself then fails, and says why
    for text in sorted(found):
        address = ipaddress.ip_address(text.split("%")[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped  # ::ffff:169.254.169.254 is 169.254.169.254
        if address.is_link_local or address == _METADATA:
            raise _Refused(text)


def fetch_manifest(store: ContentStore, entries: list[ManifestEntry], tmp_root: Path) -> Tree:
    """Download every entry (at most CONCURRENCY at once), store them, return their tree.

    Any failure names its manifest line and stores no tree, so the workspace stays as it was.
    """
    tmp_root.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="manifest-", dir=tmp_root))
    try:
        with (
            httpx.Client(
                timeout=TIMEOUT,
                follow_redirects=True,
                event_hooks={"request": [_refuse_metadata]},
            ) as client,
            ThreadPoolExecutor(max_workers=CONCURRENCY) as pool,
        ):
            list(pool.map(lambda e: _download(client, e, folder), entries))
        scanned = scan_folder(folder / "bundle")
        left_out = sorted({e.path for e in entries} - set(scanned.paths))
        if left_out:  # the walk skips ignored names (.git/...): a manifest must not lose files
            raise ManifestError(
                f"manifest path {left_out[0]!r} is a name kaos ignores in bundles",
                "rename it in the manifest",
            )
        return store.push(scanned).tree
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _download(client: httpx.Client, entry: ManifestEntry, folder: Path) -> Path:
    """Download one entry, then move it to its path in `folder/bundle` (a relative path: the
    parser refused any other), so a half-written file never appears in the bundle."""
    final = folder / "bundle" / entry.path
    final.parent.mkdir(parents=True, exist_ok=True)
    target = folder / "parts" / str(entry.line)
    target.parent.mkdir(exist_ok=True)
    last = ""
    for attempt in range(ATTEMPTS):
        try:
            with client.stream("GET", entry.url) as response:
                if response.status_code in (404, 410, 401, 403):
                    raise ManifestError(
                        f"manifest line {entry.line}: {entry.url} answered {response.status_code}",
                        "fix the URL or make the file reachable from the kaos server",
                    )
                response.raise_for_status()
                with open(target, "wb") as f:
                    for part in response.iter_bytes():
                        f.write(part)
            target.replace(final)
            return final
        except ManifestError:
            raise
        except _Refused as refused:
            raise ManifestError(
                f"manifest line {entry.line}: {entry.url} leads to {refused.address}, a link-local "
                "address (cloud metadata), which kaos never fetches",
                "use the URL of a data server",
            ) from None
        except httpx.HTTPError as exc:
            last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.2 * 2**attempt)
    raise ManifestError(
        f"manifest line {entry.line}: could not download {entry.url} ({last})",
        "check that the URL is reachable from the kaos server",
    )
