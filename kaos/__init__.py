"""kaos: incremental, content-addressed model training.

`from kaos import Client` is the Python API (see kaos/client); it loads on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from kaos.client.api import Client


def __getattr__(name: str) -> Any:
    if name == "Client":
        from kaos.client.api import Client

        return Client
    raise AttributeError(f"module 'kaos' has no attribute {name!r}")


__all__ = ["Client", "__version__"]
