"""`catalog sync`, the pure part: read public price lists (OpenRouter's models and endpoints
API, the JSON price map in the format the LiteLLM package ships), match them to catalog
offerings, and propose changes as a reviewable diff and an override file in the catalog's own
shape. Nothing here does I/O; the CLI fetches or reads the documents and writes the file.

A proposal only ever adds a dated entry to an offering's price history (or sets its
quantisation or context length): it never rewrites a past price, so ledger rows priced before
the sync keep their meaning."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec

from crossroads.catalog.loader import Catalog
from crossroads.catalog.model import QUANTIZATIONS, Offering, PricePoint, PriceTier

__all__ = [
    "LITELLM_PROVIDERS",
    "OPENROUTER_PROVIDERS",
    "Change",
    "Quote",
    "SyncError",
    "SyncPlan",
    "parse_document",
    "plan",
]

_MILLION = Decimal(1_000_000)

OPENROUTER_PROVIDERS: Mapping[str, str] = {
    # OpenRouter's `provider_name` of an endpoint -> catalog host id.
    "DeepSeek": "deepseek",
    "Moonshot AI": "moonshot",
    "Z.AI": "zai",
    "MiniMax": "minimax",
    "Alibaba": "dashscope-intl",
    "Together": "together",
    "Fireworks": "fireworks",
    "Groq": "groq",
    "DeepInfra": "deepinfra",
    "OpenAI": "openai",
    "Anthropic": "anthropic",
    "Google AI Studio": "google",
}

LITELLM_PROVIDERS: Mapping[str, str] = {
    # LiteLLM's `litellm_provider` -> catalog host id.
    "deepseek": "deepseek",
    "moonshot": "moonshot",
    "zai": "zai",
    "minimax": "minimax",
    "dashscope": "dashscope-intl",
    "together_ai": "together",
    "fireworks_ai": "fireworks",
    "groq": "groq",
    "deepinfra": "deepinfra",
    "openrouter": "openrouter",
    "openai": "openai",
    "anthropic": "anthropic",
    "gemini": "google",
}

_ABOVE = re.compile(r"_above_(\d+)k_tokens$")


class SyncError(ValueError):
    """A document that is not in a format `catalog sync` reads, said plainly."""


@dataclass(frozen=True, slots=True)
class Quote:
    """What one source says about one model at one host: prices per million tokens (None:
    the source lists none), the quantisation and context length it serves."""

    host: str
    upstream_model: str  # the host's id (for OpenRouter endpoints: OpenRouter's model id)
    source: str
    verified: bool
    input: Decimal | None = None
    output: Decimal | None = None
    cached_input: Decimal | None = None
    cache_write: Decimal | None = None
    reasoning: Decimal | None = None
    tiers: tuple[PriceTier, ...] = ()
    quantization: str | None = None
    context_length: int | None = None
    via_openrouter: bool = False  # an OpenRouter endpoint: match the model by OpenRouter's id


@dataclass(frozen=True, slots=True)
class Change:
    """One offering's proposed update: a new price entry, a quantisation, a context length."""

    offering: Offering
    lines: tuple[str, ...]  # the diff, one field a line
    updated: Offering


@dataclass(slots=True)
class SyncPlan:
    changes: list[Change] = field(default_factory=list)
    unchanged: int = 0
    unmatched: list[str] = field(default_factory=list)  # "host model" the catalog lacks
    skipped: list[str] = field(default_factory=list)  # conflicts not written, with why

    def diff(self) -> str:
        """The reviewable diff: one block per changed offering, then what was left out."""
        out: list[str] = []
        for change in self.changes:
            o = change.offering
            out.append(f"~ {o.model} at {o.host} ({o.upstream_model})")
            out += [f"    {line}" for line in change.lines]
        out.append(
            f"{len(self.changes)} offerings to update, {self.unchanged} unchanged, "
            f"{len(self.unmatched)} source entries match no catalog offering."
        )
        out += [f"! not written: {text}" for text in self.skipped]
        return "\n".join(out)

    def override_document(self, sources: Iterable[str], today: dt.date) -> dict[str, Any]:
        """The override file's content: a `sync` block saying what was read (the loader skips
        it), then `offerings` in the catalog's shape, each a whole entry with its history."""
        return {
            "sync": {"date": today.isoformat(), "sources": list(sources)},
            "offerings": [_compact(msgspec.to_builtins(c.updated)) for c in self.changes],
        }


def _compact(value: Any) -> Any:
    """Builtins without the None and empty values, so the override file reads like the data
    files (prices stay strings: msgspec writes Decimal as its exact text)."""
    if isinstance(value, dict):
        return {k: _compact(v) for k, v in value.items() if v is not None and v not in ([], ())}
    if isinstance(value, list | tuple):
        return [_compact(v) for v in value]
    return value


def parse_document(data: bytes, source: str, *, verified_hosts: Iterable[str] = ()) -> list[Quote]:
    """Quotes from one document: OpenRouter's `/models` list, one `/models/{id}/endpoints`
    answer, or a LiteLLM price map; which one is told by its shape. Per-token prices are read
    as exact decimals and scaled to per million. A quote is `verified` only when the document
    is the host's own list (OpenRouter's prices at OpenRouter, or a host in `verified_hosts`).
    Raises SyncError for anything else."""
    try:
        doc = json.loads(data, parse_float=Decimal, parse_int=Decimal)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SyncError(f"{source}: not JSON ({exc})") from None
    own = set(verified_hosts)
    if isinstance(doc, dict) and isinstance(doc.get("data"), list):
        return [q for item in doc["data"] if (q := _openrouter_model(item, source))]
    if isinstance(doc, dict) and isinstance(doc.get("data"), dict) and "endpoints" in doc["data"]:
        return _openrouter_endpoints(doc["data"], source, own)
    if isinstance(doc, dict) and any(
        isinstance(v, dict) and "litellm_provider" in v for v in doc.values()
    ):
        return _litellm(doc, source, own)
    raise SyncError(
        f"{source}: neither OpenRouter's models or endpoints answer nor a LiteLLM price map"
    )


def next_page(data: bytes) -> str | None:
    """OpenRouter's `links.next` (a path or URL) when the models list has more pages."""
    try:
        doc = json.loads(data)
    except ValueError:
        return None
    links = doc.get("links") if isinstance(doc, dict) else None
    following = links.get("next") if isinstance(links, dict) else None
    return following if isinstance(following, str) and following else None


def _per_million(value: Any, discount: Decimal = Decimal(0)) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = Decimal(value) if isinstance(value, str | Decimal) else None
    except InvalidOperation:
        return None
    if number is None or not number.is_finite() or number < 0:
        return None
    return (number * (1 - discount) * _MILLION).normalize() + Decimal(0)


def _int(value: Any) -> int | None:
    if isinstance(value, Decimal) and value == value.to_integral_value() and value > 0:
        return int(value)
    return None


def _pricing(pricing: Any) -> dict[str, Any]:
    if not isinstance(pricing, dict):
        return {}
    discount = pricing.get("discount")
    off = discount if isinstance(discount, Decimal) and 0 <= discount < 1 else Decimal(0)
    prices = {
        "input": _per_million(pricing.get("prompt"), off),
        "output": _per_million(pricing.get("completion"), off),
        "cached_input": _per_million(pricing.get("input_cache_read"), off),
        "cache_write": _per_million(pricing.get("input_cache_write"), off),
    }
    # OpenRouter lists "0" for the prices a model has no separate rate for.
    for name in ("cached_input", "cache_write"):
        if prices[name] == 0:
            prices[name] = None
    reasoning = _per_million(pricing.get("internal_reasoning"), off)
    if reasoning and reasoning != prices["output"]:
        prices["reasoning"] = reasoning
    return prices


def _openrouter_model(item: Any, source: str) -> Quote | None:
    if not isinstance(item, dict) or not isinstance(item.get("id"), str):
        return None
    prices = _pricing(item.get("pricing"))
    if prices.get("input") is None or prices.get("output") is None:
        return None
    return Quote(
        host="openrouter",
        upstream_model=item["id"],
        source=source,
        verified=True,  # OpenRouter's own price for its own API
        context_length=_int(item.get("context_length")),
        **prices,
    )


def _openrouter_endpoints(data: dict[str, Any], source: str, own: set[str]) -> list[Quote]:
    model_id = data.get("id")
    endpoints = data.get("endpoints")
    if not isinstance(model_id, str) or not isinstance(endpoints, list):
        raise SyncError(f"{source}: an endpoints answer needs data.id and data.endpoints")
    quotes = []
    for endpoint in endpoints:
        if not isinstance(endpoint, dict):
            continue
        host = OPENROUTER_PROVIDERS.get(str(endpoint.get("provider_name")))
        if host is None:
            continue
        quant = endpoint.get("quantization")
        quant = quant.lower() if isinstance(quant, str) and quant.lower() in QUANTIZATIONS else None
        prices = _pricing(endpoint.get("pricing"))
        if prices.get("input") is None or prices.get("output") is None:
            prices = {}
        quotes.append(
            Quote(
                host=host,
                upstream_model=model_id,
                source=f"{source} ({endpoint.get('provider_name')} endpoint)",
                verified=host in own,
                quantization=None if quant == "unknown" else quant,
                context_length=_int(endpoint.get("context_length")),
                via_openrouter=True,
                **prices,
            )
        )
    return quotes


def _litellm(doc: dict[str, Any], source: str, own: set[str]) -> list[Quote]:
    quotes = []
    for key, spec in doc.items():
        if key == "sample_spec" or not isinstance(spec, dict):
            continue
        provider = spec.get("litellm_provider")
        host = LITELLM_PROVIDERS.get(provider) if isinstance(provider, str) else None
        if host is None or spec.get("mode", "chat") != "chat":
            continue
        model = key.removeprefix(f"{provider}/")
        input_price = _per_million(spec.get("input_cost_per_token"))
        output_price = _per_million(spec.get("output_cost_per_token"))
        if input_price is None or output_price is None:
            continue
        cached = _per_million(spec.get("cache_read_input_token_cost"))
        written = _per_million(spec.get("cache_creation_input_token_cost"))
        reasoning = _per_million(spec.get("output_cost_per_reasoning_token"))
        quotes.append(
            Quote(
                host=host,
                upstream_model=model,
                source=source,
                verified=host in own,
                input=input_price,
                output=output_price,
                cached_input=cached,
                cache_write=written or None,  # LiteLLM writes 0.0 for "no separate rate"
                reasoning=reasoning if reasoning and reasoning != output_price else None,
                tiers=_litellm_tiers(spec),
                context_length=_int(spec.get("max_input_tokens")),
            )
        )
    return quotes


def _litellm_tiers(spec: dict[str, Any]) -> tuple[PriceTier, ...]:
    tiers: dict[int, dict[str, Decimal | None]] = {}
    for name, value in spec.items():
        match = _ABOVE.search(name)
        if not match:
            continue
        field_name = {
            "input_cost_per_token": "input",
            "output_cost_per_token": "output",
            "cache_read_input_token_cost": "cached_input",
        }.get(name[: match.start()])
        if field_name is not None:
            tiers.setdefault(int(match.group(1)) * 1000, {})[field_name] = _per_million(value)
    out = []
    for above, rates in sorted(tiers.items()):
        tier_in, tier_out = rates.get("input"), rates.get("output")
        if tier_in is not None and tier_out is not None:
            out.append(PriceTier(above, tier_in, tier_out, cached_input=rates.get("cached_input")))
    return tuple(out)


def plan(catalog: Catalog, quotes: Iterable[Quote], today: dt.date) -> SyncPlan:
    """Matches each quote to the catalog offering at its host with that upstream id (for
    OpenRouter endpoints: the model whose OpenRouter offering has that id) and proposes what
    differs; retired offerings are left as they are. Prices with time-of-day windows are never
    replaced by a source that cannot express them: such a difference is listed as not
    written."""
    result = SyncPlan()
    by_openrouter_id = {o.upstream_model: o.model for o in catalog.offerings_for_host("openrouter")}
    pending: dict[tuple[str, str], tuple[Offering, list[str]]] = {}
    for quote in quotes:
        offering = _match(catalog, quote, by_openrouter_id)
        if offering is None:
            result.unmatched.append(f"{quote.host} {quote.upstream_model}")
            continue
        model = catalog.model(offering.model)
        if offering.retired is not None or (model is not None and model.retired is not None):
            result.skipped.append(
                f"{offering.model} at {offering.host}: retired; its prices stay as they were"
            )
            continue
        key = (offering.model, offering.host)
        current, lines = pending.get(key, (offering, []))
        updated, more, skipped = _apply(current, quote, today)
        if skipped:
            result.skipped.append(f"{offering.model} at {offering.host}: {skipped}")
        pending[key] = (updated, lines + more)
    for (model_id, host_id), (updated, lines) in pending.items():
        original = catalog.offering(model_id, host_id)
        assert original is not None
        if lines:
            result.changes.append(Change(original, tuple(lines), updated))
        else:
            result.unchanged += 1
    return result


def _match(catalog: Catalog, quote: Quote, by_openrouter_id: Mapping[str, str]) -> Offering | None:
    if quote.via_openrouter:
        model_id = by_openrouter_id.get(quote.upstream_model)
        return catalog.offering(model_id, quote.host) if model_id else None
    return catalog.find_offering_by_upstream(quote.host, quote.upstream_model)


def _apply(offering: Offering, quote: Quote, today: dt.date) -> tuple[Offering, list[str], str]:
    """The offering with what `quote` changes, the diff lines, and why a part was skipped."""
    lines: list[str] = []
    changes: dict[str, Any] = {}
    if quote.quantization and quote.quantization != offering.quantization:
        lines.append(f"quantization: {offering.quantization or '-'} -> {quote.quantization}")
        changes["quantization"] = quote.quantization
    if quote.context_length and quote.context_length != (offering.context_length or None):
        lines.append(f"context_length: {offering.context_length or '-'} -> {quote.context_length}")
        changes["context_length"] = quote.context_length
    skipped = ""
    current = offering.current
    if quote.input is not None and quote.output is not None:
        proposed = PricePoint(
            input=quote.input,
            output=quote.output,
            cached_input=quote.cached_input,
            cache_write=quote.cache_write,
            reasoning=quote.reasoning,
            tiers=quote.tiers,
            since=today,
            as_of=today,
            source=quote.source,
            verified=quote.verified,
        )
        if current is not None and current.windows:
            if not any(_same(proposed, level) for level in (current, *current.windows)):
                skipped = (
                    f"{quote.source} lists {quote.input}/{quote.output}, but the catalog's price "
                    "has time-of-day windows the source cannot express; review by hand"
                )
        elif current is None or not _same(proposed, current):
            lines += _price_lines(current, proposed)
            history = offering.history
            if history and history[-1].since == today:
                history = history[:-1]  # a second source the same day replaces the first
            changes["prices"] = (*history, proposed)
    if not changes:
        return offering, lines, skipped
    return msgspec.structs.replace(offering, **changes), lines, skipped


_COMPARED = ("input", "output", "cached_input", "cache_write", "reasoning", "tiers")


def _same(a: Any, b: Any) -> bool:
    return all(getattr(a, name) == getattr(b, name) for name in _COMPARED)


def _price_lines(old: PricePoint | None, new: PricePoint) -> list[str]:
    lines = []
    for name in _COMPARED[:-1]:
        before = getattr(old, name) if old is not None else None
        after = getattr(new, name)
        if before != after:
            lines.append(f"{name}: {_show(before)} -> {_show(after)}")
    if (old.tiers if old else ()) != new.tiers:
        lines.append(f"tiers: {len(old.tiers) if old else 0} -> {len(new.tiers)}")
    flag = "" if new.verified else " (unverified: not the host's own list)"
    lines.append(f"new price entry since {new.since}, source {new.source}{flag}")
    return lines


def _show(value: Decimal | None) -> str:
    return "-" if value is None else str(value)
