"""Exact request pricing: token counts times a host's list prices, in Decimal, never float.

Prices are USD per million tokens (`crossroads.catalog.model.Prices`). Results are quantized to
`COST_QUANTUM` (1e-10 USD), the resolution the ledger stores, so a priced request round-trips the
store unchanged and sums over millions of rows stay exact.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Decimal, localcontext
from typing import NamedTuple

from crossroads.catalog.model import Prices
from crossroads.schemas.usage import Usage

__all__ = ["COST_QUANTUM", "cost", "estimate_max_cost"]

COST_QUANTUM = Decimal("1e-10")
"""Resolution of every cost: 1e-10 USD. A price with at most four decimals per million tokens
(every list price we know of) gives an exact cost at this resolution, so rounding never happens
in practice; when it does, `cost` rounds half-even and `estimate_max_cost` rounds up."""

_PER_MILLION = Decimal(1_000_000)
# Enough digits that no intermediate product is ever rounded: 10^12 tokens at $10^6 per million
# tokens with ten decimals still fits well inside 50 significant digits.
_PRECISION = 50


class _Rates(NamedTuple):
    """The four per-million rates that apply to one request, with the None fallbacks resolved."""

    input: Decimal
    cached_input: Decimal
    cache_write: Decimal
    output: Decimal


def cost(usage: Usage, prices: Prices) -> Decimal:
    """The exact USD cost of `usage` at `prices`, quantized to 1e-10 USD (half-even).

    The tier is the one with the highest `above_prompt_tokens` still below `usage.prompt_tokens`
    (base prices when none is). Uncached input is `prompt_tokens - cached_tokens -
    cache_write_tokens`, clamped at 0; cached tokens bill at `cached_input` and cache writes at
    `cache_write`, each falling back to the same tier's `input` when it lists no such price.
    `completion_tokens` already includes reasoning tokens, so those are billed once, as output.

    Raises ValueError when any token count is negative.
    """
    _check_counts(
        prompt_tokens=usage.prompt_tokens,
        cached_tokens=usage.cached_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        completion_tokens=usage.completion_tokens,
    )
    rates = _rates(prices, usage.prompt_tokens)
    uncached = max(usage.prompt_tokens - usage.cached_tokens - usage.cache_write_tokens, 0)
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        micro_usd = (
            uncached * rates.input
            + usage.cached_tokens * rates.cached_input
            + usage.cache_write_tokens * rates.cache_write
            + usage.completion_tokens * rates.output
        )
        return (micro_usd / _PER_MILLION).quantize(COST_QUANTUM, rounding=ROUND_HALF_EVEN)


def estimate_max_cost(prompt_tokens: int, max_output_tokens: int, prices: Prices) -> Decimal:
    """An upper bound on what a request can cost, for budget checks before it is sent.

    Uses the tier that `prompt_tokens` selects and bills every prompt token at the dearest input
    rate (uncached input, or the cache-write rate where a host charges more for writes, as
    Anthropic does), and `max_output_tokens` at the output rate. Rounded up to 1e-10 USD, so the
    estimate is never below the `cost` of any usage with these counts.

    Raises ValueError when a count is negative.
    """
    _check_counts(prompt_tokens=prompt_tokens, max_output_tokens=max_output_tokens)
    rates = _rates(prices, prompt_tokens)
    dearest_input = max(rates.input, rates.cached_input, rates.cache_write)
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        micro_usd = prompt_tokens * dearest_input + max_output_tokens * rates.output
        return (micro_usd / _PER_MILLION).quantize(COST_QUANTUM, rounding=ROUND_CEILING)


def _rates(prices: Prices, prompt_tokens: int) -> _Rates:
    """The rates for a prompt of `prompt_tokens`: the applicable tier's, else the base prices."""
    applicable = [tier for tier in prices.tiers if tier.above_prompt_tokens < prompt_tokens]
    if applicable:
        tier = max(applicable, key=lambda t: t.above_prompt_tokens)
        source_input, output = tier.input, tier.output
        cached_input, cache_write = tier.cached_input, tier.cache_write
    else:
        source_input, output = prices.input, prices.output
        cached_input, cache_write = prices.cached_input, prices.cache_write
    return _Rates(
        input=source_input,
        cached_input=source_input if cached_input is None else cached_input,
        cache_write=source_input if cache_write is None else cache_write,
        output=output,
    )


def _check_counts(**counts: int) -> None:
    for name, value in counts.items():
        if value < 0:
            raise ValueError(f"{name} must not be negative, got {value}")
