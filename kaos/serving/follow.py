"""Which model an endpoint following a metric should serve: pure decisions from metrics.

`accuracy_test` means higher is better, `-loss` lower is better. Only finite numbers count: a
model without the metric (or with a non-numeric, NaN or infinite value) is never chosen.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Metric:
    name: str
    lower_is_better: bool = False

    @classmethod
    def parse(cls, spec: str) -> Metric:
        spec = spec.strip()
        lower = spec.startswith("-")
        name = spec[1:] if lower or spec.startswith("+") else spec
        if not name:
            raise ValueError("a metric name is needed, e.g. accuracy_test or -loss")
        return cls(name, lower)

    def value(self, metrics: dict[str, Any]) -> float | None:
        value = metrics.get(self.name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        # NaN or +-inf (a diverged train): never the best, and it compares false with every
        # number, so taken as a value it would block every better model from being followed
        return float(value) if math.isfinite(value) else None

    def better(self, candidate: float, current: float | None) -> bool:
        if current is None:
            return True
        return candidate < current if self.lower_is_better else candidate > current


def best(
    metric: Metric, candidates: Iterable[tuple[str, dict[str, Any]]]
) -> tuple[str, float] | None:
    """The best (model id, value) among candidates that report the metric (first wins ties)."""
    chosen: tuple[str, float] | None = None
    for model_id, metrics in candidates:
        value = metric.value(metrics)
        if value is not None and metric.better(value, chosen[1] if chosen else None):
            chosen = (model_id, value)
    return chosen
