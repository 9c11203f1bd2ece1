"""Progress reporting as a callback, so the store never depends on how it is shown."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    """Receives (phase, done, total) updates; `total` may be 0 while still unknown."""

    def __call__(self, phase: str, done: int, total: int) -> None: ...


class NullProgress:
    """Stands in where nobody watches, instead of `if progress:` at every call."""

    def __call__(self, phase: str, done: int, total: int) -> None:
        return None


class Throttled:
    """Forward at most one update per `step` units (and always the last), to keep loops cheap."""

    def __init__(self, progress: Progress, phase: str, total: int, step: int) -> None:
        self._progress = progress
        self._phase = phase
        self._total = total
        self._step = max(1, step)
        self._next = 0
        self.done = 0

    def advance(self, amount: int) -> None:
        self.done += amount
        if self.done >= self._next:
            self._next = self.done + self._step
            self._progress(self._phase, self.done, self._total)

    def finish(self) -> None:
        self._progress(self._phase, self._total, self._total)
