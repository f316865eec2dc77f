"""Per-deployment health: a circuit breaker and moving averages of latency.

The breaker opens after `failures` consecutive failures, or when the failure rate over the last
`window` calls reaches `failure_rate` (once at least `min_calls` were seen). After `cooldown`
seconds it lets one probe request through (half-open); the probe's success closes it, its failure
opens it for another cool-down. An upstream that rejects the gateway's own credentials opens the
circuit at once. Only upstream faults count: a client error the upstream rightly refused is a
success for the breaker, and a 429 is neither.

Everything here runs on the event loop thread; no locks are needed or taken.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum


class Circuit(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    failures: int = 5
    failure_rate: float = 0.5
    window: int = 20
    min_calls: int = 10
    cooldown: float = 30.0


@dataclass(slots=True)
class Ewma:
    """An exponentially weighted moving average; `value` is None until the first sample."""

    alpha: float = 0.2
    value: float | None = None

    def add(self, sample: float) -> None:
        self.value = (
            sample if self.value is None else self.value + self.alpha * (sample - self.value)
        )


@dataclass(slots=True)
class DeploymentHealth:
    deployment: str
    state: Circuit = Circuit.CLOSED
    consecutive_failures: int = 0
    opened_at: float | None = None
    probe_in_flight: bool = False
    last_error: str | None = None
    successes: int = 0
    failures: int = 0
    outcomes: deque[bool] = field(default_factory=lambda: deque(maxlen=20))
    ttft_ms: Ewma = field(default_factory=Ewma)
    latency_ms: Ewma = field(default_factory=Ewma)
    tokens_per_s: Ewma = field(default_factory=Ewma)

    def snapshot(self, now: float, cooldown: float) -> dict[str, object]:
        retry_in = (
            max(0.0, self.opened_at + cooldown - now)
            if self.state is Circuit.OPEN and self.opened_at is not None
            else None
        )
        return {
            "deployment": self.deployment,
            "circuit": self.state.value,
            "consecutive_failures": self.consecutive_failures,
            "successes": self.successes,
            "failures": self.failures,
            "recent_failure_rate": (
                round(self.outcomes.count(False) / len(self.outcomes), 3) if self.outcomes else None
            ),
            "retry_in_s": None if retry_in is None else round(retry_in, 1),
            "ttft_ms_ewma": _round(self.ttft_ms.value),
            "latency_ms_ewma": _round(self.latency_ms.value),
            "tokens_per_s_ewma": _round(self.tokens_per_s.value),
            "last_error": self.last_error,
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


class HealthBoard:
    """The health of every deployment, keyed by deployment id."""

    def __init__(
        self,
        deployments: Iterable[str],
        policy: BreakerPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy or BreakerPolicy()
        self._clock = clock
        self._health = {
            d: DeploymentHealth(d, outcomes=deque(maxlen=self.policy.window)) for d in deployments
        }

    def get(self, deployment: str) -> DeploymentHealth:
        health = self._health.get(deployment)
        if health is None:
            health = DeploymentHealth(deployment, outcomes=deque(maxlen=self.policy.window))
            self._health[deployment] = health
        return health

    def admit(self, deployment: str) -> bool:
        """Whether a request may go to `deployment` now. In half-open state only one probe is
        admitted at a time; the caller must report its outcome with `success` or `failure`."""
        health = self.get(deployment)
        if health.state is Circuit.CLOSED:
            return True
        if health.state is Circuit.OPEN:
            assert health.opened_at is not None
            if self._clock() - health.opened_at < self.policy.cooldown:
                return False
            health.state = Circuit.HALF_OPEN
            health.probe_in_flight = False
        if health.probe_in_flight:
            return False
        health.probe_in_flight = True
        return True

    def retry_in(self, deployment: str) -> float:
        """Seconds until an open circuit lets a probe through (0 when it would now)."""
        health = self.get(deployment)
        if health.state is not Circuit.OPEN or health.opened_at is None:
            return 0.0
        return max(0.0, health.opened_at + self.policy.cooldown - self._clock())

    def success(
        self,
        deployment: str,
        *,
        latency_ms: float | None = None,
        ttft_ms: float | None = None,
        completion_tokens: int = 0,
    ) -> None:
        health = self.get(deployment)
        health.successes += 1
        health.consecutive_failures = 0
        health.outcomes.append(True)
        health.probe_in_flight = False
        if health.state is not Circuit.CLOSED:
            health.state = Circuit.CLOSED
            health.opened_at = None
        if latency_ms is not None:
            health.latency_ms.add(latency_ms)
            generation_ms = latency_ms - (ttft_ms or 0.0)
            if completion_tokens > 1 and generation_ms > 0:
                health.tokens_per_s.add(completion_tokens / (generation_ms / 1000.0))
        if ttft_ms is not None:
            health.ttft_ms.add(ttft_ms)

    def failure(self, deployment: str, reason: str, *, trip: bool = False) -> None:
        """Notes an upstream fault; `trip` opens the circuit at once (bad credentials)."""
        health = self.get(deployment)
        health.failures += 1
        health.consecutive_failures += 1
        health.outcomes.append(False)
        health.last_error = reason
        health.probe_in_flight = False
        p = self.policy
        rate_tripped = (
            len(health.outcomes) >= p.min_calls
            and health.outcomes.count(False) / len(health.outcomes) >= p.failure_rate
        )
        if (
            trip
            or health.state is Circuit.HALF_OPEN
            or health.consecutive_failures >= p.failures
            or rate_tripped
        ):
            health.state = Circuit.OPEN
            health.opened_at = self._clock()

    def release(self, deployment: str) -> None:
        """An admitted request ended with neither verdict (a 429, a cancel): free the probe."""
        self.get(deployment).probe_in_flight = False

    def snapshot(self) -> list[dict[str, object]]:
        now = self._clock()
        return [
            h.snapshot(now, self.policy.cooldown)
            for h in sorted(self._health.values(), key=lambda h: h.deployment)
        ]
