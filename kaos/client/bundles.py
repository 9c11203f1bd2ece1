"""A bundle folder made ready to send: scanned with the stat cache and checked for its shape."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kaos.errors import BundleError
from kaos.pipeline.bundles import bundle_label, data_bundle_name, source_bundle_name
from kaos.store.scan import ScannedFolder, scan_folder
from kaos.store.state import HashCache

KINDS = ("source", "data")


@dataclass(frozen=True)
class Bundle:
    kind: str  # "source" or "data"
    folder: Path
    scanned: ScannedFolder
    name: str  # its one top-level folder, e.g. "mnist"

    @property
    def digest(self) -> str:
        return self.scanned.digest

    @property
    def label(self) -> str:
        """As bundles are shown: `/mnist:e23a2`."""
        return bundle_label(self.name, self.digest)


def check_folder(kind: str, folder: Path | None) -> None:
    """A missing folder fails before anything is scanned or sent."""
    if folder is not None and not Path(folder).exists():
        raise BundleError(f"{kind} bundle path not found: {folder}", "check the path you passed")


def scan_bundle(kind: str, folder: Path, cache: HashCache) -> Bundle:
    """Hash the folder (files the stat cache vouches for are not read) and check its shape."""
    check_folder(kind, folder)
    scanned = scan_folder(folder, cache)
    # a data bundle is named from its paths alone (no tree of entries is built for it)
    name = source_bundle_name(scanned.tree) if kind == "source" else data_bundle_name(scanned.paths)
    return Bundle(kind, Path(folder), scanned, name)
