"""Run a function over items on a few threads, yielding results in the items' order.

Reading many small files is mostly system-call time, which releases the GIL: a few threads
keep the kernel busy while the caller's Python consumes what was read. At most `ahead` items
are in flight, so memory stays bounded however long the input is.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def in_order(fn: Callable[[T], R], items: Iterable[T], workers: int, ahead: int) -> Iterator[R]:
    """`map(fn, items)` on `workers` threads with at most `ahead` calls in flight; the first
    error (in item order) is raised where its result would have been, and the calls not yet
    started are dropped."""
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kaos-read") as pool:
        pending: deque[Future[R]] = deque()
        try:
            for item in items:
                pending.append(pool.submit(fn, item))
                if len(pending) >= ahead:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
