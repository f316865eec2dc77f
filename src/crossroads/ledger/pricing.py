"""Exact request pricing: token counts times a host's list prices, in Decimal, never float.

Prices are USD per million tokens (`crossroads.catalog.model.Prices`). Results are quantized to
`COST_QUANTUM` (1e-10 USD), the resolution the ledger stores, so a priced request round-trips the
store unchanged and sums over millions of rows stay exact.
"""

from __future__ import annotations

import functools
from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Context, Decimal, localcontext
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
_CONTEXT = Context(prec=_PRECISION)


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
    prompt, cached = usage.prompt_tokens, usage.cached_tokens
    written, completion = usage.cache_write_tokens, usage.completion_tokens
    if min(prompt, cached, written, completion) < 0:
        _check_counts(
            prompt_tokens=prompt,
            cached_tokens=cached,
            cache_write_tokens=written,
            completion_tokens=completion,
        )
    rates = _rates(prices, prompt)
    uncached = max(prompt - cached - written, 0)
    # The context's methods, not `localcontext()`: this runs on every request.
    c = _CONTEXT
    micro_usd = c.add(
        c.add(c.multiply(uncached, rates.input), c.multiply(cached, rates.cached_input)),
        c.add(c.multiply(written, rates.cache_write), c.multiply(completion, rates.output)),
    )
    return c.divide(micro_usd, _PER_MILLION).quantize(
        COST_QUANTUM, rounding=ROUND_HALF_EVEN, context=c
    )


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
    if not applicable:
        return _base_rates(prices)
    tier = max(applicable, key=lambda t: t.above_prompt_tokens)
    return _resolve(tier.input, tier.cached_input, tier.cache_write, tier.output)


@functools.lru_cache(maxsize=1024)
def _base_rates(prices: Prices) -> _Rates:
    """Resolved once per price list (prices are immutable and few)."""
    return _resolve(prices.input, prices.cached_input, prices.cache_write, prices.output)


def _resolve(
    source_input: Decimal,
    cached_input: Decimal | None,
    cache_write: Decimal | None,
    output: Decimal,
) -> _Rates:
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
