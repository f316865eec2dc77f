"""Savings baselines: the proprietary model each request is priced again at, so the ledger
holds actual cost, baseline cost and the saving. Chosen per team, else per served name (model
or alias), else globally, as configured under `savings:`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from crossroads.catalog.model import PricePoint, Prices, price_in_force


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
        """ "model at host" for notes."""
        return f"{self.model} at {self.host}"


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
