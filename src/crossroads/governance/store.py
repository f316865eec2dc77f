"""Where teams and keys live: the `GovernanceStore` protocol, and the encoding of limits and
policies as JSON text shared by every backend (SQLite here, PostgreSQL in `postgres_store.py`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol

import msgspec

from crossroads.governance.model import ApiKey, Limits, Team
from crossroads.governance.policy import PolicyRules


class GovernanceStore(Protocol):
    """Teams and keys. Every method may raise `LedgerStoreError`-like backend failures as
    `GovernanceStoreError`. Writes are visible to every replica sharing the backend; each
    replica's in-memory key ring picks them up on its next refresh."""

    async def open(self) -> None:
        """Connects and brings the schema up to date."""

    async def load(self) -> tuple[list[Team], list[ApiKey]]:
        """Every team and every key (revoked and expired included)."""

    async def put_team(self, team: Team) -> None:
        """Inserts or replaces a team."""

    async def insert_key(self, key: ApiKey) -> None:
        """Inserts a new key. Raises GovernanceStoreError if the id exists."""

    async def revoke_key(self, key_id: str, at: datetime) -> bool:
        """Marks a key revoked; returns False if no such key."""

    async def close(self) -> None: ...


class GovernanceStoreError(Exception):
    """The governance backend failed or refused a write."""


def dump_limits(limits: Limits) -> str:
    return msgspec.json.encode(limits).decode()


def load_limits(text: str | None) -> Limits:
    return msgspec.json.decode(text or "{}", type=Limits)


def dump_policy(policy: PolicyRules) -> str:
    return msgspec.json.encode(policy).decode()


def load_policy(text: str | None) -> PolicyRules:
    return msgspec.json.decode(text or "{}", type=PolicyRules)


def to_micros(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1_000_000)


def from_micros(micros: int | None) -> datetime | None:
    return None if micros is None else datetime.fromtimestamp(micros / 1_000_000, UTC)
