"""Rebuilds budget and rate counters from the ledger, so that no restart resets a limit: of the
gateway (in-process counters start empty) or of Redis (it may come back empty).

Budgets: the counters report a budget key they do not hold (`Unseeded`) instead of starting it
at zero, and the key is seeded with what the ledger says its holder spent since the period
began (`LedgerStore.spend_since`, read from the rollups), then the request is admitted again. At
start every known budget is seeded at once, one ledger read per kind and period. Seeding sets a
key only if it is still absent, so replicas seeding together count the spend once.

What the ledger cannot know yet: records still queued in a writer (this replica's or another's)
when a key is seeded. At start of a single process there are none (the last run flushed its
queue on shutdown). When Redis loses its data mid-run, the rebuilt budget misses the cost of
the records queued at that moment (the writer flushes every 50 ms, longer only while the store
is failing: `crossroads_ledger_pending_records`) and the holds of requests in flight then,
whose settlement finds the key gone and leaves it to the ledger.

Rate windows (a minute) are rebuilt once, at start, from the ledger's last minute
(`LedgerStore.usage_since`); a Redis that empties mid-run forgets at most one minute of them."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Protocol

from crossroads.governance.budgets import (
    BudgetKey,
    budget_key,
    budget_ttl,
    parse_budget_key,
    to_micros,
)
from crossroads.governance.counters import Counters, WindowCheck
from crossroads.governance.model import Limits
from crossroads.ledger.spend_query import RecentUsage

__all__ = ["CombinedSpend", "LimitHolders", "Seeder", "SpendLedger"]

_COLUMN = {"key": "api_key_id", "team": "team_id"}
WINDOW_S = 60

LimitHolders = Callable[[], Iterable[tuple[str, Limits]]]
"""Every known limit holder now: ("key:ID", limits) and ("team:ID", limits)."""


class SpendLedger(Protocol):
    """The ledger as seeding reads it (`crossroads.ledger.store.LedgerStore`)."""

    async def spend_since(
        self, scope: str, ids: Sequence[str], since: datetime | None = None
    ) -> Mapping[str, Decimal]: ...

    async def usage_since(self, since: datetime) -> Sequence[RecentUsage]: ...


class CombinedSpend:
    """Several ledgers read as one for seeding: the production ledger and the eval ledger (replay,
    shadow and judge traffic is kept apart from production reports, but it was spent under the
    same budgets and limits, so a restart must not forget it)."""

    def __init__(self, *ledgers: SpendLedger) -> None:
        self._ledgers = ledgers

    async def spend_since(
        self, scope: str, ids: Sequence[str], since: datetime | None = None
    ) -> Mapping[str, Decimal]:
        total: dict[str, Decimal] = defaultdict(Decimal)
        for ledger in self._ledgers:
            for holder, amount in (await ledger.spend_since(scope, ids, since)).items():
                total[holder] += amount
        return dict(total)

    async def usage_since(self, since: datetime) -> Sequence[RecentUsage]:
        rows: list[RecentUsage] = []
        for ledger in self._ledgers:
            rows += await ledger.usage_since(since)
        return rows


class Seeder:
    """Seeds counters for one gate. Concurrent requests that find the same keys missing share
    one ledger read (the first one's); runs on the event loop's thread only."""

    def __init__(self, counters: Counters, ledger: SpendLedger, holders: LimitHolders) -> None:
        self._counters = counters
        self._ledger = ledger
        self._holders = holders
        self._pending: dict[str, asyncio.Future[None]] = {}

    async def seed_budgets(self, keys: Sequence[str]) -> None:
        """Seeds each budget key from the ledger unless it exists by then. Raises what the
        ledger store or the counters raise (`LedgerStoreError`, `CountersError`), and
        ValueError for a key `budget_key` did not make."""
        mine: list[BudgetKey] = []
        waits: list[asyncio.Future[None]] = []
        for key in dict.fromkeys(keys):
            pending = self._pending.get(key)
            if pending is not None:
                waits.append(pending)
            else:
                mine.append(parse_budget_key(key))
        if mine:
            done = asyncio.get_running_loop().create_future()
            for budget in mine:
                self._pending[budget.key] = done
            try:
                await self._seed(mine)
                done.set_result(None)
            except asyncio.CancelledError:
                done.cancel()
                raise
            except Exception as exc:
                done.set_exception(exc)
                done.exception()  # marked retrieved: the waiters, if any, raise it too
                raise
            finally:
                for budget in mine:
                    self._pending.pop(budget.key, None)
        for pending in waits:
            await pending

    async def seed_all(self, now: datetime | None = None) -> None:
        """Seeds the current period of every known budget, and the current minute of every
        known rate limit, from the ledger (at start). Raises like `seed_budgets`."""
        now = now or datetime.now(UTC)
        holders = list(self._holders())
        await self._seed(
            [
                parse_budget_key(budget_key(scope, limits.budget_period, now))
                for scope, limits in holders
                if limits.budget_usd is not None
            ]
        )
        if any(limits.rpm is not None or limits.tpm is not None for _, limits in holders):
            await self._seed_windows(holders)

    async def _seed(self, budgets: Sequence[BudgetKey]) -> None:
        groups: dict[tuple[str, datetime | None], list[BudgetKey]] = defaultdict(list)
        for budget in budgets:
            groups[(budget.kind, budget.since)].append(budget)
        for (kind, since), members in groups.items():
            spent = await self._ledger.spend_since(
                _COLUMN[kind], sorted({b.id for b in members}), since
            )
            for budget in members:
                amount = to_micros(spent.get(budget.id))
                await self._counters.seed(budget.key, amount, budget_ttl(budget.period))

    async def _seed_windows(self, holders: Sequence[tuple[str, Limits]]) -> None:
        now = time.time()
        start = datetime.fromtimestamp(now - now % WINDOW_S, UTC)
        used: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for row in await self._ledger.usage_since(start):
            for scope in (f"key:{row.api_key_id}", f"team:{row.team_id}"):
                used[scope][0] += row.requests
                used[scope][1] += row.tokens
        for scope, limits in holders:
            requests, tokens = used.get(scope, [0, 0])
            if limits.rpm is not None and requests:
                await self._counters.seed_window(WindowCheck(f"rpm:{scope}", requests, limits.rpm))
            if limits.tpm is not None and tokens:
                await self._counters.seed_window(WindowCheck(f"tpm:{scope}", tokens, limits.tpm))
