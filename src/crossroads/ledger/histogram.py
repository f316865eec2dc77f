"""The latency histogram the rollups keep: fixed log-spaced buckets, so histograms of any two
rollup rows merge by adding counts, and percentiles are estimated with a known error bound.

Buckets: 0 holds [0, 1 ms); bucket k in 1..80 holds [2^((k-1)/4), 2^(k/4)) ms, four per doubling
from 1 ms up to 2^20 ms (about 17.5 minutes); bucket 81 holds everything from 2^20 ms up.

Error bound: `quantile` returns the geometric midpoint of the bucket holding the nearest-rank
quantile, so for a true quantile between 1 ms and 2^20 ms the estimate is within a factor
2^(1/8) of it: a relative error of at most `RELATIVE_ERROR_BOUND` (9.05%). Below 1 ms the estimate
is 0.5 ms (off by under 1 ms); from 2^20 ms up it is 2^20 ms, a lower bound.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

__all__ = [
    "BUCKETS_PER_DOUBLING",
    "BUCKET_COUNT",
    "RELATIVE_ERROR_BOUND",
    "bucket_of",
    "quantile",
    "upper_bounds",
]

BUCKETS_PER_DOUBLING = 4
_DOUBLINGS = 20
BUCKET_COUNT = BUCKETS_PER_DOUBLING * _DOUBLINGS + 2
"""82: the underflow bucket, 80 log-spaced buckets, the overflow bucket."""

RELATIVE_ERROR_BOUND = 2 ** (1 / (2 * BUCKETS_PER_DOUBLING)) - 1
"""0.0905: the largest relative error of `quantile` for true values in [1 ms, 2^20 ms)."""


def upper_bounds() -> tuple[float, ...]:
    """The exclusive upper bound of buckets 0..80, in ms: 2^(i/4) for i in 0..80. Bucket 81 has
    none. A store that buckets in SQL must compare against exactly these floats."""
    return tuple(math.pow(2.0, i / BUCKETS_PER_DOUBLING) for i in range(BUCKET_COUNT - 1))


def bucket_of(latency_ms: float, bounds: Sequence[float] | None = None) -> int:
    """The bucket index of `latency_ms`: the number of upper bounds at or below it. Negative
    values and NaN fall in bucket 0. `bounds` defaults to `upper_bounds()`."""
    if math.isnan(latency_ms):
        return 0
    return bisect.bisect_right(upper_bounds() if bounds is None else bounds, latency_ms)


def quantile(counts: Sequence[int], q: float) -> float | None:
    """The estimated `q`-quantile (0 < q <= 1) of the values counted in `counts` (one count per
    bucket, `BUCKET_COUNT` long): the representative value of the bucket holding the value of
    nearest rank ceil(q * n). None when `counts` is all zeros.

    Raises ValueError for a q outside (0, 1] or counts of the wrong length or with a negative.
    """
    if not 0 < q <= 1:
        raise ValueError(f"q must be in (0, 1], got {q}")
    if len(counts) != BUCKET_COUNT:
        raise ValueError(f"expected {BUCKET_COUNT} bucket counts, got {len(counts)}")
    if any(c < 0 for c in counts):
        raise ValueError("bucket counts must not be negative")
    total = sum(counts)
    if total == 0:
        return None
    rank = max(1, math.ceil(q * total - 1e-9))  # the tolerance keeps 0.95 * 100 at rank 95
    seen = 0
    for index, count in enumerate(counts):
        seen += count
        if seen >= rank:
            return _representative(index)
    raise AssertionError("unreachable: rank <= total")


def _representative(index: int) -> float:
    if index == 0:
        return 0.5
    if index == BUCKET_COUNT - 1:
        return math.pow(2.0, _DOUBLINGS)
    # Geometric midpoint of [2^((k-1)/4), 2^(k/4)).
    return math.pow(2.0, (index - 0.5) / BUCKETS_PER_DOUBLING)
