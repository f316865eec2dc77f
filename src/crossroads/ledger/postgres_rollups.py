"""The PostgreSQL rollups: the four tables of `sqlite_rollups.py` (same names, columns, keys and
encodings, so the same answers), kept current by the statement that inserts a batch, and the SQL
that reads them. Functions here build SQL, or run inside a transaction their caller holds.

A batch is one statement: `INSERT INTO requests ... ON CONFLICT (request_id) DO NOTHING
RETURNING ...` feeds only the rows it really inserted to the rollup upserts, so a duplicate (a
retry, or the same record from another replica) never counts twice. Every sum is an integer, so
each table's sums are derived exactly from the batch's hourly sums per full key. Rows are inserted
and upserted in key order, table after table in the order of one fixed plan, so concurrent
writers take their row locks in the same order and do not deadlock one another."""

from __future__ import annotations

from typing import Any

from crossroads.ledger.histogram import BUCKET_COUNT, upper_bounds
from crossroads.ledger.rollup_plan import bucket_expr, parts, window
from crossroads.ledger.sqlite_rollups import (
    HIST_COLUMNS,
    HOUR_US,
    KEY_COLUMNS,
    SERVED_KEY_COLUMNS,
    SUM_COLUMNS,
    TABLES,
)

__all__ = [
    "AGGREGATES",
    "HOUR_US",
    "SOURCE_COLUMNS",
    "create_tables_sql",
    "empty_row",
    "query_sql",
    "rebuild",
    "span_sql",
    "write_sql",
]


# Latencies count (in the sums and the histogram) only when finite, to the microsecond, rounded
# half to even as Python's round() does (PostgreSQL rounds float8 with rint(), half to even).
_FINITE = "{0} NOT IN ('Infinity'::float8, '-Infinity'::float8, 'NaN'::float8)"
_LATENCY = _FINITE.format("latency_ms")
_TTFT = _FINITE.format("ttft_ms")

AGGREGATES: dict[str, str] = {
    "requests": "COUNT(*)",
    "errors": "COUNT(*) FILTER (WHERE status = 'error')",
    "cancelled": "COUNT(*) FILTER (WHERE status = 'cancelled')",
    "prompt_tokens": "SUM(prompt_tokens)",
    "cached_tokens": "SUM(cached_tokens)",
    "cache_write_tokens": "SUM(cache_write_tokens)",
    "completion_tokens": "SUM(completion_tokens)",
    "reasoning_tokens": "SUM(reasoning_tokens)",
    "cost_units": "COALESCE(SUM(cost_usd), 0)",
    "priced_requests": "COUNT(cost_usd)",
    "baselined_requests": "COUNT(*) FILTER (WHERE cost_usd IS NOT NULL"
    " AND baseline_cost_units IS NOT NULL)",
    "baselined_cost_units": "COALESCE(SUM(cost_usd) FILTER (WHERE baseline_cost_units IS NOT"
    " NULL), 0)",
    "baseline_cost_units": "COALESCE(SUM(baseline_cost_units) FILTER (WHERE cost_usd IS NOT"
    " NULL), 0)",
    "upstream_cost_units": "COALESCE(SUM(upstream_cost_units), 0)",
    "upstream_priced_requests": "COUNT(upstream_cost_units)",
    "estimated_requests": "COUNT(*) FILTER (WHERE usage_source = 'estimated')",
    "estimated_cost_units": "COALESCE(SUM(cost_usd) FILTER (WHERE usage_source = 'estimated'), 0)",
    "latency_count": f"COUNT(*) FILTER (WHERE {_LATENCY})",
    "latency_us_sum": f"COALESCE(SUM(round(latency_ms * 1000)::bigint) FILTER (WHERE {_LATENCY})"
    ", 0)",
    "ttft_count": f"COUNT(*) FILTER (WHERE {_TTFT})",
    "ttft_us_sum": f"COALESCE(SUM(round(ttft_ms * 1000)::bigint) FILTER (WHERE {_TTFT}), 0)",
}
"""Each of `sqlite_rollups.SUM_COLUMNS` over a set of `requests` rows, in PostgreSQL."""

SOURCE_COLUMNS = (
    "created_at",
    *KEY_COLUMNS,
    "prompt_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "completion_tokens",
    "reasoning_tokens",
    "cost_usd",
    "baseline_cost_units",
    "upstream_cost_units",
    "usage_source",
    "latency_ms",
    "ttft_ms",
)
"""What the rollups read of a `requests` row (or of a row an INSERT returns)."""

_SUMMED = (*SUM_COLUMNS, *HIST_COLUMNS)


def create_tables_sql() -> str:
    """DDL for the four rollup tables, shaped as in SQLite (every sum BIGINT NOT NULL). The fill
    factor leaves room on each page for in-place (HOT) updates: every write updates the rows of
    its hour and day."""
    statements = []
    for table, _, keys in TABLES:
        columns = [
            "bucket_start BIGINT NOT NULL",
            *(f"{name} TEXT NOT NULL" for name in keys),
            *(f"{name} BIGINT NOT NULL" for name in _SUMMED),
            f"PRIMARY KEY (bucket_start, {', '.join(keys)})",
        ]
        statements.append(f"CREATE TABLE {table} ({', '.join(columns)}) WITH (fillfactor = 80);")
    return "\n".join(statements)


def write_sql(values: str) -> str:
    """One statement that inserts the rows of `values` (a SELECT of every `requests` column in
    order, e.g. over `unnest` of array parameters) and adds exactly the inserted ones to every
    rollup table."""
    return (
        "WITH batch AS (\n"
        f"  INSERT INTO requests {values} ORDER BY 1\n"
        "  ON CONFLICT (request_id) DO NOTHING\n"
        f"  RETURNING {', '.join(SOURCE_COLUMNS)}\n"
        f"){_fan_out('batch')}"
    )


async def rebuild(conn: Any) -> int:
    """Empties the rollup tables and rolls up every stored request again; returns how many it
    read. Takes a SHARE lock on `requests` first, so writers wait until the caller's transaction
    ends and the count and the sums come from the same rows."""
    await conn.execute("LOCK TABLE requests IN SHARE MODE")
    for table, _, _ in TABLES:
        await conn.execute(f"DELETE FROM {table}")
    await conn.execute(f"WITH{_fan_out('requests').removeprefix(',')}")
    return int(await conn.fetchval("SELECT COUNT(*) FROM requests"))


def _fan_out(source: str) -> str:
    """`, delta AS (...), t1 AS (...), ... INSERT ...`: the hourly sums of `source` per full key,
    computed once, then summed into each rollup table's buckets and keys and upserted there."""
    steps = [f", delta AS ({_hourly(source)})"]
    for n, (table, size, keys) in enumerate(TABLES, start=1):
        sums = ", ".join(f"SUM({name})" for name in _SUMMED)
        group = ", ".join(str(i + 1) for i in range(1 + len(keys)))
        select = (
            "SELECT * FROM delta"  # already these buckets and keys
            if (size, keys) == (HOUR_US, KEY_COLUMNS)
            else f"SELECT {_floor_sql('bucket_start', size)}, {', '.join(keys)}, {sums}"
            f" FROM delta GROUP BY {group}"
        )
        upsert = _upsert(table, keys, select)
        steps.append(f"\n{upsert}" if n == len(TABLES) else f", t{n} AS ({upsert})")
    return "".join(steps)


def _hourly(source: str) -> str:
    """The hourly sums of the rows of `source` (a relation with `SOURCE_COLUMNS`) per full key,
    keys encoded as in SQLite: '' for NULL, open_weights 'open', 'closed' or ''."""
    keys = [
        "CASE open_weights WHEN true THEN 'open' WHEN false THEN 'closed' ELSE '' END"
        if name == "open_weights"
        else f"COALESCE({name}, '')"
        for name in KEY_COLUMNS
    ]
    # The histogram's bounds inlined as a constant (repr() of a float is exact); width_bucket
    # counts the bounds at or below the value, as `bisect.bisect_right` does.
    bounds = ", ".join(repr(bound) for bound in upper_bounds())
    lb = f"width_bucket(latency_ms, ARRAY[{bounds}]::float8[])"
    values = [
        _floor_sql("created_at", HOUR_US),
        *keys,
        *(AGGREGATES[name] for name in SUM_COLUMNS),
        *(f"COUNT(*) FILTER (WHERE {_LATENCY} AND lb = {i})" for i in range(BUCKET_COUNT)),
    ]
    names = ("bucket_start", *KEY_COLUMNS, *_SUMMED)
    group = ", ".join(str(i + 1) for i in range(1 + len(KEY_COLUMNS)))
    return (
        f"SELECT {', '.join(f'{v} AS {n}' for v, n in zip(values, names, strict=True))}"
        f" FROM (SELECT *, {lb} AS lb FROM {source}) AS source GROUP BY {group}"
    )


def _floor_sql(column: str, size: int) -> str:
    """`column` rounded down to a multiple of `size`, before 1970 too, as Python's % rounds
    (PostgreSQL's % keeps the sign of the dividend)."""
    return f"{column} - (({column} % {size}) + {size}) % {size}"


def _upsert(table: str, keys: tuple[str, ...], select: str) -> str:
    """INSERT the rows of `select` into `table` in primary-key order, adding their sums to those
    of the rows already there."""
    columns = ("bucket_start", *keys, *_SUMMED)
    updates = ", ".join(f"{c} = {table}.{c} + EXCLUDED.{c}" for c in _SUMMED)
    order = ", ".join(str(i + 1) for i in range(1 + len(keys)))
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) {select} ORDER BY {order}"
        f" ON CONFLICT (bucket_start, {', '.join(keys)}) DO UPDATE SET {updates}"
    )


def query_sql(
    since_us: int | None,
    until_us: int | None,
    interval: str | None,
    keys: tuple[str, ...],
    histogram: bool,
) -> tuple[str | None, list[int]]:
    """The statement and parameters for `RollupReader.rollup`, or (None, []) for an empty
    window. `keys` must have passed `validate_rollup_query` (names from an allow-list). As in
    SQLite: the `_served` tables when no key concerns the API key or team; the daily tables for
    the whole days of the window unless the interval is an hour, the hourly ones for the partial
    days at either end. Text keys sort in byte order, as SQLite sorts them."""
    lo, hi = window(since_us, until_us)
    suffix = "_served" if set(keys) <= set(SERVED_KEY_COLUMNS) else ""
    found = parts(lo, hi, since_us is None, until_us is None, interval)
    if not found:
        return None, []
    summed = [*SUM_COLUMNS, *(HIST_COLUMNS if histogram else ())]
    columns = ", ".join(("bucket_start", *keys, *summed))
    params: list[int] = []
    arms = []
    for grain, start, end in found:
        params += [start, end]
        arms.append(
            f"SELECT {columns} FROM rollup_{grain}{suffix}"
            f" WHERE bucket_start >= ${len(params) - 1} AND bucket_start < ${len(params)}"
        )
    group = [*([bucket_expr(interval)] if interval else []), *keys]
    sums = [f"COALESCE(SUM({name}), 0)" for name in summed]
    sql = f"SELECT {', '.join([*group, *sums])} FROM ({' UNION ALL '.join(arms)}) AS parts"
    if group:
        order = [*(["1"] if interval else []), *(f'{key} COLLATE "C"' for key in keys)]
        sql += f" GROUP BY {', '.join(str(i + 1) for i in range(len(group)))}"
        sql += f" ORDER BY {', '.join(order)}"
    return sql, params


def empty_row(histogram: bool) -> tuple[int, ...]:
    """The all-zero row `rollup` returns for an empty window with no groups."""
    return (0,) * (len(SUM_COLUMNS) + (len(HIST_COLUMNS) if histogram else 0))


def span_sql() -> str:
    """The first and the last hourly bucket in [$1, $2): two index seeks in one statement."""
    seek = (
        "SELECT bucket_start FROM rollup_hourly_served"
        " WHERE bucket_start >= $1 AND bucket_start < $2 ORDER BY bucket_start"
    )
    return f"SELECT ({seek} LIMIT 1), ({seek} DESC LIMIT 1)"
