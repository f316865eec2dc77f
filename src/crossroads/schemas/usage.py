"""Token usage of one request, as the ledger and the pricing engine see it."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec

# Counts above this are not believable from any upstream (2^40 tokens); they are recorded as 0
# rather than poison sums downstream.
MAX_TOKENS = 2**40


class Usage(msgspec.Struct, frozen=True):
    """Token counts of one request. `prompt_tokens` includes `cached_tokens` (OpenAI's convention);
    `completion_tokens` includes `reasoning_tokens`. `estimated` is False when the counts are
    the upstream's own, True when the gateway estimated them because the upstream reported none
    (`crossroads.ingress.estimate`)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    # What the upstream itself says the request cost (OpenRouter's `usage.cost`), if anything.
    upstream_cost_usd: Decimal | None = None
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @classmethod
    def from_openai(cls, usage: Any) -> Usage | None:
        """Reads an OpenAI-format `usage` object (as decoded JSON). Returns None when `usage` is
        not an object; tolerates missing or null fields, which several hosts send."""
        if not isinstance(usage, dict):
            return None
        prompt_details = usage.get("prompt_tokens_details") or {}
        completion_details = usage.get("completion_tokens_details") or {}
        return cls(
            prompt_tokens=_int(usage.get("prompt_tokens")),
            completion_tokens=_int(usage.get("completion_tokens")),
            cached_tokens=_int(
                prompt_details.get("cached_tokens") if isinstance(prompt_details, dict) else None
            )
            # DeepSeek reports cache hits in its own top-level field.
            or _int(usage.get("prompt_cache_hit_tokens")),
            cache_write_tokens=_int(
                prompt_details.get("cache_write_tokens")
                if isinstance(prompt_details, dict)
                else None
            ),
            reasoning_tokens=_int(
                completion_details.get("reasoning_tokens")
                if isinstance(completion_details, dict)
                else None
            ),
            upstream_cost_usd=_cost(usage.get("cost")),
        )


def from_responses(usage: Any) -> Usage | None:
    """Reads a Responses API `usage` object (`input_tokens`, `output_tokens` and their
    details), as an upstream that speaks the Responses API reports it."""
    if not isinstance(usage, dict):
        return None
    inputs = usage.get("input_tokens_details")
    outputs = usage.get("output_tokens_details")
    inputs = inputs if isinstance(inputs, dict) else {}
    outputs = outputs if isinstance(outputs, dict) else {}
    return Usage(
        prompt_tokens=_int(usage.get("input_tokens")),
        completion_tokens=_int(usage.get("output_tokens")),
        cached_tokens=_int(inputs.get("cached_tokens")),
        cache_write_tokens=_int(inputs.get("cache_write_tokens")),
        reasoning_tokens=_int(outputs.get("reasoning_tokens")),
    )


def _int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_TOKENS:
        return value
    return 0


def _cost(value: Any) -> Decimal | None:
    """A reported cost in USD: a JSON number or numeric string, finite, 0 to 1e6."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        cost = Decimal(str(value))
    except InvalidOperation:
        return None
    return cost if cost.is_finite() and 0 <= cost <= 1_000_000 else None
