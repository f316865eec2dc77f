"""Reading the SQLite rollups (`sqlite_rollups.py`) for `SQLiteLedgerStore.rollup` and
`rollup_span`: which tables answer a query, the SQL that sums them, and the rows it returns.

A query reads the narrow `*_served` tables when it groups by nothing of the API key or team, the
full ones otherwise; and `*_daily` for the whole days of its window (unless it asks per hour),
`*_hourly` for the partial days at either end. Every name that reaches SQL comes from the store's
allow-list or this package's constants.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from crossroads.ledger.rollup_plan import bucket_expr, decode_row, parts, window
from crossroads.ledger.sqlite_rollups import (
    HIST_COLUMNS,
    HOUR_US,
    SERVED_KEY_COLUMNS,
    SUM_COLUMNS,
)

__all__ = ["query", "span"]


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
    lo, hi = window(since_us, until_us)
    suffix = "_served" if set(keys) <= set(SERVED_KEY_COLUMNS) else ""
    found = parts(lo, hi, since_us is None, until_us is None, interval)
    summed = [*SUM_COLUMNS, *(HIST_COLUMNS if histogram else ())]
    columns = ", ".join(("bucket_start", *keys, *summed))
    arms = [
        f"SELECT {columns} FROM rollup_{grain}{suffix} WHERE bucket_start >= ? AND bucket_start < ?"
        for grain, _, _ in found
    ]
    params = [bound for _, start, end in found for bound in (start, end)]
    group = [*([bucket_expr(interval)] if interval else []), *keys]
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
    return [decode_row(row, interval is not None, keys, histogram) for row in rows]


def span(
    conn: sqlite3.Connection, since_us: int | None, until_us: int | None
) -> tuple[int, int] | None:
    """(start of the first, end of the last) hour with any request in the window, or None."""
    lo, hi = window(since_us, until_us)
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
