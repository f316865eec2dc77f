"""The default ledger store: one SQLite file in WAL mode, driven by the stdlib `sqlite3` on a
single dedicated worker thread that owns the connection, so the event loop never blocks on disk
and the connection is never shared between threads."""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from crossroads.ledger.migrations import migrate
from crossroads.ledger.record import LedgerRecord, Status
from crossroads.ledger.store import (
    LedgerStoreError,
    cost_from_units,
    cost_to_units,
    validate_group_by,
)

__all__ = ["COLUMNS", "SQLiteLedgerStore"]

P = ParamSpec("P")
T = TypeVar("T")

COLUMNS = (
    "request_id",
    "created_at",
    "endpoint",
    "requested_model",
    "stream",
    "status",
    "served_model",
    "deployment",
    "provider",
    "host_jurisdiction",
    "maker",
    "origin_country",
    "open_weights",
    "prompt_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "completion_tokens",
    "reasoning_tokens",
    "cost_usd",
    "latency_ms",
    "ttft_ms",
    "http_status",
    "error_type",
    "error_message",
    "attempts",
    "api_key_id",
)
"""The `requests` columns in `LedgerRecord` field order; `_encode` and `_decode` follow it."""

_SELECT_COLUMNS = ", ".join(COLUMNS)
# ON CONFLICT DO NOTHING rather than INSERT OR IGNORE: only a repeated request_id is skipped;
# any other constraint failure still aborts the batch instead of silently losing the row.
_INSERT = (
    f"INSERT INTO requests ({_SELECT_COLUMNS}) VALUES ({', '.join('?' * len(COLUMNS))}) "
    "ON CONFLICT (request_id) DO NOTHING"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class SQLiteLedgerStore:
    """A `LedgerStore` on the SQLite file at `path` (its directory is created if missing).

    Every call runs on one worker thread in submission order, so calls never interleave.
    SQLite errors surface as `LedgerStoreError`; `busy_timeout` (seconds) is how long a call waits
    for another process's write lock before failing. Pragmas: journal_mode=WAL (readers never
    block the writer), synchronous=NORMAL (durable across process crashes; a power loss may drop
    the last commits, never corrupt the file).
    """

    def __init__(self, path: Path, *, busy_timeout: float = 5.0) -> None:
        self._path = path
        self._busy_timeout = busy_timeout
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False
        self._conn: sqlite3.Connection | None = None  # touched only on the worker thread

    @property
    def path(self) -> Path:
        return self._path

    async def open(self) -> None:
        """Creates the directory and the file if needed, sets the pragmas and applies pending
        migrations. Idempotent while open; raises LedgerStoreError after `close` or on failure
        (then nothing is left open)."""
        if self._closed:
            raise LedgerStoreError("the SQLite ledger store is closed")
        if self._executor is not None:
            return
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger-sqlite")
        try:
            await self._call(self._open_sync)
        except BaseException:
            # Also on cancellation: the open may still finish on the worker, so close after it.
            executor, self._executor = self._executor, None
            executor.submit(self._close_sync)
            executor.shutdown(wait=True)
            raise

    async def write(self, records: Sequence[LedgerRecord]) -> None:
        """See `LedgerStore.write`. Raises ValueError (nothing written) for a record that fails
        `check_record`."""
        if records:
            await self._call(self._write_sync, list(records))

    async def recent(self, limit: int, since: datetime | None = None) -> list[LedgerRecord]:
        """See `LedgerStore.recent`."""
        if limit < 0:
            raise ValueError("limit must not be negative")
        since_us = None if since is None else _to_micros(since)
        return await self._call(self._recent_sync, limit, since_us)

    async def totals(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        by: Sequence[str] = (),
    ) -> list[dict[str, Any]]:
        """See `LedgerStore.totals`."""
        keys = validate_group_by(by)
        since_us = None if since is None else _to_micros(since)
        until_us = None if until is None else _to_micros(until)
        return await self._call(self._totals_sync, keys, since_us, until_us)

    async def count(self) -> int:
        """See `LedgerStore.count`."""
        return await self._call(self._count_sync)

    async def ping(self) -> None:
        """Takes the write lock and releases it (BEGIN IMMEDIATE; ROLLBACK). Raises
        LedgerStoreError when it cannot within `busy_timeout`, or when the store is not open."""
        await self._call(self._ping_sync)

    async def close(self) -> None:
        """Closes the connection after the calls already queued, then stops the worker thread.
        Idempotent. If cancelled, the close still completes on the worker thread."""
        self._closed = True
        executor, self._executor = self._executor, None
        if executor is None:
            return
        try:
            await asyncio.get_running_loop().run_in_executor(executor, self._close_sync)
        finally:
            # The worker has nothing left to run, so this joins an idle thread at once.
            executor.shutdown(wait=True)

    async def _call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        executor = self._executor
        if executor is None:
            raise LedgerStoreError("the SQLite ledger store is not open")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(executor, functools.partial(fn, *args, **kwargs))
        except (sqlite3.Error, OSError) as exc:
            raise LedgerStoreError(f"SQLite ledger store at {self._path}: {exc}") from exc

    # Everything below runs on the worker thread only.

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise LedgerStoreError("the SQLite ledger store is not open")
        return self._conn

    def _open_sync(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: no implicit transactions; every write below opens its own.
        conn = sqlite3.connect(self._path, timeout=self._busy_timeout, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            migrate(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _write_sync(self, records: list[LedgerRecord]) -> None:
        rows = [_encode(record) for record in records]  # may raise ValueError: nothing written
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(_INSERT, rows)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _recent_sync(self, limit: int, since_us: int | None) -> list[LedgerRecord]:
        where, params = _window(since_us, None)
        rows = self._connection().execute(
            f"SELECT {_SELECT_COLUMNS} FROM requests{where} "
            "ORDER BY created_at DESC, request_id DESC LIMIT ?",
            (*params, limit),
        )
        return [_decode(row) for row in rows]

    def _totals_sync(
        self, keys: tuple[str, ...], since_us: int | None, until_us: int | None
    ) -> list[dict[str, Any]]:
        # `keys` passed validate_group_by: each is a column name from a fixed allow-list.
        quoted = [f'"{key}"' for key in keys]
        metrics = [
            "COUNT(*)",
            "COALESCE(SUM(status = ?), 0)",
            "COALESCE(SUM(prompt_tokens), 0)",
            "COALESCE(SUM(cached_tokens), 0)",
            "COALESCE(SUM(cache_write_tokens), 0)",
            "COALESCE(SUM(completion_tokens), 0)",
            "COALESCE(SUM(reasoning_tokens), 0)",
            "COALESCE(SUM(cost_usd), 0)",  # integers: SQLite sums them exactly (or raises)
            "COALESCE(SUM(cost_usd IS NULL), 0)",
            "AVG(latency_ms)",
            "AVG(ttft_ms)",
        ]
        where, params = _window(since_us, until_us)
        sql = f"SELECT {', '.join([*quoted, *metrics])} FROM requests{where}"
        if keys:
            sql += f" GROUP BY {', '.join(quoted)} ORDER BY {', '.join(quoted)}"
        result: list[dict[str, Any]] = []
        for row in self._connection().execute(sql, (Status.ERROR.value, *params)):
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
                    "prompt_tokens": prompt,
                    "cached_tokens": cached,
                    "cache_write_tokens": cache_write,
                    "completion_tokens": completion,
                    "reasoning_tokens": reasoning,
                    "cost_usd": cost_from_units(cost_units),
                    "unpriced": unpriced,
                    "avg_latency_ms": avg_latency,
                    "avg_ttft_ms": avg_ttft,
                }
            )
        return result

    def _count_sync(self) -> int:
        (count,) = self._connection().execute("SELECT COUNT(*) FROM requests").fetchone()
        return int(count)

    def _ping_sync(self) -> None:
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")

    def _close_sync(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _window(since_us: int | None, until_us: int | None) -> tuple[str, tuple[int, ...]]:
    """A WHERE clause (or "") and its parameters for `since <= created_at < until`."""
    clauses: list[str] = []
    params: list[int] = []
    if since_us is not None:
        clauses.append("created_at >= ?")
        params.append(since_us)
    if until_us is not None:
        clauses.append("created_at < ?")
        params.append(until_us)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), tuple(params)


def _to_micros(moment: datetime) -> int:
    if moment.utcoffset() is None:
        raise ValueError("ledger datetimes must be timezone-aware")
    return (moment - _EPOCH) // _MICROSECOND


def _from_micros(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def _encode(r: LedgerRecord) -> tuple[object, ...]:
    """`r` as a row in `COLUMNS` order. Raises ValueError for a naive `created_at`, an unknown
    status or an out-of-range cost."""
    return (
        r.request_id,
        _to_micros(r.created_at),
        r.endpoint,
        r.requested_model,
        int(r.stream),
        Status(r.status).value,
        r.served_model,
        r.deployment,
        r.provider,
        r.host_jurisdiction,
        r.maker,
        r.origin_country,
        None if r.open_weights is None else int(r.open_weights),
        r.prompt_tokens,
        r.cached_tokens,
        r.cache_write_tokens,
        r.completion_tokens,
        r.reasoning_tokens,
        None if r.cost_usd is None else cost_to_units(r.cost_usd),
        r.latency_ms,
        r.ttft_ms,
        r.http_status,
        r.error_type,
        r.error_message,
        r.attempts,
        r.api_key_id,
    )


def _decode(row: tuple[Any, ...]) -> LedgerRecord:
    """The inverse of `_encode`."""
    (request_id, created_at, endpoint, requested_model, stream, status, served_model,
     deployment, provider, host_jurisdiction, maker, origin_country, open_weights,
     prompt_tokens, cached_tokens, cache_write_tokens, completion_tokens, reasoning_tokens,
     cost_units, latency_ms, ttft_ms, http_status, error_type, error_message, attempts,
     api_key_id) = row  # fmt: skip
    return LedgerRecord(
        request_id=request_id,
        created_at=_from_micros(created_at),
        endpoint=endpoint,
        requested_model=requested_model,
        stream=bool(stream),
        status=Status(status),
        served_model=served_model,
        deployment=deployment,
        provider=provider,
        host_jurisdiction=host_jurisdiction,
        maker=maker,
        origin_country=origin_country,
        open_weights=None if open_weights is None else bool(open_weights),
        prompt_tokens=prompt_tokens,
        cached_tokens=cached_tokens,
        cache_write_tokens=cache_write_tokens,
        completion_tokens=completion_tokens,
        reasoning_tokens=reasoning_tokens,
        cost_usd=None if cost_units is None else cost_from_units(cost_units),
        latency_ms=latency_ms,
        ttft_ms=ttft_ms,
        http_status=http_status,
        error_type=error_type,
        error_message=error_message,
        attempts=attempts,
        api_key_id=api_key_id,
    )
