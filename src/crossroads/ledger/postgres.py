"""The PostgreSQL ledger store, for several gateway replicas sharing one database: the same
tables, encodings and query results as the SQLite store (`sqlite.py`), through one asyncpg
pool. Its schema is `postgres_migrations.MIGRATIONS`, recorded in `ledger_migrations`; the
rollups live in `postgres_rollups.py`."""

from __future__ import annotations

import functools
import math
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from crossroads.ledger import postgres_rollups as rollups
from crossroads.ledger import rollup_plan
from crossroads.ledger.postgres_migrations import LEDGER_LOCK, MIGRATIONS, MIGRATIONS_TABLE
from crossroads.ledger.record import LedgerRecord, Status
from crossroads.ledger.spend_query import RecentUsage, recent_usage_sql, spend_sql
from crossroads.ledger.sqlite_rows import COLUMNS, decode, encode, from_micros, to_micros
from crossroads.ledger.store import (
    LedgerStoreError,
    cost_from_units,
    validate_group_by,
    validate_rollup_query,
)
from crossroads.postgres import (
    DRIVER_ERRORS,
    guarded,
    open_pool,
    pool_options,
    redact,
    secrets_of,
)

__all__ = ["PostgresLedgerStore"]

T = TypeVar("T")

# The PostgreSQL type of each `requests` column, for the unnest() arrays of a batch.
_TYPES = {
    "created_at": "bigint",
    "stream": "boolean",
    "open_weights": "boolean",
    "latency_ms": "float8",
    "ttft_ms": "float8",
    **dict.fromkeys(
        (
            "prompt_tokens",
            "cached_tokens",
            "cache_write_tokens",
            "completion_tokens",
            "reasoning_tokens",
            "cost_usd",
            "http_status",
            "attempts",
            "baseline_cost_units",
            "upstream_cost_units",
        ),
        "bigint",
    ),
}
_BOOLEANS = tuple(COLUMNS.index(name) for name in ("stream", "open_weights"))
_FLOATS = tuple(COLUMNS.index(name) for name in ("latency_ms", "ttft_ms"))
_INTEGERS = tuple(i for i, name in enumerate(COLUMNS) if _TYPES.get(name) == "bigint")
_MIN_BIGINT, _MAX_BIGINT = -(2**63), 2**63 - 1
_SELECT = ", ".join(COLUMNS)


class PostgresLedgerStore:
    """A `LedgerStore` in the PostgreSQL database at `url`, shared by any number of replicas.

    Writes are one statement each, so a batch is atomic, and idempotent on `request_id` across
    replicas: the insert and the rollup updates share the statement and only rows it inserted
    are counted. Driver, network and server failures raise `LedgerStoreError`, whose message
    never contains the URL's password. Cancelling a call cancels its query on the server; a
    write whose outcome is unknown may be written again safely.

    Encodings match SQLite's, with two exceptions PostgreSQL forces: a NaN latency is stored as
    NULL (SQLite does the same implicitly), and a NUL character in text becomes U+FFFD (TEXT
    cannot hold NUL; failing the batch would stall the ledger writer forever)."""

    def __init__(
        self,
        url: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        connect_timeout: float = 10.0,
        command_timeout: float = 60.0,
        server_settings: Mapping[str, str] | None = None,
    ) -> None:
        """`url`: `postgresql://user:password@host:port/db`. The pool holds `min_size` to
        `max_size` connections; `server_settings` go to each (`{"search_path": "ledger"}`)."""
        self._url = url
        self._secrets = secrets_of(url)
        self._pool_options = pool_options(
            min_size=min_size,
            max_size=max_size,
            connect_timeout=connect_timeout,
            command_timeout=command_timeout,
            server_settings=server_settings,
        )
        self._pool: Any = None

    def __repr__(self) -> str:
        return f"PostgresLedgerStore({redact(self._url, self._secrets)!r})"

    async def open(self) -> None:
        """Creates the pool and applies pending migrations under an advisory lock, so replicas
        starting together apply each exactly once. Idempotent while open. Raises
        LedgerStoreError when the server is unreachable or a migration fails; then nothing is
        left open."""
        if self._pool is not None:
            return
        self._pool = await open_pool(
            self._url,
            self._pool_options,
            self._guard,
            table=MIGRATIONS_TABLE,
            lock_key=LEDGER_LOCK,
            migrations=MIGRATIONS,
        )

    async def write(self, records: Sequence[LedgerRecord]) -> None:
        """See `LedgerStore.write`. Raises ValueError (nothing written) for a record that fails
        `check_record`. The first record of a repeated `request_id` in the batch wins."""
        rows = [_encode(record) for record in records]  # may raise ValueError: nothing written
        first = {row[0]: row for row in reversed(rows)}  # the earliest of each id is set last
        if not first:
            return
        arrays = [list(column) for column in zip(*first.values(), strict=True)]
        await self._guard(lambda: self._open_pool().execute(_write_statement(), *arrays))

    async def recent(self, limit: int, since: datetime | None = None) -> list[LedgerRecord]:
        """See `LedgerStore.recent`."""
        if limit < 0:
            raise ValueError("limit must not be negative")
        where, params = _window(None if since is None else to_micros(since), None)
        rows = await self._fetch(
            f"SELECT {_SELECT} FROM requests{where}"
            f' ORDER BY created_at DESC, request_id COLLATE "C" DESC LIMIT ${len(params) + 1}',
            *params,
            limit,
        )
        return [decode(tuple(row)) for row in rows]

    async def totals(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        by: Sequence[str] = (),
    ) -> list[dict[str, Any]]:
        """See `LedgerStore.totals`. Groups order as in SQLite: NULL first, then byte order."""
        keys = validate_group_by(by)  # each a column name from a fixed allow-list
        where, params = _window(
            None if since is None else to_micros(since), None if until is None else to_micros(until)
        )
        metrics = [
            "COUNT(*)",
            "COUNT(*) FILTER (WHERE status = 'error')",
            *(
                f"COALESCE(SUM({name}_tokens), 0)"
                for name in ("prompt", "cached", "cache_write", "completion", "reasoning")
            ),
            "COALESCE(SUM(cost_usd), 0)",
            "COUNT(*) FILTER (WHERE cost_usd IS NULL)",
            "AVG(latency_ms)",
            "AVG(ttft_ms)",
        ]
        sql = f"SELECT {', '.join([*keys, *metrics])} FROM requests{where}"
        if keys:
            order = ", ".join(f'{key} COLLATE "C" NULLS FIRST' for key in keys)
            sql += f" GROUP BY {', '.join(keys)} ORDER BY {order}"
        result: list[dict[str, Any]] = []
        for row in await self._fetch(sql, *params):
            group = dict(zip(keys, row[: len(keys)], strict=True))
            if group.get("status") is not None:
                group["status"] = Status(group["status"])
            (requests, errors, prompt, cached, cache_write, completion, reasoning, cost_units,
             unpriced, avg_latency, avg_ttft) = row[len(keys):]  # fmt: skip
            result.append(
                {
                    **group,
                    "requests": requests,
                    "errors": errors,
                    "prompt_tokens": int(prompt),
                    "cached_tokens": int(cached),
                    "cache_write_tokens": int(cache_write),
                    "completion_tokens": int(completion),
                    "reasoning_tokens": int(reasoning),
                    "cost_usd": cost_from_units(int(cost_units)),
                    "unpriced": unpriced,
                    "avg_latency_ms": avg_latency,
                    "avg_ttft_ms": avg_ttft,
                }
            )
        return result

    async def count(self) -> int:
        """See `LedgerStore.count`."""
        return int(await self._guard(lambda: self._open_pool().fetchval(_COUNT)))

    async def spend_since(
        self, scope: str, ids: Collection[str], since: datetime | None = None
    ) -> dict[str, Decimal]:
        """See `LedgerStore.spend_since`."""
        sql, bound = spend_sql(
            scope, None if since is None else to_micros(since), "= ANY($1::text[])", "$2"
        )
        params: list[object] = [sorted(set(ids))]
        if bound is not None:
            params.append(bound)
        rows = await self._fetch(sql, *params)
        return {ident: cost_from_units(int(units)) for ident, units in rows}

    async def usage_since(self, since: datetime) -> list[RecentUsage]:
        """See `LedgerStore.usage_since`."""
        rows = await self._fetch(recent_usage_sql("$1"), to_micros(since))
        return [RecentUsage(key, team, int(n), int(tokens)) for key, team, n, tokens in rows]

    async def rollup(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        interval: str | None = None,
        by: Sequence[str] = (),
        *,
        histogram: bool = False,
    ) -> list[dict[str, Any]]:
        """See `RollupReader.rollup`. One statement, so one snapshot."""
        keys = validate_rollup_query(interval, by, since, until)
        sql, params = rollups.query_sql(
            None if since is None else to_micros(since),
            None if until is None else to_micros(until),
            interval,
            keys,
            histogram,
        )
        rows: list[Any] = [] if sql is None else await self._fetch(sql, *params)
        if not rows and not keys and interval is None:
            rows = [rollups.empty_row(histogram)]
        return [rollup_plan.decode_row(row, interval is not None, keys, histogram) for row in rows]

    async def rollup_span(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> tuple[datetime, datetime] | None:
        """See `RollupReader.rollup_span`."""
        validate_rollup_query(None, (), since, until)
        lo, hi = rollup_plan.window(
            None if since is None else to_micros(since), None if until is None else to_micros(until)
        )
        if lo >= hi:
            return None
        (row,) = await self._fetch(rollups.span_sql(), lo, hi)
        if row[0] is None:
            return None
        return from_micros(row[0]), from_micros(row[1] + rollups.HOUR_US)

    async def rebuild_rollups(self) -> int:
        """See `LedgerStore.rebuild_rollups`: one transaction; writers wait for it."""

        async def run() -> int:
            async with self._open_pool().acquire() as conn, conn.transaction():
                return await rollups.rebuild(conn)

        return await self._guard(run)

    async def ping(self) -> None:
        """Raises LedgerStoreError unless a pooled connection is free within the connect timeout,
        answers, and the server accepts writes (not a read-only standby or session). Writes
        nothing."""

        async def writable() -> bool:
            timeout = self._pool_options["timeout"]
            async with self._open_pool().acquire(timeout=timeout) as conn:
                return bool(await conn.fetchval(_WRITABLE, timeout=timeout))

        if not await self._guard(writable):
            raise LedgerStoreError("PostgreSQL ledger store: the server is read-only")

    async def close(self) -> None:
        """Closes the pool after the calls in flight finish. Idempotent."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await self._guard(pool.close)

    def _open_pool(self) -> Any:
        if self._pool is None:
            raise LedgerStoreError("the PostgreSQL ledger store is not open")
        return self._pool

    async def _fetch(self, sql: str, *params: object) -> list[Any]:
        return list(await self._guard(lambda: self._open_pool().fetch(sql, *params)))

    async def _guard(
        self,
        call: Callable[[], Awaitable[T]],
        errors: tuple[type[BaseException], ...] = DRIVER_ERRORS,
    ) -> T:
        return await guarded(call, _error, self._secrets, errors)


_COUNT = "SELECT COUNT(*) FROM requests"
_WRITABLE = "SELECT NOT pg_is_in_recovery() AND current_setting('transaction_read_only') = 'off'"


def _encode(record: LedgerRecord) -> list[object]:
    """`record` as `requests` values in `COLUMNS` order (see the class docstring for the two
    departures from SQLite's encoding). Raises ValueError like `sqlite_rows.encode`, and for an
    integer field outside BIGINT's range (which would otherwise fail every retry of the batch)."""
    values: list[object] = list(encode(record))
    for i in _BOOLEANS:
        values[i] = None if values[i] is None else bool(values[i])
    for i in _FLOATS:
        value = values[i]
        if isinstance(value, float) and math.isnan(value):
            values[i] = None
    for i in _INTEGERS:
        value = values[i]
        if isinstance(value, int) and not _MIN_BIGINT <= value <= _MAX_BIGINT:
            raise ValueError(f"record {record.request_id}: {COLUMNS[i]} out of range")
    return [v.replace("\x00", "\ufffd") if isinstance(v, str) else v for v in values]


def _window(since_us: int | None, until_us: int | None) -> tuple[str, list[int]]:
    """A WHERE clause (or "") and its parameters for `since <= created_at < until`."""
    clauses: list[str] = []
    params: list[int] = []
    for bound, op in ((since_us, ">="), (until_us, "<")):
        if bound is not None:
            params.append(bound)
            clauses.append(f"created_at {op} ${len(params)}")
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def _error(message: str) -> LedgerStoreError:
    return LedgerStoreError(f"PostgreSQL ledger store: {message}")


@functools.cache
def _write_statement() -> str:
    """The batch statement: every column as an array parameter, unnested into rows."""
    arrays = ", ".join(f"${i + 1}::{_TYPES.get(c, 'text')}[]" for i, c in enumerate(COLUMNS))
    return rollups.write_sql(f"({', '.join(COLUMNS)}) SELECT * FROM unnest({arrays})")
