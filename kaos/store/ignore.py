"""Which files a bundle leaves out: `.kaosignore` (gitignore syntax) plus built-in defaults."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from kaos.errors import BundleError

if TYPE_CHECKING:
    import pathspec

IGNORE_FILE = ".kaosignore"
DEFAULT_IGNORED_DIRS = frozenset({".git", "__pycache__"})


class IgnoreRules:
    """Decides per relative path; folders are tested with a trailing slash as git does."""

    def __init__(self, spec: pathspec.PathSpec[Any] | None) -> None:
        self._spec = spec
        self.active = spec is not None

    @classmethod
    def for_folder(cls, root: Path) -> IgnoreRules:
        ignore_file = root / IGNORE_FILE
        if not ignore_file.is_file():
            return cls(None)
        try:
            lines = ignore_file.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError:
            raise BundleError(
                f"{ignore_file} is not UTF-8 text", "save it as UTF-8 (gitignore syntax)"
            ) from None
        import pathspec  # only for a bundle that has rules: 10 ms of every command's start-up

        return cls(pathspec.PathSpec.from_lines("gitignore", lines))

    def skips_dir(self, name: str, rel: str) -> bool:
        if name in DEFAULT_IGNORED_DIRS:
            return True
        return self._spec is not None and self._spec.match_file(rel + "/")

    def skips_file(self, rel: str) -> bool:
        return self._spec is not None and self._spec.match_file(rel)
