"""The Python API of kaos, which the CLI also uses.

`Client` owns the client's use cases: scan bundles with the stat cache, check their shape, push
what the server lacks, deploy, wait for the models, watch folders. `KaosClient` is the HTTP API
underneath. Names load on first use, so `kaos --help` imports none of this.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "Bundle": "kaos.client.bundles",
    "Client": "kaos.client.api",
    "Deployment": "kaos.client.api",
    "KaosClient": "kaos.client.http",
    "Reporter": "kaos.client.events",
    "ServerError": "kaos.errors",
    "ServerUnreachable": "kaos.errors",
    "Silent": "kaos.client.events",
}

if TYPE_CHECKING:
    from kaos.client.api import Client, Deployment
    from kaos.client.bundles import Bundle
    from kaos.client.events import Reporter, Silent
    from kaos.client.http import KaosClient
    from kaos.errors import ServerError, ServerUnreachable


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'kaos.client' has no attribute {name!r}")


__all__ = [
    "Bundle",
    "Client",
    "Deployment",
    "KaosClient",
    "Reporter",
    "ServerError",
    "ServerUnreachable",
    "Silent",
]
