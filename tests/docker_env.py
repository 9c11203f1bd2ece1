"""Whether a Docker engine and the local base image are here (CI makes both: see .ci/run)."""

from __future__ import annotations

import os

import pytest

BASE_IMAGE = os.environ.get("KAOS_TEST_BASE_IMAGE", "kaos-python:3.11")


def docker_unavailable() -> str | None:
    """Why docker tests cannot run here, or None when they can."""
    try:
        import docker

        client = docker.from_env()
        client.ping()
    except Exception as exc:
        return f"no Docker engine reachable ({type(exc).__name__}); start dockerd (.ci/run does)"
    try:
        client.images.get(BASE_IMAGE)
    except Exception:
        return f"base image {BASE_IMAGE} missing; make it with scripts/make-base-image.sh"
    return None


requires_docker = pytest.mark.skipif(
    docker_unavailable() is not None, reason=str(docker_unavailable())
)
