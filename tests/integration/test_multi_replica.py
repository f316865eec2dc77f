"""Two gateway processes sharing one PostgreSQL and one Redis enforce one budget and one rate
limit together under concurrent load, and the shared ledger holds exactly one record per
request. Uses the real servers started by `scripts/services` (see docs/testing.md)."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from crossroads.mockupstream import MockUpstreamThread
from support.gateway import write_config
from support.services import fresh_database, service_url

ADMIN = "multi-replica-admin-key-0123456789"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh database on the test PostgreSQL server, dropped afterwards."""
    with fresh_database("crossroads_mr") as url:
        yield url


@pytest.fixture
def redis_url() -> str:
    import redis

    url = service_url("CROSSROADS_TEST_REDIS_URL")
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()
    return url


class Replica:
    def __init__(self, config: Path, data_dir: Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "crossroads",
                "serve",
                "--config",
                str(config),
                "--port",
                "0",
                "--data-dir",
                str(data_dir),
                "--log-level",
                "warning",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        assert self.proc.stdout is not None
        self.url = ""
        for line in self.proc.stdout:
            match = re.search(r"serving on (http://[\d.]+:\d+)", line)
            if match:
                self.url = match.group(1)
                break
        assert self.url, f"replica did not start (exit {self.proc.poll()})"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            assert self.proc.stdout is not None
            self.proc.stdout.close()


def test_two_replicas_share_budget_rate_limit_and_ledger(
    tmp_path: Path, mock: MockUpstreamThread, postgres_url: str, redis_url: str
) -> None:
    config = {
        "embedded": {"enabled": False},
        "auth": {"mode": "keys", "refresh_interval": 0.3},
        "storage": {"backend": "postgres"},
        "limits": {"backend": "redis"},
        # Kimi K2 at Together: $1 in / $3 out per million tokens.
        "providers": {"together": {"base_url": mock.url, "host": "together"}},
        "models": [
            {"name": "kimi", "provider": "together", "catalog_model": "moonshotai/kimi-k2-0905"}
        ],
    }
    path = write_config(tmp_path, config)
    env = {
        **os.environ,
        "CROSSROADS_ADMIN_KEY": ADMIN,
        "CROSSROADS_POSTGRES_URL": postgres_url,
        "CROSSROADS_REDIS_URL": redis_url,
    }
    a = Replica(path, tmp_path / "a", env)
    b = Replica(path, tmp_path / "b", env)
    sent = 0
    try:
        auth = {"authorization": f"Bearer {ADMIN}"}
        # Each answer reports 10 prompt + 1000 completion tokens: $0.00301. The worst case
        # reserved per request (its prompt estimate + max_tokens=1000) is a little more, so
        # a $0.02 budget admits at most six, however the requests interleave.
        team = httpx.post(
            f"{a.url}/admin/teams",
            headers=auth,
            timeout=10,
            json={"id": "shared", "limits": {"budget_usd": 0.02, "budget_period": "day"}},
        )
        assert team.status_code == 201, team.text
        budget_key = httpx.post(
            f"{a.url}/admin/keys",
            headers=auth,
            timeout=10,
            json={"name": "budgeted", "team_id": "shared"},
        ).json()
        rpm_key = httpx.post(
            f"{b.url}/admin/keys",
            headers=auth,
            timeout=10,
            json={"name": "limited", "limits": {"rpm": 10}},
        ).json()
        for replica in (a, b):  # wait until both key rings hold both keys
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                ids = {
                    k["id"]
                    for k in httpx.get(
                        f"{replica.url}/admin/keys", headers=auth, timeout=10
                    ).json()["data"]
                }
                if {budget_key["id"], rpm_key["id"]} <= ids:
                    break
                time.sleep(0.1)
        mock.script(["usage=10/1000"] * 200)

        def call(i: int, key: str) -> int:
            replica = (a, b)[i % 2]
            return httpx.post(
                f"{replica.url}/v1/chat/completions",
                timeout=30,
                headers={"authorization": f"Bearer {key}"},
                json={
                    "model": "kimi",
                    "max_tokens": 1000,
                    "messages": [{"role": "user", "content": f"request number {i}"}],
                },
            ).status_code

        with ThreadPoolExecutor(16) as pool:
            budget_statuses = list(pool.map(lambda i: call(i, budget_key["key"]), range(40)))
        sent += 40
        ok = budget_statuses.count(200)
        assert 1 <= ok <= 6, budget_statuses
        assert budget_statuses.count(429) == 40 - ok

        while time.gmtime().tm_sec > 45:  # keep the burst inside one minute window
            time.sleep(0.5)
        with ThreadPoolExecutor(16) as pool:
            rpm_statuses = list(pool.map(lambda i: call(i, rpm_key["key"]), range(30)))
        sent += 30
        assert rpm_statuses.count(200) == 10, rpm_statuses
        assert rpm_statuses.count(429) == 20
    finally:
        a.stop()
        b.stop()

    async def ledger() -> list[Any]:
        from crossroads.ledger.postgres import PostgresLedgerStore

        store = PostgresLedgerStore(postgres_url)
        await store.open()
        try:
            return await store.recent(10_000)
        finally:
            await store.close()

    records = asyncio.run(ledger())
    assert len(records) == sent and len({r.request_id for r in records}) == sent
    spent = sum(
        (
            r.cost_usd or Decimal(0)
            for r in records
            if r.status.value == "ok" and r.team_id == "shared"
        ),
        Decimal(0),
    )
    assert Decimal(0) < spent <= Decimal("0.02")
