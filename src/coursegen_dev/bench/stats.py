"""Percentiles and summaries of samples."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation; NaN when there are no samples."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(samples: Sequence[float], scale: float = 1.0) -> dict[str, float]:
    """Count, mean, p50, p90, p99 and max of the samples, each multiplied by `scale`."""
    if not samples:
        return {"n": 0}
    return {
        "n": len(samples),
        "mean": sum(samples) / len(samples) * scale,
        "p50": percentile(samples, 50) * scale,
        "p90": percentile(samples, 90) * scale,
        "p99": percentile(samples, 99) * scale,
        "max": max(samples) * scale,
    }


def ms(seconds: float) -> str:
    """Seconds as a short millisecond figure."""
    if math.isnan(seconds):
        return "n/a"
    return f"{seconds * 1000:.1f} ms" if seconds < 10 else f"{seconds * 1000:.0f} ms"
