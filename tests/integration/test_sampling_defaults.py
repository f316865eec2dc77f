"""Deployments' sampling defaults: applied to chat requests that leave a parameter unset or null,
never over a value the client chose, on both ingresses, streamed or not; the embedded model's
come from its model card."""

from __future__ import annotations

from typing import Any

import pytest
from anthropic import Anthropic

from conftest import GatewayFactory, client, mock_config
from crossroads.config import load_settings
from crossroads.mockupstream import MockUpstreamThread
from crossroads.routing.deployment import Deployment


def defaults_config(url: str) -> dict[str, Any]:
    config = mock_config(url)
    config["models"][0]["defaults"] = {"temperature": 0.2, "top_p": 0.9}
    return config


def upstream_body(mock: MockUpstreamThread) -> dict[str, Any]:
    body: dict[str, Any] = mock.requests()[-1]["json"]
    return body


@pytest.mark.parametrize("stream", [False, True])
def test_defaults_fill_what_the_client_left_unset(
    mock: MockUpstreamThread, gateway: GatewayFactory, stream: bool
) -> None:
    gw = gateway(defaults_config(mock.url))
    openai = client(gw)
    if stream:
        list(
            openai.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "hi"}], stream=True
            )
        )
    else:
        openai.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    body = upstream_body(mock)
    assert body["temperature"] == 0.2 and body["top_p"] == 0.9


def test_the_clients_own_values_win(mock: MockUpstreamThread, gateway: GatewayFactory) -> None:
    gw = gateway(defaults_config(mock.url))
    client(gw).chat.completions.create(
        model="m", messages=[{"role": "user", "content": "hi"}], temperature=0, top_p=None
    )
    body = upstream_body(mock)
    assert body["temperature"] == 0  # zero is a choice, not an absence
    assert body["top_p"] == 0.9  # null is an absence


def test_defaults_apply_behind_the_anthropic_ingress(
    mock: MockUpstreamThread, gateway: GatewayFactory
) -> None:
    gw = gateway(defaults_config(mock.url))
    anthropic = Anthropic(base_url=gw.url, api_key="unused", max_retries=0)
    gw.clients.append(anthropic)
    anthropic.messages.create(
        model="m",
        max_tokens=50,
        messages=[{"role": "user", "content": "hi"}],
        extra_body={"temperature": 0.7},
    )
    body = upstream_body(mock)
    assert body["temperature"] == 0.7 and body["top_p"] == 0.9


def test_no_defaults_means_the_body_is_untouched(
    mock: MockUpstreamThread, gateway: GatewayFactory
) -> None:
    gw = gateway(mock_config(mock.url))
    client(gw).chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    body = upstream_body(mock)
    assert "temperature" not in body and "top_p" not in body


def test_the_embedded_model_samples_as_its_model_card_recommends() -> None:
    settings = load_settings(None, environ={})
    local = next(d for d in settings.deployments if d.provider == "local")
    assert dict(local.sampling_defaults) == {"temperature": 0.2, "top_p": 0.9}


def test_with_defaults_never_mutates_and_returns_the_same_body_when_nothing_to_add() -> None:
    dep = Deployment("p:m", "m", "p", "m", sampling_defaults=(("temperature", 0.2),))
    body = {"model": "m", "temperature": 1.0}
    assert dep.with_defaults(body) is body
    empty: dict[str, Any] = {"model": "m"}
    assert dep.with_defaults(empty) == {"model": "m", "temperature": 0.2}
    assert empty == {"model": "m"}
