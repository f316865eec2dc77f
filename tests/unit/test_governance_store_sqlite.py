"""The SQLite governance store against real database files: migrations from an empty file and
again, and the behaviour every governance store shares (`support.governance_cases`, also run
against PostgreSQL in test_governance_postgres.py)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from crossroads.governance.model import ApiKey, Team
from crossroads.governance.sqlite_store import MIGRATIONS, SQLiteGovernanceStore
from crossroads.governance.store import GovernanceStoreError, to_micros
from support.governance_cases import BARE_KEY, CASES, KEY, TEAM, Case

T = TypeVar("T")
MIGRATION_NAMES = [name for name, _ in MIGRATIONS]


def with_store(path: Path, body: Callable[[SQLiteGovernanceStore], Awaitable[T]]) -> T:
    """Opens a store at `path`, runs `body(store)` and always closes it."""

    async def main() -> T:
        store = SQLiteGovernanceStore(path)
        await store.open()
        try:
            return await body(store)
        finally:
            await store.close()

    return asyncio.run(main())


def recorded(path: Path) -> list[str]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return [name for (name,) in conn.execute("SELECT name FROM _migrations ORDER BY rowid")]


def test_open_on_an_empty_file_creates_the_tables_and_records_the_migrations(
    tmp_path: Path,
) -> None:
    path = tmp_path / "sub" / "governance.sqlite3"

    async def body(store: SQLiteGovernanceStore) -> tuple[list[Team], list[ApiKey]]:
        return await store.load()

    assert with_store(path, body) == ([], [])
    assert recorded(path) == MIGRATION_NAMES
    with contextlib.closing(sqlite3.connect(path)) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        assert {"teams", "api_keys", "_migrations"} <= tables


def test_opening_twice_applies_nothing_the_second_time_and_keeps_the_data(
    tmp_path: Path,
) -> None:
    path = tmp_path / "governance.sqlite3"

    async def first(store: SQLiteGovernanceStore) -> None:
        await store.put_team(TEAM)

    async def second(store: SQLiteGovernanceStore) -> tuple[list[Team], list[ApiKey]]:
        return await store.load()

    with_store(path, first)
    assert with_store(path, second) == ([TEAM], [])
    assert recorded(path) == MIGRATION_NAMES


def test_a_key_stored_before_the_eval_permission_reads_back_without_it(tmp_path: Path) -> None:
    path = tmp_path / "governance.sqlite3"
    (first_name, first_sql), *_ = MIGRATIONS
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        # The file as the release before `g002_key_eval_permission` left it, with a key.
        conn.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at TEXT)")
        conn.executescript(first_sql)
        conn.execute("INSERT INTO _migrations (name) VALUES (?)", (first_name,))
        conn.execute(
            "INSERT INTO api_keys (id, secret_hash, name, created_at, limits, policy)"
            " VALUES (?, ?, ?, ?, '{}', '{}')",
            (BARE_KEY.id, BARE_KEY.secret_hash, BARE_KEY.name, to_micros(BARE_KEY.created_at)),
        )

    async def body(store: SQLiteGovernanceStore) -> tuple[list[Team], list[ApiKey]]:
        return await store.load()

    assert with_store(path, body) == ([], [BARE_KEY])
    assert BARE_KEY.can_eval is False
    assert recorded(path) == MIGRATION_NAMES


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.__name__)
def test_behaves_as_every_governance_store(tmp_path: Path, case: Case) -> None:
    with_store(tmp_path / "governance.sqlite3", case)


def test_sqlite_errors_name_what_went_wrong(tmp_path: Path) -> None:
    async def body(store: SQLiteGovernanceStore) -> None:
        await store.insert_key(BARE_KEY)
        with pytest.raises(GovernanceStoreError, match="UNIQUE"):
            await store.insert_key(BARE_KEY)
        with pytest.raises(GovernanceStoreError, match="FOREIGN KEY"):
            await store.insert_key(KEY)

    with_store(tmp_path / "governance.sqlite3", body)
