"""Reading the SQLite rollups (`sqlite_rollups.py`) for `SQLiteLedgerStore.rollup` and
`rollup_span`: which tables answer a query, the SQL that sums them, and the rows it returns.

A query reads the narrow `*_served` tables when it groups by nothing of the API key or team, the
full ones otherwise; and `*_daily` for the whole days of its window (unless it asks per hour),
`*_hourly` for the partial days at either end. Every name that reaches SQL comes from the store's
allow-list or this package's constants.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any

from crossroads.ledger.record import Status
from crossroads.ledger.sqlite_rollups import (
    DAY_US,
    HIST_COLUMNS,
    HOUR_US,
    SERVED_KEY_COLUMNS,
    SUM_COLUMNS,
)
from crossroads.ledger.store import cost_from_units

__all__ = ["query", "span"]

_MIN_US = -(2**63)
_MAX_US = 2**63 - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Summed columns read back under the names of `store.ROLLUP_METRICS`, and how.
_MONEY = {
    "cost_units": "cost_usd",
    "baselined_cost_units": "baselined_cost_usd",
    "baseline_cost_units": "baseline_cost_usd",
    "upstream_cost_units": "upstream_cost_usd",
}
_MICROS = {"latency_us_sum": "latency_ms_sum", "ttft_us_sum": "ttft_ms_sum"}


def query(
    conn: sqlite3.Connection,
    since_us: int | None,
    until_us: int | None,
    interval: str | None,
    keys: tuple[str, ...],
    histogram: bool,
) -> list[dict[str, Any]]:
    """The rows of `SQLiteLedgerStore.rollup`. `keys` must already have passed
    `validate_rollup_query`."""
    lo = _MIN_US if since_us is None else _floor(since_us, HOUR_US)
    hi = _MAX_US if until_us is None else -_floor(-until_us, HOUR_US)
    suffix = "_served" if set(keys) <= set(SERVED_KEY_COLUMNS) else ""
    parts = _parts(lo, hi, since_us is None, until_us is None, interval)
    summed = [*SUM_COLUMNS, *(HIST_COLUMNS if histogram else ())]
    columns = ", ".join(("bucket_start", *keys, *summed))
    arms = [
        f"SELECT {columns} FROM rollup_{grain}{suffix} WHERE bucket_start >= ? AND bucket_start < ?"
        for grain, _, _ in parts
    ]
    params = [bound for _, start, end in parts for bound in (start, end)]
    group = [*([_bucket_expr(interval)] if interval else []), *keys]
    sums = [f"COALESCE(SUM({name}), 0)" for name in summed]
    rows: list[tuple[Any, ...]] = []
    if arms:
        sql = f"SELECT {', '.join([*group, *sums])} FROM ({' UNION ALL '.join(arms)})"
        if group:
            positions = ", ".join(str(i + 1) for i in range(len(group)))
            sql += f" GROUP BY {positions} ORDER BY {positions}"
        rows = conn.execute(sql, params).fetchall()
    if not rows and not group:
        rows = [tuple(0 for _ in sums)]
    return [_decode(row, interval is not None, keys, histogram) for row in rows]


def span(
    conn: sqlite3.Connection, since_us: int | None, until_us: int | None
) -> tuple[int, int] | None:
    """(start of the first, end of the last) hour with any request in the window, or None."""
    lo = _MIN_US if since_us is None else _floor(since_us, HOUR_US)
    hi = _MAX_US if until_us is None else -_floor(-until_us, HOUR_US)
    found = []
    for order in ("ASC", "DESC"):  # two index seeks; MIN and MAX together would scan
        row = conn.execute(
            "SELECT bucket_start FROM rollup_hourly_served "
            f"WHERE bucket_start >= ? AND bucket_start < ? ORDER BY bucket_start {order} LIMIT 1",
            (lo, hi),
        ).fetchone()
        if row is None:
            return None
        found.append(int(row[0]))
    return found[0], found[1] + HOUR_US


def _floor(micros: int, size: int) -> int:
    return micros - micros % size  # Python's % is never negative for a positive size


def _parts(
    lo: int, hi: int, open_start: bool, open_end: bool, interval: str | None
) -> list[tuple[str, int, int]]:
    """(grain, start, end): ranges of bucket starts that together cover [lo, hi) once."""
    if lo >= hi:
        return []
    if interval == "hour":
        return [("hourly", lo, hi)]
    day_lo = lo if open_start else -_floor(-lo, DAY_US)
    day_hi = hi if open_end else _floor(hi, DAY_US)
    if day_lo >= day_hi:
        return [("hourly", lo, hi)]
    parts = [("daily", day_lo, day_hi)]
    if lo < day_lo:
        parts.append(("hourly", lo, day_lo))
    if day_hi < hi:
        parts.append(("hourly", day_hi, hi))
    return parts


def _bucket_expr(interval: str) -> str:
    if interval == "hour":
        return "bucket_start"
    day = f"(bucket_start - bucket_start % {DAY_US})"
    if interval == "day":
        return day
    # 1970-01-01 was a Thursday: (days since the epoch + 3) % 7 is 0 on Mondays.
    return f"({day} - (({day} / {DAY_US} + 3) % 7) * {DAY_US})"


def _decode(
    row: tuple[Any, ...], has_bucket: bool, keys: tuple[str, ...], histogram: bool
) -> dict[str, Any]:
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
