"""Seeding budget and rate counters from the ledger (`governance/seeding.py`): budget keys
taken apart again, one ledger read shared by concurrent requests, set-if-absent seeding, and the
rate windows of the last minute."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from crossroads.governance.budgets import budget_key, parse_budget_key
from crossroads.governance.counters import MemoryCounters, Reservation, Unseeded, WindowCheck
from crossroads.governance.model import Limits
from crossroads.governance.seeding import Seeder
from crossroads.ledger.spend_query import RecentUsage


@pytest.mark.parametrize(
    ("period", "now", "bucket", "since"),
    [
        ("day", datetime(2026, 11, 29, 23, 59, tzinfo=UTC), "2026-11-29", datetime(2026, 11, 29)),
        ("week", datetime(2026, 1, 1, 12, tzinfo=UTC), "2026-W01", datetime(2025, 12, 29)),
        ("week", datetime(2027, 1, 1, tzinfo=UTC), "2026-W53", datetime(2026, 12, 28)),
        ("month", datetime(2026, 2, 28, 5, tzinfo=UTC), "2026-02", datetime(2026, 2, 1)),
        ("total", datetime(2026, 2, 28, tzinfo=UTC), "total", None),
    ],
)
def test_a_budget_key_names_its_holder_and_when_its_period_began(
    period: str, now: datetime, bucket: str, since: datetime | None
) -> None:
    for scope, kind, ident in (("key:AbC123", "key", "AbC123"), ("team:a:b", "team", "a:b")):
        key = budget_key(scope, period, now)  # type: ignore[arg-type]
        assert key == f"budget:{scope}:{bucket}"
        parsed = parse_budget_key(key)
        assert (parsed.kind, parsed.id, parsed.period, parsed.bucket) == (
            kind,
            ident,
            period,
            bucket,
        )
        assert parsed.since == (None if since is None else since.replace(tzinfo=UTC))
        assert parsed.key == key and parsed.scope == scope


@pytest.mark.parametrize("key", ["rpm:key:a", "budget:user:a:total", "budget:key::total", "x"])
def test_other_keys_are_not_budget_keys(key: str) -> None:
    with pytest.raises(ValueError):
        parse_budget_key(key)


class Ledger:
    """What the ledger would answer, and how often it was asked."""

    def __init__(self, spend: dict[str, Decimal], usage: Sequence[RecentUsage] = ()) -> None:
        self.spend = spend
        self.usage = list(usage)
        self.reads: list[tuple[str, list[str], datetime | None]] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def spend_since(
        self, scope: str, ids: Sequence[str], since: datetime | None = None
    ) -> dict[str, Decimal]:
        self.reads.append((scope, list(ids), since))
        await self.gate.wait()
        return {i: self.spend[i] for i in ids if i in self.spend}

    async def usage_since(self, since: datetime) -> list[RecentUsage]:
        return self.usage


def test_concurrent_requests_share_one_ledger_read_and_seed_once() -> None:
    counters = MemoryCounters()
    ledger = Ledger({"a": Decimal("0.1234564")})
    seeder = Seeder(counters, ledger, list)
    key = "budget:key:a:2026-11"

    async def main() -> None:
        ledger.gate.clear()
        waiting = [asyncio.create_task(seeder.seed_budgets([key])) for _ in range(20)]
        await asyncio.sleep(0.01)
        ledger.gate.set()
        await asyncio.gather(*waiting)
        assert await counters.spent(key) == 123457  # micro-dollars, rounded up
        assert ledger.reads == [("api_key_id", ["a"], datetime(2026, 11, 1, tzinfo=UTC))]
        hold = Reservation(key, 10, 1_000_000, ttl=60)
        assert await counters.admit([], [hold], seeded_only=True) is None

    asyncio.run(main())


def test_a_failed_read_reaches_every_waiting_request_and_is_tried_again() -> None:
    counters = MemoryCounters()

    class Down(Ledger):
        async def spend_since(
            self, scope: str, ids: Sequence[str], since: datetime | None = None
        ) -> dict[str, Decimal]:
            self.reads.append((scope, list(ids), since))
            await asyncio.sleep(0.01)
            raise OSError("ledger down")

    ledger = Down({})
    seeder = Seeder(counters, ledger, list)

    async def main() -> None:
        results = await asyncio.gather(
            *(seeder.seed_budgets(["budget:team:t:total"]) for _ in range(5)),
            return_exceptions=True,
        )
        assert all(isinstance(r, OSError) for r in results)
        assert len(ledger.reads) == 1
        with pytest.raises(OSError):
            await seeder.seed_budgets(["budget:team:t:total"])
        assert len(ledger.reads) == 2
        hold = Reservation("budget:team:t:total", 1, 10, ttl=60)
        assert await counters.admit([], [hold], seeded_only=True) == Unseeded(
            ("budget:team:t:total",)
        )

    asyncio.run(main())


def test_seed_all_seeds_every_known_budget_and_the_last_minutes_windows() -> None:
    counters = MemoryCounters(lambda: 1_000_000.0)  # a fixed clock: one window throughout
    now = datetime(2026, 11, 29, 10, tzinfo=UTC)
    holders = [
        ("key:a", Limits(budget_usd=Decimal(5), budget_period="day", rpm=10, tpm=1000)),
        ("key:b", Limits(budget_usd=Decimal(5), budget_period="total")),
        ("team:t", Limits(budget_usd=Decimal(5), budget_period="day", rpm=3)),
        ("key:c", Limits(rpm=5)),
    ]
    ledger = Ledger(
        {"a": Decimal(1), "b": Decimal(2), "t": Decimal(3)},
        [
            RecentUsage("a", "t", 2, 300),
            RecentUsage("c", None, 4, 10),
            RecentUsage(None, "t", 1, 5),
        ],
    )
    seeder = Seeder(counters, ledger, lambda: holders)

    async def main() -> None:
        await seeder.seed_all(now)
        assert await counters.spent("budget:key:a:2026-11-29") == 1_000_000
        assert await counters.spent("budget:key:b:total") == 2_000_000
        assert await counters.spent("budget:team:t:2026-11-29") == 3_000_000
        assert sorted(ledger.reads, key=str) == sorted(
            [
                ("api_key_id", ["a"], datetime(2026, 11, 29, tzinfo=UTC)),
                ("api_key_id", ["b"], None),
                ("team_id", ["t"], datetime(2026, 11, 29, tzinfo=UTC)),
            ],
            key=str,
        )
        # rpm: key a did 2 (of 10), team t 3 (of 3), key c 4 (of 5) in this minute.
        assert await counters.admit([WindowCheck("rpm:team:t", 1, 3)], []) is not None
        assert await counters.admit([WindowCheck("rpm:key:c", 1, 5)], []) is None
        assert await counters.admit([WindowCheck("rpm:key:c", 1, 5)], []) is not None
        assert await counters.admit([WindowCheck("tpm:key:a", 700, 1000)], []) is None
        assert await counters.admit([WindowCheck("tpm:key:a", 1, 1000)], []) is not None

    asyncio.run(main())
