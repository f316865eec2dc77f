"""The catalog's types: makers, models, hosts and host offerings (a model at a host, with its
dated price history, time-of-day windows and prompt-length tiers).

Decoded from the YAML data files with msgspec, so a bad entry is reported with its path."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import msgspec

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
"""How a time-of-day window names the UTC weekdays it applies on."""

QUANTIZATIONS = ("int4", "int8", "fp4", "fp6", "fp8", "fp16", "bf16", "fp32", "unknown")
"""Quantisation names, as OpenRouter's `provider.quantizations` spells them."""


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
    released: dt.date | None = None  # when the maker released it (API or weights, first)
    # When the maker retired it from its API; the entry stays so old ledger rows still resolve.
    retired: dt.date | None = None
    successor: str | None = None  # the model id the maker names as its replacement
    source: str | None = None  # where the model facts were read
    verified: bool = True  # False: from secondary or conflicting sources; shown as such
    notes: str | None = None

    def retired_at(self, when: dt.date) -> bool:
        """Whether the model is retired on `when`."""
        return self.retired is not None and self.retired <= when


class Host(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    id: str  # "together"
    name: str
    jurisdiction: str  # ISO 3166-1 alpha-2 where the host serves from
    retention: str | None = None  # data-retention terms in a few words, where known
    zero_retention: bool | None = None  # the host publishes zero data retention (for the API)
    trains_on_prompts: bool | None = None  # whether prompts may be used for training
    policy_source: str | None = None  # where the retention and training terms were read
    policy_as_of: dt.date | None = None
    policy_verified: bool = True
    openai_base_url: str | None = None
    anthropic_base_url: str | None = None
    api_key_env: str | None = None  # the environment variable a user sets to enable this host
    notes: str | None = None


class PriceTier(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Prices that replace the base prices when the prompt is longer than `above_prompt_tokens`
    (MiniMax M3 above 512K, Gemini 2.5 Pro above 200K)."""

    above_prompt_tokens: int
    input: Decimal
    output: Decimal
    cached_input: Decimal | None = None
    cache_write: Decimal | None = None
    reasoning: Decimal | None = None


class Prices(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """USD per million tokens. `cached_input` None means the host has no cache discount (cached
    tokens bill as input); `cache_write` None means cache writes bill as input; `reasoning`
    None means reasoning tokens bill as output. `windows` are time-of-day prices that replace
    these (with their own tiers) while a request's start time falls inside one."""

    input: Decimal
    output: Decimal
    cached_input: Decimal | None = None
    cache_write: Decimal | None = None
    reasoning: Decimal | None = None
    tiers: tuple[PriceTier, ...] = ()
    windows: tuple[PriceWindow, ...] = ()

    @property
    def highest_input(self) -> Decimal:
        """The input rate at its dearest hour: the base or any time-of-day window's."""
        return max((self.input, *(w.input for w in self.windows)))

    @property
    def highest_output(self) -> Decimal:
        """The output rate at its dearest hour: the base or any time-of-day window's."""
        return max((self.output, *(w.output for w in self.windows)))

    def at_time(self, when: dt.datetime | None) -> Prices:
        """The prices for a request that started at `when` (UTC): the window that contains its
        time of day, else these. Without a time, these (the base prices)."""
        if when is None or not self.windows:
            return self
        moment = when.astimezone(dt.UTC) if when.tzinfo else when
        minute = moment.hour * 60 + moment.minute
        day = WEEKDAYS[moment.weekday()]
        for window in self.windows:
            if window.contains(minute, day, moment.date()):
                return window
        return self


class PriceWindow(Prices, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Prices in force from `start` (inclusive) to `end` (exclusive), as "HH:MM" in UTC, on the
    UTC weekdays in `days` (empty: every day); a window whose end is before its start runs over
    midnight, and `days` then names the day it starts on."""

    name: str  # "peak"
    start: str
    end: str
    days: tuple[str, ...] = ()  # "mon" ... "sun"
    # UTC dates (of the window's start) on which it does not apply: DeepSeek's peak hours
    # exclude PRC statutory holidays, which the maker bills off-peak all day.
    except_dates: tuple[dt.date, ...] = ()
    note: str | None = None

    def contains(
        self, minute_of_day: int, weekday: str | None = None, day: dt.date | None = None
    ) -> bool:
        """Whether a request that started at this UTC minute of the day, on this UTC weekday
        ("mon".."sun"; None: any) and date, falls in the window."""
        start, end = _minutes(self.start), _minutes(self.end)
        starts_on, start_day = weekday, day
        if start <= end:
            inside = start <= minute_of_day < end
        else:
            inside = minute_of_day >= start or minute_of_day < end
            if minute_of_day < end:  # after midnight: the window began the day before
                starts_on = WEEKDAYS[WEEKDAYS.index(weekday) - 1] if weekday else None
                start_day = day - dt.timedelta(days=1) if day else None
        if not inside or (self.days and starts_on is not None and starts_on not in self.days):
            return False
        return start_day is None or start_day not in self.except_dates


class PricePoint(Prices, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One entry of an offering's price history: these prices are in force from `since` (a UTC
    date; None: since before any recorded change) until the next entry's `since`. `as_of` is
    when they were read and `source` where; `verified` False marks a price from a secondary or
    conflicting source, shown as such by the CLI and reports."""

    since: dt.date | None = None
    since_time: str | None = None  # "HH:MM" UTC on `since` when the change was not at midnight
    as_of: dt.date | None = None
    source: str | None = None
    verified: bool = True
    note: str | None = None

    def provenance(self) -> str:
        """ "source, read DATE" with "(unverified)" where so, for notes and tables."""
        text = self.source or "no source recorded"
        if self.as_of is not None:
            text += f", read {self.as_of.isoformat()}"
        if self.since is not None:
            text += f", in force since {self.since.isoformat()}"
            if self.since_time:
                text += f" {self.since_time} UTC"
        return text if self.verified else f"{text} (UNVERIFIED)"


class Offering(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A model at a host. `prices` is the dated history, oldest first (the loader also accepts
    the older single-price form, `prices: {...}` with `as_of` and `source` beside it, and turns
    it into a one-entry history). Empty: the host serves it but no price is recorded."""

    model: str  # a Model.id
    host: str  # a Host.id
    upstream_model: str  # the model id the host's API expects, e.g. "deepseek-chat"
    prices: tuple[PricePoint, ...] | PricePoint | None = None
    as_of: dt.date | None = None  # old form only: when the single price was read
    source: str | None = None  # old form only: where
    quantization: str | None = None  # as the host publishes it: "fp8", "fp4", "bf16", ...
    context_length: int | None = None  # when the host serves less than the model's window
    retired: dt.date | None = None  # when the host stopped serving it

    @property
    def history(self) -> tuple[PricePoint, ...]:
        """The price history, oldest first; empty when no price is recorded."""
        if self.prices is None:
            return ()
        if isinstance(self.prices, PricePoint):
            return (self.prices,)
        return self.prices

    @property
    def current(self) -> PricePoint | None:
        """The latest recorded price (the list price today), or None."""
        history = self.history
        return history[-1] if history else None

    def price_at(self, when: dt.datetime | dt.date) -> PricePoint | None:
        """The price in force at `when` (UTC), or None when no recorded price was."""
        return price_in_force(self.history, when)


def price_in_force(
    history: tuple[PricePoint, ...], when: dt.datetime | dt.date
) -> PricePoint | None:
    """The last entry of `history` (oldest first) in force at `when` (UTC; a date means its
    start, 00:00 UTC); None when `when` is before every entry."""
    if isinstance(when, dt.datetime):
        moment = when.astimezone(dt.UTC) if when.tzinfo else when
        key = (moment.date(), moment.hour * 60 + moment.minute)
    else:
        key = (when, 0)
    found = None
    for point in history:
        if point.since is None or _start(point) <= key:
            found = point
        else:
            break
    return found


def _start(point: PricePoint) -> tuple[dt.date, int]:
    assert point.since is not None
    return point.since, _minutes(point.since_time) if point.since_time else 0


def _minutes(text: str) -> int:
    hours, _, minutes = text.partition(":")
    return int(hours) * 60 + int(minutes)
