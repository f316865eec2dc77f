"""The router's settings: default strategy, retries and back-off, and the circuit breaker."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from crossroads.routing.health import BreakerPolicy
from crossroads.routing.strategy import Strategy


@dataclass(frozen=True, slots=True)
class RoutingPolicy:
    strategy: Strategy = "priority"
    # Extra tries on the same deployment after a retryable failure, before moving on.
    retries: int = 1
    # Exponential back-off with full jitter: sleep uniform(0, min(max, base * 2**n)) seconds.
    backoff_base: float = 0.1
    backoff_max: float = 2.0
    # A Retry-After longer than this (seconds) moves on to the next deployment instead of waiting.
    max_retry_after: float = 10.0
    breaker: BreakerPolicy = field(default_factory=BreakerPolicy)
    # Circuit-open deployments: "last" tries them after every healthy candidate has failed (a
    # degraded answer beats none); "skip" never sends them traffic until their cool-down ends,
    # answering 503 with Retry-After when nothing else is left.
    open_circuits: Literal["last", "skip"] = "last"
    # Seconds between active health probes of each deployment; 0 turns them off.
    health_check_interval: float = 0.0
