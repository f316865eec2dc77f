"""One rule for the model name in answers, on both ingresses, whole and streamed: the name the
client asked for (a served name or an alias), with the upstream's own id in a header."""

from __future__ import annotations

import httpx
import pytest
from anthropic import Anthropic

from conftest import GatewayFactory, client, mock_config
from crossroads.mockupstream import MockUpstreamThread

UPSTREAM_HEADER = "x-crossroads-upstream-model"


def config(url: str) -> dict[str, object]:
    base = mock_config(url, names=("deepseek-v3.2",))
    base["aliases"] = {"fast": ["deepseek-v3.2"]}
    return base


@pytest.mark.parametrize("asked", ["deepseek-v3.2", "fast"])
def test_openai_ingress_names_the_requested_model(
    mock: MockUpstreamThread, gateway: GatewayFactory, asked: str
) -> None:
    gw = gateway(config(mock.url))
    raw = client(gw).chat.completions.with_raw_response.create(
        model=asked, messages=[{"role": "user", "content": "hi"}]
    )
    assert raw.parse().model == asked
    assert raw.headers[UPSTREAM_HEADER] == "mock"


@pytest.mark.parametrize("asked", ["deepseek-v3.2", "fast"])
def test_openai_stream_names_the_requested_model_in_every_chunk(
    mock: MockUpstreamThread, gateway: GatewayFactory, asked: str
) -> None:
    gw = gateway(config(mock.url))
    with client(gw).chat.completions.with_streaming_response.create(
        model=asked,
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    ) as response:
        assert response.headers[UPSTREAM_HEADER] == "mock"
        chunks = list(response.parse())
    assert len(chunks) > 2
    assert {c.model for c in chunks} == {asked}


def test_a_model_name_with_json_escapes_survives_the_rewrite(
    mock: MockUpstreamThread, gateway: GatewayFactory
) -> None:
    odd = 'we\\ird"name'
    gw = gateway(mock_config(mock.url, names=(odd,)))
    chunks = list(
        client(gw).chat.completions.create(
            model=odd, messages=[{"role": "user", "content": "hi"}], stream=True
        )
    )
    assert {c.model for c in chunks} == {odd}


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_ingress_names_the_requested_model(
    mock: MockUpstreamThread, gateway: GatewayFactory, stream: bool
) -> None:
    gw = gateway(config(mock.url))
    anthropic = Anthropic(base_url=gw.url, api_key="unused", max_retries=0)
    gw.clients.append(anthropic)
    messages = [{"role": "user", "content": "hi"}]
    if stream:
        with anthropic.messages.stream(model="fast", max_tokens=50, messages=messages) as s:
            assert s.get_final_message().model == "fast"
    else:
        assert (
            anthropic.messages.create(model="fast", max_tokens=50, messages=messages).model
            == "fast"
        )
    response = httpx.post(
        f"{gw.url}/v1/messages",
        json={"model": "fast", "max_tokens": 50, "messages": messages},
    )
    assert response.headers[UPSTREAM_HEADER] == "mock"
