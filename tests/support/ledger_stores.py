"""Ledger test data and store runners shared by the ledger store tests: a record with every
field set, random records, batches that repeat ids the way retries and replicas do, a comparison
that tolerates float summation order, and helpers that open a store, run a body and close it."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import pytest

from crossroads.ledger import histogram
from crossroads.ledger.postgres import PostgresLedgerStore
from crossroads.ledger.record import LedgerRecord, Status, UsageSource
from crossroads.ledger.sqlite import SQLiteLedgerStore
from crossroads.ledger.store import MAX_COST_USD
from support.postgres import Schema

T = TypeVar("T")
T0 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)  # a Monday

FULL = LedgerRecord(  # every field set, at the edges of its range
    request_id="chatcmpl-full",
    created_at=datetime(2026, 2, 3, 4, 5, 6, 789012, tzinfo=timezone(timedelta(hours=-5))),
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
    open_weights=False,
    prompt_tokens=2**62,
    cached_tokens=100_000,
    cache_write_tokens=2_000,
    completion_tokens=7_890,
    reasoning_tokens=4_321,
    cost_usd=MAX_COST_USD,
    latency_ms=1234.5678901234,
    ttft_ms=0.1 + 0.2,  # a float with no short decimal form must survive too
    http_status=502,
    error_type="upstream_error",
    error_message="upstream said: ünïcödé \u2013 'quotes' \"and\" ; DROP TABLE requests",
    attempts=3,
    api_key_id="cr_live_abc",
    team_id="team-research",
    baseline_model="anthropic/claude-sonnet-4.5",
    baseline_cost_usd=Decimal("-0.4893525"),
    upstream_cost_usd=Decimal("0.0000000001"),
    usage_source=UsageSource.REPORTED,
)


def run_postgres(db: Schema, body: Callable[[PostgresLedgerStore], Awaitable[T]]) -> T:
    """Opens a PostgreSQL ledger store on `db`, runs `body(store)` and always closes it."""

    async def main() -> T:
        store = PostgresLedgerStore(db.url, server_settings=db.settings)
        await store.open()
        try:
            return await body(store)
        finally:
            await store.close()

    return asyncio.run(main())


def run_sqlite(tmp_path: Path, body: Callable[[SQLiteLedgerStore], Awaitable[T]]) -> T:
    """Opens a SQLite ledger store in `tmp_path`, runs `body(store)` and always closes it."""

    async def main() -> T:
        store = SQLiteLedgerStore(tmp_path / "ledger.sqlite3")
        await store.open()
        try:
            return await body(store)
        finally:
            await store.close()

    return asyncio.run(main())


def random_record(rng: random.Random, n: int) -> LedgerRecord:
    """Record `n` with random fields: keys in mixed case and beyond ASCII (so sort orders show),
    times over ten days from a day before `T0`, latencies on histogram bounds, negative costs."""

    def maybe(*values: Any) -> Any:
        return rng.choice([None, *values])

    def money(scale: int, none: float) -> Decimal | None:
        return None if rng.random() < none else Decimal(rng.randrange(-9, scale)).scaleb(-10)

    latency = maybe(0.0, 1.0, rng.choice(histogram.upper_bounds()), 10 ** rng.uniform(-1, 6.5))
    return LedgerRecord(
        request_id=rng.choice(["req_", "Req-", "r\u00e9q_", "req_a"]) + f"{n:06d}",
        created_at=T0 + timedelta(microseconds=rng.randrange(-86_400 * 10**6, 9 * 86_400 * 10**6)),
        endpoint=rng.choice(["chat.completions", "messages"]),
        requested_model=rng.choice(["any", "Any", "kimi"]),
        stream=rng.random() < 0.5,
        status=rng.choice([Status.OK, Status.OK, Status.ERROR, Status.CANCELLED]),
        served_model=maybe("deepseek/deepseek-v3.2", "Openai/gpt-4.1", "moonshotai/kimi-k2"),
        deployment=maybe("dep-a", "dep-b", "Dep-c"),
        provider=maybe("deepseek", "together", "Zeta", "\u00e9tat"),
        host_jurisdiction=maybe("CN", "US"),
        maker=maybe("deepseek", "openai"),
        origin_country=maybe("CN", "US"),
        open_weights=maybe(True, False),
        prompt_tokens=rng.randrange(0, 50_000),
        cached_tokens=rng.randrange(0, 1000),
        cache_write_tokens=rng.randrange(0, 100),
        completion_tokens=rng.randrange(0, 5000),
        reasoning_tokens=rng.randrange(0, 100),
        cost_usd=money(10**9, 0.2),
        latency_ms=latency,
        ttft_ms=None if rng.random() < 0.5 else rng.uniform(0, 5000),
        api_key_id=maybe("cr_a", "cr_b", "cr_c"),
        team_id=maybe("team-1", "team-2"),
        baseline_model=maybe("anthropic/claude-sonnet-4.5"),
        baseline_cost_usd=money(10**9, 0.3),
        upstream_cost_usd=money(10**8, 0.7),
        usage_source=maybe(UsageSource.REPORTED, UsageSource.ESTIMATED),
    )


def batches(rng: random.Random, records: Sequence[LedgerRecord]) -> list[list[LedgerRecord]]:
    """`records` cut into random batches (up to 500) that repeat ids within and across batches
    with different content, some batches twice: the writer's retries and overlaps."""
    out: list[list[LedgerRecord]] = []
    position = 0
    while position < len(records):
        size = rng.randrange(1, 500)
        batch = list(records[position : position + size])
        position += size
        for _ in range(rng.randrange(0, 4)):
            clash = dataclasses.replace(rng.choice(records[:position]), prompt_tokens=10**9)
            batch.insert(rng.randrange(len(batch) + 1), clash)
        out += [batch] * (2 if rng.random() < 0.2 else 1)
    return out


def assert_same(got: Any, want: Any, where: str = "") -> None:
    """Equal, with the same types; floats to 1e-9 relative (sums may add in another order)."""
    assert type(got) is type(want), (where, got, want)
    if isinstance(want, float):
        assert got == pytest.approx(want, rel=1e-9, abs=1e-9), where
    elif isinstance(want, dict):
        assert list(got) == list(want), where
        for key in want:
            assert_same(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, list | tuple):
        assert len(got) == len(want), (where, len(got), len(want))
        for i, (a, b) in enumerate(zip(got, want, strict=True)):
            assert_same(a, b, f"{where}[{i}]")
    else:
        assert got == want, where
