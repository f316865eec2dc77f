"""Marking traffic as evaluation (`x-crossroads-eval`) takes it out of every production report,
so it needs a permission: the admin key, a key made with `can_eval`, the anonymous user of open
mode, or the gateway's own shadow calls. Anyone else gets 403 in the API's own shape, recorded
as production traffic, with nothing in the eval ledger. Real gateways, the scripted mock
upstream, the official clients and `crossroads eval replay`; hostile cases first."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from test_quality_capture import eval_ledger

from conftest import GatewayFactory
from crossroads.cli.main import main
from crossroads.governance import keys as keylib
from crossroads.governance.sqlite_store import MIGRATIONS
from crossroads.mockupstream import MockUpstreamThread
from crossroads.quality.shadow import SHADOW_SCOPE_KEY, Shadower
from crossroads.quality.store import QUALITY_FILE, QualityStore
from crossroads.server.runtime import GOVERNANCE_FILE
from support.gateway import GatewayThread, gateway_for

ADMIN = "eval-permission-admin-key-0123456789"
REFUSAL = "may not mark traffic as evaluation"
HI = [{"role": "user", "content": "hi"}]


def config(url: str, *, mode: str = "keys", shadow: bool = False) -> dict[str, Any]:
    base: dict[str, Any] = {
        "embedded": {"enabled": False},
        "auth": {"mode": mode, "refresh_interval": 0.2},
        "providers": {"up": {"type": "openai", "base_url": url}},
        "models": [
            {"name": "base", "provider": "up", "upstream_model": "mock"},
            {"name": "cand", "provider": "up", "upstream_model": "mock"},
        ],
    }
    if shadow:
        base["quality"] = {"shadow": [{"model": "base", "candidate": "cand", "sample": 1.0}]}
    return base


def start(gateway: GatewayFactory, url: str, **options: Any) -> GatewayThread:
    return gateway(config(url, **options), environ={"CROSSROADS_ADMIN_KEY": ADMIN})


def admin(gw: GatewayThread, path: str, body: Any = None) -> httpx.Response:
    headers = {"authorization": f"Bearer {ADMIN}"}
    if body is None:
        return httpx.get(f"{gw.url}{path}", headers=headers)
    return httpx.post(f"{gw.url}{path}", json=body, headers=headers)


def make_key(gw: GatewayThread, name: str, **fields: Any) -> tuple[str, str]:
    made = admin(gw, "/admin/keys", {"name": name, **fields})
    assert made.status_code == 201, made.text
    return made.json()["id"], made.json()["key"]


def raw_chat(gw: GatewayThread, key: str | None, **headers: str) -> httpx.Response:
    if key is not None:
        headers["authorization"] = f"Bearer {key}"
    return httpx.post(
        f"{gw.v1}/chat/completions", json={"model": "base", "messages": HI}, headers=headers
    )


def client(gw: GatewayThread, key: str) -> openai.OpenAI:
    """The official OpenAI client with `key`, closed when the gateway stops."""
    oai = openai.OpenAI(base_url=gw.v1, api_key=key, max_retries=0)
    gw.clients.append(oai)
    return oai


def wait_for(predicate: Any) -> None:
    """Polls until `predicate()` (shadow calls finish in the background); the bound only
    guards against a hung test, it asserts no timing."""
    for _ in range(6000):
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError("the shadow calls did not finish")


def test_a_plain_key_may_not_mark_its_traffic_as_eval(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    gw = start(gateway, mock.url)
    key_id, key = make_key(gw, "plain")
    oai = client(gw, key)
    with pytest.raises(openai.PermissionDeniedError) as chat_refused:
        oai.chat.completions.create(
            model="base", messages=HI, extra_headers={"x-crossroads-eval": "hide-me"}
        )
    error = chat_refused.value.body
    assert isinstance(error, dict) and error["code"] == "eval_not_permitted"
    assert REFUSAL in error["message"] and "--can-eval" in error["message"]
    with pytest.raises(openai.PermissionDeniedError):
        oai.responses.create(
            model="base", input="hi", extra_headers={"x-crossroads-eval": "hide-me"}
        )
    with (
        anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0) as claude,
        pytest.raises(anthropic.PermissionDeniedError) as messages_refused,
    ):
        claude.messages.create(
            model="base",
            max_tokens=10,
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"x-crossroads-eval": "hide-me"},
        )
    body = messages_refused.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert body["error"]["type"] == "permission_error" and REFUSAL in body["error"]["message"]
    # The team header alone (what a replay of a capture adds) asks for eval traffic too.
    team_only = raw_chat(gw, key, **{"x-crossroads-eval-team": ""})
    assert (
        team_only.status_code == 403 and team_only.json()["error"]["code"] == "eval_not_permitted"
    )
    # The same key's production traffic is untouched.
    assert oai.chat.completions.create(model="base", messages=HI).choices[0].message.content
    gw.stop()
    assert eval_ledger(gw.settings.data_dir) == []  # no eval ledger, no eval report sees it
    production = gw.ledger()
    refused = [r for r in production if r.http_status == 403]
    assert len(refused) == 4 and len(production) == 5
    assert {(r.api_key_id, r.error_type) for r in refused} == {(key_id, "permission_error")}
    assert len(mock.requests()) == 1  # nothing refused went upstream


def test_a_forged_shadow_call_is_refused(gateway: GatewayFactory, mock: MockUpstreamThread) -> None:
    gw = start(gateway, mock.url, shadow=True)
    _, key = make_key(gw, "forger")
    forged = raw_chat(
        gw,
        key,
        **{
            "x-crossroads-eval": "shadow:base",
            SHADOW_SCOPE_KEY: "1",  # a header named like the scope key is only a header
            "x-crossroads-shadow": "1",
        },
    )
    assert forged.status_code == 403 and REFUSAL in forged.json()["error"]["message"]
    shadower: Shadower = gw.gateway.services.shadow
    assert shadower.spent("base") == 0 and shadower.done == 0
    # Only this process's own mark proves a shadow call: no other value, nor another's mark.
    assert not shadower.sent({})
    assert not shadower.sent({SHADOW_SCOPE_KEY: True})
    assert not shadower.sent({SHADOW_SCOPE_KEY: object()})
    assert not Shadower((), None).sent({SHADOW_SCOPE_KEY: shadower._mark})
    gw.stop()
    assert eval_ledger(gw.settings.data_dir) == []
    assert mock.requests() == []


def test_a_key_with_the_permission_and_the_admin_key_are_eval_traffic(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    gw = start(gateway, mock.url)
    evaluator_id, evaluator = make_key(gw, "evaluator", can_eval=True)
    plain_id, _ = make_key(gw, "plain")
    listed = {k["id"]: k["can_eval"] for k in admin(gw, "/admin/keys").json()["data"]}
    assert listed == {evaluator_id: True, plain_id: False}
    reply = client(gw, evaluator).chat.completions.with_raw_response.create(
        model="base", messages=HI, extra_headers={"x-crossroads-eval": "run-1"}
    )
    assert reply.status_code == 200
    by_admin = raw_chat(gw, ADMIN, **{"x-crossroads-eval": "run-1"})
    assert by_admin.status_code == 200
    # A rotated key keeps the permission.
    rotated = httpx.post(
        f"{gw.url}/admin/keys/{evaluator_id}/rotate", headers={"authorization": f"Bearer {ADMIN}"}
    ).json()
    assert rotated["can_eval"] is True
    by_rotated = raw_chat(gw, rotated["key"], **{"x-crossroads-eval": "run-1"})
    assert by_rotated.status_code == 200
    gw.stop()
    evals = {r.request_id: r for r in eval_ledger(gw.settings.data_dir)}
    sent = [reply.headers["x-request-id"], by_admin.headers["x-request-id"]]
    assert set(evals) == {*sent, by_rotated.headers["x-request-id"]}
    assert evals[sent[0]].api_key_id == evaluator_id
    assert gw.ledger() == []


def test_open_mode_lets_its_user_but_not_a_plain_key_mark_eval_traffic(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    gw = gateway(config(mock.url, mode="open"))  # no admin key: the loopback user is admin
    made = httpx.post(f"{gw.url}/admin/keys", json={"name": "plain"})
    assert made.status_code == 201
    assert raw_chat(gw, None, **{"x-crossroads-eval": "mine"}).status_code == 200
    refused = raw_chat(gw, made.json()["key"], **{"x-crossroads-eval": "mine"})
    assert refused.status_code == 403
    gw.stop()
    assert len(eval_ledger(gw.settings.data_dir)) == 1


def test_shadow_calls_of_a_key_without_the_permission_are_eval_traffic(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    gw = start(gateway, mock.url, shadow=True)
    key_id, key = make_key(gw, "client")
    answer = client(gw, key).chat.completions.with_raw_response.create(model="base", messages=HI)
    assert answer.status_code == 200
    shadower: Shadower = gw.gateway.services.shadow
    wait_for(lambda: shadower.done == 1)
    assert shadower.refused == 0
    gw.stop()
    production = gw.ledger()
    assert [r.request_id for r in production] == [answer.headers["x-request-id"]]
    shadowed = eval_ledger(gw.settings.data_dir)
    assert len(shadowed) == 1 and shadowed[0].api_key_id == key_id
    assert shadowed[0].http_status == 200
    # Neither the eval header nor any proof of a shadow call leaves the gateway.
    upstream = mock.requests()
    assert len(upstream) == 2
    for seen in upstream:
        assert not [name for name in seen["headers"] if "crossroads" in name or "shadow" in name]


def test_replay_needs_a_key_with_the_permission(
    gateway: GatewayFactory,
    mock: MockUpstreamThread,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    gw = start(gateway, mock.url)
    _, plain = make_key(gw, "plain")
    evaluator_id, evaluator = make_key(gw, "evaluator", can_eval=True)
    items = tmp_path / "items.jsonl"
    items.write_text(
        "\n".join(
            json.dumps({"id": f"q{i}", "request": {"messages": [{"role": "user", "content": "x"}]}})
            for i in range(3)
        )
    )

    def replay() -> int:
        return main(
            [
                "eval",
                "replay",
                "--url",
                gw.url,
                "--data-dir",
                str(gw.settings.data_dir),
                "--file",
                str(items),
                "--from",
                "base",
                "--to",
                "cand",
                "--run",
                "perm",
                "--concurrency",
                "1",
            ]
        )

    monkeypatch.setenv("CROSSROADS_API_KEY", plain)
    capsys.readouterr()
    assert replay() == 2
    err = capsys.readouterr().err
    assert "lacks the eval permission" in err and "--can-eval" in err
    assert plain not in err
    assert mock.requests() == []
    store = QualityStore(gw.settings.data_dir / QUALITY_FILE)
    try:
        assert store.answers("perm") == []  # nothing kept: a rerun with a good key resumes
    finally:
        store.close()

    monkeypatch.setenv("CROSSROADS_API_KEY", evaluator)
    assert replay() == 0
    assert "3 items, 6 requests sent, 3 verdicts" in capsys.readouterr().out
    gw.stop()
    evals = eval_ledger(gw.settings.data_dir)
    assert len(evals) == 6 and {r.api_key_id for r in evals} == {evaluator_id}
    assert [r.http_status for r in gw.ledger()] == [403]  # the refused one, as production


def test_a_key_made_before_the_upgrade_keeps_working_without_the_permission(
    mock: MockUpstreamThread, tmp_path: Path
) -> None:
    folder = tmp_path / "old"
    data = folder / "data"
    data.mkdir(parents=True)
    key_id, secret, secret_hash = keylib.new_key()
    first_name, first_sql = MIGRATIONS[0]
    with contextlib.closing(sqlite3.connect(data / GOVERNANCE_FILE, isolation_level=None)) as db:
        # The governance file as the release before the eval permission left it.
        db.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at TEXT)")
        db.executescript(first_sql)
        db.execute("INSERT INTO _migrations (name) VALUES (?)", (first_name,))
        db.execute(
            "INSERT INTO api_keys (id, secret_hash, name, created_at, limits, policy)"
            " VALUES (?, ?, 'old', 1700000000000000, '{}', '{}')",
            (key_id, secret_hash),
        )
    with gateway_for(folder, config(mock.url), {"CROSSROADS_ADMIN_KEY": ADMIN}) as gw:
        assert raw_chat(gw, secret).status_code == 200
        assert raw_chat(gw, secret, **{"x-crossroads-eval": "r"}).status_code == 403
        listed = admin(gw, "/admin/keys").json()["data"]
        assert [(k["id"], k["can_eval"]) for k in listed] == [(key_id, False)]
    with contextlib.closing(sqlite3.connect(data / GOVERNANCE_FILE)) as db:
        applied = [name for (name,) in db.execute("SELECT name FROM _migrations ORDER BY rowid")]
    assert applied == [name for name, _ in MIGRATIONS]
