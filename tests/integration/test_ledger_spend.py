"""`spend_since` and `usage_since`, the reads that rebuild limit counters after a restart, give
the same answers as a sum over the stored records, in SQLite and in PostgreSQL: for total and
period budgets, windows on a day or inside one, and ids with and without records."""

from __future__ import annotations

import dataclasses
import random
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from crossroads.ledger import spend_query, sqlite_rollups
from crossroads.ledger.record import LedgerRecord
from crossroads.ledger.spend_query import RecentUsage
from support.ledger_stores import T0, batches, random_record, run_postgres, run_sqlite
from support.postgres import Schema, fresh_schema

KEYS = ["cr_a", "cr_b", "cr_c", "cr_none"]
TEAMS = ["team-1", "team-2", "team-none"]
SINCES = [None, T0, T0 + timedelta(days=3), T0 + timedelta(hours=30, minutes=17, seconds=5)]


@pytest.fixture
def database() -> Iterator[Schema]:
    with fresh_schema("test_ledger_spend") as schema:
        yield schema


def expected_spend(
    records: list[LedgerRecord], column: str, ids: list[str], since: datetime | None
) -> dict[str, Decimal]:
    floor = None if since is None else since.replace(minute=0, second=0, microsecond=0)
    out: dict[str, Decimal] = {}
    for r in records:
        ident = getattr(r, column)
        if ident in ids and (floor is None or r.created_at >= floor):
            out[ident] = out.get(ident, Decimal(0)) + (r.cost_usd or 0)
    return out


def expected_usage(records: list[LedgerRecord], since: datetime) -> list[RecentUsage]:
    sums: dict[tuple[Any, Any], list[int]] = defaultdict(lambda: [0, 0])
    for r in records:
        if r.created_at < since or (r.api_key_id is None and r.team_id is None):
            continue
        if r.error_type == "rate_limit_error":
            continue
        row = sums[(r.api_key_id, r.team_id)]
        row[0] += 1
        row[1] += r.prompt_tokens + r.completion_tokens
    return sorted(
        (RecentUsage(k, t, n, tokens) for (k, t), (n, tokens) in sums.items()), key=_order
    )


def _order(u: RecentUsage) -> tuple[str, str]:
    return (u.api_key_id or "", u.team_id or "")


def answers(rng: random.Random) -> Any:
    records = [random_record(rng, n) for n in range(800)]
    limited = dataclasses.replace(
        records[0], request_id="limited", api_key_id="cr_a", error_type="rate_limit_error"
    )
    written = batches(rng, [*records, limited])

    async def body(store: Any) -> Any:
        for batch in written:
            await store.write(batch)
        stored = await store.recent(10**6)
        got, want = [], []
        for since in SINCES:
            for column, ids in (("api_key_id", KEYS), ("team_id", TEAMS)):
                got.append(await store.spend_since(column, ids, since))
                want.append(expected_spend(stored, column, ids, since))
        moment = T0 + timedelta(days=2, seconds=7)
        got.append(sorted(await store.usage_since(moment), key=_order))
        want.append(expected_usage(stored, moment))
        with pytest.raises(ValueError):
            await store.spend_since("served_model", ["x"], None)
        return got, want

    return body


def test_sqlite_spend_and_usage_match_the_records(tmp_path: Path) -> None:
    got, want = run_sqlite(tmp_path, answers(random.Random(5)))
    assert got == want
    assert any(row for row in got[:-1])  # not all empty


def test_postgres_spend_and_usage_match_the_records(database: Schema) -> None:
    got, want = run_postgres(database, answers(random.Random(5)))
    assert got == want


def test_the_restated_bucket_sizes_match_the_rollups() -> None:
    assert (spend_query.HOUR_US, spend_query.DAY_US) == (
        sqlite_rollups.HOUR_US,
        sqlite_rollups.DAY_US,
    )
