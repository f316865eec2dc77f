"""What-if pricing: the token counts of a usage export priced at candidate models with the
ledger's exact pricing (`ledger/pricing.py`), against what was actually paid, with the saving in
USD, per cent and per year (scaled by the export's time span)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from crossroads.analytics.importers import UsageRow
from crossroads.analytics.model_names import ModelResolver
from crossroads.analytics.result import Report, money, percent
from crossroads.analytics.savings import annual_run_rate
from crossroads.catalog import Catalog
from crossroads.catalog.model import Offering, PricePoint, Prices
from crossroads.ledger.pricing import cost
from crossroads.schemas.usage import Usage

__all__ = ["Target", "WhatIf", "parse_target", "price_usage"]


@dataclass(frozen=True, slots=True)
class Target:
    """A candidate: `model_id` at the pinned `host_id`, or at its cheapest priced offering."""

    text: str  # as the user wrote it
    model_id: str
    host_id: str | None


def _price(offering: Offering, at: datetime | None) -> PricePoint | None:
    """The offering's price at `at` (UTC), or its current list price when `at` is None."""
    return offering.current if at is None else offering.price_at(at)


def parse_target(catalog: Catalog, text: str) -> Target:
    """Reads `maker/model` or `maker/model@host`. Raises ValueError, saying what is known, for an
    unknown model, a host that does not serve it, or no price to use."""
    model_id, _, host_id = text.strip().partition("@")
    if catalog.model(model_id) is None:
        raise ValueError(
            f"--to {text}: {model_id!r} is not a catalog model (see crossroads models)"
        )
    offerings = catalog.offerings_for_model(model_id)
    if host_id:
        offering = catalog.offering(model_id, host_id)
        if offering is None:
            hosts = ", ".join(o.host for o in offerings) or "none"
            raise ValueError(f"--to {text}: {host_id!r} does not serve it (hosts: {hosts})")
        if offering.current is None:
            raise ValueError(f"--to {text}: the catalog has no price for it at {host_id}")
        return Target(text, model_id, host_id)
    if not any(o.current is not None for o in offerings):
        raise ValueError(f"--to {text}: the catalog has no price for it at any host")
    return Target(text, model_id, None)


class _Sum:
    """The cost of many usages at one price list, equal to summing `cost` of each: where prices
    have no tiers and at most four decimals, every per-usage cost is exact at 1e-10 USD, so
    pricing the summed tokens once gives the same total; otherwise each usage is priced alone.

    A usage that sums several requests has no one prompt length to choose a tier by, so it is
    priced at the base (untiered) prices. Where prices have time-of-day windows, each usage is
    priced at the window its start time falls in, or at the dearest of the base prices and the
    windows when it has no time (so a saving is never overstated by an off-peak price)."""

    def __init__(self, prices: Prices) -> None:
        self.prices = prices
        rates = (prices.input, prices.output, prices.cached_input, prices.cache_write)
        self._linear = (
            not prices.tiers
            and not prices.windows
            and prices.reasoning is None
            and all(_decimals(r) <= 4 for r in rates if r is not None)
        )
        self._tokens = [0, 0, 0, 0]
        self._priced = Decimal(0)
        self._base: _Sum | None = None

    def add(self, usage: Usage, aggregated: bool = False, at: datetime | None = None) -> None:
        if aggregated and self.prices.tiers:
            if self._base is None:
                p = self.prices.at_time(at)
                self._base = _Sum(
                    Prices(p.input, p.output, p.cached_input, p.cache_write, p.reasoning)
                )
            self._base.add(usage)
        elif self._linear and usage.cached_tokens + usage.cache_write_tokens <= usage.prompt_tokens:
            for i, count in enumerate(
                (
                    usage.prompt_tokens,
                    usage.cached_tokens,
                    usage.cache_write_tokens,
                    usage.completion_tokens,
                )
            ):
                self._tokens[i] += count
        else:
            self._priced += cost(usage, self.prices.at_time(at) if at else _dearest(self.prices))

    def total(self) -> Decimal:
        prompt, cached, written, completion = self._tokens
        summed = Usage(prompt, completion, cached_tokens=cached, cache_write_tokens=written)
        base = Decimal(0) if self._base is None else self._base.total()
        return cost(summed, self.prices) + self._priced + base


class _Choice:
    """Sums at every priced offering of one model (or the one pinned); `best` is the cheapest."""

    def __init__(self, offerings: Iterable[Offering], at: datetime | None = None) -> None:
        priced = [(o, _price(o, at)) for o in offerings]
        self.sums = [(o, _Sum(p)) for o, p in priced if p is not None]
        self.points = {f"{o.model}@{o.host}": p for o, p in priced if p is not None}
        self.tiered = any(summed.prices.tiers for _, summed in self.sums)

    def add(self, usage: Usage, aggregated: bool, at: datetime | None = None) -> None:
        for _, summed in self.sums:
            summed.add(usage, aggregated, at)

    def best(self) -> tuple[Offering, Decimal]:
        return min(((o, s.total()) for o, s in self.sums), key=lambda pair: pair[1])


@dataclass(slots=True)
class _Tally:
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def add(self, row: UsageRow) -> None:
        self.requests += row.requests
        self.prompt_tokens += row.prompt_tokens
        self.completion_tokens += row.completion_tokens


@dataclass(slots=True)
class WhatIf:
    """The result of `price_usage`; `report()` lays it out."""

    source: str
    compared: _Tally = field(default_factory=_Tally)
    cached_tokens: int = 0
    actual_from_file: Decimal = Decimal(0)
    rows_from_file: int = 0
    rows_priced: int = 0
    priced_at: dict[str, str] = field(default_factory=dict)  # source model -> offering used
    actual_usd: Decimal = Decimal(0)
    span: tuple[datetime, datetime] | None = None
    untimed_rows: int = 0
    candidates: list[tuple[str, str, Decimal]] = field(default_factory=list)
    unknown: dict[str, _Tally] = field(default_factory=dict)
    left_out: dict[str, _Tally] = field(default_factory=dict)
    matched: dict[str, str] = field(default_factory=dict)  # name -> "model_id (rule)"
    tier_base_prices: bool = False
    price_date: datetime | None = None  # None: today's list prices
    provenance: dict[str, str] = field(default_factory=dict)  # model@host -> price source
    extra_notes: list[str] = field(default_factory=list)

    def report(self) -> Report:
        """Columns: candidate, priced_at (model@host), cost_usd, actual_usd, saving_usd,
        saving_pct (of actual), saving_per_year_usd (None without a time span)."""
        rows = []
        for text, offering, amount in self.candidates:
            saving = self.actual_usd - amount
            per_year = None if self.span is None else annual_run_rate(saving, *self.span)
            rows.append(
                (
                    text,
                    offering,
                    money(amount),
                    money(self.actual_usd),
                    money(saving),
                    percent(saving, self.actual_usd),
                    per_year,
                )
            )
        return Report(
            kind="whatif",
            columns=(
                "candidate",
                "priced_at",
                "cost_usd",
                "actual_usd",
                "saving_usd",
                "saving_pct",
                "saving_per_year_usd",
            ),
            rows=tuple(rows),
            notes=tuple(self._notes()),
            summary={
                "requests": self.compared.requests,
                "prompt_tokens": self.compared.prompt_tokens,
                "cached_tokens": self.cached_tokens,
                "completion_tokens": self.compared.completion_tokens,
                "actual_usd": money(self.actual_usd),
                "span_start": None if self.span is None else self.span[0],
                "span_end": None if self.span is None else self.span[1],
                "unknown_models": {name: _tally_dict(t) for name, t in self.unknown.items()},
                "left_out": {name: _tally_dict(t) for name, t in self.left_out.items()},
            },
        )

    def _notes(self) -> list[str]:
        c = self.compared
        notes = [
            f"Compared: {c.requests} requests, {c.prompt_tokens} prompt tokens "
            f"({self.cached_tokens} cached) and {c.completion_tokens} completion tokens "
            f"from {self.source}.",
        ]
        basis = []
        if self.rows_from_file:
            basis.append(
                f"{self.rows_from_file} rows from the file's cost column "
                f"(${money(self.actual_from_file)})"
            )
        if self.rows_priced:
            basis.append(
                f"{self.rows_priced} rows priced at their model's cheapest catalog offering "
                "(a lower bound on what was paid)"
            )
        notes.append(f"Actual: ${money(self.actual_usd)}: {'; '.join(basis) or 'no rows'}.")
        notes += [f"  {model} priced at {offering}" for model, offering in self.priced_at.items()]
        when = "today's" if self.price_date is None else f"{self.price_date.date()}'s"
        notes.append(f"Prices: {when} catalog list prices:")
        notes += [f"  {at}: {text}" for at, text in sorted(self.provenance.items())]
        if self.span is None:
            notes.append("Span: unknown (no timestamps), so no per-year figures.")
        else:
            days = Decimal(int((self.span[1] - self.span[0]).total_seconds())) / 86_400
            start, end = (m.strftime("%Y-%m-%d %H:%M") for m in self.span)
            notes.append(
                f"Span: {start} to {end} UTC ({days.quantize(Decimal('0.01'))} days); per-year "
                "figures scale the saving by 365 days / span."
            )
        if self.untimed_rows and self.span is not None:
            notes.append(f"{self.untimed_rows} compared rows have no time and do not set the span.")
        notes += [f"Matched {name} to {target}" for name, target in self.matched.items()]
        for label, tallies in (
            (
                "Unknown models (not in the catalog; compared only where the file gives a cost)",
                self.unknown,
            ),
            ("Left out (no cost in the file and no catalog price to compute one)", self.left_out),
        ):
            if tallies:
                notes.append(f"Warning: {label}:")
                notes += [
                    f"  {name}: {t.requests} requests, {t.prompt_tokens} prompt + "
                    f"{t.completion_tokens} completion tokens"
                    for name, t in sorted(tallies.items())
                ]
        if self.tier_base_prices:
            notes.append(
                "Rows that sum several requests were priced at base (untiered) prices where a "
                "candidate has prompt-length tiers."
            )
        return notes + self.extra_notes


def _tally_dict(tally: _Tally) -> dict[str, int]:
    return {
        "requests": tally.requests,
        "prompt_tokens": tally.prompt_tokens,
        "completion_tokens": tally.completion_tokens,
    }


def price_usage(
    rows: Iterable[UsageRow],
    catalog: Catalog,
    targets: Iterable[Target],
    resolver: ModelResolver,
    source: str = "the file",
    at: datetime | None = None,
) -> WhatIf:
    """Prices every row whose actual cost is known (from the row, or at its source model's
    cheapest priced catalog offering) at each target, and sums. Rows of models no rule resolves
    are listed as unknown; rows with no way to know their actual cost are left out of every
    figure and listed. Prices are each offering's list price at `at` (UTC; None: today's,
    the latest recorded), and each row is priced in the time-of-day window its start falls
    in. Consumes `rows` once."""
    result = WhatIf(source=source, price_date=at)
    choices = [(t, _Choice(_offerings(catalog, t.model_id, t.host_id), at)) for t in targets]
    sources: dict[str, _Choice] = {}
    for row in rows:
        resolved = resolver.resolve(row.model, row.provider)
        if resolved.model_id is None:
            result.unknown.setdefault(row.model, _Tally()).add(row)
        elif resolved.rule is not None:
            result.matched[row.model] = f"{resolved.model_id} ({resolved.rule})"
        usage = Usage(
            prompt_tokens=row.prompt_tokens,
            completion_tokens=row.completion_tokens,
            cached_tokens=row.cached_tokens,
            cache_write_tokens=row.cache_write_tokens,
            reasoning_tokens=row.reasoning_tokens,
        )
        aggregated = row.requests > 1
        if row.cost_usd is not None:
            result.actual_from_file += row.cost_usd
            result.rows_from_file += 1
        else:
            choice = None
            if resolved.model_id is not None:
                choice = sources.get(resolved.model_id)
                if choice is None:
                    choice = _Choice(catalog.offerings_for_model(resolved.model_id), at)
                    sources[resolved.model_id] = choice
            if choice is None or not choice.sums:
                result.left_out.setdefault(row.model, _Tally()).add(row)
                continue
            choice.add(usage, aggregated, row.start)
            result.rows_priced += 1
        result.compared.add(row)
        result.cached_tokens += row.cached_tokens
        result.tier_base_prices |= aggregated and any(c.tiered for _, c in choices)
        for _, choice in choices:
            choice.add(usage, aggregated, row.start)
        _widen(result, row)
    result.actual_usd = result.actual_from_file
    for model_id, choice in sources.items():
        if choice.sums:
            offering, amount = choice.best()
            result.actual_usd += amount
            result.priced_at[model_id] = f"{offering.model}@{offering.host}"
            _note_price(result, choice, offering)
    for target, choice in choices:
        offering, amount = choice.best()
        result.candidates.append((target.text, f"{offering.model}@{offering.host}", amount))
        _note_price(result, choice, offering)
    if result.span is not None and result.span[1] <= result.span[0]:
        result.span = None
    return result


def _note_price(result: WhatIf, choice: _Choice, offering: Offering) -> None:
    name = f"{offering.model}@{offering.host}"
    point = choice.points.get(name)
    if point is not None:
        result.provenance[name] = point.provenance()


def _offerings(catalog: Catalog, model_id: str, host_id: str | None) -> list[Offering]:
    if host_id is None:
        return list(catalog.offerings_for_model(model_id))
    offering = catalog.offering(model_id, host_id)
    return [] if offering is None else [offering]


def _widen(result: WhatIf, row: UsageRow) -> None:
    if row.start is None or row.end is None:
        result.untimed_rows += 1
        return
    if result.span is None:
        result.span = (row.start, row.end)
    else:
        result.span = (min(result.span[0], row.start), max(result.span[1], row.end))


def _dearest(prices: Prices) -> Prices:
    """The dearer of the base prices and each time-of-day window, by input plus output."""
    return max((prices, *prices.windows), key=lambda p: p.input + p.output)


def _decimals(rate: Decimal) -> int:
    exponent = rate.normalize().as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0
