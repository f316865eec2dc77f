"""Pricing arithmetic: list prices from the makers' and hosts' price pages, worked by hand."""

from __future__ import annotations

from decimal import Decimal

import pytest

from crossroads.catalog.model import Prices, PriceTier
from crossroads.ledger.pricing import cost, estimate_max_cost
from crossroads.schemas.usage import Usage

D = Decimal
M = 1_000_000

CLAUDE_SONNET_45 = Prices(
    input=D("3"), output=D("15"), cached_input=D("0.30"), cache_write=D("3.75")
)
GPT_41 = Prices(input=D("2"), output=D("8"), cached_input=D("0.50"))
DEEPSEEK_V32 = Prices(input=D("0.28"), output=D("0.42"), cached_input=D("0.028"))
GEMINI_25_PRO = Prices(
    input=D("1.25"),
    output=D("10"),
    cached_input=D("0.31"),
    tiers=(PriceTier(above_prompt_tokens=200_000, input=D("2.5"), output=D("15")),),
)


@pytest.mark.parametrize(
    ("prices", "expected"),
    [(CLAUDE_SONNET_45, D("60.00")), (GPT_41, D("36.00")), (DEEPSEEK_V32, D("3.64"))],
    ids=["claude-sonnet-4.5", "gpt-4.1", "deepseek-v3.2"],
)
def test_ten_million_in_two_million_out(prices: Prices, expected: Decimal) -> None:
    result = cost(Usage(prompt_tokens=10 * M, completion_tokens=2 * M), prices)
    assert result == expected
    assert isinstance(result, Decimal)


def test_result_has_ten_decimal_places() -> None:
    result = cost(Usage(prompt_tokens=1), DEEPSEEK_V32)
    assert result == D("0.00000028")
    assert result.as_tuple().exponent == -10


def test_cached_tokens_bill_at_cached_price() -> None:
    # DeepSeek: 800K cache hits at 0.028, 200K misses at 0.28, 100 output at 0.42.
    usage = Usage(prompt_tokens=M, cached_tokens=800_000, completion_tokens=100)
    assert cost(usage, DEEPSEEK_V32) == D("0.0224") + D("0.056") + D("0.000042")


def test_cached_tokens_bill_as_input_without_a_cache_price() -> None:
    usage = Usage(prompt_tokens=M, cached_tokens=M)
    assert cost(usage, Prices(input=D("0.6"), output=D("2.2"))) == D("0.6")


def test_cache_writes_bill_at_cache_write_price() -> None:
    # Claude: 20K uncached at 3, 50K written at 3.75, 30K read at 0.30, 1K output at 15.
    usage = Usage(
        prompt_tokens=100_000,
        cache_write_tokens=50_000,
        cached_tokens=30_000,
        completion_tokens=1000,
    )
    assert cost(usage, CLAUDE_SONNET_45) == D("0.06") + D("0.1875") + D("0.009") + D("0.015")


def test_cache_writes_bill_as_input_without_a_write_price() -> None:
    usage = Usage(prompt_tokens=M, cache_write_tokens=M)
    assert cost(usage, DEEPSEEK_V32) == D("0.28")


def test_uncached_input_is_clamped_at_zero() -> None:
    # A host reporting more cache hits than prompt tokens must not earn a refund.
    usage = Usage(prompt_tokens=100, cached_tokens=M)
    assert cost(usage, DEEPSEEK_V32) == D("0.028")


def test_reasoning_tokens_bill_once_as_output() -> None:
    with_reasoning = Usage(prompt_tokens=1000, completion_tokens=5000, reasoning_tokens=4000)
    without = Usage(prompt_tokens=1000, completion_tokens=5000)
    assert cost(with_reasoning, DEEPSEEK_V32) == cost(without, DEEPSEEK_V32)
    assert cost(with_reasoning, DEEPSEEK_V32) == D("0.00028") + D("0.0021")


def test_gemini_tier_starts_above_200k_prompt_tokens() -> None:
    at_threshold = Usage(prompt_tokens=200_000, completion_tokens=1000)
    above = Usage(prompt_tokens=200_001, completion_tokens=1000)
    assert cost(at_threshold, GEMINI_25_PRO) == D("0.25") + D("0.01")
    assert cost(above, GEMINI_25_PRO) == D("0.5000025") + D("0.015")


def test_tier_without_cache_price_bills_cached_at_the_tier_input() -> None:
    usage = Usage(prompt_tokens=300_000, cached_tokens=300_000)
    assert cost(usage, GEMINI_25_PRO) == D("0.75")


def test_highest_applicable_tier_wins_whatever_the_order() -> None:
    prices = Prices(
        input=D("1"),
        output=D("1"),
        tiers=(
            PriceTier(above_prompt_tokens=128_000, input=D("3"), output=D("3")),
            PriceTier(above_prompt_tokens=32_000, input=D("2"), output=D("2")),
        ),
    )
    assert cost(Usage(prompt_tokens=32_000), prices) == D("0.032")
    assert cost(Usage(prompt_tokens=100_000), prices) == D("0.2")
    assert cost(Usage(prompt_tokens=200_000), prices) == D("0.6")


def test_sub_resolution_cost_rounds_half_even() -> None:
    prices = Prices(input=D("0.00005"), output=D("0.00015"))
    assert cost(Usage(prompt_tokens=1), prices) == D("0")  # 5e-11 rounds to even: 0
    assert cost(Usage(completion_tokens=1), prices) == D("2E-10")  # 1.5e-10 rounds to 2e-10


def test_sum_of_many_small_costs_is_exact() -> None:
    one = cost(Usage(prompt_tokens=1, completion_tokens=1), DEEPSEEK_V32)
    assert sum([one] * 1_000_000, D(0)) == D("0.70")


def test_negative_counts_are_rejected() -> None:
    with pytest.raises(ValueError, match="cached_tokens"):
        cost(Usage(prompt_tokens=10, cached_tokens=-1), DEEPSEEK_V32)
    with pytest.raises(ValueError, match="max_output_tokens"):
        estimate_max_cost(10, -1, DEEPSEEK_V32)


def test_estimate_max_cost_is_all_uncached() -> None:
    assert estimate_max_cost(10 * M, 2 * M, DEEPSEEK_V32) == D("3.64")
    assert estimate_max_cost(10 * M, 2 * M, GPT_41) == D("36")


def test_estimate_max_cost_uses_the_tier_of_the_prompt() -> None:
    assert estimate_max_cost(200_000, 1000, GEMINI_25_PRO) == D("0.26")
    assert estimate_max_cost(300_000, 1000, GEMINI_25_PRO) == D("0.75") + D("0.015")


def test_estimate_max_cost_covers_dearer_cache_writes() -> None:
    # Anthropic charges more to write the cache than for plain input.
    assert estimate_max_cost(M, 0, CLAUDE_SONNET_45) == D("3.75")


def test_estimate_max_cost_rounds_up() -> None:
    assert estimate_max_cost(1, 0, Prices(input=D("0.00001"), output=D("1"))) == D("1E-10")


@pytest.mark.parametrize("prices", [CLAUDE_SONNET_45, GPT_41, DEEPSEEK_V32, GEMINI_25_PRO])
def test_estimate_max_cost_bounds_every_usage(prices: Prices) -> None:
    prompt, max_output = 250_000, 8000
    usages = [
        Usage(prompt_tokens=prompt, completion_tokens=max_output),
        Usage(prompt_tokens=prompt, cached_tokens=prompt, completion_tokens=max_output),
        Usage(prompt_tokens=prompt, cache_write_tokens=prompt, completion_tokens=max_output),
        Usage(prompt_tokens=prompt, cached_tokens=1000, cache_write_tokens=9000),
    ]
    bound = estimate_max_cost(prompt, max_output, prices)
    for usage in usages:
        assert cost(usage, prices) <= bound
