"""RedisCounters against a real Redis (started by `scripts/services start`): atomic
all-or-nothing admission, exact limits under concurrent replicas, settlement, window expiry on
Redis's clock, and a closed-port failure that never shows the password."""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import pytest
from redis.asyncio import Redis

from crossroads.governance.counters import (
    CountersError,
    Denied,
    Reservation,
    Unseeded,
    WindowCheck,
)
from crossroads.governance.redis_counters import RedisCounters

T = TypeVar("T")

# Long enough that no test straddles a window boundary (fixed windows are aligned to the clock).
NO_BOUNDARY = 10**9


@pytest.fixture(scope="module")
def redis_url() -> str:
    url = os.environ.get("CROSSROADS_TEST_REDIS_URL")
    if not url:
        pytest.fail(
            "CROSSROADS_TEST_REDIS_URL is not set: these tests need the real Redis. Run "
            '`scripts/services start` and then `eval "$(scripts/services env)"`.',
            pytrace=False,
        )
    return url


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    """A prefix no other test (or concurrent run) uses; its keys are deleted afterwards."""
    value = f"crossroads-test:{uuid.uuid4().hex}:"
    yield value

    async def clean() -> None:
        raw = Redis.from_url(redis_url)
        try:
            keys = [k async for k in raw.scan_iter(match=f"{value}*", count=1000)]
            if keys:
                await raw.delete(*keys)
        finally:
            await raw.aclose()

    asyncio.run(clean())


Use = Callable[[RedisCounters], Awaitable[T]]


def with_counters(url: str, prefix: str, use: Use[T]) -> T:
    async def main() -> T:
        counters = RedisCounters(url, prefix=prefix)
        try:
            return await use(counters)
        finally:
            await counters.close()

    return asyncio.run(main())


def test_admit_is_all_or_nothing(redis_url: str, prefix: str) -> None:
    team = "budget:team:t:2026-11"

    async def use(c: RedisCounters) -> None:
        a = WindowCheck("rpm:a", 1, 5, window=NO_BOUNDARY)
        b = WindowCheck("rpm:b", 1, 1, window=NO_BOUNDARY)
        assert await c.admit([b], [Reservation(team, 900, 1000, ttl=3600)]) is None
        # b is full: neither a nor the budget may count.
        denied = await c.admit([a, b], [Reservation(team, 50, 1000, ttl=3600)])
        assert denied is not None
        assert (denied.key, denied.used, denied.limit) == ("rpm:b", 1, 1)
        assert await c.spent(team) == 900
        # The budget does not fit: the window must not count either.
        denied = await c.admit([a], [Reservation(team, 101, 1000, ttl=3600)])
        assert denied is not None
        assert (denied.key, denied.used, denied.limit) == (team, 900, 1000)
        assert 3590 < denied.retry_after <= 3600  # the budget key's time to live
        # a is still empty (5 fit) and the budget still has exactly 100.
        assert await c.admit([WindowCheck("rpm:a", 5, 5, NO_BOUNDARY)], []) is None
        assert await c.admit([], [Reservation(team, 100, 1000, ttl=3600)]) is None
        assert await c.spent(team) == 1000

    with_counters(redis_url, prefix, use)


def test_the_same_key_twice_in_one_admit_counts_both_amounts(redis_url: str, prefix: str) -> None:
    async def use(c: RedisCounters) -> None:
        twice = [WindowCheck("tpm", 60, 100, NO_BOUNDARY), WindowCheck("tpm", 60, 100, NO_BOUNDARY)]
        denied = await c.admit(twice, [])
        assert denied is not None and (denied.key, denied.used, denied.limit) == ("tpm", 60, 100)
        assert await c.admit([WindowCheck("tpm", 100, 100, NO_BOUNDARY)], []) is None  # none held

    with_counters(redis_url, prefix, use)


def test_two_replicas_hammering_one_limit_admit_exactly_the_limit(
    redis_url: str, prefix: str
) -> None:
    check = WindowCheck("rpm:key:shared", 1, 100, window=NO_BOUNDARY)

    async def main() -> list[Denied | None]:
        # Two instances, two clients and pools: as two gateway replicas would be.
        one, two = RedisCounters(redis_url, prefix=prefix), RedisCounters(redis_url, prefix=prefix)
        try:
            return await asyncio.gather(
                *((one if i % 2 else two).admit([check], []) for i in range(500))
            )
        finally:
            await one.close()
            await two.close()

    results = asyncio.run(main())
    assert results.count(None) == 100
    assert {(d.key, d.used) for d in results if d is not None} == {("rpm:key:shared", 100)}


def test_concurrent_reservations_never_exceed_the_budget(redis_url: str, prefix: str) -> None:
    key = "budget:key:k:2026-11"

    async def main() -> tuple[list[Denied | None], int]:
        one, two = RedisCounters(redis_url, prefix=prefix), RedisCounters(redis_url, prefix=prefix)
        try:
            results = await asyncio.gather(
                *(
                    (one if i % 2 else two).admit([], [Reservation(key, 7, 1000, ttl=600)])
                    for i in range(300)
                )
            )
            return results, await one.spent(key)
        finally:
            await one.close()
            await two.close()

    results, spent = asyncio.run(main())
    assert results.count(None) == 1000 // 7
    assert spent == (1000 // 7) * 7 <= 1000
    assert all(d.used == spent for d in results if d is not None)


def test_settle_replaces_the_hold_by_the_actual_spend(redis_url: str, prefix: str) -> None:
    key = "budget:team:t:2026-12"

    async def use(c: RedisCounters) -> None:
        held = Reservation(key, 400, 1000, ttl=600)
        assert await c.admit([], [held]) is None
        await c.settle(held, 150)  # cheaper than held: 250 released
        assert await c.spent(key) == 150
        big = Reservation(key, 850, 1000, ttl=600)
        assert await c.admit([], [big]) is None
        assert await c.admit([], [Reservation(key, 1, 1000, ttl=600)]) is not None
        await c.settle(big, 0)  # failed upstream: nothing spent
        assert await c.spent(key) == 150
        dear = Reservation(key, 100, 1000, ttl=600)
        assert await c.admit([], [dear]) is None
        await c.settle(dear, 180)  # dearer than held: the extra 80 is counted
        assert await c.spent(key) == 330
        raw = Redis.from_url(redis_url)
        try:
            assert 590 < await raw.ttl(prefix + key) <= 600  # settle keeps it expiring
        finally:
            await raw.aclose()

    with_counters(redis_url, prefix, use)


def test_big_amounts_reach_redis_as_exact_integers(redis_url: str, prefix: str) -> None:
    key = "budget:global:2026-11"
    amount = 10**17  # Redis prints this Lua number as 1e+17, which INCRBY would reject

    async def use(c: RedisCounters) -> None:
        assert await c.admit([], [Reservation(key, amount, 10**18, ttl=60)]) is None
        assert await c.spent(key) == amount
        assert await c.spent("budget:absent") == 0

    with_counters(redis_url, prefix, use)


def test_add_counts_past_the_limit_and_admit_then_denies(redis_url: str, prefix: str) -> None:
    async def use(c: RedisCounters) -> None:
        await c.add([WindowCheck("tpm:key:k", 1500, 1000, NO_BOUNDARY)])
        denied = await c.admit([WindowCheck("tpm:key:k", 1, 1000, NO_BOUNDARY)], [])
        assert denied is not None and (denied.used, denied.limit) == (1500, 1000)

    with_counters(redis_url, prefix, use)


def test_windows_are_buckets_on_redis_clock_that_expire(
    redis_url: str, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    check = WindowCheck("rps:key:k", 1, 1, window=1)
    real_time = time.time
    # This replica's clock is an hour and a half second off: Redis's clock must decide.
    monkeypatch.setattr(time, "time", lambda: real_time() + 3600.5)

    async def use(c: RedisCounters) -> None:
        assert await c.admit([check], []) is None
        denied = await c.admit([check], [])
        if denied is None:  # the first admit was the last in its second: try once more
            denied = await c.admit([check], [])
        assert denied is not None and denied.used == 1
        assert 0 < denied.retry_after <= 1
        raw = Redis.from_url(redis_url)
        try:
            keys = [k.decode() async for k in raw.scan_iter(match=f"{prefix}rps:key:k:*")]
            server_now = (await raw.time())[0]
            starts = sorted(int(k.rsplit(":", 1)[1]) for k in keys)
            assert starts and server_now - 2 <= starts[0] <= starts[-1] <= server_now
            for key in keys:
                assert 0 < await raw.ttl(key) <= 1 + 5  # the window plus its slack
        finally:
            await raw.aclose()
        await asyncio.sleep(1.1)  # the window has ended: the limit is free again
        assert await c.admit([check], []) is None

    with_counters(redis_url, prefix, use)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_redis_down_raises_counters_error_without_the_password() -> None:
    password = "s3cret-pa55word"
    url = f"redis://gateway:{password}@127.0.0.1:{closed_port()}/0"
    window = WindowCheck("rpm", 1, 10)
    reservation = Reservation("budget", 1, 10, ttl=60)
    calls: list[Callable[[RedisCounters], Awaitable[object]]] = [
        lambda c: c.admit([window], [reservation]),
        lambda c: c.add([window]),
        lambda c: c.settle(reservation, 0),
        lambda c: c.spent("budget"),
    ]
    for call in calls:
        started = time.monotonic()
        with pytest.raises(CountersError) as caught:
            with_counters(url, "p:", call)
        assert time.monotonic() - started < 2  # fails fast: a request is waiting on it
        text = str(caught.value)
        assert password not in text
        assert "gateway:***@127.0.0.1" in text
        cause = caught.value.__cause__
        while cause is not None:
            assert password not in str(cause)
            cause = cause.__cause__


def test_a_password_in_the_query_is_redacted_too() -> None:
    url = f"redis://127.0.0.1:{closed_port()}/0?password=qu3ry-secret"
    with pytest.raises(CountersError) as caught:
        with_counters(url, "p:", lambda c: c.spent("budget"))
    assert "qu3ry-secret" not in str(caught.value)
    assert "password=***" in str(caught.value)


def test_an_unusable_url_is_a_counters_error_without_the_password() -> None:
    with pytest.raises(CountersError, match=r"redis://gateway:\*\*\*@h:notaport/0") as caught:
        RedisCounters("redis://gateway:s3cret@h:notaport/0")
    assert "s3cret" not in str(caught.value)


def test_seeded_only_reports_missing_budget_keys_and_seeding_is_set_if_absent(
    redis_url: str, prefix: str
) -> None:
    a, b = "budget:key:a:total", "budget:team:b:2026-11"

    async def use(c: RedisCounters) -> None:
        window = WindowCheck("rpm:x", 1, 1, NO_BOUNDARY)
        holds = [Reservation(a, 10, 1000, ttl=600), Reservation(b, 10, 1000, ttl=600)]
        assert await c.admit([window], holds, seeded_only=True) == Unseeded((a, b))
        assert await c.admit([window], []) is None  # nothing was counted
        assert await c.seed(a, 500, 600) is True
        assert await c.seed(a, 7, 600) is False  # another replica seeded first: unchanged
        assert await c.admit([], holds, seeded_only=True) == Unseeded((b,))
        assert await c.seed(b, 0, 600) is True
        assert await c.admit([], holds, seeded_only=True) is None
        assert (await c.spent(a), await c.spent(b)) == (510, 10)

    with_counters(redis_url, prefix, use)


def test_settling_a_budget_key_that_is_gone_does_not_recreate_it(
    redis_url: str, prefix: str
) -> None:
    key = "budget:key:gone:total"

    async def use(c: RedisCounters) -> None:
        hold = Reservation(key, 400, 1000, ttl=600)
        assert await c.admit([], [hold]) is None
        raw = Redis.from_url(redis_url)
        try:
            await raw.delete(prefix + key)  # Redis restarted empty meanwhile
            await c.settle(hold, 30)
            assert await raw.exists(prefix + key) == 0  # not recreated at 30 - 400 = -370
        finally:
            await raw.aclose()
        assert await c.admit([], [hold], seeded_only=True) == Unseeded((key,))

    with_counters(redis_url, prefix, use)


def test_seed_window_sets_only_a_window_that_counted_nothing(redis_url: str, prefix: str) -> None:
    async def use(c: RedisCounters) -> None:
        await c.seed_window(WindowCheck("rpm:s", 2, 3, NO_BOUNDARY))
        assert await c.admit([WindowCheck("rpm:s", 1, 3, NO_BOUNDARY)], []) is None
        assert await c.admit([WindowCheck("rpm:s", 1, 3, NO_BOUNDARY)], []) is not None
        await c.seed_window(WindowCheck("rpm:s", 0, 3, NO_BOUNDARY))  # exists: unchanged
        assert await c.admit([WindowCheck("rpm:s", 1, 3, NO_BOUNDARY)], []) is not None

    with_counters(redis_url, prefix, use)
