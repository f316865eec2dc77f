"""The SQLite ledger store and its migrations, against real database files in a temp dir."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sqlite3
import threading
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import TypeVar

import pytest

from crossroads.errors import InvalidRequestError
from crossroads.ledger.migrations import MIGRATIONS, applied, migrate
from crossroads.ledger.record import LedgerRecord, Status, UsageSource
from crossroads.ledger.sqlite import COLUMNS, SQLiteLedgerStore
from crossroads.ledger.store import LedgerStore, LedgerStoreError

T = TypeVar("T")
T0 = datetime(2026, 1, 15, 12, 0, 0, 123456, tzinfo=UTC)
FIELDS = tuple(f.name for f in dataclasses.fields(LedgerRecord))
# Every column is named as its field, except the two later costs, named for the units they hold.
RENAMED = {"baseline_cost_usd": "baseline_cost_units", "upstream_cost_usd": "upstream_cost_units"}
MIGRATION_NAMES = [m.__name__ for m in MIGRATIONS]


def record(n: int, **changes: object) -> LedgerRecord:
    base = LedgerRecord(
        request_id=f"req-{n:06d}",
        created_at=T0 + timedelta(seconds=n),
        endpoint="chat.completions",
        requested_model="deepseek-v3.2",
        stream=False,
        status=Status.OK,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


FULL = LedgerRecord(
    request_id="chatcmpl-full",
    created_at=datetime(2026, 2, 3, 4, 5, 6, 789012, tzinfo=UTC),
    endpoint="messages",
    requested_model="kimi",
    stream=True,
    status=Status.ERROR,
    served_model="moonshotai/kimi-k2",
    deployment="kimi-together",
    provider="together",
    host_jurisdiction="US",
    maker="moonshotai",
    origin_country="CN",
    open_weights=True,
    prompt_tokens=123_456,
    cached_tokens=100_000,
    cache_write_tokens=2_000,
    completion_tokens=7_890,
    reasoning_tokens=4_321,
    cost_usd=Decimal("0.0123456789"),
    latency_ms=1234.5678901234,
    ttft_ms=0.1 + 0.2,  # a float with no short decimal form must survive too
    http_status=502,
    error_type="upstream_error",
    error_message="upstream said: ünïcödé \u2013 'quotes' \"and\" ; DROP TABLE requests",
    attempts=3,
    api_key_id="cr_live_abc",
    team_id="team-research",
    baseline_model="anthropic/claude-sonnet-4.5",
    baseline_cost_usd=Decimal("0.4893525"),
    upstream_cost_usd=Decimal("0.0123"),
    usage_source=UsageSource.ESTIMATED,
)


def run(factory: Callable[[SQLiteLedgerStore], Awaitable[T]], path: Path) -> T:
    """Opens a store at `path`, runs `factory(store)` and always closes it."""

    async def main() -> T:
        store = SQLiteLedgerStore(path)
        await store.open()
        try:
            return await factory(store)
        finally:
            await store.close()

    return asyncio.run(main())


# Migrations


def test_migrations_from_empty_database_create_schema_and_record_it(tmp_path: Path) -> None:
    with contextlib.closing(sqlite3.connect(tmp_path / "ledger.db")) as conn:
        assert migrate(conn) == [
            "m001_create_requests",
            "m002_add_economics_columns",
            "m003_create_rollups",
            "m004_add_usage_source",
            "m005_rollups_count_estimates",
        ]
        names = [name for name, _ in applied(conn)]
        assert names == MIGRATION_NAMES
        applied_at = applied(conn)[0][1]
        assert applied_at.tzinfo is not None
        assert abs(datetime.now(UTC) - applied_at) < timedelta(minutes=1)

        columns = [row[1] for row in conn.execute("PRAGMA table_info(requests)")]
        assert tuple(columns) == COLUMNS == tuple(RENAMED.get(f, f) for f in FIELDS)
        primary = [row[1] for row in conn.execute("PRAGMA table_info(requests)") if row[5]]
        assert primary == ["request_id"]
        indexes = {
            row[1]: [col[2] for col in conn.execute(f"PRAGMA index_info({row[1]})")]
            for row in conn.execute("PRAGMA index_list(requests)")
            if row[3] == "c"  # created by CREATE INDEX, not the primary key's autoindex
        }
        assert indexes == {
            "requests_created_at": ["created_at"],
            "requests_served_model": ["served_model", "created_at"],
        }


def test_migrating_twice_is_a_no_op(tmp_path: Path) -> None:
    with contextlib.closing(sqlite3.connect(tmp_path / "ledger.db")) as conn:
        migrate(conn)
        first = applied(conn)
        assert migrate(conn) == []
        assert applied(conn) == first
        assert conn.execute("SELECT COUNT(*) FROM _migrations").fetchone() == (len(MIGRATIONS),)


def test_failed_migration_is_rolled_back_and_not_recorded(tmp_path: Path) -> None:
    def m099_half_done(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE half (x INTEGER)")
        raise RuntimeError("boom")

    with contextlib.closing(sqlite3.connect(tmp_path / "ledger.db")) as conn:
        with pytest.raises(RuntimeError, match="boom"):
            migrate(conn, [*MIGRATIONS, m099_half_done])
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        assert "requests" in tables
        assert "half" not in tables
        assert [name for name, _ in applied(conn)] == MIGRATION_NAMES
        assert not conn.in_transaction


def test_migration_names_must_be_unique(tmp_path: Path) -> None:
    with (
        contextlib.closing(sqlite3.connect(tmp_path / "ledger.db")) as conn,
        pytest.raises(ValueError, match="unique"),
    ):
        migrate(conn, [*MIGRATIONS, *MIGRATIONS])


# The store


def test_open_creates_missing_directory_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "data" / "nested" / "ledger.db"

    async def check(store: SQLiteLedgerStore) -> None:
        await store.open()  # idempotent while open
        assert await store.count() == 0

    run(check, path)
    assert path.exists()
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert [name for name, _ in applied(conn)] == MIGRATION_NAMES


def test_every_field_round_trips_exactly(tmp_path: Path) -> None:
    minimal = record(1)

    async def check(store: SQLiteLedgerStore) -> list[LedgerRecord]:
        await store.write([FULL, minimal])
        return await store.recent(10)

    got = run(check, tmp_path / "ledger.db")
    assert got == [FULL, minimal]  # FULL is newer
    for field in FIELDS:
        assert getattr(got[0], field) == getattr(FULL, field), field
        assert type(getattr(got[0], field)) is type(getattr(FULL, field)), field
    assert got[0].created_at.tzinfo is not None
    assert got[1].cost_usd is None and got[1].open_weights is None


def test_round_trip_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"

    async def write(store: SQLiteLedgerStore) -> None:
        await store.write([FULL])

    async def read(store: SQLiteLedgerStore) -> list[LedgerRecord]:
        return await store.recent(1)

    run(write, path)
    assert run(read, path) == [FULL]


def test_other_timezones_are_stored_as_the_same_instant(tmp_path: Path) -> None:
    tokyo = timezone(timedelta(hours=9))
    local = record(1, created_at=datetime(2026, 1, 1, 9, 0, tzinfo=tokyo))

    async def check(store: SQLiteLedgerStore) -> list[LedgerRecord]:
        await store.write([local])
        return await store.recent(1)

    (got,) = run(check, tmp_path / "ledger.db")
    assert got.created_at == datetime(2026, 1, 1, 0, 0, tzinfo=UTC)
    assert got.created_at.utcoffset() == timedelta(0)


def test_recent_is_newest_first_with_limit_and_since(tmp_path: Path) -> None:
    records = [record(n) for n in range(10)]

    async def check(store: SQLiteLedgerStore) -> None:
        await store.write(records[::-1])
        assert [r.request_id for r in await store.recent(3)] == [
            "req-000009",
            "req-000008",
            "req-000007",
        ]
        since = records[7].created_at  # inclusive
        assert [r.request_id for r in await store.recent(100, since)] == [
            "req-000009",
            "req-000008",
            "req-000007",
        ]
        assert await store.recent(0) == []
        with pytest.raises(ValueError):
            await store.recent(-1)
        with pytest.raises(ValueError, match="timezone-aware"):
            await store.recent(1, datetime(2026, 1, 1))

    run(check, tmp_path / "ledger.db")


def test_duplicate_request_ids_are_ignored(tmp_path: Path) -> None:
    first = record(1, status=Status.OK)
    retry = record(1, status=Status.ERROR, http_status=500)

    async def check(store: SQLiteLedgerStore) -> None:
        await store.write([first, record(2)])
        await store.write([first, record(2), record(3)])  # a retried, grown batch
        await store.write([retry, record(4), record(4)])  # duplicates inside one batch
        assert await store.count() == 4
        stored = {r.request_id: r for r in await store.recent(10)}
        assert stored["req-000001"] == first  # the first write wins

    run(check, tmp_path / "ledger.db")


def test_a_batch_with_a_bad_record_writes_nothing(tmp_path: Path) -> None:
    naive = record(3, created_at=datetime(2026, 1, 1))

    async def check(store: SQLiteLedgerStore) -> None:
        with pytest.raises(ValueError):
            await store.write([record(1), record(2), naive])
        assert await store.count() == 0
        await store.write([record(1)])
        assert await store.count() == 1

    run(check, tmp_path / "ledger.db")


def test_totals_sum_cost_exactly_over_many_rows(tmp_path: Path) -> None:
    # 0.1 summed 10,000 times in float is 999.9999999998; the ledger must say 1000 exactly.
    records = [record(n, cost_usd=Decimal("0.1"), prompt_tokens=n) for n in range(10_000)]
    records += [record(10_000 + n, cost_usd=Decimal("1E-10")) for n in range(3)]

    async def check(store: SQLiteLedgerStore) -> list[dict[str, object]]:
        await store.write(records)
        return await store.totals()

    (row,) = run(check, tmp_path / "ledger.db")
    assert row["cost_usd"] == Decimal("1000.0000000003")
    assert isinstance(row["cost_usd"], Decimal)
    assert row["requests"] == 10_003
    assert row["prompt_tokens"] == sum(range(10_000))


def test_totals_group_and_window(tmp_path: Path) -> None:
    rows = [
        record(
            0,
            served_model="deepseek/deepseek-v3.2",
            origin_country="CN",
            prompt_tokens=100,
            cached_tokens=40,
            cache_write_tokens=5,
            completion_tokens=20,
            reasoning_tokens=7,
            cost_usd=Decimal("0.0000364"),
            latency_ms=100.0,
            ttft_ms=10.0,
        ),
        record(
            1,
            served_model="deepseek/deepseek-v3.2",
            origin_country="CN",
            status=Status.ERROR,
            latency_ms=300.0,
        ),
        record(2, served_model="qwen/qwen3", origin_country="CN", status=Status.CANCELLED),
        record(3, served_model="openai/gpt-4.1", origin_country="US", cost_usd=Decimal("0.5")),
        record(4),  # never reached a deployment
        record(100, served_model="openai/gpt-4.1", origin_country="US", cost_usd=Decimal("9")),
    ]
    until = T0 + timedelta(seconds=50)

    async def check(store: SQLiteLedgerStore) -> None:
        await store.write(rows)
        by_model = await store.totals(until=until, by=["served_model"])
        assert [r["served_model"] for r in by_model] == [
            None,
            "deepseek/deepseek-v3.2",
            "openai/gpt-4.1",
            "qwen/qwen3",
        ]
        deepseek = by_model[1]
        assert deepseek == {
            "served_model": "deepseek/deepseek-v3.2",
            "requests": 2,
            "errors": 1,
            "prompt_tokens": 100,
            "cached_tokens": 40,
            "cache_write_tokens": 5,
            "completion_tokens": 20,
            "reasoning_tokens": 7,
            "cost_usd": Decimal("0.0000364"),
            "unpriced": 1,
            "avg_latency_ms": 200.0,
            "avg_ttft_ms": 10.0,
        }
        assert by_model[0]["avg_latency_ms"] is None

        by_two = await store.totals(
            since=T0 + timedelta(seconds=1), by=["origin_country", "status"]
        )
        assert [(r["origin_country"], r["status"], r["requests"]) for r in by_two] == [
            (None, Status.OK, 1),
            ("CN", Status.CANCELLED, 1),
            ("CN", Status.ERROR, 1),
            ("US", Status.OK, 2),
        ]
        assert isinstance(by_two[0]["status"], Status)
        us = by_two[-1]
        assert us["cost_usd"] == Decimal("9.5")

        everything = await store.totals()
        assert len(everything) == 1
        assert everything[0]["requests"] == 6
        assert everything[0]["errors"] == 1

    run(check, tmp_path / "ledger.db")


def test_totals_of_an_empty_ledger(tmp_path: Path) -> None:
    async def check(store: SQLiteLedgerStore) -> None:
        (row,) = await store.totals()
        assert row["requests"] == 0 and row["cost_usd"] == 0 and row["avg_latency_ms"] is None
        assert await store.totals(by=["maker"]) == []

    run(check, tmp_path / "ledger.db")


@pytest.mark.parametrize(
    "by",
    [
        ["api_key_id"],
        ["maker; DROP TABLE requests"],
        ['maker" FROM requests; --'],
        ["maker", "maker"],
        "maker",
    ],
)
def test_totals_rejects_names_outside_the_allow_list(tmp_path: Path, by: list[str]) -> None:
    async def check(store: SQLiteLedgerStore) -> None:
        await store.write([record(1)])
        with pytest.raises(InvalidRequestError) as caught:
            await store.totals(by=by)
        assert caught.value.param == "by"
        assert await store.count() == 1

    run(check, tmp_path / "ledger.db")


def test_ping_succeeds_on_a_writable_store(tmp_path: Path) -> None:
    async def check(store: SQLiteLedgerStore) -> None:
        await store.ping()
        await store.write([record(1)])
        await store.ping()
        assert await store.count() == 1

    run(check, tmp_path / "ledger.db")


def test_ping_fails_while_another_writer_holds_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"

    async def check() -> None:
        store = SQLiteLedgerStore(path, busy_timeout=0.05)
        await store.open()
        try:
            with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as other:
                other.execute("BEGIN IMMEDIATE")
                with pytest.raises(LedgerStoreError):
                    await store.ping()
                with pytest.raises(LedgerStoreError):
                    await store.write([record(1)])
                other.execute("ROLLBACK")
            await store.ping()
        finally:
            await store.close()

    asyncio.run(check())


def test_closed_store_refuses_calls_and_leaves_no_thread(tmp_path: Path) -> None:
    before = threading.active_count()

    async def check() -> None:
        store: LedgerStore = SQLiteLedgerStore(tmp_path / "ledger.db")
        with pytest.raises(LedgerStoreError, match="not open"):
            await store.ping()
        await store.open()
        await store.close()
        await store.close()  # idempotent
        with pytest.raises(LedgerStoreError):
            await store.ping()
        with pytest.raises(LedgerStoreError):
            await store.write([record(1)])
        with pytest.raises(LedgerStoreError):
            await store.open()

    asyncio.run(check())
    assert threading.active_count() == before
