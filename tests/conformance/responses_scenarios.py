"""The conformance scenarios again, through the Responses ingress (`/v1/responses`) with the
official OpenAI client's `responses` API: a Codex or Agents-SDK user of any provider relies on
the same answers, tool loops, reasoning, structured output, usage and failures."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest

from conformance.harness import (
    CLIENT_TIMEOUT,
    SECRET,
    Context,
    sent_call_ids,
    sent_reasoning,
    sent_result_ids,
)
from conformance.providers import Target

JSON = dict[str, Any]

QUESTION = "What is the weather in Paris?"
ANSWER = f"mock answer: {QUESTION}"
REASONING = "thinking thinking thinking thinking"
WEATHER: JSON = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
CLOCK: JSON = {
    "type": "function",
    "name": "get_time",
    "description": "Current time in a time zone",
    "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}},
}
WEATHER_ARGS = {"city": QUESTION}
CLOCK_ARGS = {"zone": QUESTION}
SEALED = ["reasoning.encrypted_content"]


def create(ctx: Context, **kwargs: Any) -> Any:
    kwargs.setdefault("input", QUESTION)
    return ctx.openai.responses.create(model=ctx.model, store=False, **kwargs)


def stream(ctx: Context, **kwargs: Any) -> tuple[Any, list[str]]:
    """The final Response of a stream, and the event types in the order they came."""
    kwargs.setdefault("input", QUESTION)
    with ctx.openai.responses.stream(model=ctx.model, store=False, **kwargs) as events:
        types = [event.type for event in events]
        return events.get_final_response(), types


def calls(response: Any) -> list[Any]:
    return [item for item in response.output if item.type == "function_call"]


def reasoning_text(response: Any) -> str:
    items = [item for item in response.output if item.type == "reasoning"]
    return "".join(part.text for item in items for part in item.content or ())


def turn_two(first: Any, result: str = "18 C and sunny") -> list[JSON]:
    """The next request's input as Codex builds it: the question, the answer's output items
    sent back as they came, then one output per call."""
    echoed = [item.model_dump(exclude_none=True) for item in first.output]
    outputs = [
        {"type": "function_call_output", "call_id": call.call_id, "output": result}
        for call in calls(first)
    ]
    return [{"role": "user", "content": QUESTION}, *echoed, *outputs]


# --- scenarios -----------------------------------------------------------------------------


def responses_chat(ctx: Context, target: Target) -> None:
    ctx.script("ok", "chunks=6")
    whole = create(ctx)
    assert whole.status == "completed" and whole.output_text == ANSWER
    assert whole.model == ctx.model
    streamed, types = stream(ctx)
    assert streamed.output_text == ANSWER
    assert types.count("response.output_text.delta") > 1  # it arrived in pieces
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[-1] == "response.completed"


def responses_tool_round_trip(ctx: Context, target: Target) -> None:
    ctx.script("tool_call", "ok")
    first = create(ctx, tools=[WEATHER])
    [call] = calls(first)
    assert call.name == "get_weather" and json.loads(call.arguments) == WEATHER_ARGS
    final = create(ctx, input=turn_two(first), tools=[WEATHER])
    assert final.output_text == ANSWER
    sent = ctx.received()[-1]
    assert sent_call_ids(sent) == sent_result_ids(sent) == [call.call_id]


def responses_parallel_tools(ctx: Context, target: Target) -> None:
    ctx.script("tool_call,parallel_tools", "tool_call,parallel_tools")
    for response in (create(ctx, tools=[WEATHER, CLOCK]), stream(ctx, tools=[WEATHER, CLOCK])[0]):
        got = [(c.name, json.loads(c.arguments)) for c in calls(response)]
        assert got == [("get_weather", WEATHER_ARGS), ("get_time", CLOCK_ARGS)]
        assert len({c.call_id for c in calls(response)}) == 2


def responses_reasoning(ctx: Context, target: Target) -> None:
    ctx.script("reasoning=4", "reasoning=4,chunks=7")
    ask = {"effort": "low", "summary": "auto"}
    whole = create(ctx, reasoning=ask)
    streamed, types = stream(ctx, reasoning=ask)
    for response in (whole, streamed):
        assert [item.type for item in response.output] == ["reasoning", "message"]
        assert reasoning_text(response).strip() == REASONING
        assert response.output[0].summary[0].text.strip() == REASONING
        assert response.output_text == ANSWER
    assert "response.reasoning_text.delta" in types
    assert "response.reasoning_summary_text.delta" in types


def responses_reasoning_tool_loop(ctx: Context, target: Target) -> None:
    """Codex's loop: reasoning comes back only inside `encrypted_content` (store off), and a
    host that needs its reasoning back gets it back."""
    ctx.script("tool_call,reasoning=4", "reasoning=4")
    first, _ = stream(ctx, tools=[WEATHER], reasoning={"effort": "low"}, include=SEALED)
    [item] = [i for i in first.output if i.type == "reasoning"]
    assert item.encrypted_content
    echoed = turn_two(first)
    for entry in echoed:  # as Codex sends it back: the sealed value, no readable content
        if entry.get("type") == "reasoning":
            entry["content"] = None
            entry["summary"] = []
    final = create(ctx, input=echoed, tools=[WEATHER], reasoning={"effort": "low"})
    assert final.output_text == ANSWER
    if target.requires_replay:
        assert sent_reasoning(ctx.received()[-1]).strip() == REASONING


def responses_json_mode(ctx: Context, target: Target) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city", "days"],
    }
    fmt = {"type": "json_schema", "name": "forecast", "schema": schema, "strict": True}
    ctx.script("ok")
    reply = create(ctx, text={"format": fmt})
    assert json.loads(reply.output_text) == {"city": QUESTION, "days": 1}
    assert ctx.received()[-1]["response_format"]["type"] == "json_schema"


def responses_usage(ctx: Context, target: Target) -> None:
    """The upstream's usage, whole and streamed (a host that streams no usage gets the
    gateway's estimate instead, checked in the ledger tests)."""
    ctx.script("usage=40/8,cached=30", "usage=40/8,cached=30")
    reported = [create(ctx).usage]
    streamed = stream(ctx)[0].usage
    if "stream_usage" not in dict(target.absent):
        reported.append(streamed)
    for usage in reported:
        assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (40, 8, 48)
        if "cached_usage" not in dict(target.absent):
            assert usage.input_tokens_details.cached_tokens == 30


def responses_upstream_failures(ctx: Context, target: Target) -> None:
    """Rate limited and broken upstreams answer in OpenAI's error shape, whole and streamed,
    naming no secret."""
    ctx.script("status=429,retry_after=7,error_body", "status=503,error_body,echo_key")
    with pytest.raises(openai.RateLimitError) as limited:
        create(ctx)
    assert limited.value.response.headers["retry-after"] == "7"
    with pytest.raises(openai.APIStatusError) as broken:
        stream(ctx)
    assert broken.value.status_code == 502
    assert SECRET not in broken.value.response.text


def responses_truncated_stream(ctx: Context, target: Target) -> None:
    """A stream that breaks off after it began ends with `response.failed`, never with
    `response.completed`."""
    ctx.script("truncate,chunks=8")
    body = {"model": ctx.model, "input": QUESTION, "stream": True, "store": False}
    url = f"{ctx.gateway_url}/v1/responses"
    with httpx.stream("POST", url, json=body, timeout=CLIENT_TIMEOUT) as response:
        assert response.status_code == 200
        data = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")]
    kinds = [event["type"] for event in data]
    assert "response.output_text.delta" in kinds  # part of the answer came first
    assert kinds[-1] == "response.failed" and "response.completed" not in kinds
    assert data[-1]["response"]["error"]["message"]
    assert [event["sequence_number"] for event in data] == list(range(len(data)))
