"""The ledger's rollups: equal to the same sums computed from the raw records, however the
records arrive (random batches, repeated ids, retried batches), rebuilt identically by the
backfill, created by the migrations from an empty database and when upgrading one."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import sqlite3
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import pytest

from crossroads.errors import InvalidRequestError
from crossroads.ledger import histogram
from crossroads.ledger.migrations import MIGRATIONS, m001_create_requests, migrate
from crossroads.ledger.record import LedgerRecord, Status, UsageSource
from crossroads.ledger.sqlite import SQLiteLedgerStore
from crossroads.ledger.sqlite_rollups import HIST_COLUMNS, SUM_COLUMNS, TABLES
from crossroads.ledger.sqlite_rows import COLUMNS, encode
from crossroads.ledger.store import ROLLUP_DIMENSIONS, ROLLUP_METRICS, LedgerStoreError

T = TypeVar("T")
T0 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)  # a Monday
DIMS = sorted(ROLLUP_DIMENSIONS)
FLOATS = {"latency_ms_sum", "ttft_ms_sum"}
HOUR = timedelta(hours=1)
TABLE_NAMES = ("rollup_hourly", "rollup_daily", "rollup_hourly_served", "rollup_daily_served")


def run(path: Path, body: Callable[[SQLiteLedgerStore], Awaitable[T]]) -> T:
    async def main() -> T:
        store = SQLiteLedgerStore(path)
        await store.open()
        try:
            return await body(store)
        finally:
            await store.close()

    return asyncio.run(main())


def random_record(rng: random.Random, n: int, days: int = 10) -> LedgerRecord:
    def maybe(values: Sequence[Any]) -> Any:
        return rng.choice([None, *values])

    served = maybe(["deepseek/deepseek-v3.2", "openai/gpt-4.1", "moonshotai/kimi-k2-0905"])
    cost = None if rng.random() < 0.2 else Decimal(rng.randrange(0, 10**9)).scaleb(-10)
    latency = (
        None
        if rng.random() < 0.1
        else rng.choice([0.0, 1.0, 2 ** (3 / 4)]) + (10 ** rng.uniform(-1, 6.5))
    )
    return LedgerRecord(
        request_id=f"req_{n:08d}",
        created_at=T0 + timedelta(microseconds=rng.randrange(days * 86_400 * 10**6)),
        endpoint="chat.completions",
        requested_model="any",
        stream=rng.random() < 0.5,
        status=rng.choice([Status.OK, Status.OK, Status.OK, Status.ERROR, Status.CANCELLED]),
        served_model=served,
        deployment=maybe(["dep-a", "dep-b"]),
        provider=maybe(["deepseek", "together"]),
        host_jurisdiction=maybe(["CN", "US"]),
        maker=maybe(["deepseek", "openai"]),
        origin_country=maybe(["CN", "US"]),
        open_weights=maybe([True, False]),
        prompt_tokens=rng.randrange(0, 50_000),
        cached_tokens=rng.randrange(0, 1000),
        cache_write_tokens=rng.randrange(0, 100),
        completion_tokens=rng.randrange(0, 5000),
        reasoning_tokens=rng.randrange(0, 100),
        cost_usd=cost,
        latency_ms=latency,
        ttft_ms=None if rng.random() < 0.5 else rng.uniform(0, 5000),
        api_key_id=maybe(["cr_a", "cr_b", "cr_c"]),
        team_id=maybe(["team-1", "team-2"]),
        baseline_model=maybe(["anthropic/claude-sonnet-4.5"]),
        baseline_cost_usd=None if rng.random() < 0.3 else Decimal(rng.randrange(10**9)).scaleb(-10),
        upstream_cost_usd=None if rng.random() < 0.7 else Decimal(rng.randrange(10**8)).scaleb(-10),
        usage_source=maybe([UsageSource.REPORTED, UsageSource.ESTIMATED]),
    )


def bucket_of(moment: datetime, interval: str | None) -> datetime | None:
    if interval is None:
        return None
    hour = moment.replace(minute=0, second=0, microsecond=0)
    if interval == "hour":
        return hour
    day = hour.replace(hour=0)
    return day if interval == "day" else day - timedelta(days=day.weekday())


def reference(
    records: Iterable[LedgerRecord],
    since: datetime | None,
    until: datetime | None,
    interval: str | None,
    by: Sequence[str],
) -> dict[tuple[Any, ...], dict[str, Any]]:
    """The rollup rows computed from raw records, keyed by (bucket_start, *group keys)."""
    low = None if since is None else since.replace(minute=0, second=0, microsecond=0)
    high = None if until is None else until.replace(minute=0, second=0, microsecond=0)
    if until is not None and high is not None and high != until:
        high += HOUR
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in records:
        if (low is not None and r.created_at < low) or (high is not None and r.created_at >= high):
            continue
        key = (bucket_of(r.created_at, interval), *(getattr(r, name) for name in by))
        row = rows.setdefault(key, {m: 0 for m in ROLLUP_METRICS} | {"hist": [0] * 82})
        row["latency_ms_sum"] = row["latency_ms_sum"] or 0.0
        row["ttft_ms_sum"] = row["ttft_ms_sum"] or 0.0
        for money in ("cost_usd", "baselined_cost_usd", "baseline_cost_usd", "upstream_cost_usd",
                      "estimated_cost_usd"):  # fmt: skip
            row[money] = row[money] or Decimal(0)
        row["requests"] += 1
        row["errors"] += r.status == Status.ERROR
        row["cancelled"] += r.status == Status.CANCELLED
        for name in ("prompt", "cached", "cache_write", "completion", "reasoning"):
            row[f"{name}_tokens"] += getattr(r, f"{name}_tokens")
        if r.cost_usd is not None:
            row["cost_usd"] += r.cost_usd
            row["priced_requests"] += 1
            if r.baseline_cost_usd is not None:
                row["baselined_requests"] += 1
                row["baselined_cost_usd"] += r.cost_usd
                row["baseline_cost_usd"] += r.baseline_cost_usd
        if r.upstream_cost_usd is not None:
            row["upstream_cost_usd"] += r.upstream_cost_usd
            row["upstream_priced_requests"] += 1
        if r.usage_source is UsageSource.ESTIMATED:
            row["estimated_requests"] += 1
            row["estimated_cost_usd"] += r.cost_usd or 0
        if r.latency_ms is not None:
            row["latency_count"] += 1
            row["latency_us"] = row.get("latency_us", 0) + round(r.latency_ms * 1000)
            row["latency_ms_sum"] = row["latency_us"] / 1000  # kept in whole microseconds
            row["hist"][histogram.bucket_of(r.latency_ms)] += 1
        if r.ttft_ms is not None:
            row["ttft_count"] += 1
            row["ttft_us"] = row.get("ttft_us", 0) + round(r.ttft_ms * 1000)
            row["ttft_ms_sum"] = row["ttft_us"] / 1000
    return rows


def assert_matches(
    got: list[dict[str, Any]], expected: dict[tuple[Any, ...], dict[str, Any]], by: Sequence[str]
) -> None:
    keyed = {(row.get("bucket_start"), *(row[name] for name in by)): row for row in got}
    assert len(keyed) == len(got), "a group appears twice"
    assert set(keyed) == set(expected)
    for key, want in expected.items():
        row = keyed[key]
        for metric in ROLLUP_METRICS:
            assert row[metric] == want[metric], (key, metric)
            expected_type = float if metric in FLOATS else type(want[metric])
            assert type(row[metric]) is expected_type, (key, metric)
        if "latency_histogram" in row:
            assert list(row["latency_histogram"]) == want["hist"], key


async def write_randomly(
    store: SQLiteLedgerStore, rng: random.Random, count: int
) -> list[LedgerRecord]:
    """Writes `count` distinct records in random batches that repeat ids (within a batch, across
    batches, with different content; some batches are written twice) and returns what the ledger
    must hold: the first write of each id."""
    records = [random_record(rng, n) for n in range(count)]
    first: dict[str, LedgerRecord] = {}
    position = 0
    while position < count:
        size = rng.randrange(1, 60)
        batch = records[position : position + size]
        position += size
        for _ in range(rng.randrange(0, 4)):
            clash = dataclasses.replace(
                rng.choice(records[:position]), prompt_tokens=10**9, cost_usd=Decimal(9)
            )
            batch.insert(rng.randrange(len(batch) + 1), clash)
        for record in batch:
            first.setdefault(record.request_id, record)
        await store.write(batch)
        if rng.random() < 0.2:
            await store.write(batch)  # a retried batch changes nothing
    return list(first.values())


async def dump(store: SQLiteLedgerStore) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of both rollup tables, read with a connection of our own."""
    await store.count()  # let queued writes finish
    with contextlib.closing(sqlite3.connect(store.path)) as conn:
        return {
            table: sorted(conn.execute(f"SELECT * FROM {table}").fetchall())
            for table in (
                "rollup_hourly",
                "rollup_daily",
                "rollup_hourly_served",
                "rollup_daily_served",
            )
        }


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_rollups_equal_sums_of_the_raw_records(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)

    async def check(store: SQLiteLedgerStore) -> None:
        stored = await write_randomly(store, rng, 600)
        assert await store.count() == len(stored)
        for interval in (None, "hour", "day", "week"):
            got = await store.rollup(interval=interval, by=DIMS, histogram=True)
            assert_matches(got, reference(stored, None, None, interval, DIMS), DIMS)
        (total,) = await store.rollup()
        assert total["requests"] == len(stored)
        assert "latency_histogram" not in total and "bucket_start" not in total

    run(tmp_path / "ledger.db", check)


@pytest.mark.parametrize("seed", [4, 5])
def test_windows_that_cut_days_combine_daily_and_hourly_rollups(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)

    async def check(store: SQLiteLedgerStore) -> None:
        stored = await write_randomly(store, rng, 500)
        for _ in range(12):
            since = T0 + timedelta(minutes=rng.randrange(-600, 8 * 1440))
            until = since + timedelta(minutes=rng.randrange(1, 5 * 1440))
            for interval in (None, "hour", "day", "week"):
                by = rng.sample(DIMS, rng.randrange(0, 3))
                got = await store.rollup(since, until, interval, by, histogram=True)
                want = reference(stored, since, until, interval, by)
                if not want and not by and interval is None:
                    assert [r["requests"] for r in got] == [0]
                    continue
                assert_matches(got, want, by)
            for low, high in ((since, None), (None, until)):
                assert_matches(
                    await store.rollup(low, high, "day", ["status"]),
                    reference(stored, low, high, "day", ["status"]),
                    ["status"],
                )

    run(tmp_path / "ledger.db", check)


def test_rows_come_ordered_by_bucket_then_keys_with_none_first(tmp_path: Path) -> None:
    rng = random.Random(9)

    async def check(store: SQLiteLedgerStore) -> None:
        await write_randomly(store, rng, 300)
        rows = await store.rollup(interval="day", by=["provider", "open_weights"])

        def order(row: dict[str, Any]) -> tuple[Any, ...]:
            provider, weights = row["provider"], row["open_weights"]
            weight_key = "" if weights is None else ("open" if weights else "closed")
            return (row["bucket_start"], provider or "", weight_key)

        assert rows == sorted(rows, key=order)
        assert {type(r["bucket_start"]) for r in rows} == {datetime}
        assert all(r["bucket_start"].tzinfo is not None for r in rows)

    run(tmp_path / "ledger.db", check)


def test_rebuild_recreates_identical_rollups(tmp_path: Path) -> None:
    rng = random.Random(7)

    async def check(store: SQLiteLedgerStore) -> None:
        stored = await write_randomly(store, rng, 800)
        incremental = await dump(store)
        assert await store.rebuild_rollups() == len(stored)
        assert await dump(store) == incremental
        assert incremental["rollup_hourly"] and incremental["rollup_daily"]

    run(tmp_path / "ledger.db", check)


def test_upgrading_a_ledger_backfills_its_rollups(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    rng = random.Random(11)
    old = [
        dataclasses.replace(
            random_record(rng, n),
            team_id=None,
            baseline_model=None,
            baseline_cost_usd=None,
            upstream_cost_usd=None,
            usage_source=None,
        )
        for n in range(400)
    ]
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        assert migrate(conn, [m001_create_requests]) == ["m001_create_requests"]
        insert_old_rows(conn, old, COLUMNS[:-5])

    async def check(store: SQLiteLedgerStore) -> None:
        assert await store.count() == len(old)
        got = await store.rollup(interval="hour", by=DIMS, histogram=True)
        assert_matches(got, reference(old, None, None, "hour", DIMS), DIMS)
        assert await store.recent(1) == [max(old, key=lambda r: (r.created_at, r.request_id))]

    run(path, check)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        names = [row[0] for row in conn.execute("SELECT name FROM _migrations ORDER BY rowid")]
    assert names == [m.__name__ for m in MIGRATIONS]


def insert_old_rows(
    conn: sqlite3.Connection, records: Sequence[LedgerRecord], columns: Sequence[str]
) -> None:
    """Inserts `records` as a ledger of an older schema holds them: only its `columns` (the
    first ones of today's `COLUMNS`), written without touching the rollups."""
    marks = ", ".join("?" * len(columns))
    conn.executemany(
        f"INSERT INTO requests ({', '.join(columns)}) VALUES ({marks})",
        [encode(r)[: len(columns)] for r in records],
    )


def test_upgrading_from_the_previous_schema_adds_usage_source_and_estimate_sums(
    tmp_path: Path,
) -> None:
    """A ledger at m003 (no usage_source, rollups without the estimate sums) with rows in it:
    opening it adds the column (NULL in the old rows), recreates the rollups with
    `estimated_requests` and `estimated_cost_usd` and refills them from every old row; new
    records then count in them."""
    path = tmp_path / "ledger.db"
    rng = random.Random(13)
    old = [dataclasses.replace(random_record(rng, n), usage_source=None) for n in range(300)]
    new = [random_record(rng, n) for n in range(300, 600)]
    old_sums = [c for c in SUM_COLUMNS if not c.startswith("estimated_")]
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        assert migrate(conn, MIGRATIONS[:3]) == [m.__name__ for m in MIGRATIONS[:3]]
        for table, _, keys in TABLES:  # the rollups exactly as m003 made them before
            conn.execute(f"DROP TABLE {table}")
            columns = [
                "bucket_start INTEGER NOT NULL",
                *(f"{name} TEXT NOT NULL" for name in keys),
                *(f"{name} INTEGER NOT NULL" for name in (*old_sums, *HIST_COLUMNS)),
                f"PRIMARY KEY (bucket_start, {', '.join(keys)})",
            ]
            conn.execute(f"CREATE TABLE {table} ({', '.join(columns)}) WITHOUT ROWID")
        insert_old_rows(conn, old, COLUMNS[:-1])

    async def check(store: SQLiteLedgerStore) -> None:
        assert {r.usage_source for r in await store.recent(1000)} == {None}
        got = await store.rollup(interval="day", by=DIMS, histogram=True)
        assert_matches(got, reference(old, None, None, "day", DIMS), DIMS)
        assert sum(row["estimated_requests"] for row in got) == 0
        await store.write(new)
        got = await store.rollup(interval="hour", by=DIMS, histogram=True)
        assert_matches(got, reference([*old, *new], None, None, "hour", DIMS), DIMS)
        (total,) = await store.rollup()
        estimated = [r for r in new if r.usage_source is UsageSource.ESTIMATED]
        assert total["estimated_requests"] == len(estimated) > 0
        assert total["estimated_cost_usd"] == sum(r.cost_usd or 0 for r in estimated) > 0

    run(path, check)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        names = [row[0] for row in conn.execute("SELECT name FROM _migrations ORDER BY rowid")]
        columns = {row[1] for row in conn.execute("PRAGMA table_info(rollup_daily_served)")}
    assert names == [m.__name__ for m in MIGRATIONS]
    assert {"estimated_requests", "estimated_cost_units"} <= columns


def test_migrations_from_empty_create_the_rollup_tables(tmp_path: Path) -> None:
    full = ["api_key_id", "team_id", "served_model", "deployment", "maker", "origin_country",
            "open_weights", "provider", "host_jurisdiction", "status"]  # fmt: skip
    with contextlib.closing(sqlite3.connect(tmp_path / "ledger.db")) as conn:
        migrate(conn)
        for table, keys in (
            ("rollup_hourly", full),
            ("rollup_daily", full),
            ("rollup_hourly_served", full[2:]),
            ("rollup_daily_served", full[2:]),
        ):
            info = conn.execute(f"PRAGMA table_info({table})").fetchall()
            primary = [row[1] for row in sorted(info, key=lambda row: row[5]) if row[5]]
            assert primary == ["bucket_start", *keys]
            columns = {row[1] for row in info}
            assert {f"lat_b{i:02d}" for i in range(histogram.BUCKET_COUNT)} <= columns
            assert {"requests", "cost_units", "baseline_cost_units", "ttft_count"} <= columns
            assert {"estimated_requests", "estimated_cost_units"} <= columns
            assert all(row[3] for row in info), "every rollup column is NOT NULL"
            assert conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone() == (0,)


def test_a_rejected_batch_changes_no_rollup(tmp_path: Path) -> None:
    good = random_record(random.Random(1), 1)
    naive = dataclasses.replace(good, request_id="naive", created_at=datetime(2026, 1, 1))

    async def check(store: SQLiteLedgerStore) -> None:
        await store.write([good])
        before = await dump(store)
        with pytest.raises(ValueError):
            await store.write([random_record(random.Random(2), 2), naive])
        await store.write([good])  # only a duplicate: nothing to add
        assert await dump(store) == before

    run(tmp_path / "ledger.db", check)


def test_sql_buckets_agree_with_python_at_every_bound(tmp_path: Path) -> None:
    bounds = histogram.upper_bounds()
    values = [0.0, -1.0, 1e9, *bounds, *(b * (1 - 1e-12) for b in bounds)]
    records = [
        dataclasses.replace(random_record(random.Random(n), n), latency_ms=value, created_at=T0)
        for n, value in enumerate(values)
    ]
    expected = [0] * histogram.BUCKET_COUNT
    for value in values:
        expected[histogram.bucket_of(value)] += 1

    async def check(store: SQLiteLedgerStore) -> None:
        await store.write(records)
        (row,) = await store.rollup(histogram=True)
        assert list(row["latency_histogram"]) == expected

    run(tmp_path / "ledger.db", check)
    assert histogram.bucket_of(1.0) == 1 and histogram.bucket_of(0.999) == 0
    assert histogram.bucket_of(2.0**20) == histogram.BUCKET_COUNT - 1


def test_rollup_span_covers_the_hours_with_data(tmp_path: Path) -> None:
    records = [
        dataclasses.replace(random_record(random.Random(n), n), created_at=moment)
        for n, moment in enumerate(
            [T0 + timedelta(minutes=30), T0 + timedelta(days=2, hours=5, minutes=59)]
        )
    ]

    async def check(store: SQLiteLedgerStore) -> None:
        assert await store.rollup_span() is None
        await store.write(records)
        assert await store.rollup_span() == (T0, T0 + timedelta(days=2, hours=6))
        assert await store.rollup_span(since=T0 + timedelta(hours=1)) == (
            T0 + timedelta(days=2, hours=5),
            T0 + timedelta(days=2, hours=6),
        )
        assert await store.rollup_span(until=T0 + timedelta(minutes=1)) == (T0, T0 + HOUR)
        assert await store.rollup_span(since=T0 + timedelta(days=3)) is None

    run(tmp_path / "ledger.db", check)


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"by": ["request_id"]}, "by"),
        ({"by": ["maker; DROP TABLE requests"]}, "by"),
        ({"by": ['status" FROM rollup_daily; --']}, "by"),
        ({"by": ["maker", "maker"]}, "by"),
        ({"by": "maker"}, "by"),
        ({"interval": "month"}, "interval"),
        ({"since": datetime(2026, 1, 1)}, "since"),
        ({"until": datetime(2026, 1, 1)}, "until"),
    ],
)
def test_rollup_rejects_what_is_not_allowed(
    tmp_path: Path, kwargs: dict[str, Any], param: str
) -> None:
    async def check(store: SQLiteLedgerStore) -> None:
        await store.write([random_record(random.Random(1), 1)])
        with pytest.raises(InvalidRequestError) as caught:
            await store.rollup(**kwargs)
        assert caught.value.param == param
        assert await store.count() == 1

    run(tmp_path / "ledger.db", check)


def test_a_reader_store_refuses_files_that_are_not_ledgers(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    with contextlib.closing(sqlite3.connect(other)) as conn:
        conn.execute("CREATE TABLE t (x)")

    async def check(path: Path) -> None:
        store = SQLiteLedgerStore(path, create=False)
        with pytest.raises(LedgerStoreError):
            await store.open()
        await store.close()

    for path in (tmp_path / "missing.db", other, Path(__file__)):
        asyncio.run(check(path))
    assert not (tmp_path / "missing.db").exists()
    with contextlib.closing(sqlite3.connect(other)) as conn:
        assert [row[0] for row in conn.execute("SELECT name FROM sqlite_master")] == ["t"]


def test_baseline_and_upstream_costs_are_range_checked(tmp_path: Path) -> None:
    base = random_record(random.Random(1), 1)

    async def check(store: SQLiteLedgerStore) -> None:
        for field in ("baseline_cost_usd", "upstream_cost_usd"):
            for bad in (Decimal("1e12"), Decimal("NaN")):
                with pytest.raises(ValueError, match=field):
                    await store.write([dataclasses.replace(base, **{field: bad})])
        assert await store.count() == 0

    run(tmp_path / "ledger.db", check)
