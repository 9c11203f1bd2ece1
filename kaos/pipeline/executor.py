"""The executor contract, owned by the engine that calls it: build an image for a source, train
one model in it. `kaos.executors` implements it; nothing here knows any executor.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from kaos.pipeline.inputs import Resources, Scalar


class JobLog(Protocol):
    """Where an executor writes what a job prints: an append-only file, one line at a time."""

    @property
    def path(self) -> Path: ...

    @property
    def prefix(self) -> str: ...

    def write(self, text: str) -> None: ...


class Cancel:
    """A kill switch shared by a job and whatever it started (processes, containers, tasks)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._killed = False
        self._callbacks: list[Callable[[], None]] = []

    @property
    def killed(self) -> bool:
        return self._killed

    def on_kill(self, callback: Callable[[], None]) -> None:
        with self._lock:
            if not self._killed:
                self._callbacks.append(callback)
                return
        callback()

    def kill(self) -> None:
        with self._lock:
            self._killed = True
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()


@dataclass(frozen=True)
class BuildRequest:
    job_id: str
    source: str  # tree digest
    bundle_name: str
    lock: str | None = None  # make the environment from this stored lock (nodes, reproduce)
    refresh_env: bool = False  # resolve the requirements again instead of reusing the lock


@dataclass(frozen=True)
class BuiltImage:
    """What a build made: what `train` runs in, and the lock it was made from (None: the
    source has no requirements, so the environment has only the base interpreter)."""

    ref: str
    lock: str | None


@dataclass(frozen=True)
class TrainRequest:
    job_id: str
    index: int
    source: str
    data: str
    bundle_name: str
    image: str  # what build returned
    params: Mapping[str, Scalar] | None
    resources: Resources = field(default_factory=Resources)
    lock: str | None = None  # the lock `image` was made from (a Ray node makes it again)
    seed: int = 0  # KAOS_SEED: from the train key, so a retrain of the same inputs draws the same


@dataclass(frozen=True)
class TrainOutcome:
    output_tree: str
    metrics: dict[str, Any]
    node: str | None = None


class Executor(Protocol):
    """Runs builds and trains; raises BuildFailed, TrainFailed or Killed (kaos.errors)."""

    kind: str

    def build(self, request: BuildRequest, log: JobLog, cancel: Cancel) -> BuiltImage:
        """Build (or find) the image for a source from its lock; say what `train` runs in."""
        ...

    def image_exists(self, image: str) -> bool:
        """Whether a previously built image is still there (a docker image may be pruned)."""
        ...

    def train(self, request: TrainRequest, log: JobLog, cancel: Cancel) -> TrainOutcome: ...

    def recover(self, home: Path | None = None) -> None:
        """At start-up: end every process, container or task a previous server left running.
        With `home`: what the dead replica with that home on this machine left running."""
        ...

    def close(self) -> None:
        """Let go of engines and connections when the server stops."""
        ...
