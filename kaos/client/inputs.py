"""Training inputs as a client reads them (grid and manifest files, resources), checked before
anything is uploaded, so a typo costs no transfer."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kaos.errors import KaosError
from kaos.pipeline.inputs import Grid, Resources
from kaos.pipeline.manifest import parse_manifest

GridArg = str | Path | Mapping[str, Any]  # a JSON file, or the grid itself


@dataclass(frozen=True)
class DeployChange:
    """What one deploy asks of the server, bundles already there (by digest): the body of
    POST /workspaces/NAME/deploy. An input left None keeps the workspace's."""

    source: str | None = None
    data: str | None = None
    grid: dict[str, Any] | None = None
    manifest: str | None = None
    resources: dict[str, Any] | None = None
    parallelism: int = 1
    force: bool = False
    refresh_env: bool = False

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "parallelism": self.parallelism,
            "force": self.force,
            "grid": self.grid,  # None: keep the workspace's
        }
        if self.refresh_env:
            body["refresh_env"] = True
        for key in ("source", "data", "manifest", "resources"):
            if getattr(self, key) is not None:
                body[key] = getattr(self, key)
        return body


def read_grid(grid: GridArg) -> dict[str, Any]:
    """The grid as JSON, its shape checked (its size is the server's to limit)."""
    if isinstance(grid, Mapping):
        obj: Any = dict(grid)
    else:
        path = Path(grid)
        try:
            obj = json.loads(path.read_text())
        except FileNotFoundError:
            raise KaosError(f"grid file not found: {path}") from None
        except OSError as exc:  # a folder, no permission: the API's users get a KaosError too
            message = f"cannot read grid {path}: {exc.strerror}"
            raise KaosError(message, "pass a JSON file") from None
        except ValueError as exc:
            raise KaosError(f"invalid JSON in grid {path}: {exc}", "fix the file") from None
    Grid.from_json(obj, max_combinations=10**9)
    return dict(obj)


def check_grid_size(grid: dict[str, Any], limit: int) -> None:
    Grid.from_json(grid, max_combinations=limit)


def grid_digest(grid: dict[str, Any]) -> str:
    return Grid.from_json(grid, max_combinations=10**9).digest


def read_manifest(path: str | Path) -> str:
    """A manifest's text; every line's problem is reported before anything is sent."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise KaosError(f"manifest not found: {path}") from None
    parse_manifest(text)
    return text


def resources_json(
    cpu: float | None, memory: str | None, gpu: int | None, network: bool = False
) -> dict[str, Any] | None:
    """Per-model resources for the deploy body (None: keep the workspace's); a bad size fails
    here, before any upload."""
    if cpu is None and memory is None and gpu is None and not network:
        return None
    body = {"cpu": cpu, "memory": memory, "gpu": gpu or 0, "network": network}
    Resources.from_json(body)
    return body
