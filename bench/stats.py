"""Timing summaries shared by the benchmarks: ops/s and nearest-rank latency percentiles in milliseconds."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Summary:
    count: int
    seconds: float
    ops_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def summarise(latencies_ns: Sequence[int], elapsed_s: float) -> Summary:
    ordered = sorted(latencies_ns)
    ms = [v / 1e6 for v in ordered]
    return Summary(
        count=len(ms),
        seconds=round(elapsed_s, 3),
        ops_per_s=round(len(ms) / elapsed_s, 1) if elapsed_s > 0 else math.nan,
        p50_ms=round(percentile(ms, 0.50), 3),
        p90_ms=round(percentile(ms, 0.90), 3),
        p99_ms=round(percentile(ms, 0.99), 3),
        max_ms=round(ms[-1], 3) if ms else math.nan,
    )
