"""The timing helper the bench scripts share (found beside them on sys.path)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def per_call_us(fn: Callable[[], object], n: int, rounds: int = 7) -> float:
    """The median over ``rounds`` of the mean microseconds per call of ``n`` calls of ``fn``."""
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        samples.append((time.perf_counter() - start) / n * 1e6)
    return statistics.median(samples)
