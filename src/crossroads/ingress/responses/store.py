"""Stored responses: what `store: true` keeps so that a later request can continue it with
`previous_response_id`, and `GET` / `DELETE /v1/responses/{id}` can read or remove it.

A stored response holds the Response object as the client got it and its context: the input
items it answered (those of the responses before it included, so a chain never needs to be
walked) and its output items. It belongs to the API key that made it (in open mode, to
everyone): another key gets 404, as for an id that never existed. Each expires after the
retention period and is deleted by a purge that runs at start and hourly; one whose context is
larger than `max_bytes` is not kept (logged), so one chain cannot fill the disk.

Where: with the SQLite storage backend, `responses.sqlite3` in the data directory (writes on a
worker thread); with PostgreSQL, the `responses` table of the gateway's database, so every
replica finds what another stored. A saved response is readable at once (kept in memory until
its row is written), so a client that continues a stream the moment it ended finds it. A store
that fails to write logs it; the answer the client got is not affected."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson

from crossroads.postgres import DRIVER_ERRORS, guarded, open_pool, pool_options, secrets_of

__all__ = ["PostgresResponses", "ResponseStore", "SQLiteResponses", "Stored"]

log = logging.getLogger(__name__)

JSON = dict[str, Any]
PURGE_INTERVAL = 3600.0
MAX_PENDING = 1000
"""Responses held in memory while their rows are written; past it (a store that has stalled),
new ones are not kept rather than pile up in memory."""


@dataclass(frozen=True, slots=True)
class Stored:
    id: str
    owner: str  # the API key id; "" in open mode
    created_at: float
    response: bytes  # the Response object, JSON
    context: bytes  # {"input": [...], "output": [...]}, JSON

    def items(self) -> list[JSON]:
        """The context as one item list: the input, then the output."""
        context = orjson.loads(self.context)
        return [*context["input"], *context["output"]]


class StoreError(Exception):
    """The backend failed; the message holds no secret."""


class Backend(Protocol):
    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def put(self, entry: Stored) -> None: ...
    async def get(self, response_id: str) -> Stored | None: ...
    async def delete(self, response_id: str) -> None: ...
    async def purge(self, before: float) -> None: ...


class ResponseStore:
    """Stored responses over a backend. `backend` None: nothing is kept (`store: true` and
    `previous_response_id` are then refused by the handler)."""

    def __init__(
        self,
        backend: Backend | None,
        *,
        retention_days: float = 30.0,
        max_bytes: int = 16 * 1024 * 1024,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._backend = backend
        self._retention = retention_days * 86400.0
        self.max_bytes = max_bytes
        self._clock = clock
        self._open = False
        self._pending: dict[str, Stored] = {}
        self._writes: dict[str, asyncio.Task[None]] = {}  # by response id, while in flight
        self._last_purge = 0.0

    @property
    def enabled(self) -> bool:
        return self._backend is not None

    async def open(self) -> None:
        if self._backend is None:
            return
        try:
            await self._backend.open()
        except StoreError as exc:
            # The gateway still serves: responses are answered unstored until a restart.
            log.error("stored responses unavailable (the backend did not open): %s", exc)
            return
        self._open = True
        await self._purge()

    async def aclose(self) -> None:
        """Waits for the writes in flight, then closes the backend."""
        if self._writes:
            await asyncio.gather(*self._writes.values(), return_exceptions=True)
        if self._backend is not None and self._open:
            self._open = False
            await self._backend.close()

    # --- the operations ---------------------------------------------------------------------

    def save(
        self,
        response_id: str,
        owner: str | None,
        response: Mapping[str, Any],
        inputs: list[JSON],
        output: list[JSON],
    ) -> bool:
        """Keeps a response; never blocks, never raises. False when it was too large to keep."""
        if self._backend is None or not self._open:
            return False
        context = orjson.dumps({"input": inputs, "output": output})
        body = orjson.dumps(response)
        if len(context) + len(body) > self.max_bytes:
            log.warning(
                "response %s not stored: %d bytes of context, above responses.max_stored_bytes",
                response_id,
                len(context) + len(body),
            )
            return False
        if len(self._pending) >= MAX_PENDING:
            log.error("response %s not stored: %d writes already waiting", response_id, MAX_PENDING)
            return False
        entry = Stored(response_id, owner or "", self._clock(), body, context)
        self._pending[response_id] = entry
        task = asyncio.get_running_loop().create_task(self._write(entry))
        self._writes[response_id] = task
        task.add_done_callback(lambda _: self._writes.pop(response_id, None))
        return True

    async def get(self, response_id: str, owner: str | None) -> Stored | None:
        entry = self._pending.get(response_id)
        if entry is None and self._backend is not None and self._open:
            try:
                entry = await self._backend.get(response_id)
            except StoreError as exc:
                log.error("stored response %s not read: %s", response_id, exc)
                return None
        if entry is None or entry.owner != (owner or ""):
            return None
        if entry.created_at + self._retention < self._clock():
            return None
        return entry

    async def delete(self, response_id: str, owner: str | None) -> bool:
        if await self.get(response_id, owner) is None:
            return False
        writing = self._writes.get(response_id)
        if writing is not None:  # let its row land first, or it would come back after this
            await asyncio.gather(writing, return_exceptions=True)
        assert self._backend is not None
        await self._backend.delete(response_id)
        return True

    async def _write(self, entry: Stored) -> None:
        assert self._backend is not None
        try:
            await self._backend.put(entry)
        except StoreError as exc:
            log.error("response %s not stored: %s", entry.id, exc)
        finally:
            self._pending.pop(entry.id, None)
        if self._clock() - self._last_purge > PURGE_INTERVAL:
            await self._purge()

    async def _purge(self) -> None:
        assert self._backend is not None
        self._last_purge = self._clock()
        try:
            await self._backend.purge(self._last_purge - self._retention)
        except StoreError as exc:
            log.error("expired responses not purged: %s", exc)


class SQLiteResponses:
    """The SQLite file; every statement runs on a worker thread, one at a time."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    async def open(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._db = await asyncio.to_thread(self._connect)

    async def close(self) -> None:
        if self._db is not None:
            with self._lock:
                self._db.close()
            self._db = None

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(
            "CREATE TABLE IF NOT EXISTS responses ("
            " id TEXT PRIMARY KEY, owner TEXT NOT NULL, created_at REAL NOT NULL,"
            " response BLOB NOT NULL, context BLOB NOT NULL)"
        )
        db.execute("CREATE INDEX IF NOT EXISTS responses_created ON responses (created_at)")
        return db

    async def put(self, entry: Stored) -> None:
        await self._run(
            "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?)",
            (entry.id, entry.owner, entry.created_at, entry.response, entry.context),
        )

    async def get(self, response_id: str) -> Stored | None:
        row = await self._run(
            "SELECT id, owner, created_at, response, context FROM responses WHERE id = ?",
            (response_id,),
            fetch=True,
        )
        return Stored(*row) if row is not None else None

    async def delete(self, response_id: str) -> None:
        await self._run("DELETE FROM responses WHERE id = ?", (response_id,))

    async def purge(self, before: float) -> None:
        await self._run("DELETE FROM responses WHERE created_at < ?", (before,))

    async def _run(self, sql: str, args: tuple[Any, ...], *, fetch: bool = False) -> Any:
        def run() -> Any:
            with self._lock:
                if self._db is None:
                    return None
                cursor = self._db.execute(sql, args)
                return cursor.fetchone() if fetch else None

        try:
            return await asyncio.to_thread(run)
        except sqlite3.Error as exc:
            raise StoreError(f"{type(exc).__name__}: {exc}") from None


_MIGRATIONS_TABLE = "crossroads_responses_migrations"
_LOCK = 0x63_72_72_65_73  # the advisory lock key: "crres" in ASCII


async def m001_create_responses(conn: Any) -> None:
    await conn.execute(
        "CREATE TABLE responses (id TEXT PRIMARY KEY, owner TEXT NOT NULL,"
        " created_at DOUBLE PRECISION NOT NULL, response BYTEA NOT NULL, context BYTEA NOT NULL)"
    )
    await conn.execute("CREATE INDEX responses_created ON responses (created_at)")


class PostgresResponses:
    """The `responses` table in the gateway's PostgreSQL database (a small pool of its own)."""

    def __init__(self, url: str, server_settings: Mapping[str, str] | None = None) -> None:
        self._url = url
        self._secrets = secrets_of(url)
        self._server_settings = server_settings
        self._pool: Any = None

    async def _guard(self, call: Callable[[], Any], errors: tuple[type[BaseException], ...]) -> Any:
        return await guarded(call, StoreError, self._secrets, errors)

    async def open(self) -> None:
        options = pool_options(
            min_size=1,
            max_size=4,
            connect_timeout=10.0,
            command_timeout=30.0,
            server_settings=self._server_settings,
        )
        self._pool = await open_pool(
            self._url,
            options,
            self._guard,
            table=_MIGRATIONS_TABLE,
            lock_key=_LOCK,
            migrations=(m001_create_responses,),
        )

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def put(self, entry: Stored) -> None:
        await self._guard(
            lambda: self._pool.execute(
                "INSERT INTO responses VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO UPDATE"
                " SET owner = $2, created_at = $3, response = $4, context = $5",
                entry.id,
                entry.owner,
                entry.created_at,
                entry.response,
                entry.context,
            ),
            DRIVER_ERRORS,
        )

    async def get(self, response_id: str) -> Stored | None:
        row = await self._guard(
            lambda: self._pool.fetchrow(
                "SELECT id, owner, created_at, response, context FROM responses WHERE id = $1",
                response_id,
            ),
            DRIVER_ERRORS,
        )
        return Stored(*row) if row is not None else None

    async def delete(self, response_id: str) -> None:
        await self._guard(
            lambda: self._pool.execute("DELETE FROM responses WHERE id = $1", response_id),
            DRIVER_ERRORS,
        )

    async def purge(self, before: float) -> None:
        await self._guard(
            lambda: self._pool.execute("DELETE FROM responses WHERE created_at < $1", before),
            DRIVER_ERRORS,
        )
