"""Captured data never goes where the team's policy forbids: replay and shadow calls carry the
team's key through the gateway's own routing, so a candidate the team may not use is refused
(403) and nothing is sent to it, kept or judged; an allowed candidate is shadowed and replayed
as usual. Eval traffic still counts against the team's budget."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from conftest import GatewayFactory
from crossroads.cli.main import main
from crossroads.mockupstream import MockUpstreamThread
from crossroads.quality.store import QUALITY_FILE, QualityStore

ADMIN = "admin-key-for-tests-0123456789"


def config(url: str) -> dict[str, Any]:
    return {
        "embedded": {"enabled": False},
        "auth": {"mode": "keys", "refresh_interval": 0.2},
        "providers": {"up": {"type": "openai", "base_url": url}},
        "models": [
            {"name": "base", "provider": "up", "upstream_model": "mock"},
            {"name": "allowed", "provider": "up", "upstream_model": "mock"},
            {"name": "forbidden", "provider": "up", "upstream_model": "mock"},
        ],
        "quality": {
            "capture": {"enabled": True, "sample": 1.0},
            "shadow": [
                {"model": "base", "candidate": "forbidden", "sample": 1.0},
            ],
        },
    }


def admin(url: str, path: str, body: Any) -> httpx.Response:
    return httpx.post(f"{url}{path}", json=body, headers={"authorization": f"Bearer {ADMIN}"})


def test_the_teams_policy_holds_for_shadow_and_replay(
    gateway: GatewayFactory,
    mock: MockUpstreamThread,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    gw = gateway(config(mock.url), environ={"CROSSROADS_ADMIN_KEY": ADMIN})
    team = {"id": "eng", "policy": {"allowed_models": ["base", "allowed"]}}
    assert admin(gw.url, "/admin/teams", team).status_code == 201
    created = admin(gw.url, "/admin/keys", {"name": "k", "team_id": "eng"})
    key = created.json()["key"]
    reply = httpx.post(
        f"{gw.v1}/chat/completions",
        json={"model": "base", "messages": [{"role": "user", "content": "secret plans"}]},
        headers={"authorization": f"Bearer {key}"},
    )
    assert reply.status_code == 200
    shadow = gw.gateway.services.shadow
    for _ in range(6000):
        if shadow.refused:
            break
        time.sleep(0.01)
    assert shadow.refused == 1 and shadow.done == 0
    assert len(mock.requests()) == 1  # the client's own request only

    for _ in range(6000):
        if gw.gateway.services.capture.written:
            break
        time.sleep(0.01)
    monkeypatch.setenv("CROSSROADS_API_KEY", key)
    code = main(
        [
            "eval",
            "replay",
            "--url",
            gw.url,
            "--data-dir",
            str(gw.settings.data_dir),
            "--from",
            "base",
            "--to",
            "allowed",
            "--to",
            "forbidden",
            "--run",
            "p",
        ]
    )
    assert code == 0
    assert "1 refused by the key's policy" in capsys.readouterr().out
    assert len(mock.requests()) == 3  # and the replay's to `base` and `allowed`, no other
    store = QualityStore(gw.settings.data_dir / QUALITY_FILE)
    try:
        assert len(store.verdicts("base", "allowed")) == 1
        assert store.verdicts("base", "forbidden") == []
    finally:
        store.close()

    # A key of another team, whose policy allows everything, may not replay eng's captures.
    assert admin(gw.url, "/admin/teams", {"id": "ops"}).status_code == 201
    other = admin(gw.url, "/admin/keys", {"name": "o", "team_id": "ops"}).json()["key"]
    monkeypatch.setenv("CROSSROADS_API_KEY", other)
    code = main(
        [
            "eval",
            "replay",
            "--url",
            gw.url,
            "--data-dir",
            str(gw.settings.data_dir),
            "--from",
            "base",
            "--to",
            "forbidden",
            "--run",
            "other-team",
        ]
    )
    assert code == 0
    assert "1 refused by the key's policy" in capsys.readouterr().out
    assert len(mock.requests()) == 3  # nothing more left the gateway
