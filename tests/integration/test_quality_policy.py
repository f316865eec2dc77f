"""Captured data never goes where the team's policy forbids: replay and shadow calls carry the
team's key through the gateway's own routing, so a candidate the team may not use is refused
(403) and nothing is sent to it, kept or judged; an allowed candidate is shadowed and replayed
as usual. Eval traffic still counts against the team's budget."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_quality_capture import eval_ledger as read_eval_ledger

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
    # Without the eval permission: its shadow calls are eval traffic all the same.
    created = admin(gw.url, "/admin/keys", {"name": "k", "team_id": "eng"})
    key = created.json()["key"]
    replayer = admin(gw.url, "/admin/keys", {"name": "r", "team_id": "eng", "can_eval": True})
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
    monkeypatch.setenv("CROSSROADS_API_KEY", replayer.json()["key"])
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
    ops_key = {"name": "o", "team_id": "ops", "can_eval": True}
    other = admin(gw.url, "/admin/keys", ops_key).json()["key"]
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


def test_eval_traffic_counts_against_the_teams_budget(
    gateway: GatewayFactory,
    mock: MockUpstreamThread,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    kimi = "moonshotai/kimi-k2-0905"  # at Together: $1 in / $3 out per million tokens
    scripted = "mock:usage=100000/100000"  # $0.40 a request
    config_ = {
        "embedded": {"enabled": False},
        "auth": {"mode": "keys", "refresh_interval": 0.2},
        "providers": {"together": {"host": "together", "base_url": mock.url}},
        "models": [
            {"name": n, "provider": "together", "upstream_model": scripted, "catalog_model": kimi}
            for n in ("base", "cand")
        ],
    }
    gw = gateway(config_, environ={"CROSSROADS_ADMIN_KEY": ADMIN})
    team = {"id": "eng", "limits": {"budget_usd": 1, "budget_period": "day"}}
    assert admin(gw.url, "/admin/teams", team).status_code == 201
    made = admin(gw.url, "/admin/keys", {"name": "k", "team_id": "eng", "can_eval": True})
    key = made.json()["key"]
    items = tmp_path / "items.jsonl"
    items.write_text(
        "\n".join(
            json.dumps(
                {
                    "id": f"q{i}",
                    "request": {
                        "messages": [{"role": "user", "content": f"q{i}"}],
                        "max_tokens": 10,
                    },
                }
            )
            for i in range(3)
        )
    )
    monkeypatch.setenv("CROSSROADS_API_KEY", key)
    code = main(
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
            "b",
            "--concurrency",
            "1",
        ]
    )
    out = capsys.readouterr().out
    # Six requests at $0.40 would be $2.40: the $1 budget stops the replay part way, and the
    # rest is left for a rerun (exit status 3), not counted as losses.
    assert code == 3 and "not finished" in out
    assert len(mock.requests()) < 6
    gw.stop()
    refused = [r for r in read_eval_ledger(gw.settings.data_dir) if r.http_status == 429]
    assert refused and all(r.error_type == "budget_exceeded" for r in refused)
    assert gw.ledger() == []  # none of it is production traffic
