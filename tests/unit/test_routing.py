"""Routing as pure functions: request preferences, strategies, the circuit breaker."""

from __future__ import annotations

import random
from collections import Counter
from decimal import Decimal

import pytest

from crossroads.catalog.model import Prices
from crossroads.errors import InvalidRequestError
from crossroads.routing.deployment import Deployment
from crossroads.routing.health import BreakerPolicy, Circuit, HealthBoard
from crossroads.routing.options import RoutingOptions, parse_routing_options
from crossroads.routing.strategy import allowed, order
from crossroads.routing.table import Alias, RoutingTable


def dep(
    provider: str, price_in: str | None = None, price_out: str = "1", weight: float = 1.0
) -> Deployment:
    prices = Prices(input=Decimal(price_in), output=Decimal(price_out)) if price_in else None
    return Deployment(
        id=f"{provider}:m",
        name="kimi",
        provider=provider,
        upstream_model="m",
        prices=prices,
        weight=weight,
    )


A, B, C = dep("a", "1.00", "3.00"), dep("b", "0.60", "2.50"), dep("c")


def board(*deps: Deployment) -> HealthBoard:
    return HealthBoard([d.id for d in deps])


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_options_parse_and_are_removed_from_the_body() -> None:
    body = {
        "model": "x",
        "messages": [],
        "models": ["y"],
        "provider": {
            "order": ["b"],
            "only": ["a", "b"],
            "ignore": ["c"],
            "allow_fallbacks": False,
            "sort": "price",
            "max_price": {"prompt": 1, "completion": 2.5},
        },
    }
    options = parse_routing_options(body, prompt_tokens=100)
    assert "provider" not in body and "models" not in body
    assert options.order == ("b",) and options.only == {"a", "b"} and options.ignore == {"c"}
    assert options.allow_fallbacks is False and options.sort == "price"
    assert options.max_prompt_price == Decimal("1") and options.max_completion_price == Decimal(
        "2.5"
    )
    assert options.fallback_models == ("y",)


@pytest.mark.parametrize(
    ("provider", "needle"),
    [
        ({"orderr": ["a"]}, "orderr"),
        ({"sort": "fastest"}, "provider.sort"),
        ({"max_price": {"prompt": -1}}, "max_price.prompt"),
        ({"max_price": {"images": 1}}, "images"),
        ({"data_collection": "deny"}, "data_collection"),
        ("cheap", "provider"),
    ],
)
def test_unknown_or_bad_preferences_are_400(provider: object, needle: str) -> None:
    with pytest.raises(InvalidRequestError) as err:
        parse_routing_options({"provider": provider})
    assert needle in err.value.message and err.value.status == 400


def test_models_must_be_a_list_of_names() -> None:
    with pytest.raises(InvalidRequestError, match="'models'"):
        parse_routing_options({"models": "y"})


def test_only_ignore_and_max_price_filter() -> None:
    options = parse_routing_options({"provider": {"only": ["a", "b"], "ignore": ["a"]}})
    assert allowed(A, options) is not None and allowed(B, options) is None
    assert "only" in (allowed(C, options) or "")
    capped = parse_routing_options({"provider": {"max_price": {"completion": 2.6}}})
    assert allowed(B, capped) is None
    assert "above" in (allowed(A, capped) or "")
    assert "no known price" in (allowed(C, capped) or "")


def test_priority_keeps_config_order_and_order_moves_providers_first() -> None:
    assert order([A, B, C], "priority", RoutingOptions(), board(A, B, C)) == [A, B, C]
    opts = RoutingOptions(order=("c", "b"))
    assert order([A, B, C], "priority", opts, board(A, B, C)) == [C, B, A]


def test_cheapest_uses_the_expected_token_mix_and_puts_unpriced_last() -> None:
    # 1M prompt + 1M completion: A = 4.00, B = 3.10; C has no price.
    opts = RoutingOptions(prompt_tokens=1_000_000, completion_tokens=1_000_000)
    assert order([C, A, B], "cheapest", opts, board(A, B, C)) == [B, A, C]
    # A request-level sort overrides the configured strategy.
    assert order([C, A, B], "priority", RoutingOptions(sort="price"), board(A, B, C)) == [B, A, C]


def test_latency_prefers_unmeasured_then_lowest_moving_average() -> None:
    health = board(A, B, C)
    health.success(A.id, latency_ms=900, ttft_ms=100)
    health.success(B.id, latency_ms=300, ttft_ms=250)
    assert order([A, B, C], "latency", RoutingOptions(), health) == [C, B, A]
    # Streams order by time to first token.
    assert order([A, B, C], "latency", RoutingOptions(), health, stream=True) == [C, A, B]


def test_throughput_sort_prefers_more_tokens_per_second() -> None:
    health = board(A, B)
    health.success(A.id, latency_ms=1100, ttft_ms=100, completion_tokens=100)  # 100 tok/s
    health.success(B.id, latency_ms=600, ttft_ms=100, completion_tokens=100)  # 200 tok/s
    assert order([A, B], "priority", RoutingOptions(sort="throughput"), health) == [B, A]


def test_weighted_random_follows_the_weights() -> None:
    heavy, light = dep("h", weight=3.0), dep("l", weight=1.0)
    rng = random.Random(7)
    firsts = Counter(
        order([heavy, light], "weighted", RoutingOptions(), board(heavy, light), rng=rng)[
            0
        ].provider
        for _ in range(4000)
    )
    assert 0.70 < firsts["h"] / 4000 < 0.80  # 3:1 -> 75% first picks
    never = dep("z", weight=0.0)
    assert (
        order([never, light], "weighted", RoutingOptions(), board(never, light), rng=rng)[0]
        == light
    )


def test_breaker_opens_after_consecutive_failures_and_probes_after_cooldown() -> None:
    clock = Clock()
    health = HealthBoard(["d"], BreakerPolicy(failures=3, cooldown=30, min_calls=10), clock)
    for _ in range(3):
        assert health.admit("d")
        health.failure("d", "boom")
    assert health.get("d").state is Circuit.OPEN and not health.admit("d")
    assert health.retry_in("d") == 30
    clock.now += 31
    assert health.admit("d")  # the half-open probe
    assert health.get("d").state is Circuit.HALF_OPEN and not health.admit("d")
    health.failure("d", "still down")
    assert health.get("d").state is Circuit.OPEN
    clock.now += 31
    assert health.admit("d")
    health.success("d", latency_ms=10)
    assert health.get("d").state is Circuit.CLOSED and health.admit("d")


def test_breaker_opens_on_failure_rate() -> None:
    health = HealthBoard(
        ["d"], BreakerPolicy(failures=100, failure_rate=0.5, window=10, min_calls=10)
    )
    for i in range(10):
        if i % 2:
            health.failure("d", "x")
        else:
            health.success("d")
    assert health.get("d").state is Circuit.OPEN


def test_breaker_trips_at_once_on_bad_credentials() -> None:
    health = board(A)
    health.failure(A.id, "401", trip=True)
    assert health.get(A.id).state is Circuit.OPEN


def test_alias_strategy_reaches_the_route() -> None:
    table = RoutingTable([A, B], {"cheap": Alias(("kimi",), "cheapest")})
    assert table.resolve("cheap").strategy == "cheapest"
    assert table.resolve("kimi").strategy is None
    assert [d.provider for d in table.resolve("kimi@b").deployments] == ["b"]
