"""Secrets planted where they must not leak (issue 11). Upstreams whose error text quotes every
secret the gateway holds (both providers' API keys, the admin key, the PostgreSQL and Redis user
names and passwords, in several spellings), at every status whose text the gateway passes on,
as JSON and as plain text, whole and streamed, and as an error event in the middle of a stream;
through both ingresses and both adapter families, on the real PostgreSQL and Redis backends. Then
every channel that leaves the process is searched for every secret: the clients' answers, the
503 of an unreachable limits backend, every table of the database, the admin ledger export (JSON
and CSV), the admin health view, /metrics, the log records, and the process's stdout and
stderr."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import asyncpg
import httpx
import pytest

from conftest import GatewayFactory
from crossroads.mockupstream import MockUpstreamThread
from crossroads.scrub import REDACTED
from support.gateway import GatewayThread
from support.postgres import server_url

USER = [{"role": "user", "content": "hello"}]

# (script, the client's status per ingress): each error status whose text reaches the client,
# as JSON error bodies, and a plain-text body. With one deployment per model and no retries,
# each request takes exactly one script.
WHOLE_OR_STREAMED = [
    ("status=400,error_body,echo_key", {400}),
    ("status=429,error_body,echo_key", {429}),
    ("status=500,error_body,echo_key", {502}),
    ("status=503,error_body,echo_key", {502, 529}),
    ("status=500,echo_key", {502}),  # not JSON: the gateway reads no message from it
]
MID_STREAM = ("error_event", {200})  # after the first chunks: the client has its 200 already


@dataclass(frozen=True)
class Planted:
    """The secrets of one gateway, made unique per run."""

    openai_key: str
    anthropic_key: str
    admin_key: str
    pg_user: str
    pg_password: str
    pg_url: str
    redis_user: str
    redis_password: str
    redis_url: str

    def named(self) -> dict[str, str]:
        return {
            "provider key (openai)": self.openai_key,
            "provider key (anthropic)": self.anthropic_key,
            "admin key": self.admin_key,
            "postgres user": self.pg_user,
            "postgres password": self.pg_password,
            "redis user": self.redis_user,
            "redis password": self.redis_password,
        }

    def upstream_text(self) -> str:
        """What the upstreams say in their errors: every secret, in the ways an upstream or a
        driver would quote it."""
        b64 = base64.b64encode(f"{self.pg_user}:{self.pg_password}".encode()).decode()
        return " | ".join(
            [
                f"Incorrect API key provided: {self.openai_key}",
                f"x-api-key {self.anthropic_key}",
                f"Authorization: Bearer {self.admin_key}",
                f"admin key {self.admin_key}",
                f"basic {base64.b64encode(self.admin_key.encode()).decode()}",
                f"dsn {self.pg_url}",
                f'password authentication failed for user "{self.pg_user}"',
                f"password {self.pg_password} encoded {quote(self.pg_password, safe='')}",
                f"Authorization: Basic {b64}",
                f"redis {self.redis_url}",
                f"AUTH {self.redis_user} {self.redis_password}",
            ]
        )


def spellings(secret: str) -> dict[str, str]:
    return {
        "as written": secret,
        "percent-encoded": quote(secret, safe=""),
        "base64": base64.b64encode(secret.encode()).decode(),
    }


def _run_sql(url: str, *statements: str) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(url)
        try:
            for statement in statements:
                await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(run())


@pytest.fixture
def planted() -> Iterator[Planted]:
    """A database owned by a role of its own, whose name and password are secrets (the test
    server trusts local connections, so the password is configured but never checked), and a
    Redis URL with a user and password the server does not know (so limits fail closed)."""
    tag = secrets.token_hex(5)
    base = urlsplit(server_url())
    pg_user, pg_password, database = f"crx_leak_pguser_{tag}", f"pgpw/leak+{tag}", f"crx_leak_{tag}"
    _run_sql(
        server_url(),
        f'CREATE ROLE "{pg_user}" LOGIN',
        f'CREATE DATABASE "{database}" OWNER "{pg_user}"',
    )
    redis = urlsplit(os.environ.get("CROSSROADS_TEST_REDIS_URL") or pytest.fail("no test Redis"))
    redis_user, redis_password = f"crx_leak_rduser_{tag}", f"rdpw/leak+{tag}"
    pg_at, redis_at = f"{base.hostname}:{base.port}", f"{redis.hostname}:{redis.port}"
    try:
        yield Planted(
            openai_key=f"sk-leak-openai-{secrets.token_hex(12)}",
            anthropic_key=f"sk-ant-leak-{secrets.token_hex(12)}",
            admin_key=f"adm-leak-{secrets.token_hex(12)}",
            pg_user=pg_user,
            pg_password=pg_password,
            pg_url=f"postgresql://{pg_user}:{quote(pg_password, safe='')}@{pg_at}/{database}",
            redis_user=redis_user,
            redis_password=redis_password,
            redis_url=f"redis://{redis_user}:{quote(redis_password, safe='')}@{redis_at}/0",
        )
    finally:
        _run_sql(server_url(), f'DROP DATABASE "{database}" WITH (FORCE)', f'DROP ROLE "{pg_user}"')


def _config(mock: MockUpstreamThread) -> dict[str, Any]:
    return {
        "embedded": {"enabled": False},
        "providers": {
            "oa": {"type": "openai", "base_url": mock.url, "api_key_env": "LEAK_OA_KEY"},
            "an": {"type": "anthropic", "base_url": mock.url, "api_key_env": "LEAK_AN_KEY"},
        },
        "models": [
            {"name": "m-oa", "provider": "oa", "upstream_model": "mock"},
            {"name": "m-an", "provider": "an", "upstream_model": "mock"},
        ],
        # No retries and no circuit that opens: every request reaches the upstream once.
        "routing": {
            "retries": 0,
            "circuit": {"failures": 1000, "failure_rate": 1.0, "window": 1000, "min_calls": 1000},
        },
        "auth": {"mode": "keys", "refresh_interval": 0.2},
        "storage": {"backend": "postgres"},
        "limits": {"backend": "redis"},
    }


def _ask(gw: GatewayThread, ingress: str, model: str, stream: bool, key: str) -> httpx.Response:
    if ingress == "openai":
        path, body = "/v1/chat/completions", {"model": model, "messages": USER, "stream": stream}
    else:
        body = {"model": model, "max_tokens": 50, "messages": USER, "stream": stream}
        path = "/v1/messages"
    return httpx.post(
        f"{gw.url}{path}", json=body, headers={"authorization": f"Bearer {key}"}, timeout=30
    )


def _admin(gw: GatewayThread, path: str, key: str) -> httpx.Response:
    response = httpx.get(f"{gw.url}{path}", headers={"authorization": f"Bearer {key}"}, timeout=30)
    assert response.status_code == 200, response.text
    return response


def _database_dump(url: str) -> str:
    """Every row of every table of the gateway's database, as text."""

    async def dump() -> str:
        conn = await asyncpg.connect(url)
        try:
            tables = await conn.fetch(
                "SELECT table_schema, table_name FROM information_schema.tables "
                "WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
            )
            parts = []
            for schema, table in tables:
                rows = await conn.fetch(f'SELECT * FROM "{schema}"."{table}"')
                parts.append(f"{schema}.{table}: " + repr([tuple(r) for r in rows]))
            return "\n".join(parts)
        finally:
            await conn.close()

    return asyncio.run(dump())


def test_planted_secrets_leave_by_no_channel(
    gateway: GatewayFactory,
    mock: MockUpstreamThread,
    planted: Planted,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    gw = gateway(
        _config(mock),
        environ={
            "LEAK_OA_KEY": planted.openai_key,
            "LEAK_AN_KEY": planted.anthropic_key,
            "CROSSROADS_ADMIN_KEY": planted.admin_key,
            "CROSSROADS_POSTGRES_URL": planted.pg_url,
            "CROSSROADS_REDIS_URL": planted.redis_url,
        },
    )
    created = httpx.post(
        f"{gw.url}/admin/keys",
        json={"name": "client"},
        headers={"authorization": f"Bearer {planted.admin_key}"},
        timeout=30,
    )
    assert created.status_code == 201, created.text
    client_key = created.json()["key"]
    text = f"error_text={quote(planted.upstream_text(), safe='')}"

    channels: dict[str, list[str]] = {}
    asked = 0
    for ingress in ("openai", "anthropic"):
        for stream in (False, True):
            channel = f"{ingress} ingress, {'streamed' if stream else 'whole'}"
            cases = [*WHOLE_OR_STREAMED, *([MID_STREAM] if stream else [])]
            for model in ("m-oa", "m-an"):
                for script, statuses in cases:
                    mock.script([f"{script},{text}"])
                    response = _ask(gw, ingress, model, stream, client_key)
                    asked += 1
                    assert response.status_code in statuses, (channel, model, script)
                    channels.setdefault(channel, []).append(f"{response.headers}\n{response.text}")
    # The planted text reached the clients, scrubbed (not merely dropped).
    for channel, answers in channels.items():
        assert any(REDACTED in answer for answer in answers), channel

    # Limits on a Redis that refuses the gateway's credentials: 503, naming no host or user.
    limited = httpx.post(
        f"{gw.url}/admin/keys",
        json={"name": "limited", "limits": {"rpm": 100}},
        headers={"authorization": f"Bearer {planted.admin_key}"},
        timeout=30,
    ).json()["key"]
    refusals = [_ask(gw, ingress, "m-oa", False, limited) for ingress in ("openai", "anthropic")]
    asked += len(refusals)
    redis_host = urlsplit(planted.redis_url).hostname or ""
    redis_port = str(urlsplit(planted.redis_url).port)
    for refusal in refusals:
        assert refusal.status_code == 503, refusal.text
        assert "limits backend (redis) is unreachable" in refusal.text
        assert redis_host not in refusal.text and redis_port not in refusal.text
    channels["limits 503"] = [f"{r.headers}\n{r.text}" for r in refusals]

    # Every request is in the ledger before it is read back (the writer batches).
    deadline = time.monotonic() + 120
    while True:
        exported = _admin(gw, "/admin/ledger?limit=1000", planted.admin_key).json()
        if len(exported) >= asked or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(exported) == asked
    channels["/admin/ledger (JSON)"] = [
        _admin(gw, "/admin/ledger?limit=1000", planted.admin_key).text
    ]
    channels["/admin/ledger (CSV)"] = [
        _admin(gw, "/admin/ledger?limit=1000&format=csv", planted.admin_key).text
    ]
    channels["/admin/health"] = [_admin(gw, "/admin/health", planted.admin_key).text]
    channels["/metrics"] = [_admin(gw, "/metrics", planted.admin_key).text]
    stored = _database_dump(planted.pg_url)
    assert REDACTED in stored  # the error messages were recorded, scrubbed
    channels["database (every table)"] = [stored]
    gw.stop()
    assert "failed (attempt 1)" in caplog.text  # the router logged the upstreams' errors
    channels["log records"] = [caplog.text, *(r.getMessage() for r in caplog.records)]
    out, err = capfd.readouterr()
    channels["process stdout and stderr"] = [out, err]

    leaks = [
        f"{name} ({how}) in {channel}"
        for channel, texts in channels.items()
        for name, secret in planted.named().items()
        for how, spelled in spellings(secret).items()
        if any(spelled in t for t in texts)
    ]
    checked = len(channels) * len(planted.named())
    print(
        f"secret-leak check: {len(planted.named())} secrets x {len(channels)} channels = "
        f"{checked} pairs, {3 * checked} spellings searched, {asked} requests: "
        f"{len(leaks)} leaks"
    )
    assert leaks == []
    assert len(channels) == 12
