"""Query planning and row decoding shared by the SQLite and PostgreSQL rollup readers: which
bucket ranges of which grain cover a window, the SQL expression that regroups hourly or daily
buckets by hour, day or ISO week, and how a summed row reads back as a `rollup` row. The SQL
text itself (placeholders, casts) stays with each store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from crossroads.ledger.record import Status
from crossroads.ledger.sqlite_rollups import DAY_US, HOUR_US, SUM_COLUMNS
from crossroads.ledger.store import cost_from_units

__all__ = ["MAX_US", "MIN_US", "bucket_expr", "decode_row", "parts", "window"]

MIN_US = -(2**63)
MAX_US = 2**63 - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Summed columns read back under the names of `store.ROLLUP_METRICS`, and how.
_MONEY = {
    "cost_units": "cost_usd",
    "baselined_cost_units": "baselined_cost_usd",
    "baseline_cost_units": "baseline_cost_usd",
    "upstream_cost_units": "upstream_cost_usd",
    "estimated_cost_units": "estimated_cost_usd",
}
_MICROS = {"latency_us_sum": "latency_ms_sum", "ttft_us_sum": "ttft_ms_sum"}


def floor(micros: int, size: int) -> int:
    return micros - micros % size  # Python's % is never negative for a positive size


def window(since_us: int | None, until_us: int | None) -> tuple[int, int]:
    """The bucket starts a query reads: `since` rounded down and `until` up to the hour."""
    lo = MIN_US if since_us is None else floor(since_us, HOUR_US)
    hi = MAX_US if until_us is None else -floor(-until_us, HOUR_US)
    return lo, hi


def parts(
    lo: int, hi: int, open_start: bool, open_end: bool, interval: str | None
) -> list[tuple[str, int, int]]:
    """(grain, start, end): ranges of bucket starts that together cover [lo, hi) once: the
    daily tables for the whole days inside, the hourly ones for the hours at either end."""
    if lo >= hi:
        return []
    if interval == "hour":
        return [("hourly", lo, hi)]
    day_lo = lo if open_start else -floor(-lo, DAY_US)
    day_hi = hi if open_end else floor(hi, DAY_US)
    if day_lo >= day_hi:
        return [("hourly", lo, hi)]
    found = [("daily", day_lo, day_hi)]
    if lo < day_lo:
        found.append(("hourly", lo, day_lo))
    if day_hi < hi:
        found.append(("hourly", day_hi, hi))
    return found


def bucket_expr(interval: str) -> str:
    """The SQL expression (integer arithmetic both stores share) that maps `bucket_start` to
    the start of its hour, day or ISO week (Monday)."""
    if interval == "hour":
        return "bucket_start"
    day = f"(bucket_start - bucket_start % {DAY_US})"
    if interval == "day":
        return day
    # 1970-01-01 was a Thursday: (days since the epoch + 3) % 7 is 0 on Mondays.
    return f"({day} - (({day} / {DAY_US} + 3) % 7) * {DAY_US})"


def decode_row(
    row: Any, has_bucket: bool, keys: tuple[str, ...], histogram: bool
) -> dict[str, Any]:
    """A summed row (bucket start, keys, `SUM_COLUMNS`, histogram) as a `rollup` row. Sums may
    come as int or, from PostgreSQL, NUMERIC (Decimal): each becomes an int, money exact Decimal
    USD, microseconds float milliseconds."""
    values = iter(row)
    result: dict[str, Any] = {}
    if has_bucket:
        result["bucket_start"] = _EPOCH + timedelta(microseconds=int(next(values)))
    for name in keys:
        result[name] = _decode_key(name, next(values))
    for name in SUM_COLUMNS:
        value = int(next(values))
        if name in _MONEY:
            result[_MONEY[name]] = cost_from_units(value)
        elif name in _MICROS:
            result[_MICROS[name]] = value / 1000
        else:
            result[name] = value
    if histogram:
        result["latency_histogram"] = tuple(int(v) for v in values)
    return result


def _decode_key(name: str, value: str) -> object:
    if value == "":
        return None
    if name == "open_weights":
        return value == "open"
    if name == "status":
        return Status(value)
    return value
