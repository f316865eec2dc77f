"""Savings baselines: the proprietary model each request is priced again at, so the ledger
holds actual cost, baseline cost and the saving. Chosen per team, else per served name (model
or alias), else globally, as configured under `savings:`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from crossroads.catalog.model import Prices


@dataclass(frozen=True, slots=True)
class Baseline:
    model: str  # catalog id, e.g. "anthropic/claude-sonnet-4.5"
    host: str  # where its list price was read
    prices: Prices


@dataclass(frozen=True, slots=True)
class Baselines:
    default: Baseline | None = None
    by_name: Mapping[str, Baseline] = field(default_factory=dict)
    by_team: Mapping[str, Baseline] = field(default_factory=dict)

    def choose(self, requested_model: str, team_id: str | None) -> Baseline | None:
        if team_id is not None and team_id in self.by_team:
            return self.by_team[team_id]
        return self.by_name.get(requested_model, self.default)
