"""GET /v1/models and /v1/models/{id} need a valid key in keys mode, as every other /v1 endpoint
does (issue 11, finding 11): the list names upstream hosts, their model ids and prices. Open
mode (loopback only) is unchanged."""

from __future__ import annotations

import httpx
import openai
import pytest

from conftest import GatewayFactory, mock_config
from crossroads.mockupstream import MockUpstreamThread

ADMIN = "admin-key-for-models-0123456789"


def _get(url: str, key: str | None) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.get(url, headers=headers, timeout=30)


def test_keys_mode_lists_models_only_to_a_valid_key(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    config = mock_config(mock.url) | {"auth": {"mode": "keys", "refresh_interval": 0.2}}
    gw = gateway(config, environ={"CROSSROADS_ADMIN_KEY": ADMIN})
    created = httpx.post(
        f"{gw.url}/admin/keys",
        json={"name": "lister"},
        headers={"authorization": f"Bearer {ADMIN}"},
        timeout=30,
    )
    key = created.json()["key"]
    for path in ("/v1/models", "/v1/models/m", "/v1/models/no-such-model"):
        for presented in (None, "wrong", "crk_0000000000_" + "x" * 32):
            refused = _get(f"{gw.url}{path}", presented)
            assert refused.status_code == 401, (path, presented)
            error = refused.json()["error"]
            assert set(error) == {"message", "type", "param", "code"}
            assert error["type"] == "authentication_error"
            assert "upstream_model" not in refused.text and "mock" not in refused.text
    assert _get(f"{gw.url}/v1/models", key).json()["data"][0]["id"] == "m"
    assert _get(f"{gw.url}/v1/models/m", key).json()["id"] == "m"
    assert _get(f"{gw.url}/v1/models/no-such-model", key).status_code == 404
    with openai.OpenAI(base_url=gw.v1, api_key=key, max_retries=0) as sdk:
        assert "m" in [m.id for m in sdk.models.list()]
    with (
        openai.OpenAI(base_url=gw.v1, api_key="wrong", max_retries=0) as sdk,
        pytest.raises(openai.AuthenticationError),
    ):
        sdk.models.list()


def test_open_mode_lists_models_to_anyone(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    gw = gateway(mock_config(mock.url))
    for presented in (None, "unused"):
        assert _get(f"{gw.url}/v1/models", presented).json()["data"][0]["id"] == "m"
        assert _get(f"{gw.url}/v1/models/m", presented).status_code == 200
