"""Exact request pricing: token counts times a host's list prices, in Decimal, never float.

Prices are USD per million tokens (`crossroads.catalog.model.Prices`). Results are quantized to
`COST_QUANTUM` (1e-10 USD), the resolution the ledger stores, so a priced request round-trips the
store unchanged and sums over millions of rows stay exact.
"""

from __future__ import annotations

import functools
from datetime import datetime
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
    """The five per-million rates that apply to one request, with the None fallbacks resolved."""

    input: Decimal
    cached_input: Decimal
    cache_write: Decimal
    output: Decimal
    reasoning: Decimal


def cost(usage: Usage, prices: Prices, at: datetime | None = None) -> Decimal:
    """The exact USD cost of `usage` at `prices`, quantized to 1e-10 USD (half-even).

    `at` is when the request started (UTC): where `prices` has time-of-day windows, the window
    containing it supplies the rates (DeepSeek's off-peak); without `at`, the base prices.
    The tier is the one with the highest `above_prompt_tokens` still below `usage.prompt_tokens`
    (base prices when none is). Uncached input is `prompt_tokens - cached_tokens -
    cache_write_tokens`, clamped at 0; cached tokens bill at `cached_input` and cache writes at
    `cache_write`, each falling back to the same tier's `input` when it lists no such price.
    `completion_tokens` already includes reasoning tokens, so those are billed once: at the
    `reasoning` rate where one is listed, else as output.

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
    rates = _rates(prices.at_time(at), prompt)
    uncached = max(prompt - cached - written, 0)
    # The context's methods, not `localcontext()`: this runs on every request.
    c = _CONTEXT
    micro_usd = c.add(
        c.add(c.multiply(uncached, rates.input), c.multiply(cached, rates.cached_input)),
        c.add(c.multiply(written, rates.cache_write), c.multiply(completion, rates.output)),
    )
    if rates.reasoning != rates.output and usage.reasoning_tokens > 0:
        reasoning = min(usage.reasoning_tokens, completion)
        micro_usd = c.add(micro_usd, c.multiply(reasoning, rates.reasoning - rates.output))
    return c.divide(micro_usd, _PER_MILLION).quantize(
        COST_QUANTUM, rounding=ROUND_HALF_EVEN, context=c
    )


def estimate_max_cost(
    prompt_tokens: int, max_output_tokens: int, prices: Prices, at: datetime | None = None
) -> Decimal:
    """An upper bound on what a request can cost, for budget checks before it is sent.

    Uses the time-of-day window in force at `at` (as `cost` does; without `at`, the dearest of
    the base prices and every window), the tier that `prompt_tokens` selects, and bills every
    prompt token at the dearest input rate (uncached input, or the cache-write rate where a host
    charges more for writes, as Anthropic does), and `max_output_tokens` at the dearer of the
    output and reasoning rates. Rounded up to 1e-10 USD, so the
    estimate is never below the `cost` of any usage with these counts.

    Raises ValueError when a count is negative.
    """
    _check_counts(prompt_tokens=prompt_tokens, max_output_tokens=max_output_tokens)
    levels = [prices.at_time(at)] if at is not None else [prices, *prices.windows]
    all_rates = [_rates(level, prompt_tokens) for level in levels]
    dearest_input = max(max(r.input, r.cached_input, r.cache_write) for r in all_rates)
    dearest_output = max(max(r.output, r.reasoning) for r in all_rates)
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        micro_usd = prompt_tokens * dearest_input + max_output_tokens * dearest_output
        return (micro_usd / _PER_MILLION).quantize(COST_QUANTUM, rounding=ROUND_CEILING)


def _rates(prices: Prices, prompt_tokens: int) -> _Rates:
    """The rates for a prompt of `prompt_tokens`: the applicable tier's, else the base prices."""
    applicable = [tier for tier in prices.tiers if tier.above_prompt_tokens < prompt_tokens]
    if not applicable:
        return _base_rates(prices)
    tier = max(applicable, key=lambda t: t.above_prompt_tokens)
    return _resolve(tier.input, tier.cached_input, tier.cache_write, tier.output, tier.reasoning)


@functools.lru_cache(maxsize=1024)
def _base_rates(prices: Prices) -> _Rates:
    """Resolved once per price list (prices are immutable and few)."""
    return _resolve(
        prices.input, prices.cached_input, prices.cache_write, prices.output, prices.reasoning
    )


def _resolve(
    source_input: Decimal,
    cached_input: Decimal | None,
    cache_write: Decimal | None,
    output: Decimal,
    reasoning: Decimal | None,
) -> _Rates:
    return _Rates(
        input=source_input,
        cached_input=source_input if cached_input is None else cached_input,
        cache_write=source_input if cache_write is None else cache_write,
        output=output,
        reasoning=output if reasoning is None else reasoning,
    )


def _check_counts(**counts: int) -> None:
    for name, value in counts.items():
        if value < 0:
            raise ValueError(f"{name} must not be negative, got {value}")
