"""Shared counters for rate limits and budgets: the `Counters` protocol, with an in-process
implementation (the zero-set-up default) here and a Redis one (`redis_counters.py`) for several
gateway replicas that must enforce one limit together.

Amounts are integers: requests, tokens, or budget units of 1e-6 USD (micro-dollars)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class WindowCheck:
    """One fixed-window limit to check and count: at most `limit` per `window` seconds."""

    key: str  # e.g. "rpm:key:ab12cd34"
    amount: int  # what this request adds now (1 request; its estimated prompt tokens)
    limit: int
    window: int = 60


@dataclass(frozen=True, slots=True)
class Reservation:
    """A budget hold: `amount` micro-dollars held against `key` until settled."""

    key: str  # e.g. "budget:team:research:2026-11"
    amount: int
    limit: int
    ttl: int  # seconds the counter must live (the budget period, plus slack)


@dataclass(frozen=True, slots=True)
class Unseeded:
    """Budget keys the backend does not hold (never seeded, expired, or lost with a Redis that
    restarted empty): nothing was counted. Seed them from the ledger and admit again."""

    keys: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Denied:
    """Which check failed, and when to retry (seconds)."""

    key: str
    used: int
    limit: int
    retry_after: float


class Counters(Protocol):
    """Atomic check-and-count operations. Implementations must make `admit` all-or-nothing:
    when any check fails, nothing is counted. Every method may raise `CountersError`."""

    async def admit(
        self,
        windows: Sequence[WindowCheck],
        reservations: Sequence[Reservation],
        *,
        seeded_only: bool = False,
    ) -> Denied | Unseeded | None:
        """Counts every window amount and holds every reservation if all fit under their
        limits; otherwise counts nothing and returns the first check that failed. With
        `seeded_only`, a reservation whose key does not exist yet counts nothing either and
        the keys missing are returned as `Unseeded` (without it, a missing key starts at 0)."""

    async def seed(self, key: str, amount: int, ttl: int) -> bool:
        """Creates a budget key holding `amount`, living `ttl` seconds, unless the key exists
        (then nothing changes: another replica seeded it, or it never went away). Returns
        whether it created the key."""

    async def seed_window(self, check: WindowCheck) -> None:
        """Sets the current window of `check.key` to `check.amount` unless that window has
        counted something already."""

    async def add(self, windows: Sequence[WindowCheck]) -> None:
        """Adds amounts to windows without checking (tokens known after the answer)."""

    async def settle(self, reservation: Reservation, actual: int) -> None:
        """Replaces a reservation's held amount by the actual spend (may be 0)."""

    async def spent(self, key: str) -> int:
        """The amount currently counted under a budget key (held plus settled)."""

    async def close(self) -> None: ...


class CountersError(Exception):
    """The counter backend is unreachable or failed."""


class MemoryCounters:
    """Counters in this process: exact for one gateway process, no set-up. Runs on the event
    loop thread only (no awaits between check and count, so no lock is needed). Budget keys
    never expire here (a process does not outlive many periods); `ttl` is ignored."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._windows: dict[str, tuple[int, int]] = {}  # key -> (window start, count)
        self._budgets: dict[str, int] = {}

    def _window(self, check: WindowCheck, now: float) -> tuple[int, int]:
        start = int(now // check.window) * check.window
        current = self._windows.get(check.key)
        if current is None or current[0] != start:
            return start, 0
        return current

    async def admit(
        self,
        windows: Sequence[WindowCheck],
        reservations: Sequence[Reservation],
        *,
        seeded_only: bool = False,
    ) -> Denied | Unseeded | None:
        if seeded_only:
            missing = tuple(
                dict.fromkeys(r.key for r in reservations if r.key not in self._budgets)
            )
            if missing:
                return Unseeded(missing)
        now = self._clock()
        # Sum amounts per key first: the same key may appear twice in one admit.
        pending: dict[str, tuple[WindowCheck, int, int, int]] = {}
        for check in windows:
            start, used = self._window(check, now)
            _, _, _, extra = pending.get(check.key, (check, start, used, 0))
            pending[check.key] = (check, start, used, extra + check.amount)
        for check, start, used, amount in pending.values():
            if used + amount > check.limit:
                return Denied(check.key, used, check.limit, start + check.window - now)
        held: dict[str, int] = {}
        for r in reservations:
            used = self._budgets.get(r.key, 0)
            held[r.key] = held.get(r.key, 0) + r.amount
            if used + held[r.key] > r.limit:
                return Denied(r.key, used, r.limit, float(r.ttl))
        for check, start, used, amount in pending.values():
            self._windows[check.key] = (start, used + amount)
        for key, amount in held.items():
            self._budgets[key] = self._budgets.get(key, 0) + amount
        return None

    async def seed(self, key: str, amount: int, ttl: int) -> bool:
        if key in self._budgets:
            return False
        self._budgets[key] = amount
        return True

    async def seed_window(self, check: WindowCheck) -> None:
        start, used = self._window(check, self._clock())
        if used == 0:
            self._windows[check.key] = (start, check.amount)

    async def add(self, windows: Sequence[WindowCheck]) -> None:
        now = self._clock()
        for check in windows:
            start, used = self._window(check, now)
            self._windows[check.key] = (start, used + check.amount)

    async def settle(self, reservation: Reservation, actual: int) -> None:
        self._budgets[reservation.key] = (
            self._budgets.get(reservation.key, 0) - reservation.amount + actual
        )

    async def spent(self, key: str) -> int:
        return self._budgets.get(key, 0)

    async def close(self) -> None:
        return None
