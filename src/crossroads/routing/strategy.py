"""Orders a route's candidate deployments: filters from the request's preferences first, then
the strategy (priority, cheapest, latency, weighted random, or the request's `sort`).

Pure functions of their inputs (the health board is read, never written), so every ordering
can be tested without a server."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Literal

from crossroads.routing.deployment import Deployment
from crossroads.routing.health import HealthBoard
from crossroads.routing.options import RoutingOptions

Strategy = Literal["priority", "cheapest", "latency", "weighted"]
STRATEGIES: tuple[Strategy, ...] = ("priority", "cheapest", "latency", "weighted")
_MILLION = Decimal(1_000_000)


def expected_cost(
    dep: Deployment, prompt_tokens: int, completion_tokens: int, at: datetime | None = None
) -> Decimal | None:
    """List-price cost of the request's expected token mix at `dep` (no cache hits assumed):
    at the price and time-of-day window in force at `at` (UTC), else the current base price."""
    prices = dep.prices if at is None else dep.prices_at(at)
    if prices is None:
        return None
    prices = prices.at_time(at)
    return (prices.input * prompt_tokens + prices.output * completion_tokens) / _MILLION


def allowed(dep: Deployment, options: RoutingOptions) -> str | None:
    """Why the request's preferences leave `dep` out, or None if they keep it."""
    if dep.retired is not None:
        return dep.retired
    if options.only is not None and dep.provider not in options.only:
        return f"provider '{dep.provider}' is not in provider.only"
    if dep.provider in options.ignore:
        return f"provider '{dep.provider}' is in provider.ignore"
    if options.needs_vision and dep.model is not None and not dep.model.capabilities.vision:
        return f"model '{dep.model.id}' does not accept images"
    if options.needs_tools and not dep.calls_tools and dep.unsupported_tools == "refuse":
        return f"model '{dep.catalog_id}' does not support tool calling"
    if dep.model is not None and options.prompt_tokens > dep.model.context_length:
        return (
            f"the prompt (about {options.prompt_tokens} tokens) is longer than model "
            f"'{dep.model.id}''s context of {dep.model.context_length}"
        )
    if options.quantizations is not None:
        served = dep.quantization or "unknown"
        if served not in options.quantizations:
            return f"deployment '{dep.id}' is served at {served}, not in provider.quantizations"
    for bound, price, what in (
        # At the dearest hour of a time-of-day priced deployment: routing has no clock.
        (options.max_prompt_price, dep.prices.highest_input if dep.prices else None, "prompt"),
        (
            options.max_completion_price,
            dep.prices.highest_output if dep.prices else None,
            "completion",
        ),
    ):
        if bound is None:
            continue
        if price is None:
            return f"deployment '{dep.id}' has no known price (provider.max_price is set)"
        if price > bound:
            return f"{what} price {price}/M at '{dep.id}' is above provider.max_price.{what}"
    return None


def order(
    candidates: Sequence[Deployment],
    strategy: Strategy,
    options: RoutingOptions,
    health: HealthBoard,
    *,
    stream: bool = False,
    rng: random.Random | None = None,
) -> list[Deployment]:
    """The candidates in the order to try them. `options.sort` overrides `strategy`;
    `options.order` then moves the named providers to the front, in the order given."""
    deps = list(candidates)
    sort = options.sort
    if sort == "price" or (sort is None and strategy == "cheapest"):
        deps = _by_price(deps, options)
    elif sort == "latency" or (sort is None and strategy == "latency"):
        deps = _by_latency(deps, health, stream)
    elif sort == "throughput":
        deps = _by_throughput(deps, health)
    elif strategy == "weighted":
        deps = _weighted_shuffle(deps, rng or random.Random())
    if options.order:
        rank = {provider: i for i, provider in enumerate(options.order)}
        deps.sort(key=lambda d: rank.get(d.provider, len(rank)))
    return deps


def _by_price(deps: list[Deployment], options: RoutingOptions) -> list[Deployment]:
    def key(dep: Deployment) -> tuple[int, Decimal]:
        cost = expected_cost(
            dep, options.prompt_tokens, options.completion_tokens, options.started_at
        )
        return (1, Decimal(0)) if cost is None else (0, cost)

    return sorted(deps, key=key)  # stable: equal prices keep their priority order


def _by_latency(deps: list[Deployment], health: HealthBoard, stream: bool) -> list[Deployment]:
    """Unmeasured deployments go first so each gets measured; then the lowest moving average
    (time to first token for streams, total latency otherwise)."""

    def key(dep: Deployment) -> float:
        h = health.get(dep.id)
        value = (h.ttft_ms.value if stream else None) or h.latency_ms.value
        return -1.0 if value is None else value

    return sorted(deps, key=key)


def _by_throughput(deps: list[Deployment], health: HealthBoard) -> list[Deployment]:
    def key(dep: Deployment) -> float:
        value = health.get(dep.id).tokens_per_s.value
        return float("-inf") if value is None else -value

    return sorted(deps, key=key)


def _weighted_shuffle(deps: list[Deployment], rng: random.Random) -> list[Deployment]:
    """A weighted random order without replacement (Efraimidis-Spirakis keys u^(1/w)): the
    first pick follows the weights, and the rest stay available as fallbacks."""
    keyed = [(rng.random() ** (1.0 / dep.weight) if dep.weight > 0 else 0.0, dep) for dep in deps]
    keyed.sort(key=lambda pair: pair[0], reverse=True)
    return [dep for _, dep in keyed]
