"""The default ledger store: one SQLite file in WAL mode, driven by the stdlib `sqlite3` on a
single dedicated worker thread that owns the connection, so the event loop never blocks on disk
and the connection is never shared between threads. Rollups live in `sqlite_rollups.py`
and `sqlite_rollup_query.py`."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from crossroads.ledger import sqlite_rollup_query, sqlite_rollups
from crossroads.ledger.migrations import migrate
from crossroads.ledger.record import LedgerRecord, Status
from crossroads.ledger.spend_query import RecentUsage, recent_usage_sql, spend_sql
from crossroads.ledger.sqlite_rows import (
    COLUMNS,
    SELECT_COLUMNS,
    decode,
    encode,
    from_micros,
    insert_rows,
    to_micros,
)
from crossroads.ledger.store import (
    LedgerStoreError,
    cost_from_units,
    validate_group_by,
    validate_rollup_query,
)

__all__ = ["COLUMNS", "SQLiteLedgerStore"]

logger = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

MAX_ROWS_PER_INSERT = 256
_IDS_PER_QUERY = 500  # ids bound in one spend query, well under SQLite's variable limit


class SQLiteLedgerStore:
    """A `LedgerStore` on the SQLite file at `path` (its directory is created if missing).

    Every call runs on one worker thread in submission order, so calls never interleave.
    SQLite errors surface as `LedgerStoreError`; `busy_timeout` (seconds) is how long a call waits
    for another process's write lock before failing. Pragmas: journal_mode=WAL (readers never
    block the writer), synchronous=NORMAL (durable across process crashes; a power loss may drop
    the last commits, never corrupt the file).

    The `-shm` file: in WAL mode SQLite maps it into memory, and if something truncates it while
    mapped, SQLite's next touch of the mapping kills the process with SIGBUS. So before every
    call the store checks it: a file shrunk in place is extended back to its size (SQLite then
    rebuilds the index it held from the WAL, as after a crash), and a file removed or replaced
    (this process would keep using the old one while other processes used the new: two indexes
    of one WAL) fails every call with LedgerStoreError until a restart, which the writer
    retries and the readiness probe reports. A truncation in the instant between the check and
    SQLite's access can still crash the process.
    """

    def __init__(self, path: Path, *, busy_timeout: float = 5.0, create: bool = True) -> None:
        """With `create=False`, `open` refuses (LedgerStoreError) a file that does not exist or
        is not a Crossroads ledger instead of creating one; tools that read a ledger use it."""
        self._path = path
        self._busy_timeout = busy_timeout
        self._create = create
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False
        self._conn: sqlite3.Connection | None = None  # touched only on the worker thread
        self._rows_per_insert = 1  # set from the connection's limit when it opens
        # The -shm file as last seen: (device, inode) and size; touched only on the worker.
        self._shm_id: tuple[int, int] | None = None
        self._shm_size = 0

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
        since_us = None if since is None else to_micros(since)
        return await self._call(self._recent_sync, limit, since_us)

    async def totals(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        by: Sequence[str] = (),
    ) -> list[dict[str, Any]]:
        """See `LedgerStore.totals`."""
        keys = validate_group_by(by)
        since_us = None if since is None else to_micros(since)
        until_us = None if until is None else to_micros(until)
        return await self._call(self._totals_sync, keys, since_us, until_us)

    async def count(self) -> int:
        """See `LedgerStore.count`."""
        return await self._call(self._count_sync)

    async def spend_since(
        self, scope: str, ids: Collection[str], since: datetime | None = None
    ) -> dict[str, Decimal]:
        """See `LedgerStore.spend_since`."""
        since_us = None if since is None else to_micros(since)
        spend_sql(scope, since_us, "", "")  # checks the scope here, not on the worker
        return await self._call(self._spend_sync, scope, sorted(set(ids)), since_us)

    async def usage_since(self, since: datetime) -> list[RecentUsage]:
        """See `LedgerStore.usage_since`."""
        since_us = to_micros(since)
        rows = await self._call(self._read_sync, _fetch_all, recent_usage_sql("?"), (since_us,))
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
        """See `RollupReader.rollup`."""
        keys = validate_rollup_query(interval, by, since, until)
        since_us = None if since is None else to_micros(since)
        until_us = None if until is None else to_micros(until)
        return await self._call(
            self._read_sync,
            sqlite_rollup_query.query,
            since_us,
            until_us,
            interval,
            keys,
            histogram,
        )

    async def rollup_span(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> tuple[datetime, datetime] | None:
        """See `RollupReader.rollup_span`."""
        validate_rollup_query(None, (), since, until)
        since_us = None if since is None else to_micros(since)
        until_us = None if until is None else to_micros(until)
        found = await self._call(self._read_sync, sqlite_rollup_query.span, since_us, until_us)
        return None if found is None else (from_micros(found[0]), from_micros(found[1]))

    async def rebuild_rollups(self) -> int:
        """See `LedgerStore.rebuild_rollups`."""
        return await self._call(self._rebuild_sync)

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
            return await loop.run_in_executor(
                executor, functools.partial(self._guarded, functools.partial(fn, *args, **kwargs))
            )
        except (sqlite3.Error, OSError) as exc:
            raise LedgerStoreError(f"SQLite ledger store at {self._path}: {exc}") from exc

    # Everything below runs on the worker thread only.

    def _guarded(self, fn: Callable[[], T]) -> T:
        """Runs `fn` after checking the -shm file (see the class docstring)."""
        self._check_shm()
        try:
            return fn()
        finally:
            self._note_shm()

    def _shm_path(self) -> Path:
        return self._path.with_name(self._path.name + "-shm")

    def _check_shm(self) -> None:
        if self._shm_id is None:
            return
        path = self._shm_path()
        try:
            st = os.stat(path)
        except FileNotFoundError:
            st = None
        if st is None or (st.st_dev, st.st_ino) != self._shm_id:
            raise LedgerStoreError(
                f"{path} was removed or replaced while the ledger was open; not touching the "
                "ledger again until the gateway restarts (records are kept and saved at exit)"
            )
        if st.st_size < self._shm_size:
            os.truncate(path, self._shm_size)
            logger.error(
                "%s was truncated from %d to %d bytes while the ledger was open (SQLite would "
                "crash with SIGBUS); extended back: SQLite rebuilds its index from the WAL",
                path,
                self._shm_size,
                st.st_size,
            )

    def _note_shm(self) -> None:
        """Records the -shm file's identity once open, and its size as SQLite grows it."""
        if self._conn is None:
            return
        try:
            st = os.stat(self._shm_path())
        except FileNotFoundError:
            return  # not in WAL mode with a shared index (or removed: the next check says so)
        if self._shm_id is None:
            self._shm_id = (st.st_dev, st.st_ino)
        if (st.st_dev, st.st_ino) == self._shm_id and st.st_size > self._shm_size:
            self._shm_size = st.st_size

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise LedgerStoreError("the SQLite ledger store is not open")
        return self._conn

    def _open_sync(self) -> None:
        if not self._create and not self._path.is_file():
            raise LedgerStoreError(f"no ledger at {self._path}")
        self._path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: no implicit transactions; every write below opens its own.
        conn = sqlite3.connect(self._path, timeout=self._busy_timeout, isolation_level=None)
        try:
            if not self._create and not _is_ledger(conn):
                raise LedgerStoreError(f"{self._path} is not a Crossroads ledger")
            _enable_wal(conn)
            conn.execute("PRAGMA synchronous = NORMAL")
            migrate(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        # Rows per INSERT statement: as many as SQLite's bound-parameter limit allows, up to 256
        # (see sqlite_rows.insert_rows for why one statement per many rows, not executemany).
        variables = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        most = max(1, min(MAX_ROWS_PER_INSERT, variables // len(COLUMNS)))
        self._rows_per_insert = 1 << (most.bit_length() - 1)  # a power of two

    def _write_sync(self, records: list[LedgerRecord]) -> None:
        rows = [encode(record) for record in records]  # may raise ValueError: nothing written
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            # The rows this batch inserts get rowids above this one (see sqlite_rollups.apply).
            (watermark,) = conn.execute("SELECT COALESCE(MAX(rowid), 0) FROM requests").fetchone()
            inserted, start = 0, 0
            while start < len(rows):
                # Chunks of power-of-two sizes, so at most a handful of distinct statements are
                # prepared and cached: a prepared 256-row INSERT holds a lot of native memory.
                count = min(self._rows_per_insert, 1 << ((len(rows) - start).bit_length() - 1))
                params = [value for row in rows[start : start + count] for value in row]
                inserted += conn.execute(insert_rows(count), params).rowcount
                start += count
            if inserted == len(rows):
                sqlite_rollups.apply_rows(conn, rows)
            elif inserted:  # some were repeats: read back exactly the rows this batch added
                sqlite_rollups.apply(conn, watermark)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _recent_sync(self, limit: int, since_us: int | None) -> list[LedgerRecord]:
        where, params = _window(since_us, None)
        rows = self._connection().execute(
            f"SELECT {SELECT_COLUMNS} FROM requests{where} "
            "ORDER BY created_at DESC, request_id DESC LIMIT ?",
            (*params, limit),
        )
        return [decode(row) for row in rows]

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

    def _read_sync(self, fn: Callable[..., T], *args: Any) -> T:
        """Runs `fn(conn, *args)` inside one read transaction, so every statement it runs sees
        the same snapshot (a write committed in between cannot split a report)."""
        conn = self._connection()
        conn.execute("BEGIN")
        try:
            return fn(conn, *args)
        finally:
            conn.execute("COMMIT")

    def _rebuild_sync(self) -> int:
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            count = sqlite_rollups.rebuild(conn)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return count

    def _spend_sync(self, scope: str, ids: list[str], since_us: int | None) -> dict[str, Decimal]:
        spent: dict[str, Decimal] = {}
        conn = self._connection()
        for start in range(0, len(ids), _IDS_PER_QUERY):
            chunk = ids[start : start + _IDS_PER_QUERY]
            marks = f"IN ({', '.join('?' * len(chunk))})"
            sql, bound = spend_sql(scope, since_us, marks, "?")
            params = (*chunk, *(() if bound is None else (bound,)))
            for ident, units in conn.execute(sql, params):
                spent[ident] = cost_from_units(units)
        return spent

    def _count_sync(self) -> int:
        (count,) = self._connection().execute("SELECT COUNT(*) FROM requests").fetchone()
        return int(count)

    def _ping_sync(self) -> None:
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")

    def _close_sync(self) -> None:
        if self._conn is not None:
            # Closing the last connection checkpoints the WAL through the -shm mapping.
            with contextlib.suppress(LedgerStoreError, OSError):
                self._check_shm()  # a replaced file is harmless here: the mapping is the old one
            self._conn.close()
            self._conn = None


def _is_ledger(conn: sqlite3.Connection) -> bool:
    """Whether `conn` holds a Crossroads ledger: the migrations table records m001."""
    try:
        row = conn.execute(
            "SELECT 1 FROM _migrations WHERE name = 'm001_create_requests'"
        ).fetchone()
    except sqlite3.DatabaseError:  # no such table, or not a database at all
        return False
    return row is not None


def _fetch_all(
    conn: sqlite3.Connection, sql: str, params: tuple[object, ...]
) -> list[tuple[Any, ...]]:
    return conn.execute(sql, params).fetchall()


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


def _enable_wal(conn: sqlite3.Connection) -> None:
    """Switches a new file to WAL. The switch takes an exclusive lock that ignores the busy
    timeout, so two processes opening a new ledger at once (`serve --workers N`) retry here."""
    for attempt in range(100):
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == 99:
                raise
            time.sleep(0.05)
