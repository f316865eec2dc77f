"""Budgets and rate limits hold across restarts: of the gateway with in-process counters (which
start empty), and of Redis coming back empty under a running gateway, with the PostgreSQL
ledger. The counters are rebuilt from what the ledger says was spent."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from crossroads.ledger.record import Status
from crossroads.mockupstream import MockUpstreamThread
from support.gateway import GatewayThread, gateway_for
from support.priced import ADMIN, admin, priced_config
from support.services import fresh_database, service_url

USER = [{"role": "user", "content": "hello"}]
# Each scripted answer (100,000 + 100,000 tokens) costs $0.40 at the priced model's rates; the
# worst case held for max_tokens=100 is far less.
PER_ANSWER = Decimal("0.40")
ANSWER = "usage=100000/100000"


def chat(gw: GatewayThread, key: str) -> int:
    return httpx.post(
        f"{gw.v1}/chat/completions",
        json={"model": "m", "messages": USER, "max_tokens": 100},
        headers={"authorization": f"Bearer {key}"},
        timeout=30,
    ).status_code


def flushed(gw: GatewayThread) -> None:
    """Waits until the gateway's ledger writer has written every record it was given."""
    deadline = time.monotonic() + 60
    while gw.gateway.ledger.pending:
        assert time.monotonic() < deadline, "the ledger writer never caught up"
        time.sleep(0.02)


def budgeted_key(gw: GatewayThread, holder: str, period: str) -> str:
    """A key whose budget of $1 (on the key itself, or on its team) allows three answers."""
    limits = {"budget_usd": 1, "budget_period": period}
    if holder == "team":
        team = f"t{uuid.uuid4().hex[:8]}"
        admin(gw, "/admin/teams", {"id": team, "limits": limits})
        return str(admin(gw, "/admin/keys", {"name": "k", "team_id": team})["key"])
    return str(admin(gw, "/admin/keys", {"name": "k", "limits": limits})["key"])


@pytest.mark.parametrize(("holder", "period"), [("key", "total"), ("team", "month")])
def test_a_budget_holds_across_a_gateway_restart(
    tmp_path: Path, mock: MockUpstreamThread, holder: str, period: str
) -> None:
    mock.script([ANSWER] * 20)
    first = gateway_for(tmp_path, priced_config(mock.url), {"CROSSROADS_ADMIN_KEY": ADMIN})
    with first:
        key = budgeted_key(first, holder, period)
        assert [chat(first, key) for _ in range(2)] == [200, 200]  # $0.80 of $1 spent
    # The same data directory: the ledger and the keys survive, the in-process counters not.
    with GatewayThread(first.settings) as second:
        assert chat(second, key) == 200  # $0.80 + the small worst case fits: now $1.20
        assert chat(second, key) == 429
    with GatewayThread(first.settings) as third:
        refused = httpx.post(
            f"{third.v1}/chat/completions",
            json={"model": "m", "messages": USER, "max_tokens": 100},
            headers={"authorization": f"Bearer {key}"},
            timeout=30,
        )
        assert refused.status_code == 429
        assert "$1.20 of its" in refused.json()["error"]["message"]
    ok = [r for r in third.ledger() if r.status is Status.OK]
    assert len(ok) == 3 and sum(r.cost_usd or 0 for r in ok) == 3 * PER_ANSWER


def test_requests_per_minute_hold_across_a_gateway_restart(
    tmp_path: Path, mock: MockUpstreamThread
) -> None:
    """Rate windows are rebuilt from the ledger's last minute. Fixed windows start on the
    minute, so a run that crosses one (a restart is slow on a busy machine) is tried again."""
    first = gateway_for(tmp_path, priced_config(mock.url), {"CROSSROADS_ADMIN_KEY": ADMIN})
    with first:
        keys = [str(admin(first, "/admin/keys", {"name": "r", "limits": {"rpm": 3}})["key"])]
    for _ in range(3):
        key = keys[-1]
        minute = int(time.time() // 60)
        with GatewayThread(first.settings) as before:
            assert [chat(before, key) for _ in range(2)] == [200, 200]
        with GatewayThread(first.settings) as after:
            statuses = [chat(after, key) for _ in range(2)]
        if int(time.time() // 60) == minute:
            assert statuses == [200, 429]
            return
        with GatewayThread(first.settings) as gw:  # a fresh key for the next try
            keys.append(str(admin(gw, "/admin/keys", {"name": "r", "limits": {"rpm": 3}})["key"]))
    pytest.fail("every one of 3 tries crossed a minute boundary")


# -- Redis and PostgreSQL -------------------------------------------------------------------


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh database on the test PostgreSQL server, dropped afterwards."""
    with fresh_database("crossroads_rs") as url:
        yield url


REDIS_DB = 13
"""A database of the test Redis that no other test uses, so FLUSHDB empties only this one."""


@pytest.fixture
def redis_url() -> Iterator[str]:
    import redis

    base = service_url("CROSSROADS_TEST_REDIS_URL")
    url = base.rsplit("/", 1)[0] + f"/{REDIS_DB}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    try:
        yield url
    finally:
        client.flushdb()
        client.close()


def flush_redis(url: str) -> None:
    """What Redis looks like after it restarts without persistence: empty."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
        assert client.dbsize() == 0
    finally:
        client.close()


def test_a_budget_holds_when_redis_comes_back_empty(
    tmp_path: Path, mock: MockUpstreamThread, postgres_url: str, redis_url: str
) -> None:
    mock.script([ANSWER] * 20)
    config = priced_config(mock.url, storage={"backend": "postgres"}, limits={"backend": "redis"})
    environ = {
        "CROSSROADS_ADMIN_KEY": ADMIN,
        "CROSSROADS_POSTGRES_URL": postgres_url,
        "CROSSROADS_REDIS_URL": redis_url,
    }
    first = gateway_for(tmp_path, config, environ)
    with first:
        key = budgeted_key(first, "team", "day")
        assert [chat(first, key) for _ in range(2)] == [200, 200]  # $0.80 of $1
        flushed(first)
        flush_redis(redis_url)  # under the running gateway
        assert chat(first, key) == 200  # seeded from the ledger's $0.80: now $1.20
        assert chat(first, key) == 429
        flushed(first)
    flush_redis(redis_url)  # and once more, with the gateway restarting too
    with GatewayThread(first.settings) as second:
        assert chat(second, key) == 429
        flushed(second)
    import asyncpg

    async def spent() -> list[Any]:
        conn = await asyncpg.connect(postgres_url)
        try:
            return list(
                await conn.fetch("SELECT status, cost_usd FROM requests WHERE cost_usd > 0")
            )
        finally:
            await conn.close()

    rows = asyncio.run(spent())
    assert len(rows) == 3 and all(row["status"] == "ok" for row in rows)
