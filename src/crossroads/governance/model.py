"""Teams and API keys as stored, and the limits they carry."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Literal

import msgspec

from crossroads.governance.policy import EMPTY, PolicyRules

Period = Literal["day", "week", "month", "total"]


class Limits(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """Per key or per team. None means no limit of that kind."""

    budget_usd: Decimal | None = None
    budget_period: Period = "month"
    rpm: int | None = None  # requests per minute
    tpm: int | None = None  # tokens (prompt + completion) per minute

    @property
    def empty(self) -> bool:
        return self.budget_usd is None and self.rpm is None and self.tpm is None


NO_LIMITS = Limits()


@dataclass(frozen=True, slots=True)
class Team:
    id: str
    name: str
    created_at: datetime
    limits: Limits = NO_LIMITS
    policy: PolicyRules = EMPTY


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A virtual API key. The secret itself is never stored: only `secret_hash`, the SHA-256 of
    the whole key. `id` is the public prefix shown in listings, logs and the ledger."""

    id: str
    secret_hash: str = field(repr=False)
    name: str
    created_at: datetime
    team_id: str | None = None
    limits: Limits = NO_LIMITS
    policy: PolicyRules = EMPTY
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    can_eval: bool = False
    """May mark its traffic as evaluation (`x-crossroads-eval`): such records go to the eval
    ledger, out of every production report, so only keys given this permission may do it."""

    def usable(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)
