"""Object-store backends: a key -> bytes map with atomic puts, ranged gets and listing."""

from kaos.store.backends.base import Backend, ObjectInfo
from kaos.store.backends.local import LocalBackend
from kaos.store.backends.url import backend_from_url

__all__ = ["Backend", "LocalBackend", "ObjectInfo", "backend_from_url"]
