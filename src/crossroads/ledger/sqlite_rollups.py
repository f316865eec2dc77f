"""The SQLite rollups: hourly and daily sums of the `requests` table, kept current inside each
write transaction, so reports never scan the raw ledger (`sqlite_rollup_query.py` reads them).

Two pairs of tables, one shape: `rollup_hourly` and `rollup_daily` are keyed by every column of
`KEY_COLUMNS`; `rollup_hourly_served` and `rollup_daily_served` by `SERVED_KEY_COLUMNS` (all but
the API key and team), which makes them an order of magnitude smaller for the usual questions
(by model, provider, origin, status) and lets those read them instead. Each row holds the bucket
start (microseconds since the epoch, UTC, like `requests.created_at`), its keys ('' where the
record had NULL, so the primary key works), the sums of `SUM_COLUMNS`, and the latency histogram
`lat_b00`..`lat_b81` (`ledger/histogram.py`). Every function here runs inside a transaction its
caller holds; none commits.
"""

from __future__ import annotations

import bisect
import math
import sqlite3
from collections.abc import Iterable, Sequence

from crossroads.ledger.histogram import BUCKET_COUNT, upper_bounds
from crossroads.ledger.sqlite_rows import COLUMNS

__all__ = [
    "DAY_US",
    "HIST_COLUMNS",
    "HOUR_US",
    "KEY_COLUMNS",
    "SERVED_KEY_COLUMNS",
    "SOURCE_COLUMNS",
    "SUM_COLUMNS",
    "TABLES",
    "apply",
    "create_tables",
    "rebuild",
]

HOUR_US = 3_600_000_000
DAY_US = 24 * HOUR_US
_MAX_ROWID = 2**63 - 1
_REBUILD_CHUNK = 100_000  # requests summed per step of a rebuild: bounds its memory

KEY_COLUMNS = (
    "api_key_id",
    "team_id",
    "served_model",
    "deployment",
    "maker",
    "origin_country",
    "open_weights",  # 'open', 'closed' or ''
    "provider",
    "host_jurisdiction",
    "status",
)
SERVED_KEY_COLUMNS = KEY_COLUMNS[2:]  # everything about what served the request

TABLES: tuple[tuple[str, int, tuple[str, ...]], ...] = (
    ("rollup_hourly", HOUR_US, KEY_COLUMNS),
    ("rollup_daily", DAY_US, KEY_COLUMNS),
    ("rollup_hourly_served", HOUR_US, SERVED_KEY_COLUMNS),
    ("rollup_daily_served", DAY_US, SERVED_KEY_COLUMNS),
)
"""(table, bucket size in microseconds, key columns)."""

SUM_COLUMNS = (
    "requests",
    "errors",  # status 'error'
    "cancelled",  # status 'cancelled'
    "prompt_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "completion_tokens",
    "reasoning_tokens",
    "cost_units",  # 1e-10 USD, over priced requests
    "priced_requests",
    "baselined_requests",  # requests with both a cost and a baseline cost
    "baselined_cost_units",  # their cost
    "baseline_cost_units",  # their baseline cost
    "upstream_cost_units",  # over requests whose upstream reported a cost
    "upstream_priced_requests",
    "estimated_requests",  # requests whose usage the gateway estimated (usage_source)
    "estimated_cost_units",  # their cost, over those priced
    "latency_count",
    "latency_us_sum",  # microseconds: integers, so sums are exact in any order
    "ttft_count",
    "ttft_us_sum",
)
"""The summed columns, all INTEGER NOT NULL, in storage order."""

HIST_COLUMNS = tuple(f"lat_b{i:02d}" for i in range(BUCKET_COUNT))

# What `apply` reads of each inserted request, in this order.
_SOURCE = (
    "created_at, api_key_id, team_id, served_model, deployment, maker, origin_country, "
    "open_weights, provider, host_jurisdiction, status, prompt_tokens, cached_tokens, "
    "cache_write_tokens, completion_tokens, reasoning_tokens, cost_usd, baseline_cost_units, "
    "upstream_cost_units, usage_source, latency_ms, ttft_ms"
)
SOURCE_COLUMNS = tuple(name.strip() for name in _SOURCE.split(","))
"""The `requests` columns the rollups read."""
_SOURCE_INDEX = tuple(COLUMNS.index(name) for name in SOURCE_COLUMNS)
_REAL_SOURCE = tuple(
    i for i, name in enumerate(_SOURCE.split(",")) if name.strip() in ("latency_ms", "ttft_ms")
)
_WIDTH = len(SUM_COLUMNS) + BUCKET_COUNT


def create_tables(conn: sqlite3.Connection) -> None:
    """Creates the four rollup tables as currently defined. WITHOUT ROWID: the primary key, led
    by the bucket start, is the table, so a window is one range scan."""
    for table, _, keys in TABLES:
        columns = [
            "bucket_start INTEGER NOT NULL",
            *(f"{name} TEXT NOT NULL" for name in keys),
            *(f"{name} INTEGER NOT NULL" for name in (*SUM_COLUMNS, *HIST_COLUMNS)),
            f"PRIMARY KEY (bucket_start, {', '.join(keys)})",
        ]
        conn.execute(f"CREATE TABLE {table} ({', '.join(columns)}) WITHOUT ROWID")


def apply(conn: sqlite3.Connection, after_rowid: int, upto_rowid: int | None = None) -> int:
    """Adds the `requests` rows with `after_rowid < rowid <= upto_rowid` (no upper bound when
    None) to every rollup table and returns how many it read.

    The writer passes the largest rowid from before its insert: SQLite gives each new row of a
    rowid table a rowid above every existing one, and the write lock the writer holds keeps
    anyone else from inserting in between, so exactly the rows the batch inserted, and none it
    skipped as duplicates, are counted. The rows are summed here (a dict per table) rather than
    by GROUP BY, which is three times faster, then merged with INSERT ... ON CONFLICT DO UPDATE
    SET x = x + excluded.x."""
    sums: list[dict[tuple[object, ...], list[int]]] = [{} for _ in TABLES]
    bounds = upper_bounds()
    cursor = conn.execute(
        f"SELECT {_SOURCE} FROM requests WHERE rowid > ? AND rowid <= ?",
        (after_rowid, _MAX_ROWID if upto_rowid is None else upto_rowid),
    )
    count = 0
    while rows := cursor.fetchmany(10_000):
        count += len(rows)
        _add(rows, sums, bounds)
    _merge(conn, sums)
    return count


def apply_rows(conn: sqlite3.Connection, rows: Sequence[Sequence[object]]) -> None:
    """Adds rows just inserted, as encoded (`sqlite_rows.COLUMNS` order), to every rollup
    table: what `apply` does, without reading them back. Only for a batch whose every row was
    inserted (none skipped as a repeat). Reading back costs a GIL round trip per row, which a
    writer thread next to a busy event loop pays dearly (see `sqlite_rows.insert_rows`)."""
    sums: list[dict[tuple[object, ...], list[int]]] = [{} for _ in TABLES]
    _add((_as_stored(row) for row in rows), sums, upper_bounds())
    _merge(conn, sums)


def _as_stored(row: Sequence[object]) -> tuple[object, ...]:
    """The `_SOURCE` columns of an encoded row, typed as SQLite would return them (the two
    REAL columns as floats)."""
    out = [row[i] for i in _SOURCE_INDEX]
    for i in _REAL_SOURCE:
        if out[i] is not None:
            out[i] = float(out[i])  # type: ignore[arg-type]
    return tuple(out)


def _merge(conn: sqlite3.Connection, sums: list[dict[tuple[object, ...], list[int]]]) -> None:
    for (table, _, keys), groups in zip(TABLES, sums, strict=True):
        if groups:
            conn.executemany(_upsert(table, keys), (key + tuple(v) for key, v in groups.items()))


def rebuild(conn: sqlite3.Connection) -> int:
    """Empties the rollup tables and rolls up every stored request again, a chunk of rowids at a
    time. Returns the number of requests read."""
    for table, _, _ in TABLES:
        conn.execute(f"DELETE FROM {table}")
    first, last = conn.execute("SELECT MIN(rowid), MAX(rowid) FROM requests").fetchone()
    if first is None:
        return 0
    count, start = 0, first - 1
    while start < last:
        count += apply(conn, start, start + _REBUILD_CHUNK)
        start += _REBUILD_CHUNK
    return count


def _add(
    rows: Iterable[Sequence[object]],
    sums: list[dict[tuple[object, ...], list[int]]],
    bounds: Sequence[float],
) -> None:
    """Adds each source row to its group in each of the four tables' dicts.

    Each row is summed once, into its (hour, full key) group; the few distinct groups are then
    folded into the four tables (day from hour, the served key from the full key). Written flat,
    with locals, because the first loop runs once per request, on the writer thread that
    competes with the event loop for the GIL."""
    per_hour: dict[tuple[object, ...], list[int]] = {}
    for row in rows:
        (created, api_key, team, served, deployment, maker, origin, weights, provider,
         jurisdiction, status, prompt, cached, written, completion, reasoning, cost, baseline,
         upstream, source, latency, ttft) = row  # fmt: skip
        assert isinstance(created, int)
        key: tuple[object, ...] = (
            created - created % HOUR_US,
            api_key or "",
            team or "",
            served or "",
            deployment or "",
            maker or "",
            origin or "",
            "" if weights is None else ("open" if weights else "closed"),
            provider or "",
            jurisdiction or "",
            status,
        )
        s = per_hour.get(key)
        if s is None:
            s = per_hour[key] = [0] * _WIDTH
        s[0] += 1
        if status == "error":
            s[1] += 1
        elif status == "cancelled":
            s[2] += 1
        s[3] += prompt  # type: ignore[operator]
        s[4] += cached  # type: ignore[operator]
        s[5] += written  # type: ignore[operator]
        s[6] += completion  # type: ignore[operator]
        s[7] += reasoning  # type: ignore[operator]
        if cost is not None:
            s[8] += cost  # type: ignore[operator]
            s[9] += 1
            if baseline is not None:
                s[10] += 1
                s[11] += cost  # type: ignore[operator]
                s[12] += baseline  # type: ignore[operator]
        if upstream is not None:
            s[13] += upstream  # type: ignore[operator]
            s[14] += 1
        if source == "estimated":
            s[15] += 1
            if cost is not None:
                s[16] += cost  # type: ignore[operator]
        if isinstance(latency, float) and math.isfinite(latency):
            s[17] += 1
            s[18] += round(latency * 1000)
            s[len(SUM_COLUMNS) + bisect.bisect_right(bounds, latency)] += 1
        if isinstance(ttft, float) and math.isfinite(ttft):
            s[19] += 1
            s[20] += round(ttft * 1000)
    hourly, daily, hourly_served, daily_served = sums
    for key, s in per_hour.items():
        hour, full_key = key[0], key[1:]
        assert isinstance(hour, int)
        day = hour - hour % DAY_US
        served_key = full_key[2:]
        for groups, group in (
            (hourly, key),
            (daily, (day, *full_key)),
            (hourly_served, (hour, *served_key)),
            (daily_served, (day, *served_key)),
        ):
            total = groups.get(group)
            if total is None:
                groups[group] = list(s)
            else:
                for i, value in enumerate(s):
                    total[i] += value


def _upsert(table: str, keys: Sequence[str]) -> str:
    # Names come from the module's own constants, never from a caller.
    columns = ("bucket_start", *keys, *SUM_COLUMNS, *HIST_COLUMNS)
    updates = ", ".join(f"{c} = {c} + excluded.{c}" for c in (*SUM_COLUMNS, *HIST_COLUMNS))
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
        f"ON CONFLICT (bucket_start, {', '.join(keys)}) DO UPDATE SET {updates}"
    )
