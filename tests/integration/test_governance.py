"""Governance over real HTTP: keys mode, the admin API and CLI, policies, budgets and rate
limits, route explanations. SQLite and in-process counters (the zero-set-up default); the
PostgreSQL and Redis backends are covered by test_multi_replica.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest

from conftest import GatewayFactory, mock_config
from crossroads.ledger.record import Status
from crossroads.mockupstream import MockUpstreamThread, run_in_thread

ADMIN = "admin-key-for-tests-0123456789"
USER = [{"role": "user", "content": "hello"}]


def keys_config(*urls: str, **extra: Any) -> dict[str, Any]:
    config = mock_config(*urls)
    config["auth"] = {"mode": "keys", "refresh_interval": 0.2}
    config.update(extra)
    return config


def admin(gw: Any, method: str, path: str, body: Any = None, key: str = ADMIN) -> httpx.Response:
    return httpx.request(
        method,
        f"{gw.url}{path}",
        json=body,
        headers={"authorization": f"Bearer {key}"},
        timeout=10,
    )


def chat(gw: Any, key: str | None, **body: Any) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.post(
        f"{gw.v1}/chat/completions",
        json={"model": "m", "messages": USER, **body},
        headers=headers,
        timeout=30,
    )


def new_key(gw: Any, **body: Any) -> str:
    response = admin(gw, "POST", "/admin/keys", {"name": "test", **body})
    assert response.status_code == 201, response.text
    return str(response.json()["key"])


@pytest.fixture
def keyed(gateway: GatewayFactory, mock: MockUpstreamThread) -> Any:
    return gateway(keys_config(mock.url), environ={"CROSSROADS_ADMIN_KEY": ADMIN})


@pytest.mark.parametrize(
    "key", [None, "", "not-a-key", "crk_aaaaaaaaaa_" + "b" * 32, "Bearer"], ids=str
)
def test_missing_or_wrong_keys_are_401_and_reveal_nothing(keyed: Any, key: str | None) -> None:
    response = chat(keyed, key)
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["type"] == "authentication_error"
    assert "crk_" not in error["message"]


def test_key_lifecycle_create_use_list_rotate_revoke(keyed: Any) -> None:
    key = new_key(keyed)
    assert chat(keyed, key).status_code == 200
    assert (
        httpx.post(  # x-api-key works as well as Bearer
            f"{keyed.v1}/chat/completions",
            json={"model": "m", "messages": USER},
            headers={"x-api-key": key},
            timeout=10,
        ).status_code
        == 200
    )
    listing = admin(keyed, "GET", "/admin/keys").json()["data"]
    assert len(listing) == 1 and key not in str(listing) and "hash" not in str(listing)
    key_id = listing[0]["id"]
    assert key.startswith(f"crk_{key_id}_")
    rotated = admin(keyed, "POST", f"/admin/keys/{key_id}/rotate").json()
    assert chat(keyed, key).status_code == 401
    assert chat(keyed, rotated["key"]).status_code == 200
    assert admin(keyed, "POST", f"/admin/keys/{rotated['id']}/revoke").status_code == 200
    assert chat(keyed, rotated["key"]).status_code == 401
    keyed.stop()
    records = keyed.ledger()
    assert {r.api_key_id for r in records if r.status is Status.OK} == {key_id, rotated["id"]}
    assert all(key not in repr(r) and ADMIN not in repr(r) for r in records)


def test_expired_key_is_401(keyed: Any) -> None:
    key = new_key(keyed, expires_in_days=1.5 / 86400)
    assert chat(keyed, key).status_code == 200
    time.sleep(1.6)
    assert chat(keyed, key).status_code == 401


def test_admin_api_needs_the_admin_key(keyed: Any) -> None:
    key = new_key(keyed)
    assert admin(keyed, "GET", "/admin/keys", key=key).status_code == 403
    assert admin(keyed, "GET", "/admin/keys", key="wrong").status_code == 401
    assert httpx.get(f"{keyed.url}/admin/keys").status_code == 401
    assert httpx.get(f"{keyed.url}/admin/health").status_code == 401


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"name": "x", "colour": "red"}, "colour"),
        ({"name": "x", "limits": {"budget_usd": -5}}, "budget_usd"),
        ({"name": "x", "limits": {"budget_usd": 0}}, "budget_usd"),
        ({"name": "x", "limits": {"rpm": 0}}, "rpm"),
        ({"name": "x", "policy": {"denied_origins": ["China"]}}, "China"),
        ({"name": "x", "policy": {"banned": ["x"]}}, "banned"),
        ({"name": "x", "team_id": "ghosts"}, "ghosts"),
        ({"name": "x", "expires_in_days": 2912107}, "expires_in_days"),  # was a 500
        ({"name": "x", "limits": {"rpm": 2**70}}, "rpm"),
        ({"name": "x", "limits": {"budget_usd": "NaN"}}, "budget_usd"),
    ],
)
def test_bad_admin_input_is_400_naming_the_field(keyed: Any, body: Any, needle: str) -> None:
    response = admin(keyed, "POST", "/admin/keys", body)
    assert response.status_code == 400, response.text
    assert needle in response.json()["error"]["message"]


def test_rate_limit_per_key(keyed: Any) -> None:
    key = new_key(keyed, limits={"rpm": 3})
    assert [chat(keyed, key).status_code for _ in range(3)] == [200, 200, 200]
    limited = chat(keyed, key)
    assert limited.status_code == 429
    assert "3 requests per minute" in limited.json()["error"]["message"]
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    other = new_key(keyed)
    assert chat(keyed, other).status_code == 200  # limits are per key


def test_tokens_per_minute_count_what_the_answer_used_not_only_the_prompt(
    keyed: Any, mock: MockUpstreamThread
) -> None:
    """A request is counted at its prompt estimate when admitted, then settled with the tokens
    the upstream reported: 2,010 used of a 1,000-token minute refuses the next request."""
    key = new_key(keyed, limits={"tpm": 1000})
    mock.script(["usage=10/2000"])
    assert chat(keyed, key).status_code == 200
    limited = chat(keyed, key)
    assert limited.status_code == 429
    assert "1000 tokens per minute" in limited.json()["error"]["message"]


def test_team_budget_is_enforced(gateway: GatewayFactory, mock: MockUpstreamThread) -> None:
    config = keys_config(mock.url)
    config["providers"]["up0"]["host"] = "together"
    config["models"][0]["catalog_model"] = "moonshotai/kimi-k2-0905"  # $1 in / $3 out per M
    gw = gateway(config, environ={"CROSSROADS_ADMIN_KEY": ADMIN})
    team = admin(
        gw,
        "POST",
        "/admin/teams",
        {"id": "research", "limits": {"budget_usd": 1, "budget_period": "day"}},
    )
    assert team.status_code == 201
    key = new_key(gw, team_id="research")
    mock.script(["usage=100000/100000"] * 10)  # $0.40 a request
    statuses = [chat(gw, key, max_tokens=100).status_code for _ in range(4)]
    assert statuses[:3] == [200, 200, 200]
    assert statuses[3] == 429
    over = chat(gw, key, max_tokens=100)
    message = over.json()["error"]["message"]
    assert "team 'research'" in message and "daily budget of $1.00" in message
    assert over.json()["error"]["type"] == "budget_exceeded"
    gw.stop()
    ok = [r for r in gw.ledger() if r.status is Status.OK]
    assert len(ok) == 3 and all(r.team_id == "research" for r in ok)


def test_a_request_without_max_tokens_under_a_small_budget_is_told_to_set_it(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    """Without max_tokens the worst case is the rest of the context window: the refusal says
    that, not that the budget is used up, and sends no Retry-After that waiting cannot honour."""
    config = keys_config(mock.url)
    config["providers"]["up0"]["host"] = "together"
    config["models"][0]["catalog_model"] = "moonshotai/kimi-k2-0905"  # $1 in / $3 out per M
    gw = gateway(config, environ={"CROSSROADS_ADMIN_KEY": ADMIN})
    key = new_key(gw, limits={"budget_usd": "0.05", "budget_period": "day"})
    refused = chat(gw, key)
    assert refused.status_code == 429
    message = refused.json()["error"]["message"]
    assert "this request could cost up to $" in message and "set max_tokens" in message
    assert "retry-after" not in refused.headers
    assert chat(gw, key, max_tokens=100).status_code == 200


def test_policy_filters_before_routing_and_403_names_the_rules(gateway: GatewayFactory) -> None:
    with run_in_thread() as cn_host, run_in_thread() as us_host:
        config = {
            "embedded": {"enabled": False},
            "auth": {"mode": "keys"},
            "policy": {"denied_jurisdictions": ["CN"]},
            "providers": {
                "moonshot": {"base_url": cn_host.url, "host": "moonshot"},
                "together": {"base_url": us_host.url, "host": "together"},
            },
            "models": [
                {
                    "name": "kimi-k2",
                    "provider": "moonshot",
                    "catalog_model": "moonshotai/kimi-k2-0905",
                },
                {
                    "name": "kimi-k2",
                    "provider": "together",
                    "catalog_model": "moonshotai/kimi-k2-0905",
                },
            ],
        }
        gw = gateway(config, environ={"CROSSROADS_ADMIN_KEY": ADMIN})
        key = new_key(gw)
        response = chat(gw, key, model="kimi-k2")
        assert response.status_code == 200
        assert response.headers["x-crossroads-provider"] == "together"
        assert cn_host.requests() == []  # the CN-hosted deployment never saw the request
        strict = new_key(gw, policy={"allowed_origins": ["US", "FR"]})
        denied = chat(gw, strict, model="kimi-k2")
        assert denied.status_code == 403
        message = denied.json()["error"]["message"]
        assert "global policy: denied_jurisdictions excludes host jurisdiction CN" in message
        assert "allowed_origins does not include CN" in message
        explained = admin(gw, "POST", "/v1/route/explain", {"model": "kimi-k2"}).json()
        by_id = {c["deployment"]: c for c in explained["candidates"]}
        assert "denied_jurisdictions" in by_id["moonshot:kimi-k2-0905-preview"]["removed_by"]
        assert by_id["together:moonshotai/Kimi-K2-Instruct-0905"]["try_order"] == 1
        assert by_id["together:moonshotai/Kimi-K2-Instruct-0905"]["estimated_cost_usd"]
        # Each candidate's price says where and when it was read.
        together = by_id["together:moonshotai/Kimi-K2-Instruct-0905"]
        assert (together["price_source"], together["price_as_of"], together["price_verified"]) == (
            "Together pricing (2025)",
            "2025-12-01",
            True,
        )


def test_cli_manages_keys_and_explains(keyed: Any) -> None:
    env = {**os.environ, "CROSSROADS_ADMIN_KEY": ADMIN}

    def cli(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "crossroads", *args, "--url", keyed.url],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        return done.stdout

    created = cli("keys", "create", "--name", "ci", "--rpm", "100")
    secret = created.strip().splitlines()[-1]
    assert secret.startswith("crk_") and chat(keyed, secret).status_code == 200
    evaluator = cli("keys", "create", "--name", "evals", "--can-eval").strip().splitlines()[-1]
    evaluator_id = evaluator[4:14]
    eval_chat = httpx.post(
        f"{keyed.v1}/chat/completions",
        json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
        headers={"authorization": f"Bearer {evaluator}", "x-crossroads-eval": "cli"},
    )
    assert eval_chat.status_code == 200
    listing = cli("keys", "list")
    assert "ci" in listing and secret not in listing
    assert listing.splitlines()[0].split()[-1] == "eval"
    listed = {k["id"]: k["can_eval"] for k in json.loads(cli("keys", "list", "--format", "json"))}
    assert listed[evaluator_id] is True and listed[secret[4:14]] is False
    key_id = secret[4:14]
    cli("keys", "revoke", key_id)
    assert chat(keyed, secret).status_code == 401
    explained = cli("route", "explain", "--model", "m")
    assert "up0:mock" in explained


def test_wrong_key_flood_never_reaches_the_store(keyed: Any) -> None:
    """Checking a key is a dict lookup plus one hash: a flood of wrong keys causes no store
    reads (the key ring reloads on its own timer only) and valid requests keep succeeding."""
    good = new_key(keyed)
    gate = keyed.gateway.gate
    loads = {"n": 0}
    original = gate.store.load

    async def counting_load() -> Any:
        loads["n"] += 1
        return await original()

    gate.store.load = counting_load  # type: ignore[method-assign]
    with httpx.Client(timeout=10) as http:
        for i in range(300):
            bad = http.post(
                f"{keyed.v1}/chat/completions",
                json={"model": "m", "messages": USER},
                headers={"authorization": f"Bearer crk_{i:010d}_{'x' * 32}"},
            )
            assert bad.status_code == 401
            if i % 50 == 0:
                assert chat(keyed, good).status_code == 200
    # Only the periodic reloads (every 0.2 s here) touched the store, not the 300 requests.
    assert loads["n"] < 100


def test_anthropic_clients_get_anthropic_shaped_auth_and_limit_errors(keyed: Any) -> None:
    import anthropic

    with (
        anthropic.Anthropic(base_url=keyed.url, api_key="wrong", max_retries=0) as bad,
        pytest.raises(anthropic.AuthenticationError) as err,
    ):
        bad.messages.create(model="m", max_tokens=16, messages=USER)  # type: ignore[arg-type]
    assert err.value.body["type"] == "error"  # type: ignore[index]
    assert err.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    key = new_key(keyed, limits={"rpm": 1})
    with anthropic.Anthropic(base_url=keyed.url, api_key=key, max_retries=0) as good:
        reply = good.messages.create(model="m", max_tokens=16, messages=USER)  # type: ignore[arg-type]
        assert reply.content[0].type == "text"
        with pytest.raises(anthropic.RateLimitError) as limited:
            good.messages.create(model="m", max_tokens=16, messages=USER)  # type: ignore[arg-type]
    assert limited.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    assert "1 request per minute" in limited.value.body["error"]["message"]  # type: ignore[index]
