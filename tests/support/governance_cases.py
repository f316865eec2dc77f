"""The behaviour every `GovernanceStore` must show, as scenarios that take an open store (empty
schema) and assert: the SQLite and PostgreSQL test suites run the same ones."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from crossroads.governance.model import ApiKey, Limits, Team
from crossroads.governance.policy import PolicyRules, PriceCap
from crossroads.governance.store import GovernanceStore, GovernanceStoreError

T0 = datetime(2026, 2, 3, 4, 5, 6, 789012, tzinfo=UTC)
POLICY = PolicyRules(
    allowed_origins=frozenset({"US", "FR"}),
    denied_origins=frozenset({"CN"}),
    allowed_makers=frozenset({"mistralai", "meta-llama"}),
    denied_makers=frozenset({"deepseek"}),
    open_weights_only=True,
    allowed_licenses=frozenset({"apache-2.0", "mit"}),
    allowed_jurisdictions=frozenset({"US", "local"}),
    denied_jurisdictions=frozenset({"RU"}),
    zero_retention_only=True,
    max_price=PriceCap(prompt=Decimal("0.30"), completion=Decimal("1.2000000001")),
    allowed_models=frozenset({"m", "mistralai/mistral-small"}),
    denied_models=frozenset({"big"}),
)
TEAM = Team(
    id="team-research",
    name="Research ünïcödé 'quoted'",
    created_at=T0,
    limits=Limits(budget_usd=Decimal("1234.5678901234"), budget_period="week", rpm=60, tpm=10**9),
    policy=POLICY,
)
KEY = ApiKey(
    id="cr_live_abc123",
    secret_hash="9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    name="ci bot; DROP TABLE api_keys",
    created_at=T0 + timedelta(microseconds=1),
    team_id=TEAM.id,
    limits=Limits(budget_usd=Decimal("0.0000000001"), budget_period="total", rpm=1),
    policy=PolicyRules(denied_models=frozenset({"x"})),
    expires_at=datetime(2027, 1, 1, 0, 0, 0, 999999, tzinfo=timezone(timedelta(hours=2))),
    revoked_at=datetime(2026, 6, 30, 23, 59, 59, 1, tzinfo=UTC),
    can_eval=True,
)
BARE_KEY = ApiKey(id="cr_live_bare", secret_hash="00" * 32, name="bare", created_at=T0)


async def every_field_round_trips_exactly_in_utc(store: GovernanceStore) -> None:
    await store.put_team(TEAM)
    await store.insert_key(KEY)
    await store.insert_key(BARE_KEY)
    teams, keys = await store.load()
    assert teams == [TEAM]
    assert sorted(keys, key=lambda k: k.id) == [KEY, BARE_KEY]
    loaded = next(k for k in keys if k.id == KEY.id)
    assert loaded.limits.budget_usd == Decimal("0.0000000001")
    assert isinstance(teams[0].limits.budget_usd, Decimal)
    assert isinstance(teams[0].policy.allowed_origins, frozenset)
    for moment in (teams[0].created_at, loaded.created_at, loaded.expires_at, loaded.revoked_at):
        assert moment is not None and moment.utcoffset() == timedelta(0)
    assert loaded.expires_at == datetime(2026, 12, 31, 22, 0, 0, 999999, tzinfo=UTC)


async def put_team_replaces_all_but_created_at(store: GovernanceStore) -> None:
    changed = Team(TEAM.id, "Renamed", T0 + timedelta(days=3), limits=Limits(rpm=5))
    await store.put_team(TEAM)
    await store.put_team(changed)
    await store.put_team(Team(id="team-b", name="B", created_at=T0))
    teams, _ = await store.load()
    assert sorted(teams, key=lambda t: t.id) == [
        Team(id="team-b", name="B", created_at=T0),
        Team(id=TEAM.id, name="Renamed", created_at=T0, limits=Limits(rpm=5)),
    ]


async def insert_key_refuses_a_duplicate_id_and_an_unknown_team(store: GovernanceStore) -> None:
    await store.insert_key(BARE_KEY)
    with pytest.raises(GovernanceStoreError):
        await store.insert_key(dataclasses.replace(BARE_KEY, name="other"))
    with pytest.raises(GovernanceStoreError):
        await store.insert_key(KEY)  # its team does not exist
    assert (await store.load())[1] == [BARE_KEY]


async def revoke_marks_once_and_reports_unknown_keys(store: GovernanceStore) -> None:
    at = datetime(2026, 5, 1, 8, 30, 0, 5, tzinfo=UTC)
    await store.insert_key(BARE_KEY)
    outcomes = [
        await store.revoke_key(BARE_KEY.id, at),
        await store.revoke_key(BARE_KEY.id, at + timedelta(days=1)),  # the first time stays
        await store.revoke_key("cr_live_nope", at),
    ]
    assert outcomes == [True, False, False]
    keys = (await store.load())[1]
    assert [key.revoked_at for key in keys] == [at]
    assert not keys[0].usable(at + timedelta(seconds=1))


Case = Callable[[GovernanceStore], Awaitable[None]]
CASES: tuple[Case, ...] = (
    every_field_round_trips_exactly_in_utc,
    put_team_replaces_all_but_created_at,
    insert_key_refuses_a_duplicate_id_and_an_unknown_team,
    revoke_marks_once_and_reports_unknown_keys,
)
