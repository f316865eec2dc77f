"""The Anthropic Messages API end to end: the real gateway server, the scripted mock upstream
(which speaks only OpenAI's format) over HTTP, and the official `anthropic` client."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import httpx
import pytest

from conftest import GatewayFactory, mock_config
from crossroads.ledger.record import Status
from crossroads.mockupstream import MockUpstreamThread
from support.gateway import GatewayThread

USER: list[Any] = [{"role": "user", "content": "hello there"}]
WEATHER: Any = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


Claude = Callable[[GatewayThread], anthropic.Anthropic]


@pytest.fixture
def claude() -> Iterator[Claude]:
    """`claude(gw)`: the official client for a gateway (base URL without /v1, as the SDK
    wants it). Every client is closed after the test, so no pooled connection outlives it."""
    clients: list[anthropic.Anthropic] = []

    def make(gw: GatewayThread) -> anthropic.Anthropic:
        clients.append(anthropic.Anthropic(base_url=gw.url, api_key="x", max_retries=0))
        return clients[-1]

    yield make
    for client in clients:
        client.close()


def sent(mock: MockUpstreamThread) -> dict[str, Any]:
    """The body the upstream received for the latest request."""
    body: dict[str, Any] = mock.requests()[-1]["json"]
    return body


def test_a_plain_message(gateway: GatewayFactory, mock: MockUpstreamThread, claude: Claude) -> None:
    gw = gateway(mock_config(mock.url))
    raw = claude(gw).messages.with_raw_response.create(
        model="m",
        max_tokens=50,
        messages=USER,
        stop_sequences=["zz"],
        metadata={"user_id": "u-7"},
        # This SDK version no longer lists the sampling fields; the API still takes them.
        extra_body={"temperature": 0.3, "top_k": 5},
    )
    reply = raw.parse()
    assert reply.type == "message" and reply.role == "assistant" and reply.model == "m"
    assert reply.id.startswith("msg_")
    assert [block.type for block in reply.content] == ["text"]
    assert reply.content[0].text == "mock answer: hello there"  # type: ignore[union-attr]
    assert reply.stop_reason == "end_turn" and reply.stop_sequence is None
    assert reply.usage.output_tokens > 0 and reply.usage.input_tokens > 0
    assert raw.headers["request-id"] == raw.headers["x-request-id"]
    assert raw.headers["x-crossroads-provider"] == "up0"
    assert sent(mock) == {
        "model": "mock",
        "messages": USER,
        "max_tokens": 50,
        "stop": ["zz"],
        "temperature": 0.3,
        "top_k": 5,
        "user": "u-7",
    }
    gw.stop()
    (record,) = gw.ledger()
    assert record.endpoint == "messages" and record.status is Status.OK and not record.stream
    assert record.request_id == raw.headers["request-id"]
    assert record.requested_model == "m"
    assert record.completion_tokens == reply.usage.output_tokens


def test_system_prompt_and_multi_turn(
    gateway: GatewayFactory, mock: MockUpstreamThread, claude: Claude
) -> None:
    gw = gateway(mock_config(mock.url))
    reply = claude(gw).messages.create(
        model="m",
        max_tokens=50,
        system=[{"type": "text", "text": "be brief"}, {"type": "text", "text": "be kind"}],
        messages=[
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": [{"type": "text", "text": "first answer"}]},
            {"role": "user", "content": [{"type": "text", "text": "second question"}]},
        ],
    )
    assert reply.content[0].text == "mock answer: second question"  # type: ignore[union-attr]
    assert sent(mock)["messages"] == [
        {"role": "system", "content": "be brief\nbe kind"},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "second question"},
    ]


def test_streaming_text(gateway: GatewayFactory, mock: MockUpstreamThread, claude: Claude) -> None:
    gw = gateway(mock_config(mock.url))
    with claude(gw).messages.stream(model="m", max_tokens=50, messages=USER) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "mock answer: hello there"
    assert [block.type for block in final.content] == ["text"]
    assert final.content[0].text == text  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn" and final.model == "m"
    assert final.usage.output_tokens > 0 and final.usage.input_tokens > 0
    assert sent(mock)["stream"] is True
    assert sent(mock)["stream_options"] == {"include_usage": True}
    gw.stop()
    (record,) = gw.ledger()
    assert record.endpoint == "messages" and record.stream and record.status is Status.OK
    assert record.completion_tokens == final.usage.output_tokens
    assert record.ttft_ms is not None


def test_a_tool_loop(gateway: GatewayFactory, mock: MockUpstreamThread, claude: Claude) -> None:
    gw = gateway(mock_config(mock.url))
    client = claude(gw)
    mock.script(["tool_call"])
    question: Any = [{"role": "user", "content": "weather in Paris?"}]
    first = client.messages.create(
        model="m",
        max_tokens=50,
        messages=question,
        tools=[WEATHER],
        tool_choice={"type": "auto", "disable_parallel_tool_use": True},
    )
    assert first.stop_reason == "tool_use"
    (call,) = [block for block in first.content if block.type == "tool_use"]
    assert call.name == "get_weather" and call.id.startswith("call_mock_")
    assert call.input == {"city": "weather in Paris?"}
    upstream = sent(mock)
    assert upstream["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": WEATHER["input_schema"],
                "description": "Weather for a city",
            },
        }
    ]
    assert upstream["tool_choice"] == "auto" and upstream["parallel_tool_calls"] is False

    second = client.messages.create(
        model="m",
        max_tokens=50,
        tools=[WEATHER],
        messages=[
            *question,
            {"role": "assistant", "content": [block.model_dump() for block in first.content]},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": call.id, "content": "sunny, 21 C"},
                    {"type": "text", "text": "thanks"},
                ],
            },
        ],
    )
    assert second.stop_reason == "end_turn"
    assert second.content[0].text == "mock answer: thanks"  # type: ignore[union-attr]
    messages = sent(mock)["messages"]
    assert messages[1]["tool_calls"][0]["id"] == call.id
    assert json.loads(messages[1]["tool_calls"][0]["function"]["arguments"]) == call.input
    assert messages[2:] == [
        {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"},
        {"role": "user", "content": "thanks"},
    ]


def test_streamed_tool_use(
    gateway: GatewayFactory, mock: MockUpstreamThread, claude: Claude
) -> None:
    gw = gateway(mock_config(mock.url))
    mock.script(["tool_call,chunks=6"])
    with claude(gw).messages.stream(
        model="m",
        max_tokens=50,
        messages=[{"role": "user", "content": "Rome"}],
        tools=[WEATHER],
    ) as stream:
        events = list(stream)
        final = stream.get_final_message()
    partial = [
        e.delta.partial_json  # type: ignore[union-attr]
        for e in events
        if e.type == "content_block_delta" and e.delta.type == "input_json_delta"
    ]
    assert len(partial) > 1  # the arguments really arrived in pieces
    assert json.loads("".join(partial)) == {"city": "Rome"}
    (block,) = final.content
    assert block.type == "tool_use" and block.input == {"city": "Rome"}
    assert final.stop_reason == "tool_use"


def test_reasoning_becomes_a_thinking_block(
    gateway: GatewayFactory, mock: MockUpstreamThread, claude: Claude
) -> None:
    gw = gateway(mock_config(mock.url))
    client = claude(gw)
    mock.script(["reasoning=5", "reasoning=5"])
    thinking: Any = {"type": "enabled", "budget_tokens": 1024}
    reply = client.messages.create(model="m", max_tokens=2000, messages=USER, thinking=thinking)
    assert sent(mock)["reasoning"] == {"enabled": True, "max_tokens": 1024}
    assert [block.type for block in reply.content] == ["thinking", "text"]
    assert reply.content[0].thinking == " ".join(["thinking"] * 5)  # type: ignore[union-attr]
    with client.messages.stream(
        model="m", max_tokens=2000, messages=USER, thinking=thinking
    ) as stream:
        final = stream.get_final_message()
    assert [block.type for block in final.content] == ["thinking", "text"]
    assert final.content[0].thinking == " ".join(["thinking"] * 5)  # type: ignore[union-attr]
    assert final.content[1].text == "mock answer: hello there"  # type: ignore[union-attr]


def test_usage_maps_cached_tokens(
    gateway: GatewayFactory, mock: MockUpstreamThread, claude: Claude
) -> None:
    gw = gateway(mock_config(mock.url))
    client = claude(gw)
    mock.script(["usage=100/20,cached=30", "usage=100/20,cached=30"])
    reply = client.messages.create(model="m", max_tokens=50, messages=USER)
    with client.messages.stream(model="m", max_tokens=50, messages=USER) as stream:
        final = stream.get_final_message()
    for usage in (reply.usage, final.usage):
        assert usage.input_tokens == 70
        assert usage.cache_read_input_tokens == 30
        assert usage.cache_creation_input_tokens == 0
        assert usage.output_tokens == 20
    gw.stop()
    records = gw.ledger()
    assert [(r.prompt_tokens, r.cached_tokens, r.completion_tokens) for r in records] == [
        (100, 30, 20),
        (100, 30, 20),
    ]


def test_count_tokens(gateway: GatewayFactory, mock: MockUpstreamThread, claude: Claude) -> None:
    gw = gateway(mock_config(mock.url))
    client = claude(gw)
    short = client.messages.count_tokens(model="m", messages=USER)
    longer = client.messages.count_tokens(
        model="m", system="a long system prompt " * 20, messages=USER, tools=[WEATHER]
    )
    assert 0 < short.input_tokens < longer.input_tokens
    with pytest.raises(anthropic.NotFoundError):
        client.messages.count_tokens(model="missing", messages=USER)
    with pytest.raises(anthropic.BadRequestError):
        client.messages.count_tokens(model="m", messages=[])
    assert mock.requests() == []  # no upstream was asked
    gw.stop()
    assert gw.ledger() == []  # and nothing was ledgered


def test_mid_stream_upstream_error(
    gateway: GatewayFactory, mock: MockUpstreamThread, claude: Claude
) -> None:
    gw = gateway(mock_config(mock.url))
    mock.script(["truncate,chunks=10"])
    with (
        pytest.raises(anthropic.APIStatusError) as err,
        claude(gw).messages.stream(model="m", max_tokens=50, messages=USER) as stream,
    ):
        for _ in stream:
            pass
    body: Any = err.value.body
    assert body["type"] == "error" and body["error"]["type"] == "api_error"
    assert "up0" in body["error"]["message"]
    gw.stop()
    (record,) = gw.ledger()
    assert record.endpoint == "messages" and record.status is Status.ERROR
    assert record.error_type == "upstream_error"


def test_client_disconnect_mid_stream_cancels_the_upstream(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    gw = gateway(mock_config(mock.url))
    mock.script(["drip=0.1,chunks=100"])
    with httpx.stream(
        "POST",
        f"{gw.url}/v1/messages",
        json={"model": "m", "max_tokens": 500, "messages": USER, "stream": True},
        timeout=30,
    ) as response:
        lines = response.iter_lines()
        seen = [
            line for line, _ in zip(lines, range(12), strict=False) if line.startswith("event:")
        ]
    assert seen[:3] == ["event: message_start", "event: ping", "event: content_block_start"]
    mock.wait_idle(timeout=10)
    assert mock.requests()[0]["outcome"] == "cancelled"  # the upstream saw the gateway leave
    gw.stop()
    (record,) = gw.ledger()
    assert record.endpoint == "messages" and record.status is Status.CANCELLED
    assert record.http_status == 499


def test_credentials_and_version_headers_are_accepted(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    gw = gateway(mock_config(mock.url))
    body = {"model": "m", "max_tokens": 20, "messages": USER}
    for headers in (
        {"x-api-key": "k", "anthropic-version": "2023-06-01"},
        {"authorization": "Bearer k", "anthropic-beta": "interleaved-thinking-2025-05-14"},
        {},
    ):
        response = httpx.post(f"{gw.url}/v1/messages", json=body, headers=headers)
        assert response.status_code == 200, response.text
        assert response.json()["content"][0]["text"] == "mock answer: hello there"


def bad_request(client: anthropic.Anthropic, **fields: Any) -> dict[str, Any]:
    with pytest.raises(anthropic.BadRequestError) as err:
        client.messages.create(**{"model": "m", "max_tokens": 20, **fields})
    body: dict[str, Any] = err.value.body  # type: ignore[assignment]
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert body["request_id"] == err.value.response.headers["request-id"]
    return dict(body["error"])


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"messages": [*USER, *USER, {"role": "user", "content": [{"type": "video"}]}]},
            "messages[2].content[0].type: unsupported content block type 'video'",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "tu_1"}]}
                ]
            },
            "messages[0].content[0].tool_use_id: no earlier tool_use block has the id 'tu_1'",
        ),
        (
            {"messages": USER, "extra_body": {"max_tokens": "many"}},
            "max_tokens: Expected `int`, got `str`",
        ),
        (
            {"messages": USER, "extra_body": {"temperature": "hot"}},
            "temperature: Expected `float`, got `str`",
        ),
        ({"messages": "hello"}, "messages: Expected `array`, got `str`"),
    ],
)
def test_bad_input_is_a_400_naming_the_problem(
    gateway: GatewayFactory,
    mock: MockUpstreamThread,
    claude: Claude,
    fields: dict[str, Any],
    expected: str,
) -> None:
    gw = gateway(mock_config(mock.url))
    error = bad_request(claude(gw), **fields)
    assert error["message"].startswith(expected), error["message"]
    assert mock.requests() == []
    gw.stop()
    (record,) = gw.ledger()
    assert record.endpoint == "messages" and record.status is Status.ERROR
    assert record.http_status == 400


def test_missing_max_tokens(gateway: GatewayFactory, mock: MockUpstreamThread) -> None:
    gw = gateway(mock_config(mock.url))
    response = httpx.post(f"{gw.url}/v1/messages", json={"model": "m", "messages": USER})
    assert response.status_code == 400
    assert response.json()["error"] == {
        "type": "invalid_request_error",
        "message": "max_tokens: field required",
    }
    malformed = httpx.post(
        f"{gw.url}/v1/messages", content=b"{", headers={"content-type": "application/json"}
    )
    assert malformed.status_code == 400
    assert malformed.json()["error"]["type"] == "invalid_request_error"
    gw.stop()
    assert [r.http_status for r in gw.ledger()] == [400, 400]


def test_unknown_model_is_a_404(
    gateway: GatewayFactory, mock: MockUpstreamThread, claude: Claude
) -> None:
    gw = gateway(mock_config(mock.url))
    with pytest.raises(anthropic.NotFoundError) as err:
        claude(gw).messages.create(model="missing", max_tokens=20, messages=USER)
    body: Any = err.value.body
    assert body["error"]["type"] == "not_found_error" and "missing" in body["error"]["message"]
    gw.stop()
    (record,) = gw.ledger()
    assert record.endpoint == "messages" and record.http_status == 404


def test_one_ledger_record_per_request(
    gateway: GatewayFactory, mock: MockUpstreamThread, claude: Claude
) -> None:
    gw = gateway(mock_config(mock.url))
    client = claude(gw)
    whole = client.messages.with_raw_response.create(model="m", max_tokens=20, messages=USER)
    with client.messages.with_streaming_response.create(
        model="m", max_tokens=20, messages=USER, stream=True
    ) as streamed:
        streamed.read()
    with pytest.raises(anthropic.NotFoundError):
        client.messages.create(model="missing", max_tokens=20, messages=USER)
    client.messages.count_tokens(model="m", messages=USER)  # never ledgered
    gw.stop()
    records = gw.ledger()
    assert [(r.endpoint, r.status, r.stream) for r in records] == [
        ("messages", Status.OK, False),
        ("messages", Status.OK, True),
        ("messages", Status.ERROR, False),
    ]
    assert [r.request_id for r in records[:2]] == [
        whole.headers["request-id"],
        streamed.headers["request-id"],
    ]


def test_message_start_reports_the_count_tokens_estimate_before_the_upstream_reports(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    """Agents track their context window from message_start; the upstream reports usage only at
    the end, so the start carries the same estimate count_tokens gives, not 0."""
    gw = gateway(mock_config(mock.url))
    body = {"model": "m", "max_tokens": 50, "messages": [{"role": "user", "content": "x" * 4000}]}
    estimate = httpx.post(f"{gw.url}/v1/messages/count_tokens", json=body).json()["input_tokens"]
    assert estimate > 1000
    with httpx.stream("POST", f"{gw.url}/v1/messages", json={**body, "stream": True}) as response:
        first = next(line for line in response.iter_lines() if line.startswith("data:"))
    start = json.loads(first.removeprefix("data:"))
    assert start["type"] == "message_start"
    assert start["message"]["usage"]["input_tokens"] == estimate
