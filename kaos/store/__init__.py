"""Content-addressed storage of bundles: hashing, trees, packs, chunks and backends.

The public surface is small: `scan_folder` turns a folder into a `Tree`, `ContentStore` keeps
blobs and trees on a `Backend` and materialises them again with `checkout`. Names are loaded on
first use, so importing one module (as the CLI does) does not import them all.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "ContentStore": "kaos.store.cas",
    "NullProgress": "kaos.store.progress",
    "Progress": "kaos.store.progress",
    "NullStatCache": "kaos.store.state",
    "StatCache": "kaos.store.state",
    "Tree": "kaos.store.tree",
    "TreeEntry": "kaos.store.tree",
    "scan_folder": "kaos.store.scan",
}

if TYPE_CHECKING:
    from kaos.store.cas import ContentStore
    from kaos.store.progress import NullProgress, Progress
    from kaos.store.scan import scan_folder
    from kaos.store.state import NullStatCache, StatCache
    from kaos.store.tree import Tree, TreeEntry


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'kaos.store' has no attribute {name!r}")


__all__ = [
    "ContentStore",
    "NullProgress",
    "NullStatCache",
    "Progress",
    "StatCache",
    "Tree",
    "TreeEntry",
    "scan_folder",
]
