"""The scenario catalogue: what a user of any provider relies on, each a plain function of
(context, target) that drives the real gateway with the official clients and checks what came
back (and, where it matters, what the upstream received). `SCENARIOS` lists them with the
capabilities each needs; a target that declares one of those absent skips it, with its reason.

The mock answers "mock answer: " + the last user message, N words "thinking" of reasoning for
`reasoning=N`, and tool arguments that fill each string property with the user's text."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import openai
import pytest

from conformance import responses_scenarios as rs
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
USER: list[Any] = [{"role": "user", "content": QUESTION}]
REASONING = "thinking thinking thinking thinking"  # what `reasoning=4` thinks
ASK_REASONING = {"reasoning": {"effort": "low"}}  # the gateway's neutral reasoning request
THINKING = {"type": "enabled", "budget_tokens": 1024}  # the same, as an Anthropic client asks
WEATHER = {
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
CLOCK = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Current time in a time zone",
        "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}},
    },
}
WEATHER_ARGS = {"city": QUESTION}
CLOCK_ARGS = {"zone": QUESTION}


def anthropic_tool(tool: JSON) -> JSON:
    function = tool["function"]
    return {
        "name": function["name"],
        "description": function["description"],
        "input_schema": function["parameters"],
    }


# --- driving the clients -------------------------------------------------------------------


def extra(obj: Any, name: str) -> Any:
    """A field the OpenAI types do not declare (`reasoning_content`), or None."""
    return (obj.model_extra or {}).get(name)


def create(ctx: Context, **kwargs: Any) -> Any:
    """A whole chat completion through the gateway, with the official OpenAI client."""
    kwargs.setdefault("messages", USER)
    return ctx.openai.chat.completions.create(model=ctx.model, **kwargs)


@dataclass
class Streamed:
    """What an OpenAI-client stream delivered, put together as a client would."""

    content: str = ""
    reasoning: str = ""
    calls: dict[int, JSON] = field(default_factory=dict)
    finish_reason: str | None = None
    usage: Any = None
    order: list[str] = field(default_factory=list)  # "reasoning" / "content", per delta
    host_field: bool = False  # a delta still carried the host's own `reasoning` field


def stream(ctx: Context, **kwargs: Any) -> Streamed:
    kwargs.setdefault("messages", USER)
    out = Streamed()
    for chunk in ctx.openai.chat.completions.create(model=ctx.model, stream=True, **kwargs):
        out.usage = chunk.usage or out.usage
        for choice in chunk.choices:
            delta = choice.delta
            reasoning = extra(delta, "reasoning_content") or ""
            out.host_field = out.host_field or extra(delta, "reasoning") is not None
            out.reasoning += reasoning
            out.content += delta.content or ""
            out.order += ["reasoning"] * bool(reasoning) + ["content"] * bool(delta.content)
            for call in delta.tool_calls or []:
                slot = out.calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
                slot["id"] = call.id or slot["id"]
                if call.function is not None:
                    slot["name"] += call.function.name or ""
                    slot["arguments"] += call.function.arguments or ""
            out.finish_reason = choice.finish_reason or out.finish_reason
    return out


def tool_turn(calls: list[Any], result: str = "18 C and sunny") -> list[JSON]:
    """The assistant turn and tool results an agent sends next, written as most frameworks
    write them: `content` and `tool_calls` only, any reasoning dropped."""
    assistant = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.function.name, "arguments": c.function.arguments},
            }
            for c in calls
        ],
    }
    results = [{"role": "tool", "tool_call_id": c.id, "content": result} for c in calls]
    return [assistant, *results]


def anthropic_stream(ctx: Context, **kwargs: Any) -> Any:
    """The final Message of an Anthropic-client stream through the gateway."""
    kwargs.setdefault("messages", USER)
    kwargs.setdefault("max_tokens", 2048)
    with ctx.anthropic.messages.stream(model=ctx.model, **kwargs) as events:
        return events.get_final_message()


def anthropic_create(ctx: Context, **kwargs: Any) -> Any:
    kwargs.setdefault("messages", USER)
    kwargs.setdefault("max_tokens", 2048)
    return ctx.anthropic.messages.create(model=ctx.model, **kwargs)


def texts(message: Any) -> list[str]:
    return [b.text for b in message.content if b.type == "text"]


def anthropic_tool_turn(message: Any) -> list[JSON]:
    """The assistant turn sent back whole (thinking included), then one result per tool use."""
    results = [
        {"type": "tool_result", "tool_use_id": b.id, "content": "18 C and sunny"}
        for b in message.content
        if b.type == "tool_use"
    ]
    blocks = [b.model_dump(exclude_none=True) for b in message.content]
    return [{"role": "assistant", "content": blocks}, {"role": "user", "content": results}]


# --- answers -------------------------------------------------------------------------------


def chat(ctx: Context, target: Target) -> None:
    ctx.script("ok")
    choice = create(ctx).choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == ANSWER
    assert choice.finish_reason == "stop"


def streaming(ctx: Context, target: Target) -> None:
    ctx.script("chunks=6", "chunks=6")
    whole = create(ctx).choices[0].message.content
    streamed = stream(ctx)
    assert whole == ANSWER
    assert streamed.content == whole
    assert streamed.order.count("content") > 1  # it arrived in pieces, as it was made
    assert streamed.finish_reason == "stop"


def json_mode(ctx: Context, target: Target) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city", "days"],
    }
    as_schema = {"type": "json_schema", "json_schema": {"name": "forecast", "schema": schema}}
    ctx.script("ok", "ok", "chunks=9")
    reply = create(ctx, response_format={"type": "json_object"})
    assert json.loads(reply.choices[0].message.content) == {"answer": QUESTION}
    reply = create(ctx, response_format=as_schema)
    assert json.loads(reply.choices[0].message.content) == {"city": QUESTION, "days": 1}
    streamed = stream(ctx, response_format={"type": "json_object"})
    assert json.loads(streamed.content) == {"answer": QUESTION}
    sent = [body["response_format"]["type"] for body in ctx.received()]
    assert sent == ["json_object", "json_schema", "json_object"]


# --- tools ---------------------------------------------------------------------------------


def tool_round_trip(ctx: Context, target: Target) -> None:
    ctx.script("tool_call", "ok")
    first = create(ctx, tools=[WEATHER]).choices[0]
    assert first.finish_reason == "tool_calls"
    [call] = first.message.tool_calls
    assert call.id and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == WEATHER_ARGS
    final = create(ctx, messages=[*USER, *tool_turn([call])], tools=[WEATHER]).choices[0]
    assert (final.message.content, final.finish_reason) == (ANSWER, "stop")
    sent = ctx.received()[-1]
    assert sent_call_ids(sent) == [call.id]  # the id went back to the upstream unchanged
    assert sent_result_ids(sent) == [call.id]


def tool_round_trip_anthropic(ctx: Context, target: Target) -> None:
    ctx.script("tool_call", "ok")
    first = anthropic_stream(ctx, tools=[anthropic_tool(WEATHER)])
    assert first.stop_reason == "tool_use"
    [use] = [b for b in first.content if b.type == "tool_use"]
    assert use.id and use.name == "get_weather" and use.input == WEATHER_ARGS
    final = anthropic_create(
        ctx, messages=[*USER, *anthropic_tool_turn(first)], tools=[anthropic_tool(WEATHER)]
    )
    assert final.stop_reason == "end_turn" and texts(final) == [ANSWER]
    sent = ctx.received()[-1]
    assert sent_call_ids(sent) == [use.id] and sent_result_ids(sent) == [use.id]


def parallel_tools(ctx: Context, target: Target) -> None:
    ctx.script("tool_call,parallel_tools", "tool_call,parallel_tools", "ok")
    tools = [WEATHER, CLOCK]
    whole = create(ctx, tools=tools).choices[0]
    calls = whole.message.tool_calls
    assert whole.finish_reason == "tool_calls"
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]
    assert [json.loads(c.function.arguments) for c in calls] == [WEATHER_ARGS, CLOCK_ARGS]
    assert len({c.id for c in calls}) == 2
    streamed = stream(ctx, tools=tools)
    assert sorted(streamed.calls) == [0, 1] and streamed.finish_reason == "tool_calls"
    got = [(c["name"], json.loads(c["arguments"])) for c in streamed.calls.values()]
    assert got == [("get_weather", WEATHER_ARGS), ("get_time", CLOCK_ARGS)]
    assert len({c["id"] for c in streamed.calls.values()}) == 2
    final = create(ctx, messages=[*USER, *tool_turn(calls)], tools=tools)
    assert final.choices[0].message.content == ANSWER
    sent = ctx.received()[-1]
    assert sent_call_ids(sent) == sent_result_ids(sent) == [c.id for c in calls]


def parallel_tools_anthropic(ctx: Context, target: Target) -> None:
    ctx.script("tool_call,parallel_tools")
    message = anthropic_stream(ctx, tools=[anthropic_tool(WEATHER), anthropic_tool(CLOCK)])
    uses = [b for b in message.content if b.type == "tool_use"]
    assert message.stop_reason == "tool_use"
    assert [(u.name, u.input) for u in uses] == [
        ("get_weather", WEATHER_ARGS),
        ("get_time", CLOCK_ARGS),
    ]
    assert len({u.id for u in uses}) == 2


# --- reasoning -----------------------------------------------------------------------------


def reasoning(ctx: Context, target: Target) -> None:
    ctx.script("reasoning=4", "reasoning=4,chunks=7")
    message = create(ctx, extra_body=ASK_REASONING).choices[0].message
    assert message.content == ANSWER  # nothing of the reasoning is left inside the content
    assert (extra(message, "reasoning_content") or "").strip() == REASONING
    assert extra(message, "reasoning") is None  # the host's own field was renamed, not copied
    streamed = stream(ctx, extra_body=ASK_REASONING)
    assert streamed.content == ANSWER
    assert streamed.reasoning.strip() == REASONING
    assert not streamed.host_field
    assert "reasoning" not in streamed.order[streamed.order.index("content") :]


def reasoning_anthropic(ctx: Context, target: Target) -> None:
    ctx.script("reasoning=4", "reasoning=4,chunks=7")
    for message in (
        anthropic_create(ctx, thinking=THINKING),
        anthropic_stream(ctx, thinking=THINKING),
    ):
        assert [b.type for b in message.content] == ["thinking", "text"]
        assert message.content[0].thinking.strip() == REASONING
        assert texts(message) == [ANSWER]


def reasoning_tool_loop(ctx: Context, target: Target) -> None:
    """An agent that drops `reasoning_content` from its tool-call turns (as many frameworks
    do) still completes the loop; a host that needs the reasoning back gets it back."""
    ctx.script("tool_call,reasoning=4", "reasoning=4")
    first = create(ctx, tools=[WEATHER], extra_body=ASK_REASONING).choices[0].message
    assert (extra(first, "reasoning_content") or "").strip() == REASONING
    history = [*USER, *tool_turn(first.tool_calls)]
    final = create(ctx, messages=history, tools=[WEATHER], extra_body=ASK_REASONING)
    assert final.choices[0].message.content == ANSWER
    if target.requires_replay:
        assert sent_reasoning(ctx.received()[-1]).strip() == REASONING


def reasoning_tool_loop_anthropic(ctx: Context, target: Target) -> None:
    """An Anthropic-client agent sends its thinking back with the tool results, as Anthropic
    requires; it reaches the upstream in the form that upstream takes it."""
    ctx.script("tool_call,reasoning=4", "reasoning=4")
    tools = [anthropic_tool(WEATHER)]
    first = anthropic_stream(ctx, thinking=THINKING, tools=tools)
    assert first.stop_reason == "tool_use"
    assert first.content[0].type == "thinking"
    assert first.content[0].thinking.strip() == REASONING
    history = [*USER, *anthropic_tool_turn(first)]
    final = anthropic_create(ctx, thinking=THINKING, messages=history, tools=tools)
    assert final.stop_reason == "end_turn" and texts(final) == [ANSWER]
    sent = ctx.received()[-1]
    assert sent_reasoning(sent).strip() == REASONING
    assert sent_result_ids(sent) == [b.id for b in first.content if b.type == "tool_use"]


# --- usage ---------------------------------------------------------------------------------


def usage(ctx: Context, target: Target) -> None:
    ctx.script("usage=12/34")
    reported = create(ctx).usage
    assert (reported.prompt_tokens, reported.completion_tokens) == (12, 34)
    assert reported.total_tokens == 46


def cached_usage(ctx: Context, target: Target) -> None:
    ctx.script("usage=40/8,cached=30")
    reported = create(ctx).usage
    assert (reported.prompt_tokens, reported.completion_tokens) == (40, 8)
    assert reported.prompt_tokens_details.cached_tokens == 30


def stream_usage(ctx: Context, target: Target) -> None:
    ctx.script("usage=12/34", "usage=12/34")
    streamed = stream(ctx, stream_options={"include_usage": True})
    assert streamed.content == ANSWER
    assert (streamed.usage.prompt_tokens, streamed.usage.completion_tokens) == (12, 34)
    assert streamed.usage.total_tokens == 46
    assert stream(ctx).usage is None  # not asked for, not sent (even if the gateway asked)


# --- requests ------------------------------------------------------------------------------

COMMON_PARAMS: JSON = {
    "temperature": 0.5,
    "top_p": 0.9,
    "presence_penalty": 0.1,
    "frequency_penalty": 0.1,
    "max_tokens": 64,
}
SAMPLE_VALUES: JSON = {
    **COMMON_PARAMS,
    "logprobs": True,
    "top_logprobs": 2,
    "max_completion_tokens": 64,
    "stream_options": {"include_usage": True},
}


def request_parameters(ctx: Context, target: Target) -> None:
    """Common sampling parameters, plus every field the host refuses, succeed, whole and
    streamed; the mock's request log proves no refused field ever reached the upstream, and
    the host gets the fields it does take."""
    refused = set(target.refused)
    params = {name: SAMPLE_VALUES[name] for name in (*COMMON_PARAMS, *target.refused)}
    whole = {k: v for k, v in params.items() if k != "stream_options"}
    ctx.script("ok", "ok")
    assert create(ctx, **whole).choices[0].message.content == ANSWER
    streamed = {**whole, "stream_options": {"include_usage": True}}
    assert stream(ctx, **streamed).content == ANSWER
    for body in ctx.received():
        assert not refused & set(body), f"refused fields reached the upstream: {body}"
        if target.wire == "openai":
            assert {k: body[k] for k in whole if k not in refused} == {
                k: v for k, v in whole.items() if k not in refused
            }
        else:
            assert (body["temperature"], body["top_p"], body["max_tokens"]) == (0.5, 0.9, 64)


# --- failures ------------------------------------------------------------------------------


def _failure(call: Callable[[], Any]) -> openai.APIStatusError:
    with pytest.raises(openai.APIStatusError) as caught:
        call()
    return caught.value


def upstream_401(ctx: Context, target: Target) -> None:
    """The upstream rejects the gateway's key (and quotes it, as OpenAI's 401 does): the client
    gets a 502 that names neither the key nor anything of the upstream's text."""
    ctx.script("status=401,error_body,echo_key", "status=401,error_body,echo_key")
    for error in (_failure(lambda: create(ctx)), _failure(lambda: stream(ctx))):
        assert error.status_code == 502
        assert SECRET not in error.response.text
        assert "mock upstream" not in error.response.text
        assert "credentials" in error.message
    assert all(SECRET in json.dumps(r["headers"]) for r in ctx.mock.requests())  # it was sent


def upstream_429(ctx: Context, target: Target) -> None:
    """Rate limited, with retries off: the client gets the 429 and the upstream's Retry-After."""
    ctx.script("status=429,retry_after=7,error_body", "status=429,retry_after=7")
    for error in (_failure(lambda: create(ctx)), _failure(lambda: stream(ctx))):
        assert isinstance(error, openai.RateLimitError)
        assert error.response.headers["retry-after"] == "7"
    assert len(ctx.received()) == 2  # one upstream request per call


def upstream_5xx(ctx: Context, target: Target) -> None:
    ctx.script("status=503,error_body", "status=500")
    for error in (_failure(lambda: create(ctx)), _failure(lambda: stream(ctx))):
        assert error.status_code == 502


def truncated_stream(ctx: Context, target: Target) -> None:
    """The upstream's stream breaks off after it began: the client's stream ends with an error
    event, and never with the `[DONE]` that would say the answer was complete."""
    ctx.script("truncate,chunks=8")
    body = {"model": ctx.model, "messages": USER, "stream": True}
    url = f"{ctx.gateway_url}/v1/chat/completions"
    with httpx.stream("POST", url, json=body, timeout=CLIENT_TIMEOUT) as response:
        assert response.status_code == 200
        data = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert "[DONE]" not in data
    events = [json.loads(d) for d in data]
    assert any(e.get("choices") for e in events[:-1])  # part of the answer came first
    assert events[-1]["error"]["message"]


# --- the catalogue -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scenario:
    run: Callable[[Context, Target], None]
    needs: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.run.__name__


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(chat),
    Scenario(streaming),
    Scenario(tool_round_trip, needs=("tools",)),
    Scenario(tool_round_trip_anthropic, needs=("tools",)),
    Scenario(parallel_tools, needs=("tools", "parallel_tools")),
    Scenario(parallel_tools_anthropic, needs=("tools", "parallel_tools")),
    Scenario(reasoning, needs=("reasoning",)),
    Scenario(reasoning_anthropic, needs=("reasoning",)),
    Scenario(reasoning_tool_loop, needs=("tools", "reasoning", "reasoning_replay")),
    Scenario(reasoning_tool_loop_anthropic, needs=("tools", "reasoning")),
    Scenario(json_mode, needs=("json_mode",)),
    Scenario(usage),
    Scenario(cached_usage, needs=("cached_usage",)),
    Scenario(stream_usage, needs=("stream_usage",)),
    Scenario(request_parameters),
    Scenario(upstream_401),
    Scenario(upstream_429),
    Scenario(upstream_5xx),
    Scenario(truncated_stream),
    # The same through the Responses ingress (conformance/responses_scenarios.py).
    Scenario(rs.responses_chat),
    Scenario(rs.responses_tool_round_trip, needs=("tools",)),
    Scenario(rs.responses_parallel_tools, needs=("tools", "parallel_tools")),
    Scenario(rs.responses_reasoning, needs=("reasoning",)),
    Scenario(rs.responses_reasoning_tool_loop, needs=("tools", "reasoning")),
    Scenario(rs.responses_json_mode, needs=("json_mode",)),
    Scenario(rs.responses_usage),
    Scenario(rs.responses_upstream_failures),
    Scenario(rs.responses_truncated_stream),
)
