"""The PostgreSQL ledger store against a real server (`scripts/services start`): migrations from
an empty schema mirroring SQLite's, exact round trips, duplicates ignored, two replicas writing
overlapping batches at once, readiness, and errors without the password. Each test gets a schema
of its own (`support.postgres`); the parity with SQLite is in test_ledger_postgres_parity.py."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from crossroads.errors import InvalidRequestError
from crossroads.ledger import migrations as sqlite_migrations
from crossroads.ledger import recovery
from crossroads.ledger.postgres import PostgresLedgerStore
from crossroads.ledger.postgres_migrations import LEDGER_LOCK, MIGRATIONS, MIGRATIONS_TABLE
from crossroads.ledger.record import LedgerRecord, Status
from crossroads.ledger.sqlite import SQLiteLedgerStore
from crossroads.ledger.sqlite_rollups import HIST_COLUMNS, SUM_COLUMNS, TABLES
from crossroads.ledger.sqlite_rows import COLUMNS, encode
from crossroads.ledger.store import MAX_COST_USD, ROLLUP_DIMENSIONS
from crossroads.ledger.store import LedgerStoreError as StoreError
from crossroads.postgres import migrate
from support.ledger_stores import (
    FULL,
    T0,
    assert_same,
    random_record,
    run_postgres,
    run_sqlite,
)
from support.postgres import Schema, fresh_schema

DIMS = sorted(ROLLUP_DIMENSIONS)
NAMES = [m.__name__ for m in MIGRATIONS]
ROLLUP_TABLES = [table for table, _, _ in TABLES]


@pytest.fixture
def database() -> Iterator[Schema]:
    with fresh_schema("test_ledger") as schema:
        yield schema


def store_on(db: Schema, **settings: str) -> PostgresLedgerStore:
    return PostgresLedgerStore(db.url, server_settings={**db.settings, **settings})


async def rollup_tables(db: Schema) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every rollup table, sorted."""
    return {table: sorted(await db.fetch(f"SELECT * FROM {table}")) for table in ROLLUP_TABLES}


_PRIMARY_KEY = (
    "SELECT a.attname::text FROM pg_index i"
    " JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) ON true"
    " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum"
    " WHERE i.indrelid = $1::regclass AND i.indisprimary ORDER BY k.n"
)
_COLUMNS_OF = (
    "SELECT column_name::text FROM information_schema.columns"
    " WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position"
)


# Migrations


def test_migrations_from_empty_mirror_the_sqlite_schema(database: Schema, tmp_path: Path) -> None:
    async def body(store: PostgresLedgerStore) -> None:
        assert await store.count() == 0
        assert await store.rollup_span() is None

    run_postgres(database, body)
    assert [m.__name__ for m in sqlite_migrations.MIGRATIONS] == NAMES
    recorded = database.query("SELECT name, applied_at FROM ledger_migrations")
    assert sorted(name for name, _ in recorded) == NAMES
    assert abs(datetime.now(UTC) - recorded[0][1]) < timedelta(minutes=1)
    with contextlib.closing(sqlite3.connect(tmp_path / "ledger.sqlite3")) as conn:
        sqlite_migrations.migrate(conn)
        for table in ("requests", *ROLLUP_TABLES):
            want = [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
            got = database.query(_COLUMNS_OF, database.name, table)
            assert [c for (c,) in got] == want, table
            keys = [
                row[1]
                for row in sorted(conn.execute(f"PRAGMA table_info({table})"), key=lambda r: r[5])
                if row[5]
            ]
            got_keys = database.query(_PRIMARY_KEY, f"{database.name}.{table}")
            assert [c for (c,) in got_keys] == keys, table
    indexes = database.query(
        "SELECT indexname FROM pg_indexes WHERE schemaname = $1", database.name
    )
    assert {"requests_created_at", "requests_served_model"} <= {i for (i,) in indexes}


def test_replicas_migrating_at_once_apply_each_migration_exactly_once(database: Schema) -> None:
    async def main() -> list[list[str]]:
        conns = [await database.connect() for _ in range(4)]
        try:
            return list(
                await asyncio.gather(
                    *(migrate(c, MIGRATIONS_TABLE, LEDGER_LOCK, MIGRATIONS) for c in conns)
                )
            )
        finally:
            for conn in conns:
                await conn.close()

    assert sorted(asyncio.run(main()), key=len) == [[], [], [], NAMES]

    async def again(store: PostgresLedgerStore) -> None:
        await store.write([FULL])

    run_postgres(database, again)  # a store opening the migrated schema applies nothing
    assert len(database.query("SELECT name FROM ledger_migrations")) == len(NAMES)


def test_upgrading_from_the_previous_schema_adds_usage_source_and_estimate_sums(
    database: Schema, tmp_path: Path
) -> None:
    """A schema at m003 (no usage_source, rollups without the estimate sums) with rows in it:
    opening it adds the column (NULL in the old rows) and recreates and refills the rollups,
    which then answer as SQLite's do for the same records, new ones included."""
    rng = random.Random(21)
    old = [dataclasses.replace(random_record(rng, n), usage_source=None) for n in range(300)]
    new = [random_record(rng, n) for n in range(300, 600)]
    old_sums = [c for c in SUM_COLUMNS if not c.startswith("estimated_")]
    columns = COLUMNS[:-1]
    booleans = [columns.index("stream"), columns.index("open_weights")]

    def old_row(record: LedgerRecord) -> list[object]:
        row = list(encode(record)[:-1])
        for i in booleans:
            row[i] = None if row[i] is None else bool(row[i])
        return row

    async def previous_schema() -> None:
        conn = await database.connect()
        try:
            await migrate(conn, MIGRATIONS_TABLE, LEDGER_LOCK, MIGRATIONS[:3])
            for table, _, keys in TABLES:  # the rollups exactly as m003 made them before
                await conn.execute(f"DROP TABLE {table}")
                await conn.execute(
                    f"CREATE TABLE {table} (bucket_start BIGINT NOT NULL, "
                    + "".join(f"{key} TEXT NOT NULL, " for key in keys)
                    + "".join(f"{c} BIGINT NOT NULL, " for c in (*old_sums, *HIST_COLUMNS))
                    + f"PRIMARY KEY (bucket_start, {', '.join(keys)}))"
                )
            marks = ", ".join(f"${i + 1}" for i in range(len(columns)))
            await conn.executemany(
                f"INSERT INTO requests ({', '.join(columns)}) VALUES ({marks})",
                [old_row(r) for r in old],
            )
        finally:
            await conn.close()

    asyncio.run(previous_schema())

    async def upgraded(store: Any) -> list[Any]:
        sources = {r.usage_source for r in await store.recent(1000)}
        answers: list[Any] = [sources, await store.rollup(interval="day", by=DIMS)]
        await store.write(new)
        answers.append(await store.rollup(interval="hour", by=DIMS, histogram=True))
        answers.append(await store.totals(by=["usage_source"]))
        return answers

    async def reference(store: Any) -> list[Any]:
        await store.write(old)
        return await upgraded(store)

    got = run_postgres(database, upgraded)
    assert got[0] == {None}
    assert_same(got, run_sqlite(tmp_path, reference))
    assert sum(row["estimated_requests"] for row in got[2]) > 0
    recorded = database.query("SELECT name FROM ledger_migrations")
    assert sorted(name for (name,) in recorded) == NAMES


# Records


def test_every_field_round_trips_exactly(database: Schema) -> None:
    minimal = LedgerRecord("req-min", T0, "chat.completions", "m", False, Status.OK)
    odd = dataclasses.replace(
        minimal, request_id="req-odd", error_message="nul\x00here", latency_ms=float("nan")
    )

    async def body(store: PostgresLedgerStore) -> list[LedgerRecord]:
        await store.write([FULL, minimal, odd])
        return await store.recent(10)

    got = run_postgres(database, body)
    assert [r.request_id for r in got] == ["req-odd", "req-min", FULL.request_id]
    full = next(r for r in got if r.request_id == FULL.request_id)
    for field in dataclasses.fields(LedgerRecord):
        assert getattr(full, field.name) == getattr(FULL, field.name), field.name
        assert type(getattr(full, field.name)) is type(getattr(FULL, field.name)), field.name
    assert full.created_at.utcoffset() == timedelta(0)
    assert got[1] == minimal
    assert got[0] == dataclasses.replace(odd, error_message="nul\ufffdhere", latency_ms=None)


def test_duplicates_are_ignored_in_a_batch_and_across_batches(database: Schema) -> None:
    rng = random.Random(3)
    records = [random_record(rng, n) for n in range(20)]
    changed = [dataclasses.replace(r, prompt_tokens=10**9) for r in records]

    async def body(store: PostgresLedgerStore) -> tuple[int, list[LedgerRecord], bool]:
        await store.write([records[0], changed[0], *records[1:10]])
        before = await rollup_tables(database)
        await store.write(changed[:10])
        unchanged = before == await rollup_tables(database)
        await store.write(changed[5:] + records)
        return await store.count(), await store.recent(100), unchanged

    count, stored, unchanged = run_postgres(database, body)
    assert count == 20
    assert unchanged, "a batch of duplicates changed the rollups"
    by_id = {r.request_id: r for r in stored}
    assert [by_id[r.request_id] for r in records[:10]] == records[:10]
    assert [by_id[r.request_id] for r in records[10:]] == changed[10:]


def test_a_batch_with_a_bad_record_writes_nothing(database: Schema) -> None:
    naive = dataclasses.replace(FULL, request_id="naive", created_at=datetime(2026, 1, 1))

    async def body(store: PostgresLedgerStore) -> int:
        bad_records = (
            naive,
            dataclasses.replace(FULL, cost_usd=MAX_COST_USD * 2),
            dataclasses.replace(FULL, prompt_tokens=2**63),  # beyond BIGINT
        )
        for bad in bad_records:
            with pytest.raises(ValueError):
                await store.write([random_record(random.Random(1), 1), bad])
        with pytest.raises(ValueError):
            await store.recent(-1)
        with pytest.raises(InvalidRequestError):
            await store.totals(by=["request_id"])
        return await store.count()

    assert run_postgres(database, body) == 0
    assert database.query("SELECT COUNT(*) FROM rollup_hourly") == [(0,)]


def test_two_replicas_writing_overlapping_batches_count_each_record_once(
    database: Schema, tmp_path: Path
) -> None:
    rng = random.Random(5)
    records = [random_record(rng, n) for n in range(3000)]

    async def replica(store: PostgresLedgerStore, seed: int) -> None:
        local = random.Random(seed)
        chosen = local.sample(records, 2400)
        cut = sorted(local.sample(range(1, len(chosen)), 8))
        parts = [chosen[a:b] for a, b in zip([0, *cut], [*cut, len(chosen)], strict=True)]
        await asyncio.gather(*(store.write(part[:500]) for part in parts))
        await asyncio.gather(*(store.write(part[500:]) for part in parts))

    async def main() -> tuple[list[LedgerRecord], int, list[dict[str, Any]], Any, Any]:
        first, second = store_on(database), store_on(database)
        await asyncio.gather(first.open(), second.open())
        try:
            await asyncio.gather(*(replica(first, s) for s in (1, 2)), replica(second, 3))
            await second.write(records)  # whatever the replicas missed
            rows = await second.rollup(interval="hour", by=DIMS, histogram=True)
            incremental = await rollup_tables(database)
            rebuilt = await first.rebuild_rollups()
            stored = await first.recent(len(records) + 1)
            return stored, rebuilt, rows, incremental, await rollup_tables(database)
        finally:
            await asyncio.gather(first.close(), second.close())

    stored, rebuilt, rows, incremental, recomputed = asyncio.run(main())
    assert rebuilt == len(records)
    assert sorted(stored, key=lambda r: r.request_id) == sorted(records, key=lambda r: r.request_id)
    assert_same(incremental, recomputed)  # the rollups equal an aggregate of the raw rows

    async def serial(store: SQLiteLedgerStore) -> list[dict[str, Any]]:
        await store.write(records)
        return await store.rollup(interval="hour", by=DIMS, histogram=True)

    assert_same(rows, run_sqlite(tmp_path, serial))


# Health and errors


def test_ping_answers_on_a_writable_server_and_fails_otherwise(database: Schema) -> None:
    async def main() -> None:
        store = store_on(database)
        with pytest.raises(StoreError, match="not open"):
            await store.ping()
        await store.open()
        await store.ping()
        await store.close()
        await store.close()
        with pytest.raises(StoreError, match="not open"):
            await store.write([FULL])
        read_only = store_on(database, default_transaction_read_only="on")
        await read_only.open()  # the schema is up to date: opening writes nothing
        try:
            with pytest.raises(StoreError, match="read-only"):
                await read_only.ping()
            assert await read_only.count() == 0
        finally:
            await read_only.close()

    asyncio.run(main())


def test_an_unreachable_server_is_a_store_error_without_the_password() -> None:
    store = PostgresLedgerStore("postgresql://postgres:s3cr%2Ft@127.0.0.1:1/x", connect_timeout=5)
    with pytest.raises(StoreError) as caught:
        asyncio.run(store.open())
    assert caught.value.status == 503
    for text in (str(caught.value), repr(store)):
        assert "s3cr" not in text


def test_a_recovery_file_replays_into_postgres_exactly_once(
    database: Schema, tmp_path: Path
) -> None:
    """With the PostgreSQL ledger, records a gateway could not write at exit are spilled to the
    data directory like SQLite's, and replayed into PostgreSQL at the next start."""
    rng = random.Random(11)
    records = [FULL, *(random_record(rng, n) for n in range(300))]
    recovery.spill(tmp_path, records)
    recovery.spill(tmp_path, records[:50])  # overlapping: replay must not duplicate

    async def body(store: PostgresLedgerStore) -> tuple[int, list[LedgerRecord]]:
        replayed = await recovery.replay(store, tmp_path)
        return replayed, await store.recent(1000)

    replayed, stored = run_postgres(database, body)
    assert replayed == 351 and recovery.files(tmp_path) == []
    assert sorted(r.request_id for r in stored) == sorted({r.request_id for r in records})
    assert next(r for r in stored if r.request_id == FULL.request_id).cost_usd == FULL.cost_usd
