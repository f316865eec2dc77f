"""The PostgreSQL governance store against a real server (`scripts/services start`): migrations
from an empty schema, replicas opening at once, and the same behaviour as the SQLite store.
Each test gets a schema of its own, dropped afterwards."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest

from crossroads.governance.model import ApiKey, Team
from crossroads.governance.postgres_store import (
    GOVERNANCE_LOCK,
    MIGRATIONS,
    MIGRATIONS_TABLE,
    PostgresGovernanceStore,
)
from crossroads.governance.store import GovernanceStoreError
from crossroads.postgres import migrate
from support.governance_cases import BARE_KEY, CASES, KEY, TEAM, Case
from support.postgres import Schema, fresh_schema

T = TypeVar("T")
MIGRATION_NAMES = [m.__name__ for m in MIGRATIONS]


@pytest.fixture
def database() -> Iterator[Schema]:
    with fresh_schema("test_governance") as schema:
        yield schema


def store_on(db: Schema, **options: Any) -> PostgresGovernanceStore:
    return PostgresGovernanceStore(db.url, server_settings=db.settings, **options)


def with_store(db: Schema, body: Callable[[PostgresGovernanceStore], Awaitable[T]]) -> T:
    """Opens a store on `db`, runs `body(store)` and always closes it."""

    async def main() -> T:
        store = store_on(db)
        await store.open()
        try:
            return await body(store)
        finally:
            await store.close()

    return asyncio.run(main())


# Migrations


def test_open_on_an_empty_schema_creates_the_tables_and_records_the_migrations(
    database: Schema,
) -> None:
    async def body(store: PostgresGovernanceStore) -> None:
        assert await store.load() == ([], [])

    with_store(database, body)
    recorded = database.query("SELECT name, applied_at FROM governance_migrations ORDER BY name")
    assert [name for name, _ in recorded] == MIGRATION_NAMES
    assert abs(datetime.now(UTC) - recorded[0][1]) < timedelta(minutes=1)
    columns = database.query(
        "SELECT table_name, column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = $1 ORDER BY table_name, ordinal_position",
        database.name,
    )
    by_table: dict[str, list[tuple[str, str]]] = {}
    for table, column, kind in columns:
        by_table.setdefault(table, []).append((column, kind))
    stamp = "timestamp with time zone"
    assert by_table == {
        "api_keys": [
            ("id", "text"),
            ("secret_hash", "text"),
            ("name", "text"),
            ("created_at", stamp),
            ("team_id", "text"),
            ("limits", "jsonb"),
            ("policy", "jsonb"),
            ("expires_at", stamp),
            ("revoked_at", stamp),
            ("can_eval", "boolean"),
        ],
        "governance_migrations": [("name", "text"), ("applied_at", stamp)],
        "teams": [
            ("id", "text"),
            ("name", "text"),
            ("created_at", stamp),
            ("limits", "jsonb"),
            ("policy", "jsonb"),
        ],
    }


def test_opening_twice_applies_nothing_the_second_time_and_keeps_the_data(
    database: Schema,
) -> None:
    async def first(store: PostgresGovernanceStore) -> None:
        await store.put_team(TEAM)

    with_store(database, first)

    async def direct() -> list[str]:
        conn = await database.connect()
        try:
            return await migrate(conn, MIGRATIONS_TABLE, GOVERNANCE_LOCK, MIGRATIONS)
        finally:
            await conn.close()

    assert asyncio.run(direct()) == []

    async def second(store: PostgresGovernanceStore) -> tuple[list[Team], list[ApiKey]]:
        return await store.load()

    assert with_store(database, second) == ([TEAM], [])
    recorded = database.query("SELECT name FROM governance_migrations")
    assert [name for (name,) in recorded] == MIGRATION_NAMES


def test_replicas_migrating_at_once_apply_each_migration_exactly_once(database: Schema) -> None:
    async def main() -> list[list[str]]:
        conns = [await database.connect() for _ in range(4)]
        try:
            return list(
                await asyncio.gather(
                    *(
                        migrate(conn, MIGRATIONS_TABLE, GOVERNANCE_LOCK, MIGRATIONS)
                        for conn in conns
                    )
                )
            )
        finally:
            for conn in conns:
                await conn.close()

    results = asyncio.run(main())
    assert sorted(results, key=len) == [[], [], [], MIGRATION_NAMES]


def test_two_stores_opening_at_once_share_one_schema(database: Schema) -> None:
    async def main() -> tuple[list[Team], list[ApiKey]]:
        first, second = store_on(database), store_on(database)
        await asyncio.gather(first.open(), second.open())
        try:
            await first.put_team(TEAM)
            await first.insert_key(KEY)
            return await second.load()
        finally:
            await asyncio.gather(first.close(), second.close())

    assert asyncio.run(main()) == ([TEAM], [KEY])
    recorded = database.query("SELECT name FROM governance_migrations")
    assert [name for (name,) in recorded] == MIGRATION_NAMES


def test_a_key_stored_before_the_eval_permission_reads_back_without_it(database: Schema) -> None:
    async def old_release() -> None:
        conn = await database.connect()
        try:
            await migrate(conn, MIGRATIONS_TABLE, GOVERNANCE_LOCK, MIGRATIONS[:1])
            await conn.execute(
                "INSERT INTO api_keys (id, secret_hash, name, created_at, limits, policy)"
                " VALUES ($1, $2, $3, $4, '{}', '{}')",
                BARE_KEY.id,
                BARE_KEY.secret_hash,
                BARE_KEY.name,
                BARE_KEY.created_at,
            )
        finally:
            await conn.close()

    asyncio.run(old_release())

    async def body(store: PostgresGovernanceStore) -> tuple[list[Team], list[ApiKey]]:
        return await store.load()

    assert with_store(database, body) == ([], [BARE_KEY])
    assert BARE_KEY.can_eval is False
    recorded = database.query("SELECT name FROM governance_migrations ORDER BY applied_at, name")
    assert sorted(name for (name,) in recorded) == sorted(MIGRATION_NAMES)


# Behaviour (the same cases as the SQLite store's)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.__name__)
def test_behaves_as_every_governance_store(database: Schema, case: Case) -> None:
    with_store(database, case)


def test_driver_errors_name_what_went_wrong(database: Schema) -> None:
    async def body(store: PostgresGovernanceStore) -> None:
        await store.insert_key(BARE_KEY)
        with pytest.raises(GovernanceStoreError, match="UniqueViolationError: duplicate key"):
            await store.insert_key(BARE_KEY)
        with pytest.raises(GovernanceStoreError, match="ForeignKeyViolationError"):
            await store.insert_key(KEY)

    with_store(database, body)


# Errors


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://postgres:hunter2%40pw@127.0.0.1:1/crossroads_test",  # nothing listens
        "postgresql://postgres:hunter2%40pw@127.0.0.1:notaport/crossroads_test",
        "mysql://postgres:hunter2%40pw@127.0.0.1/crossroads_test",
    ],
)
def test_a_failed_open_raises_store_error_without_the_password(url: str) -> None:
    store = PostgresGovernanceStore(url, connect_timeout=5.0)
    with pytest.raises(GovernanceStoreError) as caught:
        asyncio.run(store.open())
    text = f"{caught.value} {caught.value!r} {store!r}"
    assert "hunter2" not in text
    assert "postgres" in str(caught.value)


def test_a_missing_database_is_a_store_error(database: Schema) -> None:
    base, _, _ = database.url.rpartition("/")
    store = PostgresGovernanceStore(f"{base}/crossroads_no_such_database")
    with pytest.raises(GovernanceStoreError, match="does not exist"):
        asyncio.run(store.open())


def test_calls_before_open_or_after_close_raise_store_error(database: Schema) -> None:
    async def main() -> None:
        store = store_on(database)
        with pytest.raises(GovernanceStoreError, match="not open"):
            await store.load()
        await store.open()
        await store.close()
        await store.close()
        with pytest.raises(GovernanceStoreError, match="not open"):
            await store.put_team(TEAM)

    asyncio.run(main())
