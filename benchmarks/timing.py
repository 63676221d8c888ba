"""Timing helper shared by the benchmark scripts."""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def throughput(fn: Callable[[], object], items: int, repeats: int) -> float:
    """Median items/s of `fn` over `repeats` timed runs, after one warm-up run."""
    fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return items / statistics.median(times)
