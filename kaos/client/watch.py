"""Watch bundle folders and a grid file; deploy what changed once edits settle.

The watcher remembers what it deployed, so a round sends only bundles whose hash changed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kaos.client.bundles import check_folder
from kaos.client.inputs import DeployChange, grid_digest, read_grid
from kaos.errors import KaosError
from kaos.store.ignore import IgnoreRules

if TYPE_CHECKING:
    from kaos.client.api import Client, Deployment


@dataclass(frozen=True)
class WatchRound:
    """One deploy of what changed, or why it could not be made (the watch goes on)."""

    changed: list[str] = field(default_factory=list)  # "data /features:9fd9d", "hyperparameters"
    deployment: Deployment | None = None
    error: KaosError | None = None


class Watcher:
    def __init__(
        self,
        client: Client,
        source: Path | None,
        data: Path | None,
        grid: Path | None,
        parallelism: int,
        workspace: str | None = None,
    ) -> None:
        import watchfiles

        if source is None and data is None and grid is None:
            raise KaosError("nothing to watch", "pass -s SOURCE, -d DATA and/or -h GRID")
        check_folder("source", source)
        check_folder("data", data)
        self.client = client
        self.workspace = client.workspace_name(workspace)
        self.parallelism = parallelism
        self.folders = {k: Path(f) for k, f in (("source", source), ("data", data)) if f}
        self.grid = grid
        self.deployed: dict[str, str] = {}
        self._default = watchfiles.DefaultFilter()  # editors' swap, backup and lock files
        self._rules = {f.resolve(): IgnoreRules.for_folder(f) for f in self.folders.values()}

    @property
    def paths(self) -> list[Path]:
        return [p for p in (*self.folders.values(), self.grid) if p is not None]

    def relevant(self, change: Any, path: str) -> bool:
        """Whether a changed file could change a bundle (ignored files and editor litter not)."""
        if not self._default(change, path):
            return False
        for root, rules in self._rules.items():
            try:
                rel = Path(path).resolve().relative_to(root).as_posix()
            except ValueError:
                continue
            return not rules.skips_file(rel)
        return True

    def deploy_changes(self) -> WatchRound | None:
        """Deploy what changed since the last round (None: nothing did)."""
        digests: dict[str, str] = {}  # kind -> digest of what changed
        labels = []
        grid = None
        try:
            for kind, folder in self.folders.items():
                bundle = self.client.scan(kind, folder)
                if bundle.digest == self.deployed.get(kind):
                    continue
                self.client.push(bundle)
                digests[kind] = bundle.digest
                labels.append(f"{kind} {bundle.label}")
            if self.grid is not None:
                grid = read_grid(self.grid)
                if grid_digest(grid) == self.deployed.get("grid"):
                    grid = None
                else:
                    labels.append("hyperparameters")
            if not labels:
                return None
            change = DeployChange(
                source=digests.get("source"),
                data=digests.get("data"),
                grid=grid,
                parallelism=self.parallelism,
            )
            deployment = self.client.submit(change, self.workspace)
        except KaosError as exc:  # a half-saved file or a bad grid: say so, keep watching
            return WatchRound(error=exc)
        self.deployed.update(digests)
        if grid is not None:
            self.deployed["grid"] = grid_digest(grid)
        return WatchRound(labels, deployment)

    def rounds(self, settle_ms: int = 500) -> Iterator[WatchRound]:
        """A round per settled burst of edits, until Ctrl-C (KeyboardInterrupt)."""
        import watchfiles

        for _changes in watchfiles.watch(
            *self.paths,
            watch_filter=self.relevant,
            step=settle_ms,
            debounce=max(5000, settle_ms),
            raise_interrupt=True,
        ):
            round_ = self.deploy_changes()
            if round_ is not None:
                yield round_
