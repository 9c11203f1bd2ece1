"""Content-addressed storage of bundles: hashing, trees, packs, chunks and backends.

The public surface is small: `scan_folder` turns a folder into a `Tree`, `ContentStore` keeps
blobs and trees on a `Backend` and materialises them again with `checkout`.
"""

from kaos.store.cas import ContentStore
from kaos.store.progress import NullProgress, Progress
from kaos.store.scan import scan_folder
from kaos.store.state import NullStatCache, StatCache
from kaos.store.tree import Tree, TreeEntry

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
