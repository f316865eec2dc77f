"""The PostgreSQL governance store: teams and keys in one database that every gateway replica
shares, behind the same `GovernanceStore` protocol and with the same semantics as the SQLite
store. Its schema is an ordered list of named migrations recorded in `governance_migrations`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from crossroads.governance.model import ApiKey, Team
from crossroads.governance.store import (
    GovernanceStoreError,
    dump_limits,
    dump_policy,
    load_limits,
    load_policy,
)
from crossroads.postgres import (
    DRIVER_ERRORS,
    PgMigration,
    guarded,
    open_pool,
    pool_options,
    redact,
    secrets_of,
)

T = TypeVar("T")

MIGRATIONS_TABLE = "governance_migrations"
GOVERNANCE_LOCK = 0x63_72_67_6F_76  # the advisory lock key: "crgov" in ASCII, to spot in pg_locks


class PostgresGovernanceStore:
    """Teams and keys in PostgreSQL through one asyncpg pool, created by `open()` and closed by
    `close()`. Every driver, network or server failure surfaces as `GovernanceStoreError`, whose
    message never contains the password of `url`. Cancelling a call cancels its query; a write
    cancelled before its commit leaves nothing behind (each write is one statement)."""

    def __init__(
        self,
        url: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        connect_timeout: float = 10.0,
        command_timeout: float = 30.0,
        server_settings: Mapping[str, str] | None = None,
    ) -> None:
        """`url` is a libpq-style `postgresql://user:password@host:port/db` URL. The pool holds
        between `min_size` and `max_size` connections; `server_settings` are sent on each one
        (`{"search_path": "tenant"}`, say)."""
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
        return f"PostgresGovernanceStore({redact(self._url, self._secrets)!r})"

    async def open(self) -> None:
        """Creates the pool and applies the missing migrations. Replicas opening at once are
        serialised by a transaction-level advisory lock, so each migration runs exactly once.
        Raises GovernanceStoreError if the server cannot be reached or a migration fails (the
        failed migration's transaction is rolled back and the pool closed)."""
        if self._pool is not None:
            return
        self._pool = await open_pool(
            self._url,
            self._pool_options,
            self._guard,
            table=MIGRATIONS_TABLE,
            lock_key=GOVERNANCE_LOCK,
            migrations=MIGRATIONS,
        )

    async def load(self) -> tuple[list[Team], list[ApiKey]]:
        """Every team and every key (revoked and expired included), each in byte order of id,
        read from one snapshot: a key never arrives without the team it was created with."""

        async def read() -> tuple[list[Any], list[Any]]:
            async with (
                self._open_pool().acquire() as conn,
                conn.transaction(isolation="repeatable_read", readonly=True),
            ):
                team_rows = await conn.fetch(
                    "SELECT id, name, created_at, limits::text, policy::text FROM teams"
                    ' ORDER BY id COLLATE "C"'
                )
                key_rows = await conn.fetch(
                    "SELECT id, secret_hash, name, created_at, team_id, limits::text,"
                    " policy::text, expires_at, revoked_at, can_eval FROM api_keys"
                    ' ORDER BY id COLLATE "C"'
                )
            return list(team_rows), list(key_rows)

        team_rows, key_rows = await self._guard(read)
        teams = [
            Team(
                id=r[0],
                name=r[1],
                created_at=r[2],
                limits=load_limits(r[3]),
                policy=load_policy(r[4]),
            )
            for r in team_rows
        ]
        keys = [
            ApiKey(
                id=r[0],
                secret_hash=r[1],
                name=r[2],
                created_at=r[3],
                team_id=r[4],
                limits=load_limits(r[5]),
                policy=load_policy(r[6]),
                expires_at=r[7],
                revoked_at=r[8],
                can_eval=r[9],
            )
            for r in key_rows
        ]
        return teams, keys

    async def put_team(self, team: Team) -> None:
        """Inserts a team, or replaces the name, limits and policy of the team with its id (its
        `created_at` stays the first one's)."""
        await self._guard(
            lambda: self._open_pool().execute(
                "INSERT INTO teams (id, name, created_at, limits, policy)"
                " VALUES ($1, $2, $3, $4::jsonb, $5::jsonb)"
                " ON CONFLICT (id) DO UPDATE SET name = excluded.name,"
                " limits = excluded.limits, policy = excluded.policy",
                team.id,
                team.name,
                team.created_at,
                dump_limits(team.limits),
                dump_policy(team.policy),
            )
        )

    async def insert_key(self, key: ApiKey) -> None:
        """Inserts a new key. Raises GovernanceStoreError if its id exists or its team does
        not."""
        await self._guard(
            lambda: self._open_pool().execute(
                "INSERT INTO api_keys (id, secret_hash, name, created_at, team_id, limits,"
                " policy, expires_at, revoked_at, can_eval)"
                " VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8, $9, $10)",
                key.id,
                key.secret_hash,
                key.name,
                key.created_at,
                key.team_id,
                dump_limits(key.limits),
                dump_policy(key.policy),
                key.expires_at,
                key.revoked_at,
                key.can_eval,
            )
        )

    async def revoke_key(self, key_id: str, at: datetime) -> bool:
        """Marks a key revoked at `at`; returns False if no such key or it is already revoked
        (its first revocation time is kept)."""
        status = await self._guard(
            lambda: self._open_pool().execute(
                "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
                at,
                key_id,
            )
        )
        return bool(status == "UPDATE 1")

    async def close(self) -> None:
        """Closes the pool, waiting for calls in flight; idempotent."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await self._guard(pool.close)

    def _open_pool(self) -> Any:
        if self._pool is None:
            raise GovernanceStoreError("governance store: not open")
        return self._pool

    async def _guard(
        self,
        call: Callable[[], Awaitable[T]],
        errors: tuple[type[BaseException], ...] = DRIVER_ERRORS,
    ) -> T:
        return await guarded(call, _error, self._secrets, errors)


async def g001_teams_and_keys(conn: Any) -> None:
    """Teams and keys, as in SQLite but with native types: times TIMESTAMPTZ (exact to the
    microsecond, read back in UTC), limits and policies JSONB holding the `dump_*` JSON."""
    await conn.execute(
        """
        CREATE TABLE teams (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            created_at TIMESTAMPTZ NOT NULL,
            limits JSONB NOT NULL,
            policy JSONB NOT NULL
        );
        CREATE TABLE api_keys (
            id TEXT PRIMARY KEY,
            secret_hash TEXT NOT NULL,
            name TEXT NOT NULL,
            created_at TIMESTAMPTZ NOT NULL,
            team_id TEXT REFERENCES teams(id),
            limits JSONB NOT NULL,
            policy JSONB NOT NULL,
            expires_at TIMESTAMPTZ,
            revoked_at TIMESTAMPTZ
        );
        CREATE INDEX api_keys_team_id ON api_keys (team_id);
        """
    )


async def g002_key_eval_permission(conn: Any) -> None:
    """Whether a key may mark its traffic as evaluation (`x-crossroads-eval`). Keys made
    before read back without it; a constant default makes this a catalogue-only change in
    PostgreSQL 11 and later, with no rewrite of the table."""
    await conn.execute("ALTER TABLE api_keys ADD COLUMN can_eval BOOLEAN NOT NULL DEFAULT FALSE")


MIGRATIONS: tuple[PgMigration, ...] = (g001_teams_and_keys, g002_key_eval_permission)


def _error(message: str) -> GovernanceStoreError:
    return GovernanceStoreError(f"governance store (postgres): {message}")
