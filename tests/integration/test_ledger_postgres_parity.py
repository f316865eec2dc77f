"""The PostgreSQL ledger store gives the same answer as the SQLite store to every query (`count`,
`recent`, `totals`, `rollup`, `rollup_span`) after both take the same random batches, repeats and
retries included (usage reported, estimated or unknown, so the estimate sums and `usage_source`
groups are compared too); and buckets latencies exactly as `histogram.bucket_of` does."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from crossroads.ledger import histogram
from crossroads.ledger.postgres import PostgresLedgerStore
from crossroads.ledger.store import GROUP_BY_FIELDS, ROLLUP_DIMENSIONS
from support.ledger_stores import (
    FULL,
    T0,
    assert_same,
    batches,
    random_record,
    run_postgres,
    run_sqlite,
)
from support.postgres import Schema, fresh_schema

DIMS = sorted(ROLLUP_DIMENSIONS)
# For the parity test: FULL's extremes would overflow SQLite's 64-bit sums.
ODD = dataclasses.replace(FULL, prompt_tokens=123_456, cost_usd=Decimal("12.3456789012"))
BEFORE_1970 = dataclasses.replace(
    ODD, request_id="old", created_at=datetime(1969, 12, 31, 23, 30, 0, 1, tzinfo=UTC)
)
INFINITE = dataclasses.replace(ODD, request_id="inf", latency_ms=float("inf"), ttft_ms=None)


@pytest.fixture
def database() -> Iterator[Schema]:
    with fresh_schema("test_ledger_parity") as schema:
        yield schema


async def answers(store: Any, rng: random.Random) -> list[Any]:
    """The same queries, in the same order, as a list of their answers."""
    out: list[Any] = [await store.count(), await store.rollup_span(), await store.totals()]
    out.append(await store.totals(by=["usage_source", "served_model"]))
    out.append(await store.recent(5000))
    for _ in range(8):
        since = T0 + timedelta(minutes=rng.randrange(-2000, 10 * 1440))
        until = since + timedelta(minutes=rng.randrange(1, 6 * 1440))
        by = rng.sample(sorted(GROUP_BY_FIELDS), rng.randrange(0, 4))
        out += [
            await store.totals(since, until, by),
            await store.totals(None, until, by),
            await store.recent(rng.randrange(0, 50), since),
            await store.rollup_span(since, until),
        ]
        for interval in (None, "hour", "day", "week"):
            dims = rng.sample(DIMS, rng.randrange(0, 4))
            out.append(await store.rollup(since, until, interval, dims, histogram=True))
            out.append(await store.rollup(None, until, interval, dims))
            out.append(await store.rollup(since, None, interval, dims, histogram=True))
    for interval in (None, "hour", "day", "week"):
        out.append(await store.rollup(interval=interval, by=DIMS, histogram=True))
    out.append(await store.totals(by=sorted(GROUP_BY_FIELDS)))
    return out


@pytest.mark.parametrize("seed", [11, 12])
def test_postgres_answers_every_query_as_sqlite_does(
    database: Schema, tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    records = [random_record(rng, n) for n in range(1500)] + [ODD, BEFORE_1970, INFINITE]
    written = batches(rng, records)

    async def fill(store: Any) -> list[Any]:
        for batch in written:
            await store.write(batch)
        return await answers(store, random.Random(seed))

    want = run_sqlite(tmp_path, fill)
    got = run_postgres(database, fill)
    assert want[0] == len(records)
    assert_same(got, want)


def test_sql_buckets_agree_with_python_at_every_bound(database: Schema) -> None:
    bounds = histogram.upper_bounds()
    values = [0.0, -1.0, 1e9, float("inf"), *bounds, *(b * (1 - 1e-12) for b in bounds)]
    records = [
        dataclasses.replace(ODD, request_id=f"b{n}", latency_ms=value)
        for n, value in enumerate(values)
    ]
    expected = [0] * histogram.BUCKET_COUNT
    for value in values[:3] + values[4:]:  # an infinite latency is not counted, as in SQLite
        expected[histogram.bucket_of(value)] += 1

    async def body(store: PostgresLedgerStore) -> dict[str, Any]:
        await store.write(records)
        (row,) = await store.rollup(histogram=True)
        return row

    row = run_postgres(database, body)
    assert list(row["latency_histogram"]) == expected
    assert row["latency_count"] == len(values) - 1
