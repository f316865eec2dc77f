"""The catalog's types: makers, models, hosts and host offerings (a model at a host, with prices).

Decoded from the YAML data files with msgspec, so a bad entry is reported with its path."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import msgspec


class Capabilities(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    # None: the catalog does not say. Routing leaves a model out of tool requests only when
    # it is known not to call tools (false), never on a fact nobody checked.
    tools: bool | None = None
    json_schema: bool = False
    vision: bool = False
    reasoning: bool = False
    embeddings: bool = False


class Maker(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    id: str  # "deepseek"
    name: str  # "DeepSeek"
    country: str  # ISO 3166-1 alpha-2 of the maker's headquarters: "CN"


class Model(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    id: str  # "maker/model", e.g. "deepseek/deepseek-v3.2"
    maker: str  # a Maker.id
    name: str  # display name
    open_weights: bool
    license: str | None  # SPDX id or licence name for open weights; None for closed models
    context_length: int
    capabilities: Capabilities = Capabilities()
    family: str | None = None


class Host(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    id: str  # "together"
    name: str
    jurisdiction: str  # ISO 3166-1 alpha-2 where the host serves from
    retention: str | None = None  # data-retention terms in a few words, where known
    zero_retention: bool | None = None
    openai_base_url: str | None = None
    anthropic_base_url: str | None = None
    api_key_env: str | None = None  # the environment variable a user sets to enable this host
    notes: str | None = None


class PriceTier(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Prices that replace the base prices when the prompt is longer than `above_prompt_tokens`
    (Gemini 2.5 Pro above 200K, Qwen3-Max tiers)."""

    above_prompt_tokens: int
    input: Decimal
    output: Decimal
    cached_input: Decimal | None = None
    cache_write: Decimal | None = None


class Prices(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """USD per million tokens. `cached_input` None means the host has no cache discount (cached
    tokens bill as input); `cache_write` None means cache writes bill as input."""

    input: Decimal
    output: Decimal
    cached_input: Decimal | None = None
    cache_write: Decimal | None = None
    tiers: tuple[PriceTier, ...] = ()


class Offering(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    model: str  # a Model.id
    host: str  # a Host.id
    upstream_model: str  # the model id the host's API expects, e.g. "deepseek-chat"
    prices: Prices | None = None  # None for self-hosted or unknown
    as_of: dt.date | None = None  # when the prices were read
    source: str | None = None  # where they were read
