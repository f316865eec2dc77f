"""What the PostgreSQL stores (ledger, governance) share: the errors asyncpg and the network
raise, turning them into a store's own error without the URL's password, and the runner that
applies a store's named migrations once per database under an advisory lock."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import asyncpg

__all__ = [
    "DRIVER_ERRORS",
    "PgMigration",
    "guarded",
    "migrate",
    "open_pool",
    "pool_options",
    "redact",
    "secrets_of",
]

T = TypeVar("T")

DRIVER_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    OSError,
    TimeoutError,
)
"""What asyncpg and the network raise; anything else is a bug and propagates unchanged."""

CONNECT_ERRORS = (*DRIVER_ERRORS, ValueError)
"""DRIVER_ERRORS plus the bare ValueError asyncpg raises for some malformed URLs (a port that
is not a number): what creating a pool may raise."""

PgMigration = Callable[[Any], Awaitable[None]]
"""An async function of an asyncpg connection, named for what it does; it runs inside the
runner's transaction and must not commit."""


async def guarded(
    call: Callable[[], Awaitable[T]],
    error: Callable[[str], Exception],
    secrets: tuple[str, ...],
    errors: tuple[type[BaseException], ...] = DRIVER_ERRORS,
) -> T:
    """Awaits `call()`, raising `error(message)` instead of any of `errors`; the message names
    the exception type and never contains a secret. Cancellation propagates unchanged."""
    try:
        return await call()
    except errors as exc:
        raise error(redact(f"{type(exc).__name__}: {exc}", secrets)) from None


async def migrate(
    conn: Any, table: str, lock_key: int, migrations: Sequence[PgMigration]
) -> list[str]:
    """Applies the `migrations` not yet recorded in `table`, in order, and returns the names it
    applied (empty when the schema was up to date).

    Everything runs in one transaction that first takes the transaction-level advisory lock
    `lock_key`: a second replica migrating at the same time waits for it, then finds every step
    recorded and applies none. Any failure rolls the whole transaction back and propagates (an
    asyncpg error, or the migration's own). Raises ValueError if two migrations share a name.
    `table` must be a trusted SQL identifier; it is found through the connection's
    search_path."""
    names = [m.__name__ for m in migrations]
    if len(set(names)) != len(names):
        raise ValueError("migration names must be unique")
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", lock_key)
        # Created only when missing, so a store on a read-only server or session (a hot standby
        # serving reports) can still open a schema that is up to date.
        if not await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", table):
            await conn.execute(
                f"CREATE TABLE {table} (name TEXT PRIMARY KEY,"
                " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
        done = {row[0] for row in await conn.fetch(f"SELECT name FROM {table}")}
        applied: list[str] = []
        for name, migration in zip(names, migrations, strict=True):
            if name not in done:
                await migration(conn)
                await conn.execute(f"INSERT INTO {table} (name) VALUES ($1)", name)
                applied.append(name)
        return applied


Guard = Callable[[Callable[[], Awaitable[Any]], tuple[type[BaseException], ...]], Awaitable[Any]]
"""A store's `guarded` bound to its own error type and secrets: (call, errors) -> result."""


def pool_options(
    *,
    min_size: int,
    max_size: int,
    connect_timeout: float,
    command_timeout: float,
    server_settings: Mapping[str, str] | None,
) -> dict[str, Any]:
    """The `asyncpg.create_pool` keyword arguments of a store's constructor options."""
    return {
        "min_size": min_size,
        "max_size": max_size,
        "timeout": connect_timeout,
        "command_timeout": command_timeout,
        "server_settings": dict(server_settings or {}),
    }


async def open_pool(
    url: str,
    options: Mapping[str, Any],
    guard: Guard,
    *,
    table: str,
    lock_key: int,
    migrations: Sequence[PgMigration],
) -> Any:
    """A new asyncpg pool (`pool_options`) whose database has every one of `migrations` applied
    (`migrate`, on one of the pool's connections). `guard` turns driver errors into the store's
    own. If migrating fails the pool is closed again and the error propagates."""
    pool = await guard(lambda: asyncpg.create_pool(url, **options), CONNECT_ERRORS)
    try:
        async with pool.acquire() as conn:
            await guard(lambda: migrate(conn, table, lock_key, migrations), DRIVER_ERRORS)
    except BaseException:
        await pool.close()
        raise
    return pool


def secrets_of(url: str) -> tuple[str, ...]:
    """The password in `url`, as written and percent-decoded, for `redact`."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return ()
    return tuple({password, unquote(password)}) if password else ()


def redact(text: str, secrets: tuple[str, ...]) -> str:
    """`text` with every occurrence of each secret replaced by `***`."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text
