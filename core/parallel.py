"""Process-parallel map for per-image work (decode, hash, crop), order-preserving."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def default_workers() -> int:
    env = os.environ.get("FLUKEID_WORKERS")
    if env:
        return max(1, int(env))
    return max(1, os.cpu_count() or 1)


def parallel_map(
    fn: Callable[[T], R], items: Sequence[T], workers: int | None = None, chunksize: int = 0
) -> list[R]:
    """`[fn(x) for x in items]` over `workers` processes; runs inline for one worker or few items."""
    workers = default_workers() if workers is None else max(1, workers)
    if workers == 1 or len(items) < 16:
        return [fn(item) for item in items]
    chunksize = chunksize or max(1, len(items) // (workers * 8))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, items, chunksize=chunksize))
