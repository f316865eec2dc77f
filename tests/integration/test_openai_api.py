"""The OpenAI-compatible API end to end: the real gateway server, real mock upstreams over
HTTP, and the official `openai` client."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from conftest import GatewayFactory, client, mock_config
from crossroads.ledger.record import Status
from crossroads.mockupstream import MockUpstreamThread

USER = [{"role": "user", "content": "hello there"}]


def test_chat_completion_passes_through(gateway: GatewayFactory, mock: MockUpstreamThread) -> None:
    gw = gateway(mock_config(mock.url))
    raw = client(gw).chat.completions.with_raw_response.create(
        model="m",
        messages=USER,
        temperature=0.2,
        top_p=0.9,
        max_tokens=50,
        seed=7,
        stop=["x"],
        user="u1",
        n=1,
    )
    reply = raw.parse()
    assert reply.choices[0].message.content == "mock answer: hello there"
    assert reply.usage is not None and reply.usage.completion_tokens > 0
    assert raw.headers["x-crossroads-provider"] == "up0"
    assert raw.headers["x-crossroads-deployment"] == "up0:mock"
    assert raw.headers["x-crossroads-attempts"] == "1"
    sent = mock.requests()[-1]["json"]
    assert sent["model"] == "mock"  # the upstream's own id, not the served name
    for field, value in {
        "temperature": 0.2,
        "top_p": 0.9,
        "max_tokens": 50,
        "seed": 7,
        "stop": ["x"],
        "user": "u1",
        "n": 1,
    }.items():
        assert sent[field] == value
    gw.stop()
    (record,) = gw.ledger()
    assert record.request_id == raw.headers["x-request-id"]
    assert record.status is Status.OK and record.attempts == 1
    assert record.completion_tokens == reply.usage.completion_tokens
    assert record.provider == "up0" and not record.stream


def test_multipart_content_and_unknown_fields_pass_through(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    gw = gateway(mock_config(mock.url))
    messages = [
        {"role": "system", "content": "be brief"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            ],
        },
    ]
    client(gw).chat.completions.create(
        model="m",
        messages=messages,
        extra_body={"top_k": 5},  # type: ignore[arg-type]
        response_format={"type": "json_object"},
        logprobs=True,
        top_logprobs=2,
    )
    sent = mock.requests()[-1]["json"]
    assert sent["messages"] == messages
    assert sent["top_k"] == 5
    assert sent["response_format"] == {"type": "json_object"}
    assert sent["logprobs"] is True and sent["top_logprobs"] == 2


def test_stream_relays_chunks_and_usage_on_request(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    gw = gateway(mock_config(mock.url))
    chunks = list(
        client(gw).chat.completions.create(
            model="m",
            messages=USER,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "mock answer: hello there"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    # The gateway always asks the upstream for usage, so the ledger has it either way.
    assert mock.requests()[-1]["json"]["stream_options"] == {"include_usage": True}
    gw.stop()
    (record,) = gw.ledger()
    assert record.stream and record.status is Status.OK
    assert record.completion_tokens == chunks[-1].usage.completion_tokens
    assert record.ttft_ms is not None and record.latency_ms is not None


def test_stream_without_include_usage_drops_the_usage_chunk(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    gw = gateway(mock_config(mock.url))
    with httpx.stream(
        "POST",
        f"{gw.v1}/chat/completions",
        json={"model": "m", "messages": USER, "stream": True},
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]"
    payloads = [json.loads(e[6:]) for e in events[:-1]]
    assert all(p["choices"] for p in payloads)
    assert all("usage" not in p or p["usage"] is None for p in payloads)
    gw.stop()
    (record,) = gw.ledger()
    assert record.completion_tokens > 0  # usage was still read for the ledger


def test_tools_pass_through_and_tool_calls_come_back(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    gw = gateway(mock_config(mock.url))
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather for a city",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
        }
    ]
    mock.script(["tool_call", "tool_call"])
    reply = client(gw).chat.completions.create(
        model="m",
        messages=USER,
        tools=tools,  # type: ignore[arg-type]
        tool_choice="auto",
    )
    assert mock.requests()[-1]["json"]["tools"] == tools
    call = reply.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "get_weather"
    assert "city" in json.loads(call.function.arguments)
    assert reply.choices[0].finish_reason == "tool_calls"

    stream = client(gw).chat.completions.create(
        model="m",
        messages=USER,
        tools=tools,
        stream=True,  # type: ignore[arg-type]
    )
    arguments = "".join(
        c.choices[0].delta.tool_calls[0].function.arguments or ""  # type: ignore[index,union-attr]
        for c in stream
        if c.choices and c.choices[0].delta.tool_calls
    )
    assert "city" in json.loads(arguments)


def test_models_list_and_get(gateway: GatewayFactory, mock: MockUpstreamThread) -> None:
    gw = gateway(mock_config(mock.url))
    ids = [m.id for m in client(gw).models.list()]
    assert "m" in ids and "m@up0" in ids
    assert client(gw).models.retrieve("m").id == "m"
    with pytest.raises(openai.NotFoundError) as err:
        client(gw).models.retrieve("missing")
    assert err.value.body["code"] == "model_not_found"  # type: ignore[index]


def test_health_and_readiness(gateway: GatewayFactory, mock: MockUpstreamThread) -> None:
    gw = gateway(mock_config(mock.url))
    assert httpx.get(f"{gw.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{gw.url}/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"config": "ok", "providers": "ok", "ledger": "ok"}


def test_fallback_to_the_next_deployment(gateway: GatewayFactory) -> None:
    from crossroads.mockupstream import run_in_thread

    with run_in_thread() as bad, run_in_thread() as good:
        bad.script(["status=503", "status=503"])  # the first try and its one retry
        gw = gateway(mock_config(bad.url, good.url))
        raw = client(gw).chat.completions.with_raw_response.create(model="m", messages=USER)
        assert raw.headers["x-crossroads-provider"] == "up1"
        assert raw.headers["x-crossroads-attempts"] == "3"
        gw.stop()
        (record,) = gw.ledger()
        assert record.attempts == 3 and record.provider == "up1"


def test_client_errors_from_upstream_come_back_at_once(gateway: GatewayFactory) -> None:
    from crossroads.mockupstream import run_in_thread

    with run_in_thread() as first, run_in_thread() as second:
        first.script(["status=422,error_body"])
        gw = gateway(mock_config(first.url, second.url))
        with pytest.raises(openai.UnprocessableEntityError) as err:
            client(gw).chat.completions.create(model="m", messages=USER)
        assert err.value.body["type"] == "upstream_error"  # type: ignore[index]
        assert second.requests() == []
