"""Choose a backend from a store URL: a folder path, file://PATH or s3://BUCKET/PREFIX."""

from __future__ import annotations

from urllib.parse import urlparse

from kaos.errors import ConfigError
from kaos.store.backends.base import Backend
from kaos.store.backends.local import LocalBackend


def backend_from_url(url: str, endpoint_url: str | None = None) -> Backend:
    parsed = urlparse(url)
    if parsed.scheme == "s3":
        from kaos.store.backends.s3 import S3Backend

        return S3Backend(parsed.netloc, parsed.path, endpoint_url=endpoint_url)
    if parsed.scheme in ("", "file"):
        return LocalBackend(parsed.path if parsed.scheme == "file" else url)
    raise ConfigError(f"unsupported store URL: {url}", "use a folder path or s3://BUCKET/PREFIX")
