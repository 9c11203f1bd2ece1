"""Remote data manifests (`-m data.mf`): JSON lines of {"url": ..., "path": ...}, as in kaos 1.0.

Parsing is pure and strict: every problem names its line, and a `path` that would leave the
data bundle is refused before anything is downloaded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import urlparse

from kaos.errors import ManifestError, UnsafePathError
from kaos.store.paths import check_relative_path

MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class ManifestEntry:
    line: int
    url: str
    path: str


def parse_manifest(text: str) -> list[ManifestEntry]:
    entries: list[ManifestEntry] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        try:
            item = json.loads(raw)
        except ValueError:
            raise ManifestError(f"manifest line {number} is not JSON: {raw[:80]!r}") from None
        if not isinstance(item, dict) or set(item) != {"url", "path"}:
            raise ManifestError(f'manifest line {number} must be {{"url": ..., "path": ...}}')
        url, path = item["url"], item["path"]
        if (
            not isinstance(url, str)
            or urlparse(url).scheme not in ("http", "https")
            or not urlparse(url).netloc
        ):
            raise ManifestError(f"manifest line {number}: url must be http(s)://..., got {url!r}")
        if not isinstance(path, str):
            raise ManifestError(f"manifest line {number}: path must be a string")
        try:
            check_relative_path(path)
        except UnsafePathError:
            raise ManifestError(
                f"manifest line {number}: path {path!r} escapes the data bundle",
                "use a relative path such as features/training/data.csv",
            ) from None
        if path in seen:
            raise ManifestError(
                f"manifest line {number}: path {path!r} already given on line {seen[path]}"
            )
        seen[path] = number
        entries.append(ManifestEntry(number, url, path))
    if not entries:
        raise ManifestError("the manifest lists no files")
    if len(entries) > MAX_ENTRIES:
        raise ManifestError(f"the manifest lists {len(entries)} files, more than {MAX_ENTRIES}")
    return entries
