"""Interleaved timing of candidate graphs, used by `--form auto` (the paper's rule: measure on the platform)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np


def interleaved_medians(invokers: dict[str, Callable[[], Any]], runtime: str, threads: int,
                        rounds: int = 3, runs: int = 30, warmup: int = 5) -> dict[str, Any]:
    """Each round times every candidate in turn; the result is the median of the per-round medians (ms)."""
    for f in invokers.values():
        for _ in range(warmup):
            f()
    per: dict[str, list[float]] = {k: [] for k in invokers}
    for _ in range(rounds):
        for k, f in invokers.items():
            ts = []
            for _ in range(runs):
                t0 = time.perf_counter()
                f()
                ts.append(time.perf_counter() - t0)
            per[k].append(float(np.median(ts) * 1e3))
    return {"runtime": runtime, "threads": threads, "rounds": rounds, "runs_per_round": runs,
            "median_ms": {k: float(np.median(v)) for k, v in per.items()}, "round_medians_ms": per}
