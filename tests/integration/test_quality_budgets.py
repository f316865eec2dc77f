"""Eval traffic (replay, shadow, judge) is kept out of production reports, but it spends under
the same budgets: a restart must not forget it. Real gateways on one data directory, restarted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from conftest import mock_config
from crossroads.mockupstream import MockUpstreamThread
from support.gateway import gateway_for

ADMIN = "quality-budget-admin-key-0123456789"


def config(mock: MockUpstreamThread) -> dict[str, Any]:
    base = mock_config(mock.url)
    base["providers"]["up0"]["host"] = "together"
    base["models"][0]["catalog_model"] = "moonshotai/kimi-k2-0905"  # $1 in / $3 out per M
    base["auth"] = {"mode": "keys", "refresh_interval": 0.2}
    return base


def admin(gw: Any, path: str, body: Any) -> httpx.Response:
    return httpx.post(
        f"{gw.url}{path}", json=body, headers={"authorization": f"Bearer {ADMIN}"}, timeout=10
    )


def chat(gw: Any, key: str, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{gw.v1}/chat/completions",
        json={"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 100},
        headers={"authorization": f"Bearer {key}", **headers},
        timeout=30,
    )


def test_eval_spend_counts_against_the_budget_across_a_restart(
    mock: MockUpstreamThread, tmp_path: Path
) -> None:
    folder = tmp_path / "gw"
    environ = {"CROSSROADS_ADMIN_KEY": ADMIN}
    mock.script(["usage=100000/100000"] * 10)  # $0.40 a request
    with gateway_for(folder, config(mock), environ) as gw:
        team = {"id": "evals", "limits": {"budget_usd": 1, "budget_period": "day"}}
        assert admin(gw, "/admin/teams", team).status_code == 201
        made = admin(gw, "/admin/keys", {"name": "replayer", "team_id": "evals", "can_eval": True})
        key = str(made.json()["key"])
        # Three eval requests ($1.20, past the $1 day), as `crossroads eval replay` sends them.
        for _ in range(3):
            assert chat(gw, key, **{"x-crossroads-eval": "run-1"}).status_code == 200
    with gateway_for(folder, config(mock), environ) as gw:
        # After the restart the $1.20 is still spent: the budget refuses.
        over = chat(gw, key)
        assert over.status_code == 429, over.text
        assert over.json()["error"]["type"] == "budget_exceeded"
