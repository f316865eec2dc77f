"""A configured model its host has retired, end to end through the official client: by default a
404 naming the retirement and the successor; with `routing.retired_models: successor`, the
successor the maker names is served and the request is priced at its price."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import openai
import pytest

from conftest import GatewayFactory
from crossroads.mockupstream import MockUpstreamThread

USER = [{"role": "user", "content": "hello"}]


def config(url: str, mode: str | None) -> dict[str, Any]:
    routing: dict[str, Any] = {"retries": 0}
    if mode:
        routing["retired_models"] = mode
    return {
        "embedded": {"enabled": False},
        "auto_providers": False,
        "providers": {"deepseek": {"base_url": url, "api_key_env": "DS_KEY"}},
        # A config written in 2025: DeepSeek's `deepseek-chat` then served V3.2.
        "models": [{"name": "chat", "provider": "deepseek", "upstream_model": "deepseek-chat"}],
        "routing": routing,
    }


def test_a_retired_model_is_a_404_naming_its_successor(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    gw = gateway(config(mock.url, None), environ={"DS_KEY": "sk-ds-test"})
    with (
        openai.OpenAI(base_url=gw.v1, api_key="x", max_retries=0) as client,
        pytest.raises(openai.NotFoundError) as caught,
    ):
        client.chat.completions.create(model="chat", messages=USER)  # type: ignore[arg-type]
    error = caught.value.body
    assert isinstance(error, dict)
    assert error["code"] == "model_retired"
    assert error["message"] == (
        "'chat' is no longer served: deepseek:deepseek-chat: model 'deepseek/deepseek-v3.2' was "
        "retired on 2026-04-24 at deepseek; its successor is deepseek/deepseek-v4-flash"
    )
    assert mock.requests() == []
    gw.stop()
    (record,) = gw.ledger()
    assert record.http_status == 404


def test_successor_mode_serves_and_prices_the_successor(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    gw = gateway(config(mock.url, "successor"), environ={"DS_KEY": "sk-ds-test"})
    mock.script(["usage=1000000/1000000"])
    with openai.OpenAI(base_url=gw.v1, api_key="x", max_retries=0) as client:
        client.chat.completions.create(model="chat", messages=USER)  # type: ignore[arg-type]
    (sent,) = mock.requests()
    assert sent["json"]["model"] == "deepseek-flash"
    gw.stop()
    (record,) = gw.ledger()
    assert record.served_model == "deepseek/deepseek-v4.1-flash"
    # V4.1 Flash: 1M in + 1M out at 0.30 + 1.20 at peak, 0.15 + 0.60 off-peak (UTC weekdays
    # 01:00-04:00 and 06:00-10:00 are peak).
    created = record.created_at
    peak = created.weekday() < 5 and (1 <= created.hour < 4 or 6 <= created.hour < 10)
    assert record.cost_usd == Decimal("1.5" if peak else "0.75")
