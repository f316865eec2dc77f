"""The SQLite governance store: `governance.sqlite3` in the data directory. Admin writes are
rare and the key ring reloads everything every few seconds, so each call opens a short-lived
connection on a worker thread; WAL lets a second gateway process on the same machine share it."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from crossroads.governance.model import ApiKey, Team
from crossroads.governance.store import (
    GovernanceStoreError,
    dump_limits,
    dump_policy,
    from_micros,
    load_limits,
    load_policy,
    to_micros,
)

T = TypeVar("T")

MIGRATIONS: tuple[tuple[str, str], ...] = (
    (
        "g001_teams_and_keys",
        """
        CREATE TABLE teams (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            limits TEXT NOT NULL,
            policy TEXT NOT NULL
        );
        CREATE TABLE api_keys (
            id TEXT PRIMARY KEY,
            secret_hash TEXT NOT NULL,
            name TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            team_id TEXT REFERENCES teams(id),
            limits TEXT NOT NULL,
            policy TEXT NOT NULL,
            expires_at INTEGER,
            revoked_at INTEGER
        );
        """,
    ),
    (
        # Keys made before the permission existed read back without it: only a key given it
        # may mark its traffic as evaluation (out of the production reports).
        "g002_key_eval_permission",
        "ALTER TABLE api_keys ADD COLUMN can_eval INTEGER NOT NULL DEFAULT 0",
    ),
)


class SQLiteGovernanceStore:
    def __init__(self, path: Path) -> None:
        self._path = path

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, timeout=5.0, isolation_level=None)
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    @staticmethod
    def _enable_wal(conn: sqlite3.Connection) -> None:
        """WAL is a property of the file, set once. Switching to it takes an exclusive lock that
        ignores the busy timeout, so two processes opening a new file at once retry here."""
        for attempt in range(50):
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == 49:
                    raise
                time.sleep(0.1)

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def work() -> T:
            conn = self._connect()
            try:
                return fn(conn)
            finally:
                conn.close()

        try:
            return await asyncio.to_thread(work)
        except sqlite3.Error as exc:
            raise GovernanceStoreError(f"governance store: {exc}") from None

    async def open(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)

        def migrate(conn: sqlite3.Connection) -> None:
            self._enable_wal(conn)
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, "
                    "applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)"
                )
                done = {row[0] for row in conn.execute("SELECT name FROM _migrations")}
                for name, sql in MIGRATIONS:
                    if name not in done:
                        for statement in sql.split(";"):
                            if statement.strip():
                                conn.execute(statement)
                        conn.execute("INSERT INTO _migrations (name) VALUES (?)", (name,))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        await self._run(migrate)

    async def load(self) -> tuple[list[Team], list[ApiKey]]:
        def read(conn: sqlite3.Connection) -> tuple[list[Team], list[ApiKey]]:
            teams = [
                Team(
                    id=r[0],
                    name=r[1],
                    created_at=_at(r[2]),
                    limits=load_limits(r[3]),
                    policy=load_policy(r[4]),
                )
                for r in conn.execute("SELECT id, name, created_at, limits, policy FROM teams")
            ]
            keys = [
                ApiKey(
                    id=r[0],
                    secret_hash=r[1],
                    name=r[2],
                    created_at=_at(r[3]),
                    team_id=r[4],
                    limits=load_limits(r[5]),
                    policy=load_policy(r[6]),
                    expires_at=from_micros(r[7]),
                    revoked_at=from_micros(r[8]),
                    can_eval=bool(r[9]),
                )
                for r in conn.execute(
                    "SELECT id, secret_hash, name, created_at, team_id, limits, policy, "
                    "expires_at, revoked_at, can_eval FROM api_keys"
                )
            ]
            return teams, keys

        return await self._run(read)

    async def put_team(self, team: Team) -> None:
        await self._run(
            lambda conn: conn.execute(
                "INSERT INTO teams (id, name, created_at, limits, policy) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET name = excluded.name, limits = excluded.limits, "
                "policy = excluded.policy",
                (
                    team.id,
                    team.name,
                    to_micros(team.created_at),
                    dump_limits(team.limits),
                    dump_policy(team.policy),
                ),
            )
        )

    async def insert_key(self, key: ApiKey) -> None:
        await self._run(
            lambda conn: conn.execute(
                "INSERT INTO api_keys (id, secret_hash, name, created_at, team_id, limits, "
                "policy, expires_at, revoked_at, can_eval) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key.id,
                    key.secret_hash,
                    key.name,
                    to_micros(key.created_at),
                    key.team_id,
                    dump_limits(key.limits),
                    dump_policy(key.policy),
                    to_micros(key.expires_at),
                    to_micros(key.revoked_at),
                    int(key.can_eval),
                ),
            )
        )

    async def revoke_key(self, key_id: str, at: datetime) -> bool:
        def revoke(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (to_micros(at), key_id),
            )
            return cursor.rowcount > 0

        return await self._run(revoke)

    async def close(self) -> None:
        return None


def _at(micros: int) -> datetime:
    moment = from_micros(micros)
    assert moment is not None
    return moment
