"""Path rules shared by scanning, tree parsing and checkout: nothing lands outside its root."""

from __future__ import annotations

import os
import re
from pathlib import Path

from kaos.errors import UnsafePathError

# Absolute, empty, `.`/`..` or empty components, trailing slash, Windows drive, or characters
# that would break the tree's line format or mean different things across platforms.
_UNSAFE = re.compile(r"(^/|^[A-Za-z]:|//|(^|/)\.{1,2}(/|$)|/$|[\x00\n\r\\])")


def check_relative_path(path: str) -> str:
    """Return `path` if it is a safe POSIX path relative to a bundle root, else raise."""
    if not path or _UNSAFE.search(path):
        raise UnsafePathError(f"unsafe path refused (absolute, '..' or malformed): {path!r}")
    return path


def resolve_inside(root: Path, relative: str) -> Path:
    """Join `relative` onto `root`, refusing any result outside `root` (also through symlinks)."""
    check_relative_path(relative)
    target = root / relative
    root_real = os.path.realpath(root)
    parent_real = os.path.realpath(target.parent)
    if parent_real != root_real and not parent_real.startswith(root_real + os.sep):
        raise UnsafePathError(f"path resolves outside its destination: {relative!r}")
    return target
