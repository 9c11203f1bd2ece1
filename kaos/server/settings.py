"""Server settings, from flags or environment variables (KAOS_*), via pydantic-settings."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import ByteSize, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from kaos.config import DEFAULT_PORT, kaos_home


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KAOS_", extra="ignore")

    home: Path = Field(default_factory=kaos_home)
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    store: str | None = None  # a folder or s3://bucket/prefix; default: <home>/store
    catalog: str | None = None  # a SQLite file or postgresql://...; default: <home>/catalog.db
    s3_endpoint_url: str | None = None
    executor: Literal["local", "docker", "ray"] = "local"
    ray_address: str | None = None  # the ray executor: a cluster's address, or a local instance
    ray_node_home: str = "/tmp/kaos-ray-node"
    token: str | None = None  # "TOKEN" (user kaos) or "USER:TOKEN"; none: no authentication
    tokens_file: Path | None = None  # lines of "user token", for several users
    insecure: bool = False  # serve a non-loopback host without tokens (refused otherwise)
    max_parallel: int = 2
    # Replicas: servers sharing one catalog and one store (see kaos/pipeline/leases.py).
    lease_s: float = Field(default=15.0, gt=0)  # a dead replica's jobs are taken over after it
    heartbeat_s: float = Field(default=1.0, gt=0)  # lease renewals, kill requests, log shipping
    sandbox: bool = True  # local and ray: every train in bubblewrap (--no-sandbox turns it off)
    # A request (deploy, serve deploy, workspace kill) waits this long at most for a workspace
    # another request or replica holds, then fails as busy (409) while its client still waits.
    # (at most an hour: threading's timeouts and PostgreSQL's lock_timeout, an int of ms,
    # refuse far larger ones, and 'inf' would fail every deploy)
    lock_wait_s: float = Field(default=60.0, gt=0, le=3600)
    max_combinations: int = 1000
    max_upload_bytes: int = 256 << 20
    # Clients on this machine leave packs in the store's inbox folder (kaos/store/inbox.py)
    # rather than sending them over loopback; KAOS_INBOX=off makes them all use HTTP.
    inbox: bool = True
    gc_grace_seconds: float = 3600  # gc never touches anything younger (uploads in flight)
    cache_max: ByteSize | None = None  # executors' file cache limit, e.g. KAOS_CACHE_MAX=20GiB
    # Build settings, for networks that mirror PyPI or intercept TLS, and sites without a
    # registry (the docker executor passes base_image as the BASE_IMAGE build argument).
    base_image: str | None = None
    build_args: dict[str, str] = Field(default_factory=dict)  # KAOS_BUILD_ARGS='{"K": "V"}'
    index_url: str | None = None
    extra_index_url: str | None = None
    ca_bundle: str | None = None

    @property
    def store_url(self) -> str:
        return self.store or str(self.home / "store")

    @property
    def catalog_location(self) -> str:
        return self.catalog or str(self.home / "catalog.db")

    @property
    def catalog_shown(self) -> str:
        """The catalog's location without its password, for logs."""
        return without_password(self.catalog_location)


def without_password(url: str) -> str:
    """A database URL as logs may show it: the password after `user:` and any `password=`
    parameter masked. Users write passwords unescaped, so the user info ends at the *last*
    '@' before the parameters ('user:p@ss@host' must not leak 'ss')."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    path, query_sep, query = rest.partition("?")
    at = path.rfind("@")
    if at >= 0 and ":" in path[:at]:
        path = path[: path.index(":")] + ":***" + path[at:]
    query = re.sub(r"(^|&)(password=)[^&]*", r"\1\2***", query)
    return f"{scheme}{sep}{path}{query_sep}{query}"
