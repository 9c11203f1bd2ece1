"""Shared fixtures: real servers are started once per session and hand out clean spaces."""

from __future__ import annotations

import logging
import os
import secrets
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

# Ray reads its authentication settings when it is imported: a shared token for every Ray
# instance and node the tests start must be in the environment before any test imports it.
os.environ.setdefault("RAY_AUTH_MODE", "token")
os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(16))
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(autouse=True)
def kaos_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own KAOS_HOME, so no test sees another's caches or settings."""
    home = tmp_path / "kaos-home"
    monkeypatch.setenv("KAOS_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real HTTP S3 endpoint (moto's server) on 127.0.0.1."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_bucket(s3_endpoint: str) -> str:
    """A fresh, empty bucket on the S3 endpoint."""
    import boto3

    name = f"kaos-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=name)
    return name


class KaosServer:
    """A real `kaos server start` process on 127.0.0.1 with its own KAOS_HOME."""

    def __init__(
        self, home: Path, extra_args: list[str] | None = None, env: dict[str, str] | None = None
    ) -> None:
        import subprocess
        import sys
        import time

        import httpx

        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, **(env or {}), "KAOS_HOME": str(home)}
        self.log = open(home.parent / f"server-{self.port}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kaos",
                "server",
                "start",
                "--port",
                str(self.port),
                *(extra_args or []),
            ],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"kaos server exited: {(home.parent / f'server-{self.port}.log').read_text()}"
                )
            try:
                httpx.get(self.url + "/health", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError("kaos server did not start")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except Exception:
            self.proc.kill()
        self.log.close()


@pytest.fixture(scope="session")
def kaos_server(tmp_path_factory) -> Iterator[KaosServer]:
    home = tmp_path_factory.mktemp("server") / "home"
    home.mkdir()
    server = KaosServer(home)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[object]:
    """A real PostgreSQL server (Debian's initdb/pg_ctl) on a temp folder and 127.0.0.1."""
    from tests.postgres import PostgresServer, postgres_bin

    bin_dir = postgres_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed (Debian package postgresql: initdb, pg_ctl)")
    server = PostgresServer(bin_dir, free_port())
    yield server
    server.stop()


class CatalogPlace:
    """Where a test's catalog lives (a SQLite file or a fresh PostgreSQL database); `open`
    opens it (again), and every catalog opened is closed after the test."""

    def __init__(self, backend: str, location: str) -> None:
        self.backend = backend
        self.location = location
        self.opened: list = []

    def open(self):
        from kaos.pipeline.catalog import open_catalog

        catalog = open_catalog(self.location)
        self.opened.append(catalog)
        return catalog


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_place(request, tmp_path) -> Iterator[CatalogPlace]:
    """The catalog's contract tests run on both databases."""
    if request.param == "sqlite":
        place = CatalogPlace("sqlite", str(tmp_path / "catalog.db"))
    else:
        place = CatalogPlace("postgresql", request.getfixturevalue("postgres").new_database())
    yield place
    for catalog in place.opened:
        catalog.close()
