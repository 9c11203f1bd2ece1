"""A workspace's training inputs and the values they are made of (frozen, hashable, pure)."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from kaos.errors import InputError
from kaos.store.hashing import hash_bytes

Scalar = str | int | float | bool | None
DEFAULT_MAX_COMBINATIONS = 1000
MAX_CPU = 1024  # bounds on what one model may ask for: beyond them a value is a typo
MAX_GPU = 64
MAX_MEMORY = 1 << 50


@dataclass(frozen=True)
class Resources:
    cpu: float | None = None
    memory: str | None = None  # as docker takes it: "512m", "4g"
    gpu: int = 0
    network: bool = False  # the train may use the network (the sandbox has none otherwise)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"cpu": self.cpu, "memory": self.memory, "gpu": self.gpu}
        if self.network:  # only when set, so the train keys of earlier models stay the same
            out["network"] = True
        return out

    @classmethod
    def from_json(cls, obj: Mapping[str, Any] | None) -> Resources:
        obj = obj or {}
        resources = cls(
            obj.get("cpu"), obj.get("memory"), int(obj.get("gpu") or 0), bool(obj.get("network"))
        )
        cpu = resources.cpu
        if cpu is not None and not (math.isfinite(cpu) and 0 < cpu <= MAX_CPU):
            raise InputError(f"--cpu must be a number above 0 and at most {MAX_CPU}, got {cpu}")
        if not 0 <= resources.gpu <= MAX_GPU:
            raise InputError(f"--gpu must be from 0 to {MAX_GPU}, got {resources.gpu}")
        if resources.memory is not None:
            memory_bytes(resources.memory)
        return resources


def memory_bytes(text: str) -> int:
    """Parse "512m", "4g", "1024" (bytes) the way docker does."""
    units = {"b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    value = text.strip().lower()
    unit = value[-1] if value and value[-1] in units else "b"
    number = value[:-1] if value and value[-1] in units else value
    try:
        amount = float(number) * units[unit]
    except ValueError:
        raise InputError(f"bad memory size {text!r}", "use a size such as 512m or 4g") from None
    if not (math.isfinite(amount) and 0 < amount <= MAX_MEMORY):  # nan, inf, 1e400g
        raise InputError(
            f"bad memory size {text!r}", "use a size such as 512m or 4g (at most 1024t)"
        )
    return int(amount)


@dataclass(frozen=True)
class Grid:
    """Hyperparameters: name -> list of values; their cartesian product are the combinations."""

    params: tuple[tuple[str, tuple[Scalar, ...]], ...]

    @classmethod
    def from_json(cls, obj: Any, max_combinations: int = DEFAULT_MAX_COMBINATIONS) -> Grid:
        if not isinstance(obj, dict) or not obj:
            raise InputError("a hyperparameter grid is a non-empty JSON object of name -> list")
        params = []
        count = 1
        for name, values in obj.items():
            if not isinstance(values, list):
                values = [values]
            if not values:
                raise InputError(f"hyperparameter {name!r} has an empty list of values")
            for v in values:
                if isinstance(v, dict | list) or (isinstance(v, float) and not math.isfinite(v)):
                    raise InputError(f"hyperparameter {name!r} has a non-scalar value: {v!r}")
            if len(set(map(json.dumps, values))) != len(values):
                raise InputError(f"hyperparameter {name!r} lists a value twice")
            count *= len(values)
            params.append((str(name), tuple(values)))
        if count > max_combinations:
            raise InputError(
                f"grid has {count} combinations, more than the limit of {max_combinations}",
                "split the grid or raise the server's max_combinations setting",
            )
        return cls(tuple(params))

    def to_json(self) -> dict[str, list[Scalar]]:
        return {name: list(values) for name, values in self.params}

    def combinations(self) -> list[dict[str, Scalar]]:
        names = [n for n, _ in self.params]
        products = itertools.product(*(values for _, values in self.params))
        return [dict(zip(names, combo, strict=True)) for combo in products]

    @property
    def digest(self) -> str:
        return hash_bytes(_canonical(self.to_json()))


@dataclass(frozen=True)
class TrainingInputs:
    """What a workspace trains on now. `None` means "not deployed yet"."""

    source: str | None = None
    data: str | None = None
    grid: Grid | None = None
    resources: Resources = field(default_factory=Resources)

    def merged(self, change: InputsChange) -> TrainingInputs:
        """The inputs after a deploy: what the deploy names replaces, the rest stays."""
        return replace(
            self,
            source=change.source or self.source,
            data=change.data or self.data,
            grid=change.grid if change.grid is not None else self.grid,
            resources=change.resources if change.resources is not None else self.resources,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "data": self.data,
            "grid": self.grid.to_json() if self.grid else None,
            "resources": self.resources.to_json(),
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any] | None) -> TrainingInputs:
        obj = obj or {}
        grid = obj.get("grid")
        return cls(
            obj.get("source"),
            obj.get("data"),
            Grid.from_json(grid, max_combinations=10**9) if grid else None,
            Resources.from_json(obj.get("resources")),
        )


@dataclass(frozen=True)
class InputsChange:
    """What one deploy changes; fields left `None` keep their current value."""

    source: str | None = None
    data: str | None = None
    grid: Grid | None = None
    resources: Resources | None = None

    @property
    def empty(self) -> bool:
        return (
            self.source is None
            and self.data is None
            and self.grid is None
            and self.resources is None
        )


def train_key(
    source: str, data: str, params: Mapping[str, Scalar] | None, resources: Resources
) -> str:
    """The cache key of one model: identical keys never train twice."""
    return hash_bytes(
        _canonical(
            {"source": source, "data": data, "params": params, "resources": resources.to_json()}
        )
    )


def train_seed(key: str) -> int:
    """KAOS_SEED of a model: the first 8 hex digits of its train key as an integer (0..2**32-1,
    what numpy and scikit-learn accept), so the same inputs always draw the same numbers."""
    return int(key[:8], 16)


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
