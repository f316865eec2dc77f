"""A priced gateway for budget tests: keys mode, one model served by the mock upstream and
priced as Kimi K2 at Together ($1 in / $3 out per million tokens), and the admin calls that
set budgets up."""

from __future__ import annotations

from typing import Any

import httpx

from conftest import mock_config
from support.gateway import GatewayThread

ADMIN = "priced-admin-key-0123456789"


def priced_config(url: str, **extra: Any) -> dict[str, Any]:
    """The config: model "m" on the mock at `url`, priced; `extra` sections added as given."""
    config = mock_config(url)
    config["providers"]["up0"]["host"] = "together"
    config["models"][0]["catalog_model"] = "moonshotai/kimi-k2-0905"
    config["auth"] = {"mode": "keys", "refresh_interval": 0.2}
    config.update(extra)
    return config


def admin(gw: GatewayThread, path: str, body: Any) -> dict[str, Any]:
    """POSTs `body` to an admin endpoint with ADMIN and returns the created object (201)."""
    response = httpx.post(
        f"{gw.url}{path}", json=body, headers={"authorization": f"Bearer {ADMIN}"}, timeout=10
    )
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result
