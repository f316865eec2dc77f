"""POST /v1/embeddings end to end: the real gateway, the mock upstream's /v1/embeddings, the
official `openai` client; input validation before routing; deployments whose provider cannot
embed are skipped; one ledger record per request."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from conftest import GatewayFactory, client, mock_config
from crossroads.ledger.record import Status
from crossroads.mockupstream import MockUpstreamThread


def test_embeddings_through_the_gateway(gateway: GatewayFactory, mock: MockUpstreamThread) -> None:
    gw = gateway(mock_config(mock.url, names=("e",)))
    raw = client(gw).embeddings.with_raw_response.create(
        model="e", input=["hello world", "second text"], dimensions=8
    )
    reply = raw.parse()
    assert [d.index for d in reply.data] == [0, 1]
    assert all(len(d.embedding) == 8 for d in reply.data)  # decoded from base64 by the client
    assert reply.usage.prompt_tokens == 4
    assert raw.headers["x-crossroads-deployment"] == "up0:mock"
    request = mock.requests()[-1]
    assert request["path"] == "/v1/embeddings"
    assert request["json"]["model"] == "mock" and request["json"]["dimensions"] == 8
    floats = client(gw).embeddings.create(model="e", input="one", encoding_format="float")
    assert len(floats.data[0].embedding) == 16
    tokens = httpx.post(f"{gw.v1}/embeddings", json={"model": "e", "input": [[1, 2], [3]]})
    assert tokens.status_code == 200 and len(tokens.json()["data"]) == 2
    gw.stop()
    records = gw.ledger()
    assert len(records) == 3
    first = records[0]
    assert first.endpoint == "embeddings" and first.status is Status.OK
    assert first.request_id == raw.headers["x-request-id"]
    assert first.prompt_tokens == 4 and first.completion_tokens == 0
    assert first.provider == "up0" and not first.stream


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "x"}, "model"),
        ({"model": "e"}, "input"),
        ({"model": "e", "input": ""}, "input"),
        ({"model": "e", "input": []}, "input"),
        ({"model": "e", "input": ["a", ""]}, "input[1]"),
        ({"model": "e", "input": ["a", 1]}, "input[1]"),
        ({"model": "e", "input": [1, -2]}, "input"),
        ({"model": "e", "input": [[1], []]}, "input[1]"),
        ({"model": "e", "input": [{"text": "a"}]}, "input"),
        ({"model": "e", "input": ["a"] * 2049}, "input"),
        ({"model": "e", "input": "a", "encoding_format": "hex"}, "encoding_format"),
        ({"model": "e", "input": "a", "dimensions": 0}, "dimensions"),
        ({"model": "e", "input": "a", "dimensions": True}, "dimensions"),
        ({"model": "e", "input": "a", "user": 7}, "user"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(
    gateway: GatewayFactory, mock: MockUpstreamThread, body: dict[str, Any], param: str
) -> None:
    gw = gateway(mock_config(mock.url, names=("e",)))
    response = httpx.post(f"{gw.v1}/embeddings", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error"
    assert mock.requests() == []
    gw.stop()
    (record,) = gw.ledger()
    assert record.endpoint == "embeddings" and record.status is Status.ERROR
    assert record.http_status == 400


def test_unknown_model_and_upstream_errors(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    config = mock_config(mock.url, names=("e",))
    scripted = {"provider": "up0", "upstream_model": "mock:status=400,error_body"}
    config["models"].append({"name": "bad", **scripted})
    gw = gateway(config)
    with pytest.raises(openai.NotFoundError):
        client(gw).embeddings.create(model="nope", input="a")
    with pytest.raises(openai.BadRequestError) as err:
        client(gw).embeddings.create(model="bad", input="a")
    assert "refused the request" in err.value.message
    assert len(mock.requests()) == 1  # a client error is not retried
    gw.stop()
    assert [r.http_status for r in gw.ledger()] == [404, 400]


def test_deployments_that_cannot_embed_are_skipped(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    config = {
        "embedded": {"enabled": False},
        "providers": {
            "chat_only": {"type": "anthropic", "base_url": mock.url.removesuffix("/v1")},
            "compat": {"type": "openai", "base_url": mock.url},
        },
        "models": [
            {"name": "e", "provider": "chat_only", "upstream_model": "claude"},
            {"name": "e", "provider": "compat", "upstream_model": "mock"},
            {"name": "c", "provider": "chat_only", "upstream_model": "claude"},
        ],
    }
    gw = gateway(config)
    raw = client(gw).embeddings.with_raw_response.create(model="e", input="a")
    assert raw.headers["x-crossroads-provider"] == "compat"
    with pytest.raises(openai.BadRequestError) as err:
        client(gw).embeddings.create(model="c", input="a")
    assert err.value.body["code"] == "embeddings_not_supported"  # type: ignore[index]
    assert "chat_only:claude: its provider does not serve embeddings" in err.value.message
    assert [r["path"] for r in mock.requests()] == ["/v1/embeddings"]
