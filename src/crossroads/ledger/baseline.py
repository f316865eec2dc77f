"""Savings baselines: the proprietary model each request is priced again at, so the ledger
holds actual cost, baseline cost and the saving. Chosen per team, else per served name (model
or alias), else globally, as configured under `savings:`; further baselines are compared
against in the savings report. Each carries its dated price history, so a request is priced
again at the baseline's list price in force when it ran."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from crossroads.catalog import Catalog
from crossroads.catalog.model import Offering, PricePoint, Prices, price_in_force


@dataclass(frozen=True, slots=True)
class Baseline:
    model: str  # catalog id, e.g. "anthropic/claude-sonnet-4.5"
    host: str  # where its list price was read
    prices: Prices  # the current list price
    # The dated history; a request is priced again at the entry in force when it ran.
    history: tuple[PricePoint, ...] = ()

    def prices_at(self, when: datetime) -> Prices | None:
        """The baseline's list price in force at `when` (UTC); None before its first entry."""
        return price_in_force(self.history, when) if self.history else self.prices

    def label(self) -> str:
        """The model and where its price was read, for notes: "model at host"."""
        return f"{self.model} at {self.host}"

    def points_between(self, start: datetime, end: datetime) -> tuple[PricePoint, ...]:
        """The history entries in force at some time in [start, end), oldest first."""
        first = price_in_force(self.history, start)
        later = [
            p
            for p in self.history
            if p.since is not None and p is not first and start.date() < p.since < end.date()
        ]
        return ((first,) if first is not None else ()) + tuple(later)

    def provenance(self, start: datetime | None = None, end: datetime | None = None) -> str:
        """Which baseline and which prices (dates, sources) a figure used: those in force in
        [start, end) when both are given, else the current one."""
        points = self.points_between(start, end) if start and end else ()
        if not points and self.history:
            points = (self.history[-1],)
        shown = "; ".join(f"{p.input}/{p.output} per M ({p.provenance()})" for p in points)
        return f"{self.label()} at {shown or 'an undated price'}"


@dataclass(frozen=True, slots=True)
class Baselines:
    default: Baseline | None = None
    by_name: Mapping[str, Baseline] = field(default_factory=dict)
    by_team: Mapping[str, Baseline] = field(default_factory=dict)
    # More baselines a savings report compares against besides the one on each ledger row
    # ("against Claude Sonnet and against GPT"), priced from the ledger's token counts.
    extra: tuple[Baseline, ...] = ()

    def choose(self, requested_model: str, team_id: str | None) -> Baseline | None:
        if team_id is not None and team_id in self.by_team:
            return self.by_team[team_id]
        return self.by_name.get(requested_model, self.default)

    def all(self) -> tuple[Baseline, ...]:
        """Every configured baseline once: the default, the per-name and per-team ones, then
        the extra ones."""
        seen: dict[tuple[str, str], Baseline] = {}
        default = (self.default,) if self.default else ()
        for b in (*default, *self.by_name.values(), *self.by_team.values(), *self.extra):
            seen.setdefault((b.model, b.host), b)
        return tuple(seen.values())


def baseline_from_catalog(catalog: Catalog, text: str) -> Baseline:
    """The baseline named by `text` ("maker/model" or "maker/model@host"): at the maker's own
    host when the catalog prices it there, else at its cheapest priced offering today. Raises
    ValueError naming what is missing."""
    model_id, _, host_id = text.strip().partition("@")
    model = catalog.model(model_id)
    if model is None:
        raise ValueError(f"unknown catalog model {model_id!r}")
    priced = [
        o
        for o in catalog.offerings_for_model(model_id)
        if o.current is not None and (not host_id or o.host == host_id)
    ]
    if not priced:
        where = f" at {host_id!r}" if host_id else ""
        raise ValueError(f"the catalog has no price for {model_id!r}{where}")
    own = [o for o in priced if o.host == model.maker]
    offering = own[0] if own else min(priced, key=_list_price)
    assert offering.current is not None
    return Baseline(model_id, offering.host, offering.current, offering.history)


def _list_price(offering: Offering) -> Decimal:
    current = offering.current
    return Decimal("Infinity") if current is None else current.input + current.output
