"""The mock upstream, driven over real sockets by the official `openai` client and by raw
aiohttp where the client would hide the fault (resets, truncation, malformed bodies)."""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import aiohttp
import openai
import pytest
from openai import OpenAI
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionToolParam

from crossroads.mockupstream import (
    MockUpstream,
    MockUpstreamThread,
    ScriptError,
    parse_script,
    run_in_thread,
)
from crossroads.sse import SSEDecoder

USER: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello world"}]
WEATHER_TOOL: ChatCompletionToolParam = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
        },
    },
}


@pytest.fixture(scope="module")
def server() -> Iterator[MockUpstreamThread]:
    with run_in_thread() as upstream:
        yield upstream


@pytest.fixture
def mock(server: MockUpstreamThread) -> MockUpstreamThread:
    server.clear()
    return server


@pytest.fixture
def client(mock: MockUpstreamThread) -> Iterator[OpenAI]:
    with OpenAI(base_url=mock.url, api_key="sk-test", max_retries=0) as openai_client:
        yield openai_client


class Raw:
    """What a raw HTTP exchange produced: status, headers, body bytes, or the error."""

    def __init__(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body = b""
        self.error: BaseException | None = None
        self.seconds_to_headers = 0.0


def raw_post(url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> Raw:
    """POST with aiohttp, reading the body chunk by chunk; connection errors are captured."""

    async def go() -> Raw:
        result = Raw()
        started = time.monotonic()
        async with aiohttp.ClientSession() as session:
            try:
                async with session.post(url, json=body, headers=headers) as response:
                    result.seconds_to_headers = time.monotonic() - started
                    result.status = response.status
                    result.headers = dict(response.headers)
                    async for piece in response.content.iter_any():
                        result.body += piece
            except aiohttp.ClientError as exc:
                result.error = exc
        return result

    return asyncio.run(go())


def sse_data(body: bytes) -> tuple[list[str], bool]:
    decoder = SSEDecoder()
    events = decoder.feed(body)
    return [event.data for event in events], decoder.has_partial


# --- normal answers ------------------------------------------------------------------------


def test_non_streaming_completion(client: OpenAI) -> None:
    completion = client.chat.completions.create(model="mock", messages=USER)
    assert completion.object == "chat.completion"
    assert completion.model == "mock"
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "mock answer: hello world"
    assert choice.finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 2
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + 5


def test_usage_cached_and_reasoning_non_streaming(client: OpenAI) -> None:
    completion = client.chat.completions.create(
        model="mock:usage=11/22,cached=4,reasoning=3",
        messages=USER,
    )
    usage = completion.usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (11, 22, 33)
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 4
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 3
    assert completion.choices[0].message.model_extra == {
        "reasoning_content": "thinking thinking thinking"
    }


def test_stream_without_include_usage_has_no_usage_chunk(client: OpenAI) -> None:
    chunks = list(client.chat.completions.create(model="mock:chunks=4", messages=USER, stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    contents = [c.choices[0].delta.content for c in chunks[1:-1]]
    assert len(contents) == 4
    assert "".join(c or "" for c in contents) == "mock answer: hello world"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None and c.choices for c in chunks)


def test_no_usage_leaves_usage_out_of_every_answer(client: OpenAI) -> None:
    whole = client.chat.completions.create(model="mock:no_usage", messages=USER)
    assert whole.usage is None and whole.choices[0].message.content
    chunks = list(
        client.chat.completions.create(
            model="mock:no_usage",
            messages=USER,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert all(c.usage is None and c.choices for c in chunks)
    vectors = client.embeddings.create(model="mock:no_usage", input="hello")
    assert vectors.data and "usage" not in (vectors.model_extra or {}) and not vectors.usage


def test_stream_with_include_usage_ends_with_usage_chunk(client: OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="mock:usage=7/9,cached=2",
            messages=USER,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (7, 9)
    assert last.usage.prompt_tokens_details is not None
    assert last.usage.prompt_tokens_details.cached_tokens == 2
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks[:-1])


def test_stream_reasoning_comes_before_content(mock: MockUpstreamThread) -> None:
    raw = raw_post(
        mock.url + "/chat/completions",
        {"model": "mock:reasoning=2,chunks=2", "messages": USER, "stream": True},
    )
    data, partial = sse_data(raw.body)
    assert data[-1] == "[DONE]" and not partial
    deltas = [json.loads(d)["choices"][0]["delta"] for d in data[:-1]]
    kinds = ["reasoning" if d.get("reasoning_content") else "content" for d in deltas[1:-1]]
    assert kinds == ["reasoning", "reasoning", "content", "content"]


def test_tool_call_non_streaming(client: OpenAI) -> None:
    completion = client.chat.completions.create(
        model="mock:tool_call",
        messages=USER,
        tools=[WEATHER_TOOL],
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "hello world", "days": 1}


def test_tool_call_without_tools_answers_text(client: OpenAI) -> None:
    completion = client.chat.completions.create(model="mock:tool_call", messages=USER)
    assert completion.choices[0].finish_reason == "stop"
    assert completion.choices[0].message.tool_calls is None


def test_tool_call_streaming_assembles_to_valid_json(client: OpenAI) -> None:
    stream = client.chat.completions.create(
        model="mock:tool_call,chunks=6",
        messages=USER,
        tools=[WEATHER_TOOL],
        stream=True,
    )
    name, arguments, pieces, finish = "", "", 0, None
    for chunk in stream:
        if not chunk.choices:
            continue
        finish = chunk.choices[0].finish_reason or finish
        for call in chunk.choices[0].delta.tool_calls or []:
            assert call.index == 0
            if call.function and call.function.name:
                name = call.function.name
            if call.function and call.function.arguments:
                arguments += call.function.arguments
                pieces += 1
    assert finish == "tool_calls"
    assert name == "get_weather"
    assert pieces == 6
    assert json.loads(arguments) == {"city": "hello world", "days": 1}


def test_named_tool_with_scripted_arguments(client: OpenAI, mock: MockUpstreamThread) -> None:
    other: ChatCompletionToolParam = {
        "type": "function",
        "function": {"name": "exec_command", "parameters": {"type": "object"}},
    }
    arguments = {"cmd": "echo a,b > out.txt", "workdir": "/tmp"}
    mock.script([f"tool=exec_command,tool_args={quote(json.dumps(arguments))}", "tool=absent"])
    stream = client.chat.completions.create(
        model="mock", messages=USER, tools=[WEATHER_TOOL, other], stream=True
    )
    calls = [
        c for chunk in stream if chunk.choices for c in chunk.choices[0].delta.tool_calls or []
    ]
    assert calls[0].function is not None and calls[0].function.name == "exec_command"
    assert json.loads("".join(c.function.arguments or "" for c in calls if c.function)) == arguments
    # A tool that is not offered is not called: the answer is text.
    reply = client.chat.completions.create(model="mock", messages=USER, tools=[WEATHER_TOOL])
    assert reply.choices[0].finish_reason == "stop"


def test_tool_args_must_be_a_json_object() -> None:
    assert parse_script("tool=f,tool_args=%7B%7D").tool_call
    for bad in ("tool_args=%5B1%5D", "tool_args=nope", "tool=a%20b", "tool="):
        with pytest.raises(ScriptError):
            parse_script(bad)


def test_models_and_embeddings(client: OpenAI) -> None:
    assert [m.id for m in client.models.list()] == ["mock"]
    # the openai client asks for base64 and decodes it; a float request must agree
    first = client.embeddings.create(model="mock", input=["a b", "c"])
    floats = client.embeddings.create(model="mock", input="a b", encoding_format="float")
    assert len(first.data) == 2 and len(first.data[0].embedding) == 16
    assert first.data[0].embedding == pytest.approx(floats.data[0].embedding, abs=1e-6)
    assert first.data[0].embedding != first.data[1].embedding
    assert sum(v * v for v in first.data[0].embedding) == pytest.approx(1.0, abs=1e-5)
    small = client.embeddings.create(model="mock", input="a", dimensions=4)
    assert len(small.data[0].embedding) == 4


# --- faults --------------------------------------------------------------------------------


def test_status_with_retry_after(client: OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="mock:status=503,retry_after=2", messages=USER)
    assert caught.value.status_code == 503
    assert caught.value.response.headers["retry-after"] == "2"


def test_error_body_is_openai_shaped(client: OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="mock:status=429,error_body", messages=USER)
    assert caught.value.body == {
        "message": "mock upstream error, status 429",
        "type": "rate_limit_error",
        "param": None,
        "code": "rate_limit_exceeded",
    }
    assert "retry-after" not in caught.value.response.headers


def test_header_script_wins_over_model_suffix(client: OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(
            model="mock:status=500",
            messages=USER,
            extra_headers={"x-mock-script": "status=418"},
        )
    assert caught.value.status_code == 418


def test_unknown_token_is_a_400_naming_it(client: OpenAI, mock: MockUpstreamThread) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="mock:status=500,frobnicate", messages=USER)
    assert "'frobnicate'" in caught.value.message
    with pytest.raises(ScriptError, match="chunks=0"):
        mock.script(["ok", "chunks=0"])
    assert client.chat.completions.create(model="mock", messages=USER).choices


def test_script_queue_is_consumed_in_order(client: OpenAI, mock: MockUpstreamThread) -> None:
    mock.script(["status=500", "status=429"])
    raw = raw_post(mock.url.removesuffix("/v1") + "/_mock/script", {"scripts": ["ok"]})
    assert json.loads(raw.body) == {"queued": 3}
    statuses = []
    for _ in range(4):
        try:
            client.chat.completions.create(model="mock:status=404", messages=USER)
            statuses.append(200)
        except openai.APIStatusError as exc:
            statuses.append(exc.status_code)
    assert statuses == [500, 429, 200, 404]  # then back to the model's own script
    assert [r["script"] for r in mock.requests()] == [
        "status=500",
        "status=429",
        "ok",
        "status=404",
    ]


def test_latency_and_first_byte(mock: MockUpstreamThread) -> None:
    url = mock.url + "/chat/completions"
    started = time.monotonic()
    raw = raw_post(url, {"model": "mock:latency=0.2", "messages": USER})
    assert raw.status == 200 and time.monotonic() - started >= 0.2
    raw = raw_post(url, {"model": "mock:first_byte=0.2", "messages": USER, "stream": True})
    assert raw.seconds_to_headers >= 0.2
    # latency in a stream comes after the headers
    raw = raw_post(url, {"model": "mock:latency=0.3", "messages": USER, "stream": True})
    assert raw.seconds_to_headers < 0.3


def test_drip_spaces_stream_chunks(mock: MockUpstreamThread) -> None:
    started = time.monotonic()
    raw = raw_post(
        mock.url + "/chat/completions",
        {"model": "mock:drip=0.04,chunks=3", "messages": USER, "stream": True},
    )
    # role, 3 content, finish, [DONE]: 5 gaps
    assert time.monotonic() - started >= 5 * 0.04
    assert sse_data(raw.body)[0][-1] == "[DONE]"


def test_reset_before_is_a_connection_error(client: OpenAI, mock: MockUpstreamThread) -> None:
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="mock:reset=before", messages=USER)
    raw = raw_post(mock.url + "/chat/completions", {"model": "mock:reset=before", "messages": USER})
    assert isinstance(raw.error, aiohttp.ClientConnectionError)
    mock.wait_idle()
    assert mock.stats()["aborted"] == 2


def test_reset_during_stream_after_some_events(mock: MockUpstreamThread) -> None:
    raw = raw_post(
        mock.url + "/chat/completions",
        {"model": "mock:reset=during,chunks=6", "messages": USER, "stream": True},
    )
    assert raw.status == 200
    assert isinstance(raw.error, aiohttp.ClientError)
    assert b"[DONE]" not in raw.body


def test_reset_during_body(client: OpenAI) -> None:
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="mock:reset=during", messages=USER)


def test_truncated_stream_has_no_done_and_a_cut_event(mock: MockUpstreamThread) -> None:
    raw = raw_post(
        mock.url + "/chat/completions",
        {"model": "mock:truncate", "messages": USER, "stream": True},
    )
    assert raw.error is None and raw.status == 200  # HTTP framing intact, SSE cut
    assert raw.headers.get("Connection") == "close"
    data, partial = sse_data(raw.body)
    assert data and "[DONE]" not in data
    assert partial
    assert mock.requests()[-1]["outcome"] == "aborted"


def test_no_done_ends_cleanly_after_usage(mock: MockUpstreamThread) -> None:
    raw = raw_post(
        mock.url + "/chat/completions",
        {
            "model": "mock:no_done",
            "messages": USER,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    data, partial = sse_data(raw.body)
    assert not partial
    assert "[DONE]" not in data
    assert json.loads(data[-1])["usage"]["total_tokens"] > 0


def test_malformed_body_and_stream_event(mock: MockUpstreamThread) -> None:
    url = mock.url + "/chat/completions"
    raw = raw_post(url, {"model": "mock:malformed", "messages": USER})
    assert raw.status == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(raw.body)
    raw = raw_post(url, {"model": "mock:malformed", "messages": USER, "stream": True})
    data, _ = sse_data(raw.body)
    assert data[-1] == "[DONE]"
    bad = []
    for item in data[:-1]:
        try:
            json.loads(item)
        except json.JSONDecodeError:
            bad.append(item)
    assert len(bad) == 1


def test_hang_until_client_times_out_records_cancelled(
    client: OpenAI, mock: MockUpstreamThread
) -> None:
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="mock:hang", messages=USER, timeout=0.2)
    mock.wait_idle()
    [record] = mock.requests()
    assert record["cancelled"] is True
    assert mock.stats() == {
        "requests": 1,
        "completed": 0,
        "cancelled": 1,
        "aborted": 0,
        "in_flight": 0,
    }


def test_request_log_keeps_headers_and_body(client: OpenAI, mock: MockUpstreamThread) -> None:
    client.chat.completions.create(model="mock", messages=USER, user="u1")
    [record] = mock.requests()
    assert record["path"] == "/v1/chat/completions"
    assert record["headers"]["authorization"] == "Bearer sk-test"
    assert record["json"]["user"] == "u1"
    assert record["outcome"] == "completed" and record["cancelled"] is False
    raw = raw_post(mock.url.removesuffix("/v1") + "/_mock/script", {"scripts": "no"})
    assert raw.status == 400

    async def delete() -> int:
        async with (
            aiohttp.ClientSession() as session,
            session.delete(mock.url.removesuffix("/v1") + "/_mock/requests") as response,
        ):
            return response.status

    assert asyncio.run(delete()) == 204
    assert mock.requests() == []


# --- mixes ---------------------------------------------------------------------------------


def test_mix_probabilities_and_base_tokens() -> None:
    script = parse_script("drip=0.01,mix=status=500:0.2|status=429,retry_after=1:0.1|hang:0.05")
    rng = random.Random(3)
    picks = [script.pick(rng) for _ in range(4000)]
    statuses = [p.status for p in picks]
    assert 0.17 < statuses.count(500) / 4000 < 0.23
    assert 0.08 < statuses.count(429) / 4000 < 0.12
    assert 0.035 < sum(p.hang for p in picks) / 4000 < 0.065
    assert all(p.drip == 0.01 and not p.mix for p in picks)
    assert {p.retry_after for p in picks if p.status == 429} == {"1"}
    with pytest.raises(ScriptError):
        parse_script("mix=status=500:0.7|status=503:0.7")
    with pytest.raises(ScriptError):
        parse_script("mix=status=500")


def test_mix_is_repeatable_with_a_seed() -> None:
    def statuses(seed: int) -> list[int]:
        with run_in_thread(seed=seed, default_script="mix=status=500:0.5") as upstream:
            url = upstream.url + "/chat/completions"
            return [raw_post(url, {"model": "mock", "messages": USER}).status for _ in range(12)]

    first = statuses(5)
    assert first == statuses(5)
    assert set(first) == {200, 500}


# --- lifecycle -----------------------------------------------------------------------------


def test_async_form_stops_with_a_hanging_request() -> None:
    async def go() -> None:
        async with MockUpstream() as upstream, aiohttp.ClientSession() as session:
            request = asyncio.ensure_future(
                session.post(upstream.url + "/chat/completions", json={"model": "mock:hang"})
            )
            for _ in range(500):  # wait for the request to reach the handler
                if upstream.stats()["in_flight"]:
                    break
                await asyncio.sleep(0.01)
            started = time.monotonic()
            await upstream.stop()
            assert time.monotonic() - started < 1.0
            assert upstream.stats()["cancelled"] == 1
            with pytest.raises(aiohttp.ClientError):
                await request

    asyncio.run(go())


def test_command_line() -> None:
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    process = subprocess.Popen(
        [sys.executable, "-m", "crossroads.mockupstream", "--port", "0", "--seed", "1"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        url = line.rsplit(" ", 1)[-1].strip()
        with OpenAI(base_url=url, api_key="x", max_retries=0) as cli_client:
            assert [m.id for m in cli_client.models.list()] == ["mock"]
    finally:
        process.terminate()
        assert process.wait(timeout=5) == 0
        if process.stdout is not None:
            process.stdout.close()
