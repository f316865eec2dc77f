"""The mock-upstream quirks the conformance targets rely on, checked against the mock directly
(no gateway): each one really changes what the mock answers or refuses, so a scenario that
passes through the gateway proves the gateway coped with it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest
from openai import OpenAI

from crossroads.mockupstream import MockUpstreamThread, ScriptError, parse_script, run_in_thread

USER: list[Any] = [{"role": "user", "content": "hello world"}]
KEY = "sk-quirk-test-key"


def tool(name: str, prop: str) -> Any:
    schema = {"type": "object", "properties": {prop: {"type": "string"}}}
    return {"type": "function", "function": {"name": name, "parameters": schema}}


TOOLS = [tool("get_weather", "city"), tool("get_time", "zone")]


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
    with OpenAI(base_url=mock.url, api_key=KEY, max_retries=0) as openai_client:
        yield openai_client


def test_quirk_tokens_parse_and_reject_nonsense() -> None:
    script = parse_script("refuse=stream_options+logprobs,reasoning_field=reasoning")
    assert script.refuse == ("stream_options", "logprobs")
    assert script.reasoning_field == "reasoning"
    for bad in ("refuse=a+b-c", "refuse=", "reasoning_field=thoughts"):
        with pytest.raises(ScriptError):
            parse_script(bad)


def test_refuse_answers_400_and_logs_the_request(mock: MockUpstreamThread, client: OpenAI) -> None:
    model = "mock:refuse=stream_options+frequency_penalty"
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=model, messages=USER, frequency_penalty=0.5)
    assert "frequency_penalty" in caught.value.message
    chunks = client.chat.completions.create(model=model, messages=USER, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert mock.requests()[0]["json"]["frequency_penalty"] == 0.5  # the log shows what came


def test_reasoning_field_names_where_reasoning_goes(client: OpenAI) -> None:
    model = "mock:reasoning=2,reasoning_field=reasoning"
    message = client.chat.completions.create(model=model, messages=USER).choices[0].message
    assert (message.model_extra or {}).get("reasoning") == "thinking thinking"
    assert "reasoning_content" not in (message.model_extra or {})
    chunks = list(client.chat.completions.create(model=model, messages=USER, stream=True))
    fields = {key for c in chunks if c.choices for key in c.choices[0].delta.model_extra or {}}
    assert fields == {"reasoning"}


def test_parallel_tools_call_every_tool_whole_and_streamed(client: OpenAI) -> None:
    model = "mock:tool_call,parallel_tools,reasoning=2"
    calls = client.chat.completions.create(model=model, messages=USER, tools=TOOLS)
    names = [c.function.name for c in calls.choices[0].message.tool_calls or []]
    assert names == ["get_weather", "get_time"]
    kinds: list[str] = []
    arguments: dict[int, str] = {}
    stream = client.chat.completions.create(model=model, messages=USER, tools=TOOLS, stream=True)
    for delta in (chunk.choices[0].delta for chunk in stream if chunk.choices):
        if (delta.model_extra or {}).get("reasoning_content"):
            kinds.append("reasoning")
        for call in delta.tool_calls or []:
            kinds.append("call")
            piece = call.function.arguments if call.function else None
            arguments[call.index] = arguments.get(call.index, "") + (piece or "")
    assert kinds.index("call") > kinds.index("reasoning")  # reasoning is streamed first
    assert [json.loads(a) for a in arguments.values()] == [
        {"city": "hello world"},
        {"zone": "hello world"},
    ]
    single = client.chat.completions.create(
        model=model, messages=USER, tools=TOOLS, parallel_tool_calls=False
    )
    assert len(single.choices[0].message.tool_calls or []) == 1


def test_response_format_makes_json_content(client: OpenAI) -> None:
    reply = client.chat.completions.create(
        model="mock", messages=USER, response_format={"type": "json_object"}
    )
    assert json.loads(reply.choices[0].message.content or "") == {"answer": "hello world"}


def turn(**assistant: Any) -> list[Any]:
    call = {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
    message = {"role": "assistant", "content": None, "tool_calls": [call], **assistant}
    return [*USER, message, {"role": "tool", "tool_call_id": "c1", "content": "sunny"}]


@pytest.mark.parametrize(
    ("model", "kept", "dropped"),
    [
        ("mock:require_reasoning_replay", {"reasoning_content": "hmm"}, {}),
        (
            "mock:require_reasoning_replay,think_tags",
            {"content": "<think>\nhmm\n</think>\n\n"},
            {"reasoning_content": "hmm"},
        ),
    ],
    ids=["reasoning_content", "think_tags"],
)
def test_require_reasoning_replay(
    client: OpenAI, model: str, kept: dict[str, Any], dropped: dict[str, Any]
) -> None:
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=model, messages=turn(**dropped))
    client.chat.completions.create(model=model, messages=turn(**kept))


def test_anthropic_requires_the_thinking_block_back(mock: MockUpstreamThread) -> None:
    tool_use = {"type": "tool_use", "id": "t1", "name": "get_weather", "input": {}}
    thinking = {"type": "thinking", "thinking": "hmm", "signature": "sig"}
    result = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1"}]}
    base_url = mock.url.removesuffix("/v1")
    with anthropic.Anthropic(base_url=base_url, api_key=KEY, max_retries=0) as client:

        def send(blocks: list[Any]) -> Any:
            messages: Any = [*USER, {"role": "assistant", "content": blocks}, result]
            return client.messages.create(
                model="mock:require_reasoning_replay",
                max_tokens=2048,
                thinking={"type": "enabled", "budget_tokens": 1024},
                messages=messages,
            )

        with pytest.raises(anthropic.BadRequestError) as caught:
            send([tool_use])
        assert "must start with a thinking block" in caught.value.message
        assert send([thinking, tool_use]).content[-1].text == "mock answer: hello world"


def test_echo_key_quotes_the_presented_credential(client: OpenAI) -> None:
    with pytest.raises(openai.AuthenticationError) as caught:
        client.chat.completions.create(model="mock:status=401,error_body,echo_key", messages=USER)
    assert KEY in caught.value.message
