"""The Anthropic adapter against the Anthropic-format mock upstream over real HTTP: answers,
streams, tools, thinking and usage, every failure class, deadlines and cancellation, and what
the adapter actually sent (checked in the mock's request log)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import anthropic
import orjson
import pytest

from crossroads.errors import ConfigError, UpstreamError, UpstreamTimeoutError
from crossroads.mockupstream import MockUpstreamThread, run_in_thread
from crossroads.providers.base import Completion, Provider, ProviderSpec, Timeouts, UpstreamCall
from crossroads.providers.registry import load_factory
from crossroads.schemas import Usage

T = TypeVar("T")
JSON = dict[str, Any]
KEY = "sk-ant-test-key"
USER = [{"role": "user", "content": "hello world"}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
CLOCK = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}},
    },
}


@pytest.fixture(scope="module")
def server() -> Iterator[MockUpstreamThread]:
    with run_in_thread() as upstream:
        yield upstream


@pytest.fixture
def mock(server: MockUpstreamThread) -> MockUpstreamThread:
    server.wait_idle()  # a previous test's cancelled request settles before the counters reset
    server.clear()
    return server


def spec_for(mock: MockUpstreamThread, **fields: Any) -> ProviderSpec:
    fields.setdefault("timeouts", Timeouts(connect=2, first_byte=5, total=10))
    return ProviderSpec(
        id="anth", type="anthropic", base_url=mock.url.removesuffix("/v1"), api_key=KEY, **fields
    )


@asynccontextmanager
async def started(spec: ProviderSpec) -> AsyncIterator[Provider]:
    provider = load_factory("anthropic")(spec)
    await provider.start()
    try:
        yield provider
    finally:
        await provider.aclose()


def call(body: JSON, seconds: float = 10.0) -> UpstreamCall:
    deadline = asyncio.get_running_loop().time() + seconds
    return UpstreamCall(body={"model": "mock", "messages": USER, **body}, deadline=deadline,
                        request_id="r1")  # fmt: skip


def run(mock: MockUpstreamThread, scenario: Callable[[Provider], Awaitable[T]], **spec: Any) -> T:
    async def go() -> T:
        async with started(spec_for(mock, **spec)) as provider:
            return await scenario(provider)

    return asyncio.run(go())


def complete(mock: MockUpstreamThread, body: JSON, **spec: Any) -> Completion:
    return run(mock, lambda p: p.complete(call(body)), **spec)


def stream(mock: MockUpstreamThread, body: JSON, seconds: float = 10.0) -> list[Any]:
    async def scenario(provider: Provider) -> list[Any]:
        return [chunk async for chunk in provider.stream(call(body, seconds))]

    return run(mock, scenario)


def failure(mock: MockUpstreamThread, body: JSON, *, streamed: bool = False) -> UpstreamError:
    with pytest.raises(UpstreamError) as caught:
        stream(mock, body) if streamed else complete(mock, body)
    return caught.value


def docs(chunks: list[Any]) -> list[JSON]:
    return [orjson.loads(chunk.data) for chunk in chunks]


def content_of(chunks: list[Any], key: str = "content") -> str:
    return "".join(d["choices"][0]["delta"].get(key) or "" for d in docs(chunks) if d["choices"])


# --- answers --------------------------------------------------------------------------------


def test_chat_sends_anthropic_wire_format(mock: MockUpstreamThread) -> None:
    messages = [{"role": "system", "content": "Be brief."}, *USER]
    completion = complete(mock, {"messages": messages, "seed": 3, "temperature": 0.5})
    choice = completion.data["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": "mock answer: hello world"}
    assert choice["finish_reason"] == "stop"
    assert orjson.loads(completion.body) == completion.data
    [record] = mock.requests()
    assert completion.data["id"] == f"chatcmpl-msg_mock_{record['sequence']}"
    assert record["path"] == "/v1/messages"
    assert record["headers"]["x-api-key"] == KEY
    assert record["headers"]["anthropic-version"] == "2023-06-01"
    assert record["headers"]["content-type"] == "application/json"
    assert "authorization" not in record["headers"]
    assert record["json"] == {
        "model": "mock",
        "max_tokens": 4096,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hello world"}]}],
        "system": "Be brief.",
        "temperature": 0.5,
    }


def test_stream(mock: MockUpstreamThread) -> None:
    chunks = stream(mock, {"model": "mock:chunks=4", "max_tokens": 50})
    data = docs(chunks)
    assert data[0]["choices"][0]["delta"]["role"] == "assistant"
    assert content_of(chunks) == "mock answer: hello world"
    assert len([d for d in data if d["choices"] and d["choices"][0]["delta"].get("content")]) == 4
    assert data[-2]["choices"][0]["finish_reason"] == "stop"
    assert data[-1]["choices"] == [] and chunks[-1].usage_only
    assert chunks[-1].usage == Usage(prompt_tokens=2, completion_tokens=4)
    assert all(c.usage is None and not c.usage_only for c in chunks[:-1])
    assert {d["object"] for d in data} == {"chat.completion.chunk"}
    [record] = mock.requests()
    assert record["json"]["stream"] is True and record["json"]["max_tokens"] == 50


def test_usage_with_cached_tokens(mock: MockUpstreamThread) -> None:
    completion = complete(mock, {"model": "mock:usage=11/22,cached=4"})
    assert completion.usage == Usage(prompt_tokens=11, completion_tokens=22, cached_tokens=4)
    assert completion.data["usage"]["prompt_tokens_details"]["cached_tokens"] == 4
    chunks = stream(mock, {"model": "mock:usage=11/22,cached=4"})
    assert chunks[-1].usage == completion.usage


def test_tool_call_and_tool_result_round_trip(mock: MockUpstreamThread) -> None:
    first = complete(mock, {"model": "mock:tool_call", "tools": [WEATHER]})
    message = first.data["choices"][0]["message"]
    assert first.data["choices"][0]["finish_reason"] == "tool_calls"
    [tool_call] = message["tool_calls"]
    assert tool_call["id"] == f"toolu_mock_{mock.requests()[0]['sequence']}_0"
    assert orjson.loads(tool_call["function"]["arguments"]) == {"city": "hello world"}
    history = [
        *USER,
        message,
        {"role": "tool", "tool_call_id": tool_call["id"], "content": "sunny"},
    ]
    second = complete(mock, {"messages": history, "tools": [WEATHER]})
    assert second.data["choices"][0]["finish_reason"] == "stop"
    sent = mock.requests()[1]["json"]
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
    assert sent["messages"][1]["content"][0]["type"] == "tool_use"
    assert sent["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": tool_call["id"], "content": "sunny"}
    ]
    assert sent["tools"][0]["input_schema"] == WEATHER["function"]["parameters"]


def test_parallel_tool_calls_stream(mock: MockUpstreamThread) -> None:
    chunks = stream(mock, {"model": "mock:tool_call", "tools": [WEATHER, CLOCK]})
    calls: dict[int, JSON] = {}
    for doc in docs(chunks):
        for piece in doc["choices"][0]["delta"].get("tool_calls", []) if doc["choices"] else []:
            entry = calls.setdefault(piece["index"], {"arguments": ""})
            entry.update({k: piece[k] for k in ("id",) if k in piece})
            entry["name"] = piece["function"].get("name", entry.get("name"))
            entry["arguments"] += piece["function"]["arguments"]
    assert sorted(calls) == [0, 1]
    assert [calls[i]["name"] for i in (0, 1)] == ["get_weather", "get_time"]
    sequence = mock.requests()[0]["sequence"]
    assert [calls[i]["id"] for i in (0, 1)] == [f"toolu_mock_{sequence}_{i}" for i in (0, 1)]
    assert orjson.loads(calls[1]["arguments"]) == {"zone": "hello world"}
    assert docs(chunks)[-2]["choices"][0]["finish_reason"] == "tool_calls"
    serial = complete(
        mock, {"model": "mock:tool_call", "tools": [WEATHER, CLOCK], "parallel_tool_calls": False}
    )
    assert len(serial.data["choices"][0]["message"]["tool_calls"]) == 1
    assert mock.requests()[1]["json"]["tool_choice"] == {
        "type": "auto",
        "disable_parallel_tool_use": True,
    }


def test_thinking_answer_and_replay(mock: MockUpstreamThread) -> None:
    body = {"model": "mock:reasoning=3", "max_tokens": 100, "reasoning": {"effort": "low"}}
    completion = complete(mock, body)
    message = completion.data["choices"][0]["message"]
    assert message["reasoning_content"] == "thinking thinking thinking"
    [record] = mock.requests()
    assert message["reasoning_signature"] == f"mock-signature-{record['sequence']}"
    sent = record["json"]
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert sent["max_tokens"] == 1124
    chunks = stream(mock, body)
    assert content_of(chunks, "reasoning_content") == "thinking thinking thinking"
    assert content_of(chunks, "reasoning_signature") == f"mock-signature-{record['sequence'] + 1}"
    deltas = [d["choices"][0]["delta"] for d in docs(chunks) if d["choices"]]
    kinds = [key for delta in deltas for key, value in delta.items() if value]
    assert kinds.index("reasoning_content") < kinds.index("content")
    # The signed reasoning goes back as a thinking block the mock accepts (it refuses unsigned).
    history = [*USER, message, {"role": "user", "content": "more"}]
    complete(mock, {"messages": history, "reasoning": {"effort": "low"}})
    replayed = mock.requests()[2]["json"]["messages"][1]["content"][0]
    assert replayed == {
        "type": "thinking",
        "thinking": "thinking thinking thinking",
        "signature": message["reasoning_signature"],
    }


def test_refused_before_sending(mock: MockUpstreamThread) -> None:
    error = failure(mock, {"n": 2})
    assert (error.status, error.retryable) == (400, False)
    assert mock.requests() == []


def test_entry_point_options(mock: MockUpstreamThread) -> None:
    complete(mock, {}, options={"auth_scheme": "bearer", "default_max_tokens": 64})
    [record] = mock.requests()
    assert record["headers"]["authorization"] == f"Bearer {KEY}"
    assert "x-api-key" not in record["headers"]
    assert record["json"]["max_tokens"] == 64
    with pytest.raises(ConfigError):
        load_factory("anthropic")(spec_for(mock, options={"auth_scheme": "basic"}))
    with pytest.raises(ConfigError):
        load_factory("anthropic")(spec_for(mock, options={"default_max_tokens": 0}))


def test_official_client_reads_the_mock(mock: MockUpstreamThread) -> None:
    base_url = mock.url.removesuffix("/v1")
    with anthropic.Anthropic(base_url=base_url, api_key=KEY, max_retries=0) as client:
        tools: Any = [
            {"name": "a", "input_schema": {"type": "object", "properties": {}}},
            {"name": "b", "input_schema": {"type": "object", "properties": {}}},
        ]
        with client.messages.stream(
            model="mock:tool_call,reasoning=2", max_tokens=10, messages=USER, tools=tools
        ) as events:
            final = events.get_final_message()
        assert [b.type for b in final.content] == ["thinking", "tool_use", "tool_use"]
        message = client.messages.create(model="mock:cached=1", max_tokens=10, messages=USER)
        assert message.content[0].type == "text"
        assert (message.usage.input_tokens, message.usage.cache_read_input_tokens) == (1, 1)
        with pytest.raises(anthropic.BadRequestError):
            client.messages.create(model="m", max_tokens=10, messages=[*USER, *USER])


# --- failures -------------------------------------------------------------------------------


def test_401_hides_the_upstream_text(mock: MockUpstreamThread) -> None:
    error = failure(mock, {"model": "mock:status=401,error_body"})
    assert (error.code, error.retryable, error.upstream_status) == (
        "upstream_auth_failed",
        True,
        401,
    )
    assert "mock upstream" not in error.message and KEY not in error.message


def test_429_with_retry_after(mock: MockUpstreamThread) -> None:
    error = failure(mock, {"model": "mock:status=429,retry_after=2,error_body"}, streamed=True)
    assert (error.status, error.retryable, error.retry_after) == (429, True, 2.0)


def test_529_overloaded(mock: MockUpstreamThread) -> None:
    error = failure(mock, {"model": "mock:status=529,error_body"})
    assert (error.code, error.retryable, error.upstream_status) == (
        "upstream_overloaded",
        True,
        529,
    )


def test_500_and_400(mock: MockUpstreamThread) -> None:
    server_error = failure(mock, {"model": "mock:status=500"})
    assert server_error.retryable and server_error.upstream_status == 500
    rejected = failure(mock, {"model": "mock:status=400,error_body"})
    assert (rejected.retryable, rejected.status) == (False, 400)
    assert "mock upstream error, status 400" in rejected.message


def test_error_body_with_200(mock: MockUpstreamThread) -> None:
    error = failure(mock, {"model": "mock:error_body"})
    assert (error.code, error.retryable) == ("upstream_overloaded", True)


def test_error_event_mid_stream(mock: MockUpstreamThread) -> None:
    seen: list[Any] = []

    async def scenario(provider: Provider) -> None:
        async for chunk in provider.stream(call({"model": "mock:error_body,chunks=6"})):
            seen.append(chunk)

    with pytest.raises(UpstreamError) as caught:
        run(mock, scenario)
    assert caught.value.code == "upstream_overloaded" and caught.value.retryable
    assert seen  # the error came after the first chunks


@pytest.mark.parametrize("script", ["truncate", "no_done"])
def test_incomplete_stream_is_truncated(mock: MockUpstreamThread, script: str) -> None:
    error = failure(mock, {"model": f"mock:{script}"}, streamed=True)
    assert (error.code, error.retryable) == ("upstream_truncated", True)


@pytest.mark.parametrize("streamed", [False, True])
def test_malformed_json(mock: MockUpstreamThread, streamed: bool) -> None:
    error = failure(mock, {"model": "mock:malformed"}, streamed=streamed)
    assert (error.code, error.retryable) == ("upstream_bad_response", True)


@pytest.mark.parametrize(("script", "streamed"), [("before", False), ("during", True)])
def test_reset(mock: MockUpstreamThread, script: str, streamed: bool) -> None:
    error = failure(mock, {"model": f"mock:reset={script}"}, streamed=streamed)
    assert (error.code, error.retryable) == ("upstream_connection_error", True)


def test_deadline_before_the_answer(mock: MockUpstreamThread) -> None:
    started_at = time.monotonic()
    with pytest.raises(UpstreamTimeoutError):
        run(mock, lambda p: p.complete(call({"model": "mock:hang"}, seconds=0.3)))
    assert time.monotonic() - started_at < 3
    mock.wait_idle()
    assert mock.stats()["cancelled"] == 1


def test_first_byte_timeout(mock: MockUpstreamThread) -> None:
    with pytest.raises(UpstreamTimeoutError):
        run(
            mock,
            lambda p: p.complete(call({"model": "mock:first_byte=2"})),
            timeouts=Timeouts(first_byte=0.2),
        )


def test_deadline_mid_stream(mock: MockUpstreamThread) -> None:
    with pytest.raises(UpstreamTimeoutError):
        stream(mock, {"model": "mock:drip=0.3,chunks=20"}, seconds=1.0)
    mock.wait_idle()
    assert mock.stats()["cancelled"] == 1


def test_closing_a_stream_closes_the_upstream_connection(mock: MockUpstreamThread) -> None:
    async def scenario(provider: Provider) -> int:
        chunks = provider.stream(call({"model": "mock:drip=0.1,chunks=50"}))
        read = [await anext(chunks), await anext(chunks)]
        await chunks.aclose()  # type: ignore[attr-defined]
        return len(read)

    assert run(mock, scenario) == 2
    mock.wait_idle()
    [record] = mock.requests()
    assert record["outcome"] == "cancelled"


def test_cancelling_a_completion_closes_the_upstream_connection(mock: MockUpstreamThread) -> None:
    async def scenario(provider: Provider) -> None:
        task = asyncio.create_task(provider.complete(call({"model": "mock:hang"})))
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(mock, scenario)
    mock.wait_idle()
    assert mock.requests()[0]["outcome"] == "cancelled"
