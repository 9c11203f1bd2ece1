"""The team setup in docker-compose.yml hangs together: the kaos server waits for a healthy
PostgreSQL and MinIO, and its catalog URL names the database, user, password and port that
PostgreSQL is started with (also when they are changed through the environment)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).parent.parent


def resolved(env: dict[str, str]) -> dict:
    """The compose file as docker-compose reads it (variables substituted)."""
    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose is not installed (.ci/run installs it)")
    out = subprocess.run(
        ["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config"],
        capture_output=True, text=True, check=True, env={**os.environ, **env}, cwd=ROOT,
    ).stdout  # fmt: skip
    return yaml.safe_load(out)


@pytest.mark.parametrize(
    "env",
    [{}, {"POSTGRES_USER": "team", "POSTGRES_PASSWORD": "s3cret", "KAOS_PG_PORT": "6543"}],
)
def test_the_server_uses_the_postgresql_compose_starts(env):
    services = resolved(env)["services"]
    postgres, kaos = services["postgres"], services["kaos"]
    assert kaos["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["createbucket"]["depends_on"]["minio"]["condition"] == "service_healthy"
    url = urlsplit(kaos["environment"]["KAOS_CATALOG"])
    pg_env = postgres["environment"]
    assert url.scheme == "postgresql" and url.hostname == "127.0.0.1"
    assert (url.username, url.password) == (pg_env["POSTGRES_USER"], pg_env["POSTGRES_PASSWORD"])
    assert url.path == "/" + pg_env["POSTGRES_DB"]
    assert f"port={url.port}" in postgres["command"]
    assert f"-p {url.port} -U {url.username}" in " ".join(postgres["healthcheck"]["test"])
    assert url.port == int(env.get("KAOS_PG_PORT", 5432))
    assert any(v.startswith("postgres-data:") for v in postgres["volumes"])
    assert kaos["environment"]["KAOS_STORE"].startswith("s3://")
