"""MemoryCounters, the in-process `Counters`: fixed windows on an injected clock, all-or-nothing
admission, budget reservations and their settlement."""

from __future__ import annotations

import asyncio

import pytest

from crossroads.governance.counters import (
    Denied,
    MemoryCounters,
    Reservation,
    Unseeded,
    WindowCheck,
)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def rpm(limit: int, amount: int = 1, key: str = "rpm:key:a") -> WindowCheck:
    return WindowCheck(key, amount, limit, window=60)


def budget(amount: int, limit: int = 1000, key: str = "budget:team:t:2026-11") -> Reservation:
    return Reservation(key, amount, limit, ttl=86400)


def test_window_counts_up_to_its_limit_then_denies_until_the_window_ends() -> None:
    clock = Clock(120.0)
    counters = MemoryCounters(clock)

    async def main() -> None:
        assert [await counters.admit([rpm(3)], []) for _ in range(3)] == [None] * 3
        clock.now = 135.5
        assert await counters.admit([rpm(3)], []) == Denied("rpm:key:a", 3, 3, 44.5)
        clock.now = 179.999
        assert await counters.admit([rpm(3)], []) is not None
        clock.now = 180.0  # the next fixed window starts on the boundary, empty
        assert await counters.admit([rpm(3)], []) is None
        assert await counters.admit([rpm(3, amount=2)], []) is None
        assert await counters.admit([rpm(3)], []) == Denied("rpm:key:a", 3, 3, 60.0)

    asyncio.run(main())


def test_windows_are_aligned_to_the_clock_not_to_the_first_request() -> None:
    clock = Clock(59.0)
    counters = MemoryCounters(clock)

    async def main() -> None:
        assert await counters.admit([rpm(1)], []) is None
        clock.now = 60.0  # one second later, but a new window
        assert await counters.admit([rpm(1)], []) is None

    asyncio.run(main())


def test_an_amount_larger_than_the_limit_is_denied_even_in_an_empty_window() -> None:
    counters = MemoryCounters(Clock(0.0))
    denied = asyncio.run(counters.admit([WindowCheck("tpm", 101, 100)], []))
    assert denied == Denied("tpm", 0, 100, 60.0)


def test_admit_is_all_or_nothing_across_windows_and_reservations() -> None:
    counters = MemoryCounters(Clock(10.0))

    async def main() -> None:
        assert await counters.admit([rpm(1, key="rpm:b")], [budget(900)]) is None
        # The second window is full: neither the first window nor the budget may count.
        denied = await counters.admit([rpm(1, key="rpm:a"), rpm(1, key="rpm:b")], [budget(50)])
        assert denied == Denied("rpm:b", 1, 1, 50.0)
        assert await counters.spent("budget:team:t:2026-11") == 900
        # The budget does not fit: the window must not count either.
        denied = await counters.admit([rpm(1, key="rpm:a")], [budget(101)])
        assert denied == Denied("budget:team:t:2026-11", 900, 1000, 86400.0)
        # rpm:a is still empty and the budget still has 100: both fit exactly.
        assert await counters.admit([rpm(1, key="rpm:a")], [budget(100)]) is None
        assert await counters.spent("budget:team:t:2026-11") == 1000

    asyncio.run(main())


def test_the_first_failing_check_is_reported() -> None:
    counters = MemoryCounters(Clock(0.0))

    async def main() -> None:
        await counters.add([rpm(1, key="a"), rpm(1, key="b")])
        denied = await counters.admit([rpm(1, key="a"), rpm(1, key="b")], [budget(5000)])
        assert denied is not None and denied.key == "a"

    asyncio.run(main())


def test_add_counts_without_checking_and_later_admits_see_it() -> None:
    clock = Clock(5.0)
    counters = MemoryCounters(clock)

    async def main() -> None:
        await counters.add([WindowCheck("tpm", 150, 100)])  # past the limit: still counted
        assert await counters.admit([WindowCheck("tpm", 1, 100)], []) == Denied(
            "tpm", 150, 100, 55.0
        )
        clock.now = 60.0
        assert await counters.admit([WindowCheck("tpm", 100, 100)], []) is None

    asyncio.run(main())


def test_reservations_hold_until_settled_with_the_actual_spend() -> None:
    counters = MemoryCounters(Clock(0.0))
    key = "budget:team:t:2026-11"

    async def main() -> None:
        held = budget(400)
        assert await counters.admit([], [held]) is None
        assert await counters.spent(key) == 400
        await counters.settle(held, 150)  # cheaper than held: the difference is released
        assert await counters.spent(key) == 150
        second = budget(850)
        assert await counters.admit([], [second]) is None
        assert await counters.spent(key) == 1000
        assert await counters.admit([], [budget(1)]) == Denied(key, 1000, 1000, 86400.0)
        await counters.settle(second, 0)  # failed upstream: nothing spent
        assert await counters.spent(key) == 150
        third = budget(100)
        assert await counters.admit([], [third]) is None
        await counters.settle(third, 180)  # dearer than held: the extra is counted
        assert await counters.spent(key) == 330

    asyncio.run(main())


def test_spent_is_zero_for_an_unknown_key_and_budgets_are_separate() -> None:
    counters = MemoryCounters(Clock(0.0))

    async def main() -> None:
        assert await counters.spent("budget:none") == 0
        assert await counters.admit([], [budget(1000, key="x"), budget(1000, key="y")]) is None
        assert await counters.admit([], [budget(1, key="x")]) is not None
        assert (await counters.spent("x"), await counters.spent("y")) == (1000, 1000)
        await counters.close()

    asyncio.run(main())


@pytest.mark.parametrize("window", [1, 60, 3600])
def test_denied_retry_after_is_the_time_left_in_the_window(window: int) -> None:
    clock = Clock(10_000.25)
    counters = MemoryCounters(clock)
    check = WindowCheck("w", 1, 1, window=window)

    async def main() -> Denied | None:
        await counters.admit([check], [])
        return await counters.admit([check], [])

    denied = asyncio.run(main())
    start = (10_000 // window) * window
    assert denied is not None
    assert denied.retry_after == pytest.approx(start + window - 10_000.25)


def test_seeded_only_reports_missing_budget_keys_and_counts_nothing() -> None:
    clock = Clock(120.0)
    counters = MemoryCounters(clock)
    a, b = budget(10, key="budget:key:a:total"), budget(10, key="budget:key:b:total")

    async def main() -> None:
        missing = await counters.admit([rpm(1)], [a, b, a], seeded_only=True)
        assert missing == Unseeded(("budget:key:a:total", "budget:key:b:total"))
        assert await counters.admit([rpm(1)], []) is None  # the window had not counted
        assert await counters.seed("budget:key:a:total", 500, 60) is True
        assert await counters.seed("budget:key:a:total", 7, 60) is False  # held: unchanged
        assert await counters.admit([], [a, b], seeded_only=True) == Unseeded(
            ("budget:key:b:total",)
        )
        await counters.seed("budget:key:b:total", 0, 60)
        assert await counters.admit([], [a, b], seeded_only=True) is None
        assert await counters.spent("budget:key:a:total") == 510

    asyncio.run(main())


def test_seed_window_sets_only_a_window_that_counted_nothing() -> None:
    clock = Clock(125.0)
    counters = MemoryCounters(clock)

    async def main() -> None:
        await counters.seed_window(rpm(3, amount=2))
        assert await counters.admit([rpm(3)], []) is None
        assert await counters.admit([rpm(3)], []) is not None  # 2 seeded + 1
        await counters.seed_window(rpm(3, amount=1))  # counted already: unchanged
        clock.now = 185.0  # the next window starts empty
        assert [await counters.admit([rpm(3)], []) for _ in range(3)] == [None] * 3

    asyncio.run(main())
