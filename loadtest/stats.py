"""Order statistics over latency samples (nearest-rank, no interpolation)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q`` quantile (0 < q <= 1) of ``values``; NaN when empty.

    Nearest-rank keeps every reported figure an observed sample: a p99 over
    100 changes is the 99th slowest one, never an average of two."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def maximum(values: Sequence[float]) -> float:
    return max(values) if values else math.nan
