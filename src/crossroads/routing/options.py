"""Per-request routing control, read from extension fields of the request body.

Modelled on OpenRouter's `provider` object (`order`, `only`, `ignore`, `allow_fallbacks`, `sort`,
`max_price`, `quantizations`) and its `models` fallback list. Unknown fields are refused with a
400 naming them: a silently ignored routing rule is worse than an error. The fields are removed
from the body before it is forwarded, so no upstream sees them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

import msgspec

from crossroads.catalog.model import QUANTIZATIONS
from crossroads.errors import InvalidRequestError

EXTENSION_FIELDS = ("provider", "models")
Sort = Literal["price", "latency", "throughput"]
_AT = re.compile(r" - at `\$\.?([^`]*)`$")


class MaxPrice(msgspec.Struct, forbid_unknown_fields=True):
    """USD per million tokens; deployments above either bound (or with no known price) are
    left out."""

    prompt: float | None = None
    completion: float | None = None


class ProviderPreferences(msgspec.Struct, forbid_unknown_fields=True):
    order: list[str] | None = None
    only: list[str] | None = None
    ignore: list[str] | None = None
    allow_fallbacks: bool = True
    sort: Sort | None = None
    max_price: MaxPrice | None = None
    # OpenRouter's quantisation filter: only deployments served at one of these (the catalog
    # offering's, or the config's); "unknown" admits deployments whose quantisation is not known.
    quantizations: list[str] | None = None


@dataclass(frozen=True, slots=True)
class RoutingOptions:
    order: tuple[str, ...] = ()
    only: frozenset[str] | None = None
    ignore: frozenset[str] = frozenset()
    allow_fallbacks: bool = True
    sort: Sort | None = None
    max_prompt_price: Decimal | None = None
    max_completion_price: Decimal | None = None
    quantizations: frozenset[str] | None = None
    fallback_models: tuple[str, ...] = ()
    # Seconds the client is prepared to wait, when it said so (shorter than the gateway's).
    timeout: float | None = None
    # The expected token mix, for price ordering.
    prompt_tokens: int = 0
    completion_tokens: int = 1000
    # When the request started (UTC): price ordering uses the list price and time-of-day
    # window in force then (DeepSeek's peak hours); None: the current base price.
    started_at: datetime | None = None
    # The request carries images: deployments whose model is known not to see them are left out.
    needs_vision: bool = False
    # The request offers tools the model may call (tool_choice is not "none").
    needs_tools: bool = False


DEFAULT_OPTIONS = RoutingOptions()


def parse_routing_options(
    data: dict[str, Any],
    *,
    prompt_tokens: int = 0,
    completion_tokens: int | None = None,
    started_at: datetime | None = None,
) -> RoutingOptions:
    """Reads and removes the extension fields from `data` (a decoded request body). Raises
    InvalidRequestError (400) naming the offending field."""
    raw_provider = data.pop("provider", None)
    raw_models = data.pop("models", None)
    prefs = ProviderPreferences()
    if raw_provider is not None:
        try:
            prefs = msgspec.convert(raw_provider, ProviderPreferences)
        except msgspec.ValidationError as exc:
            text = str(exc)
            match = _AT.search(text)
            where = f"provider.{match.group(1)}" if match and match.group(1) else "provider"
            message = text[: match.start()] if match else text
            raise InvalidRequestError(
                f"Invalid routing preferences at '{where}': {message}. Supported fields: "
                "order, only, ignore, allow_fallbacks, sort, max_price, quantizations.",
                param=where,
            ) from None
    models: tuple[str, ...] = ()
    if raw_models is not None:
        if not isinstance(raw_models, list) or not all(
            isinstance(m, str) and m for m in raw_models
        ):
            raise InvalidRequestError(
                "'models' must be a list of model names to fall back to.", param="models"
            )
        models = tuple(raw_models)
    max_price = prefs.max_price or MaxPrice()
    for name, bound in (("prompt", max_price.prompt), ("completion", max_price.completion)):
        if bound is not None and bound < 0:
            raise InvalidRequestError(
                f"'provider.max_price.{name}' must not be negative.",
                param=f"provider.max_price.{name}",
            )
    quantizations = None
    if prefs.quantizations is not None:
        quantizations = frozenset(q.lower() for q in prefs.quantizations)
        unknown = sorted(quantizations - set(QUANTIZATIONS))
        if unknown:
            raise InvalidRequestError(
                f"'provider.quantizations' has unknown value(s) {', '.join(unknown)}; use "
                f"{', '.join(QUANTIZATIONS)}.",
                param="provider.quantizations",
            )
    return RoutingOptions(
        order=tuple(prefs.order or ()),
        only=frozenset(prefs.only) if prefs.only is not None else None,
        ignore=frozenset(prefs.ignore or ()),
        allow_fallbacks=prefs.allow_fallbacks,
        sort=prefs.sort,
        max_prompt_price=_decimal(max_price.prompt),
        max_completion_price=_decimal(max_price.completion),
        quantizations=quantizations,
        fallback_models=models,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens or 1000,
        started_at=started_at,
    )


def _decimal(value: float | None) -> Decimal | None:
    return None if value is None else Decimal(str(value))
