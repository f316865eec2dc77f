"""End-to-end agent tool loops: the model calls a tool, the client returns the result, the model
answers. Driven by the official `anthropic` client through /v1/messages and by the official
`openai` client through /v1/chat/completions, each against an OpenAI-format upstream, an
Anthropic-format upstream and a DeepSeek-style reasoning upstream, streamed and not."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest

from conftest import GatewayFactory
from crossroads.mockupstream import MockUpstreamThread, run_in_thread

WEATHER_OPENAI = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather for a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]
WEATHER_ANTHROPIC = [
    {
        "name": "get_weather",
        "description": "Current weather for a city",
        "input_schema": WEATHER_OPENAI[0]["function"]["parameters"],
    }
]
QUESTION = "What is the weather in Paris?"
UPSTREAMS = ["openai", "anthropic", "deepseek"]


@pytest.fixture(scope="module")
def upstream() -> Iterator[MockUpstreamThread]:
    with run_in_thread() as mock:
        yield mock


@pytest.fixture
def gw(gateway: GatewayFactory, upstream: MockUpstreamThread) -> Any:
    upstream.clear()
    base = upstream.url  # ends in /v1; the Anthropic adapter wants the host root
    return gateway(
        {
            "embedded": {"enabled": False},
            "providers": {
                "oai": {"type": "openai", "base_url": base},
                "anth": {"type": "anthropic", "base_url": base.removesuffix("/v1")},
                "ds": {"type": "openai", "base_url": base},
            },
            "models": [
                {"name": "openai", "provider": "oai", "upstream_model": "mock"},
                {"name": "anthropic", "provider": "anth", "upstream_model": "mock"},
                {"name": "deepseek", "provider": "ds", "upstream_model": "mock"},
            ],
        }
    )


def script_loop(mock: MockUpstreamThread, model: str) -> None:
    """Turn 1 answers with a tool call, turn 2 with text; DeepSeek-style answers reason first."""
    extra = ",reasoning=6" if model == "deepseek" else ""
    mock.script([f"tool_call{extra}", f"ok{extra}"])


def sent_tool_result(mock: MockUpstreamThread, model: str) -> str:
    """The tool-call id the upstream received with the tool result in turn 2."""
    body = mock.requests()[-1]["json"]
    if model == "anthropic":
        results = [
            b
            for m in body["messages"]
            if isinstance(m["content"], list)
            for b in m["content"]
            if b.get("type") == "tool_result"
        ]
        return str(results[0]["tool_use_id"])
    tools = [m for m in body["messages"] if m["role"] == "tool"]
    return str(tools[0]["tool_call_id"])


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("model", UPSTREAMS)
def test_openai_client_tool_loop(
    gw: Any, upstream: MockUpstreamThread, model: str, stream: bool
) -> None:
    script_loop(upstream, model)
    client = openai.OpenAI(base_url=gw.v1, api_key="unused", max_retries=0)
    gw.clients.append(client)
    messages: list[Any] = [{"role": "user", "content": QUESTION}]
    if stream:
        calls: dict[int, dict[str, str]] = {}
        reasoning = ""
        for chunk in client.chat.completions.create(
            model=model,
            messages=messages,
            tools=WEATHER_OPENAI,
            stream=True,  # type: ignore[arg-type]
        ):
            if not chunk.choices:
                continue
            delta = chunk.choices[0].delta
            reasoning += getattr(delta, "reasoning_content", None) or ""
            for call in delta.tool_calls or []:
                slot = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
                slot["id"] = call.id or slot["id"]
                if call.function:
                    slot["name"] += call.function.name or ""
                    slot["arguments"] += call.function.arguments or ""
        call_id, name, arguments = calls[0]["id"], calls[0]["name"], calls[0]["arguments"]
    else:
        reply = client.chat.completions.create(
            model=model,
            messages=messages,
            tools=WEATHER_OPENAI,  # type: ignore[arg-type]
        )
        assert reply.choices[0].finish_reason == "tool_calls"
        tool_call = reply.choices[0].message.tool_calls[0]  # type: ignore[index]
        call_id = tool_call.id
        name, arguments = tool_call.function.name, tool_call.function.arguments  # type: ignore[union-attr]
        reasoning = getattr(reply.choices[0].message, "reasoning_content", None) or ""
    assert name == "get_weather" and "city" in json.loads(arguments)
    assert call_id
    if model == "deepseek":
        assert reasoning  # reasoning normalised into reasoning_content
    messages += [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": name, "arguments": arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call_id, "content": "18 C and sunny"},
    ]
    final = client.chat.completions.create(
        model=model,
        messages=messages,
        tools=WEATHER_OPENAI,  # type: ignore[arg-type]
    )
    assert final.choices[0].message.content
    assert final.choices[0].finish_reason == "stop"
    assert sent_tool_result(upstream, model) == call_id  # the id survived both translations


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("model", UPSTREAMS)
def test_anthropic_client_tool_loop(
    gw: Any, upstream: MockUpstreamThread, model: str, stream: bool
) -> None:
    script_loop(upstream, model)
    client = anthropic.Anthropic(base_url=gw.url, api_key="unused", max_retries=0)
    gw.clients.append(client)
    messages: list[Any] = [{"role": "user", "content": QUESTION}]
    if stream:
        with client.messages.stream(
            model=model,
            max_tokens=512,
            messages=messages,
            tools=WEATHER_ANTHROPIC,  # type: ignore[arg-type]
        ) as events:
            first = events.get_final_message()
    else:
        first = client.messages.create(
            model=model,
            max_tokens=512,
            messages=messages,
            tools=WEATHER_ANTHROPIC,  # type: ignore[arg-type]
        )
    assert first.stop_reason == "tool_use"
    tool_use = next(b for b in first.content if b.type == "tool_use")
    assert tool_use.name == "get_weather" and "city" in tool_use.input  # type: ignore[operator]
    if model == "deepseek":
        assert any(b.type == "thinking" for b in first.content)
    messages += [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": tool_use.id, "content": "18 C and sunny"}
            ],
        },
    ]
    final = client.messages.create(
        model=model,
        max_tokens=512,
        messages=messages,
        tools=WEATHER_ANTHROPIC,  # type: ignore[arg-type]
    )
    assert final.stop_reason == "end_turn"
    assert any(b.type == "text" and b.text for b in final.content)
    assert sent_tool_result(upstream, model) == tool_use.id
