"""Stored responses: what `store: true` keeps so that a later request can continue it with
`previous_response_id`, and `GET` / `DELETE /v1/responses/{id}` can read or remove it.

A stored response holds the Response object as the client got it and its context: the input
items it answered (those of the responses before it included, so a chain never needs to be
walked) and its output items. It belongs to the API key that made it (in open mode, to
everyone): another key gets 404, as for an id that never existed. Each expires after the
retention period and is deleted by a purge that runs at start and hourly; one whose context is
larger than `max_bytes` is not kept (logged), so one chain cannot fill the disk.

The SQLite file is `responses.sqlite3` in the data directory. Writes run on a worker thread;
a saved response is readable at once (kept in memory until its row is written), so a client
that continues a stream the moment it ended finds it."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

__all__ = ["ResponseStore", "Stored"]

log = logging.getLogger(__name__)

JSON = dict[str, Any]
PURGE_INTERVAL = 3600.0


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


class ResponseStore:
    """The SQLite store of responses. `enabled` False: nothing is kept (`store: true` and
    `previous_response_id` are then refused by the handler)."""

    def __init__(
        self,
        path: Path | None,
        *,
        retention_days: float = 30.0,
        max_bytes: int = 16 * 1024 * 1024,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._path = path
        self._clock = clock
        self._retention = retention_days * 86400.0
        self.max_bytes = max_bytes
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._pending: dict[str, Stored] = {}
        self._writes: dict[str, asyncio.Task[None]] = {}  # by response id, while in flight
        self._last_purge = 0.0

    @property
    def enabled(self) -> bool:
        return self._path is not None

    async def open(self) -> None:
        if self._path is None:
            return
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._db = await asyncio.to_thread(self._connect, self._path)
        await self._purge()

    async def aclose(self) -> None:
        """Waits for the writes in flight, then closes the file."""
        if self._writes:
            await asyncio.gather(*self._writes.values(), return_exceptions=True)
        if self._db is not None:
            with self._lock:
                self._db.close()
            self._db = None

    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(
            "CREATE TABLE IF NOT EXISTS responses ("
            " id TEXT PRIMARY KEY, owner TEXT NOT NULL, created_at REAL NOT NULL,"
            " response BLOB NOT NULL, context BLOB NOT NULL)"
        )
        db.execute("CREATE INDEX IF NOT EXISTS responses_created ON responses (created_at)")
        return db

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
        if self._db is None:
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
        entry = Stored(response_id, owner or "", self._clock(), body, context)
        self._pending[response_id] = entry
        task = asyncio.get_running_loop().create_task(self._write(entry))
        self._writes[response_id] = task
        task.add_done_callback(lambda _: self._writes.pop(response_id, None))
        return True

    async def get(self, response_id: str, owner: str | None) -> Stored | None:
        entry = self._pending.get(response_id)
        if entry is None and self._db is not None:
            row = await asyncio.to_thread(self._select, response_id)
            entry = Stored(*row) if row is not None else None
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
        await asyncio.to_thread(self._execute, "DELETE FROM responses WHERE id = ?", (response_id,))
        return True

    # --- the worker-thread side -------------------------------------------------------------

    async def _write(self, entry: Stored) -> None:
        try:
            await asyncio.to_thread(
                self._execute,
                "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?)",
                (entry.id, entry.owner, entry.created_at, entry.response, entry.context),
            )
        except sqlite3.Error as exc:
            log.error("response %s not stored: %s", entry.id, exc)
        finally:
            self._pending.pop(entry.id, None)
        if self._clock() - self._last_purge > PURGE_INTERVAL:
            await self._purge()

    async def _purge(self) -> None:
        self._last_purge = self._clock()
        cutoff = self._last_purge - self._retention
        try:
            await asyncio.to_thread(
                self._execute, "DELETE FROM responses WHERE created_at < ?", (cutoff,)
            )
        except sqlite3.Error as exc:
            log.error("expired responses not purged: %s", exc)

    def _execute(self, sql: str, args: tuple[Any, ...]) -> None:
        with self._lock:
            if self._db is not None:
                self._db.execute(sql, args)

    def _select(self, response_id: str) -> tuple[Any, ...] | None:
        with self._lock:
            if self._db is None:
                return None
            row: tuple[Any, ...] | None = self._db.execute(
                "SELECT id, owner, created_at, response, context FROM responses WHERE id = ?",
                (response_id,),
            ).fetchone()
            return row
