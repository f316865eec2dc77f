"""Provider profiles and reasoning normalisation end to end: the real gateway, the scripted mock
upstream (as DeepSeek, MiniMax and GLM would answer), and the official `openai` client.

One way in (the neutral `reasoning` field mapped to each host's knob), one way out
(`reasoning_content`, whether the host sent it so or inline in `<think>` tags, whole or
streamed), DeepSeek's tool-loop rule (reasoning the agent dropped is sent back), and the GLM
profile's refused parameters (dropped, or refused before any upstream call)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from conftest import GatewayFactory, client
from crossroads.ledger.record import Status
from crossroads.mockupstream import MockUpstreamThread

USER = [{"role": "user", "content": "hello there"}]
REASONING = "thinking thinking thinking"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


def profiled(url: str, **options: Any) -> dict[str, Any]:
    """One served model `m` at one provider with the given adapter options."""
    return {
        "embedded": {"enabled": False},
        "providers": {"up": {"type": "openai", "base_url": url, "options": options}},
        "models": [{"name": "m", "provider": "up", "upstream_model": "mock"}],
    }


def extra(obj: Any, name: str) -> Any:
    """A field the OpenAI types do not declare (`reasoning_content`), or None."""
    return (obj.model_extra or {}).get(name)


def streamed(gw_client: OpenAI, **kwargs: Any) -> tuple[str, str, list[Any]]:
    chunks = list(gw_client.chat.completions.create(model="m", stream=True, **kwargs))
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    content = "".join(d.content or "" for d in deltas)
    reasoning = "".join(extra(d, "reasoning_content") or "" for d in deltas)
    return content, reasoning, deltas


def test_deepseek_reasoning_comes_back_as_sent_and_the_knob_is_mapped(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    gw = gateway(profiled(mock.url, profile="deepseek"))
    mock.script(["reasoning=3", "reasoning=3"])
    reply = client(gw).chat.completions.create(
        model="m", messages=USER, extra_body={"reasoning": {"effort": "high"}}
    )
    assert extra(reply.choices[0].message, "reasoning_content") == REASONING
    sent = mock.requests()[-1]["json"]
    assert sent["thinking"] == {"type": "enabled"} and sent["reasoning_effort"] == "high"
    assert "reasoning" not in sent
    content, reasoning, _ = streamed(client(gw), messages=USER)
    assert (content, reasoning) == ("mock answer: hello there", REASONING)


def test_think_tags_are_split_out_of_whole_answers(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    raw = OpenAI(base_url=mock.url, api_key="k", max_retries=0)
    inline = raw.chat.completions.create(model="mock:reasoning=3,think_tags", messages=USER)
    raw.close()
    assert (inline.choices[0].message.content or "").startswith("<think>")  # as the host sends it
    gw = gateway(profiled(mock.url, profile="minimax"))
    mock.script(["reasoning=3,think_tags"])
    message = client(gw).chat.completions.create(model="m", messages=USER).choices[0].message
    assert message.content == "mock answer: hello there"
    assert extra(message, "reasoning_content").strip() == REASONING


def test_think_tags_are_split_out_of_streams_across_chunk_boundaries(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    gw = gateway(profiled(mock.url, profile="minimax"))
    mock.script(["reasoning=3,think_tags,chunks=7"])
    content, reasoning, deltas = streamed(client(gw), messages=USER)
    assert content == "mock answer: hello there"
    assert reasoning.strip() == REASONING
    assert not any("<" in (d.content or "") or ">" in (d.content or "") for d in deltas)


def test_exclude_drops_reasoning_from_whole_and_streamed_answers(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    gw = gateway(profiled(mock.url, profile="deepseek"))
    mock.script(["reasoning=3", "reasoning=3"])
    exclude = {"reasoning": {"exclude": True}}
    reply = client(gw).chat.completions.create(model="m", messages=USER, extra_body=exclude)
    assert extra(reply.choices[0].message, "reasoning_content") is None
    assert reply.choices[0].message.content == "mock answer: hello there"
    assert reply.usage is not None and reply.usage.completion_tokens_details is not None
    assert reply.usage.completion_tokens_details.reasoning_tokens == 3  # still counted
    content, reasoning, _ = streamed(client(gw), messages=USER, extra_body=exclude)
    assert (content, reasoning) == ("mock answer: hello there", "")


def tool_turn(call_id: str, arguments: str = "{}") -> list[dict[str, Any]]:
    """The agent's next request, with the assistant turn written as frameworks that drop
    `reasoning_content` write it."""
    function = {"name": "get_weather", "arguments": arguments}
    assistant = {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": call_id, "type": "function", "function": function}],
    }
    result = {"role": "tool", "tool_call_id": call_id, "content": "sunny"}
    return [*USER, assistant, result]


def test_deepseek_tool_loop_gets_dropped_reasoning_back(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    gw = gateway(profiled(mock.url, profile="deepseek"))
    mock.script(["reasoning=3,tool_call", "ok"])
    first = client(gw).chat.completions.create(model="m", messages=USER, tools=TOOLS)
    call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    turn = tool_turn(call.id, call.function.arguments)
    client(gw).chat.completions.create(model="m", messages=turn, tools=TOOLS)
    resent = mock.requests()[-1]["json"]["messages"][1]
    assert resent["reasoning_content"] == REASONING
    assert resent["tool_calls"][0]["id"] == call.id


def test_deepseek_tool_loop_learns_reasoning_from_streams_too(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    gw = gateway(profiled(mock.url, profile="deepseek"))
    mock.script(["reasoning=3,tool_call", "ok"])
    _, reasoning, deltas = streamed(client(gw), messages=USER, tools=TOOLS)
    assert reasoning == REASONING
    call_id = next(d.tool_calls[0].id for d in deltas if d.tool_calls and d.tool_calls[0].id)
    client(gw).chat.completions.create(model="m", messages=tool_turn(call_id), tools=TOOLS)
    assert mock.requests()[-1]["json"]["messages"][1]["reasoning_content"] == REASONING


def test_minimax_tool_loop_gets_its_think_block_back_in_content(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    gw = gateway(profiled(mock.url, profile="minimax"))
    mock.script(["reasoning=3,tool_call,think_tags", "ok"])
    first = client(gw).chat.completions.create(model="m", messages=USER, tools=TOOLS)
    message = first.choices[0].message
    assert message.content is None and extra(message, "reasoning_content").strip() == REASONING
    call_id = message.tool_calls[0].id  # type: ignore[index]
    client(gw).chat.completions.create(model="m", messages=tool_turn(call_id), tools=TOOLS)
    resent = mock.requests()[-1]["json"]["messages"][1]
    assert resent["content"].startswith(f"<think>\n{REASONING}")
    assert "reasoning_content" not in resent


def test_glm_profile_drops_what_glm_refuses(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    gw = gateway(profiled(mock.url, profile="zai"))
    reply = client(gw).chat.completions.create(
        model="m",
        messages=USER,
        frequency_penalty=0.5,
        max_completion_tokens=20,
        tools=TOOLS,  # type: ignore[arg-type]
        tool_choice="required",
        extra_body={"reasoning": {"enabled": False}},
    )
    assert reply.choices[0].message is not None
    sent = mock.requests()[-1]["json"]
    assert "frequency_penalty" not in sent and "max_completion_tokens" not in sent
    assert sent["max_tokens"] == 20 and sent["tool_choice"] == "auto"
    assert sent["thinking"] == {"type": "disabled"} and "reasoning" not in sent
    content, _, _ = streamed(client(gw), messages=USER, stream_options={"include_usage": True})
    assert content == "mock answer: hello there"
    assert "stream_options" not in mock.requests()[-1]["json"]  # GLM refuses it


def test_dropped_parameters_are_reported_in_a_header(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    gw = gateway(profiled(mock.url, profile="zai"))
    raw = client(gw).chat.completions.with_raw_response.create(
        model="m", messages=USER, frequency_penalty=0.5, presence_penalty=0.1
    )
    assert raw.headers["x-crossroads-dropped-params"] == "frequency_penalty,presence_penalty"
    body = {"model": "m", "messages": USER, "stream": True, "presence_penalty": 1}
    with httpx.stream("POST", f"{gw.v1}/chat/completions", json=body) as response:
        assert response.headers["x-crossroads-dropped-params"] == "presence_penalty"


def test_reject_mode_refuses_before_any_upstream_call(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    gw = gateway(profiled(mock.url, profile="zai", on_unsupported="reject"))
    with pytest.raises(openai.BadRequestError) as err:
        client(gw).chat.completions.create(model="m", messages=USER, frequency_penalty=0.5)
    error = err.value.body
    assert error["param"] == "frequency_penalty"  # type: ignore[index]
    assert "'up'" in error["message"] and "Z.ai" in error["message"]  # type: ignore[index]
    body = {"model": "m", "messages": USER, "stream": True, "tools": TOOLS, "tool_choice": "none"}
    response = httpx.post(f"{gw.v1}/chat/completions", json=body)
    assert response.status_code == 400 and response.json()["error"]["param"] == "tool_choice"
    assert mock.requests() == []
    gw.stop()
    records = gw.ledger()
    assert [(r.status, r.http_status) for r in records] == [(Status.ERROR, 400)] * 2


def test_malformed_reasoning_field_is_a_400(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    gw = gateway(profiled(mock.url))
    body = {"model": "m", "messages": USER, "reasoning": {"effort": "max"}}
    response = httpx.post(f"{gw.v1}/chat/completions", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "reasoning"
    assert mock.requests() == []


def test_generic_profile_forwards_requests_and_answers_untouched(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    gw = gateway(profiled(mock.url))
    mock.script(["reasoning=2"])
    body = {"model": "m", "messages": USER, "frequency_penalty": 1.5, "reasoning_effort": "low"}
    response = httpx.post(f"{gw.v1}/chat/completions", json=body)
    sent = mock.requests()[-1]["json"]
    assert sent["frequency_penalty"] == 1.5 and sent["reasoning_effort"] == "low"
    message = json.loads(response.content)["choices"][0]["message"]
    assert message["reasoning_content"] == "thinking thinking"
