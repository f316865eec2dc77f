"""The Anthropic ingress's stream translation, error shapes and token counting (split from
test_anthropic_convert.py, which covers requests and whole answers)."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from crossroads.errors import (
    BudgetError,
    GatewayError,
    InvalidRequestError,
    ModelNotFoundError,
    PolicyError,
    RateLimitError,
    UpstreamError,
    UpstreamTimeoutError,
)
from crossroads.ingress.anthropic.errors import error_body, error_type, stream_error_event
from crossroads.ingress.anthropic.request import to_chat_request
from crossroads.ingress.anthropic.stream import Event, StreamTranslator, encode_events
from crossroads.ingress.estimate import estimate_input_tokens
from crossroads.schemas import ChatRequest
from crossroads.schemas.chat_wire import decode_chunk
from crossroads.schemas.sealed_reasoning import is_sealed, seal, unseal
from crossroads.sse import SSEDecoder

JSON = dict[str, Any]
USER = [{"role": "user", "content": "hello"}]
WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def convert(**fields: Any) -> JSON:
    body: JSON = to_chat_request({"model": "m", "max_tokens": 64, **fields}).body
    msgspec.convert(body, ChatRequest)  # the result is always a valid neutral request
    return body


# --- stream -----------------------------------------------------------------------------------


def chunk(delta: JSON | None = None, finish: str | None = None, **extra: Any) -> JSON:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return {"id": "chatcmpl-9", "object": "chat.completion.chunk", "choices": choices, **extra}


USAGE = {"prompt_tokens": 12, "completion_tokens": 7, "prompt_tokens_details": {"cached_tokens": 2}}


def run(chunks: list[JSON], stops: tuple[str, ...] = ()) -> list[Event]:
    translator = StreamTranslator("served", stops)
    events: list[Event] = []
    for item in chunks:  # as the ingress reads them: typed, decoded once
        events += translator.feed(decode_chunk(orjson.dumps(item)))
    return events + translator.finish()


BLOCK_OF_DELTA = {
    "text_delta": "text",
    "thinking_delta": "thinking",
    "signature_delta": "thinking",
    "input_json_delta": "tool_use",
}


def accumulate(events: list[Event]) -> JSON:
    """Builds the final message from the events the way Anthropic's clients do, checking the
    protocol: one message_start first, blocks opened in index order and one at a time, deltas
    only for the open block and of its kind, message_stop last."""
    names = [name for name, _ in events]
    assert names[:2] == ["message_start", "ping"] and names.count("message_start") == 1
    assert names[-2:] == ["message_delta", "message_stop"]
    message: JSON = json.loads(json.dumps(events[0][1]["message"]))
    open_blocks: set[int] = set()
    buffers: dict[int, str] = {}
    for name, payload in events:
        assert payload["type"] == name
        if name == "content_block_start":
            assert payload["index"] == len(message["content"]) and not open_blocks
            message["content"].append(dict(payload["content_block"]))
            open_blocks.add(payload["index"])
        elif name == "content_block_delta":
            index, delta = payload["index"], payload["delta"]
            assert index in open_blocks
            block = message["content"][index]
            kind = delta["type"]
            assert block["type"] == BLOCK_OF_DELTA[kind]
            if kind == "text_delta":
                block["text"] += delta["text"]
            elif kind == "thinking_delta":
                block["thinking"] += delta["thinking"]
            elif kind == "signature_delta":
                block["signature"] = delta["signature"]
            else:
                buffers[index] = buffers.get(index, "") + delta["partial_json"]
        elif name == "content_block_stop":
            open_blocks.remove(payload["index"])
        elif name == "message_delta":
            message.update(payload["delta"])
            message["usage"].update(payload["usage"])
    assert not open_blocks
    for index, text in buffers.items():
        message["content"][index]["input"] = json.loads(text)
    return message


def test_a_text_stream() -> None:
    chunks = [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Hel"}),
        chunk({"content": "lo"}),
        chunk({}, "stop"),
        chunk(None, usage=USAGE),
    ]
    events = run(chunks)
    assert [name for name, _ in events] == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start = events[0][1]["message"]
    assert start["id"] == "msg_chatcmpl-9" and start["model"] == "served"
    assert start["content"] == [] and start["stop_reason"] is None
    assert start["usage"] == {"input_tokens": 0, "output_tokens": 0}
    assert events[2][1]["content_block"] == {"type": "text", "text": ""}
    # Usage arrived after the finish reason, in a usage-only chunk; message_delta carries it.
    assert events[-2][1] == {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {
            "input_tokens": 10,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 2,
            "output_tokens": 7,
        },
    }
    assert accumulate(events)["content"] == [{"type": "text", "text": "Hello"}]


def test_reasoning_then_content_with_a_signature() -> None:
    chunks = [
        chunk({"role": "assistant", "content": None, "reasoning_content": "think "}),
        chunk({"reasoning_content": "more"}),
        chunk({"reasoning_signature": "sig-x"}),
        chunk({"content": "answer"}),
        chunk({}, "stop"),
    ]
    events = run(chunks)
    message = accumulate(events)
    assert message["content"] == [
        {"type": "thinking", "thinking": "think more", "signature": "sig-x"},
        {"type": "text", "text": "answer"},
    ]
    deltas = [p["delta"]["type"] for n, p in events if n == "content_block_delta"]
    assert deltas == ["thinking_delta", "thinking_delta", "signature_delta", "text_delta"]
    assert message["usage"] == {"input_tokens": 0, "output_tokens": 0}  # no usage reported


def test_reasoning_the_upstream_did_not_sign_is_sealed_by_the_gateway() -> None:
    """Clients such as @ai-sdk/anthropic drop unsigned thinking; the gateway signs every block
    with a seal that opens to the block's reasoning."""
    events = run(
        [
            chunk({"reasoning_content": "thought "}),
            chunk({"reasoning_content": "two"}),
            chunk({"content": "a"}, "stop"),
        ]
    )
    deltas = [p["delta"]["type"] for n, p in events if n == "content_block_delta"]
    assert deltas == ["thinking_delta", "thinking_delta", "signature_delta", "text_delta"]
    signature = accumulate(events)["content"][0]["signature"]
    assert is_sealed(signature) and unseal(signature, 1000) == "thought two"


def tool_delta(
    index: int | None, *, id: str | None = None, name: str | None = None, args: str = ""
) -> JSON:
    function: JSON = {"arguments": args}
    if name is not None:
        function["name"] = name
    call: JSON = {"function": function}
    if index is not None:
        call["index"] = index
    if id is not None:
        call["id"] = id
        call["type"] = "function"
    return {"tool_calls": [call]}


def test_parallel_tool_calls_become_separate_blocks() -> None:
    chunks = [
        chunk({"role": "assistant", "content": "Let me check."}),
        chunk(tool_delta(0, id="call_a", name="get_weather", args="")),
        chunk(tool_delta(0, args='{"city":')),
        chunk(tool_delta(0, args=' "Paris"}')),
        chunk(tool_delta(1, id="call_b", name="get_time", args='{"tz"')),
        chunk(tool_delta(1, args=': "CET"}')),
        chunk({}, "tool_calls"),
        chunk(None, usage=USAGE),
    ]
    events = run(chunks)
    message = accumulate(events)
    assert message["content"] == [
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "call_a", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "call_b", "name": "get_time", "input": {"tz": "CET"}},
    ]
    assert message["stop_reason"] == "tool_use"
    starts = [p for n, p in events if n == "content_block_start"]
    assert [s["content_block"]["input"] for s in starts[1:]] == [{}, {}]


def test_a_whole_tool_call_in_one_chunk_and_a_name_that_comes_late() -> None:
    chunks = [
        chunk(tool_delta(0, id="c1", name="f", args='{"x": 1}')),
        chunk(tool_delta(1, id="c2", args='{"y"')),  # no name yet: buffered
        chunk(tool_delta(1, name="g", args=": 2}")),
        chunk({}, "stop"),  # some hosts end tool turns with "stop"
    ]
    message = accumulate(run(chunks))
    assert [(b["id"], b["name"], b["input"]) for b in message["content"]] == [
        ("c1", "f", {"x": 1}),
        ("c2", "g", {"y": 2}),
    ]
    assert message["stop_reason"] == "tool_use"


def test_tool_calls_without_index_or_id() -> None:
    chunks = [
        chunk(tool_delta(None, id="c1", name="f", args="{")),
        chunk(tool_delta(None, args="}")),
        chunk(tool_delta(None, id="c2", name="g", args="{}")),
        chunk({}, "tool_calls"),
    ]
    message = accumulate(run(chunks))
    assert [(b["id"], b["input"]) for b in message["content"]] == [("c1", {}), ("c2", {})]


def test_a_tool_call_that_never_gets_a_name_or_id_is_still_delivered() -> None:
    events = run([chunk(tool_delta(0, args="{}")), chunk({}, "tool_calls")])
    (block,) = accumulate(events)["content"]
    assert block["name"] == "" and block["id"].startswith("toolu_") and block["input"] == {}


def test_late_arguments_for_a_closed_tool_block_are_not_dropped() -> None:
    chunks = [
        chunk(tool_delta(0, id="c1", name="f", args='{"a"')),
        chunk(tool_delta(1, id="c2", name="g", args="{}")),
        chunk(tool_delta(0, args=": 1}")),
        chunk({}, "tool_calls"),
    ]
    events = run(chunks)
    late = [p for n, p in events if n == "content_block_delta"][-1]
    assert late["index"] == 0 and late["delta"]["partial_json"] == ": 1}"


def test_stop_sequence_and_length_in_a_stream() -> None:
    last = chunk({}, "stop")
    last["choices"][0]["stop_reason"] = "END"  # vLLM and SGLang name the matched stop string
    matched = [chunk({"content": "a"}), last]
    assert accumulate(run(matched, ("END",)))["stop_sequence"] == "END"
    assert accumulate(run([chunk({"content": "a"}, "length")]))["stop_reason"] == "max_tokens"


def test_usage_on_the_first_chunk_fills_message_start() -> None:
    events = run([chunk({"content": "a"}, usage=USAGE), chunk({}, "stop")])
    assert events[0][1]["message"]["usage"]["input_tokens"] == 10
    assert events[0][1]["message"]["usage"]["output_tokens"] == 0


def test_finish_without_any_chunk_is_a_complete_empty_message() -> None:
    translator = StreamTranslator("m")
    message = accumulate(translator.finish())
    assert message["content"] == [] and message["stop_reason"] == "end_turn"


def test_encoded_events_are_sse_with_event_names() -> None:
    events = run([chunk({"content": "a\nb"}, "stop")])
    raw = encode_events(events)
    assert raw.startswith(b"event: message_start\ndata: {")
    decoded = SSEDecoder().feed(raw)
    assert [e.event for e in decoded] == [name for name, _ in events]
    assert [orjson.loads(e.data) for e in decoded] == [payload for _, payload in events]


pieces = st.lists(st.text(min_size=1, max_size=5), min_size=1, max_size=6)


@given(
    reasoning=st.lists(st.text(min_size=1, max_size=5), max_size=4),
    text=pieces,
    calls=st.lists(
        st.tuples(
            st.sampled_from(["f", "g"]),
            st.dictionaries(st.text(max_size=3), st.integers()),
            st.integers(1, 4),
        ),
        max_size=3,
    ),
)
def test_any_stream_reassembles_to_what_the_upstream_said(
    reasoning: list[str], text: list[str], calls: list[tuple[str, JSON, int]]
) -> None:
    chunks = [chunk({"reasoning_content": r}) for r in reasoning]
    chunks += [chunk({"content": t}) for t in text]
    for index, (name, arguments, parts) in enumerate(calls):
        raw = json.dumps(arguments)
        size = max(1, len(raw) // parts)
        fragments = [raw[i : i + size] for i in range(0, len(raw), size)]
        chunks.append(chunk(tool_delta(index, id=f"c{index}", name=name, args=fragments[0])))
        chunks += [chunk(tool_delta(index, args=f)) for f in fragments[1:]]
    chunks.append(chunk({}, "tool_calls" if calls else "stop"))
    content = accumulate(run(chunks))["content"]
    expected: list[JSON] = []
    if reasoning:
        joined = "".join(reasoning)
        expected.append({"type": "thinking", "thinking": joined, "signature": seal(joined)})
    expected.append({"type": "text", "text": "".join(text)})
    expected += [
        {"type": "tool_use", "id": f"c{i}", "name": name, "input": arguments}
        for i, (name, arguments, _) in enumerate(calls)
    ]
    assert content == expected


# --- errors and counting ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "status", "kind"),
    [
        (InvalidRequestError("x"), 400, "invalid_request_error"),
        (InvalidRequestError("x", status=415), 415, "invalid_request_error"),
        (InvalidRequestError("x", status=413), 413, "request_too_large"),
        (ModelNotFoundError("m"), 404, "not_found_error"),
        (PolicyError("x"), 403, "permission_error"),
        (RateLimitError("x"), 429, "rate_limit_error"),
        (BudgetError("x"), 429, "rate_limit_error"),
        (UpstreamError("x", retryable=True), 502, "api_error"),
        (UpstreamError("x", retryable=True, upstream_status=529), 502, "overloaded_error"),
        (UpstreamError("x", retryable=True, upstream_status=503), 502, "overloaded_error"),
        (UpstreamTimeoutError("x"), 504, "api_error"),
        (GatewayError("x"), 500, "api_error"),
    ],
)
def test_error_types_follow_the_status(error: GatewayError, status: int, kind: str) -> None:
    assert error.status == status
    assert error_type(error) == kind


def test_error_body_and_stream_event() -> None:
    body = orjson.loads(error_body(InvalidRequestError("bad"), "req_1"))
    assert body == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "bad"},
        "request_id": "req_1",
    }
    event = stream_error_event(UpstreamError("gone", retryable=True))
    (decoded,) = SSEDecoder().feed(event)
    assert decoded.event == "error"
    assert orjson.loads(decoded.data)["error"] == {"type": "api_error", "message": "gone"}


def test_the_token_estimate() -> None:
    body = convert(
        system="x" * 40,  # 40 chars
        messages=[
            {"role": "user", "content": "y" * 38},  # 38 chars
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "t", "name": "ab", "input": {}},  # 2 + 2 chars
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "t", "content": "zz"},  # 2 chars
                    {"type": "image", "source": {"type": "url", "url": "https://x.test/i"}},
                ],
            },
        ],
    )
    # 84 chars -> 21 tokens; 5 messages (system, user, assistant, tool, user) -> 20; one image.
    assert estimate_input_tokens(body) == 21 + 20 + 1600
    with_tools = convert(messages=USER, tools=[WEATHER])
    tool_chars = len(orjson.dumps(with_tools["tools"][0]["function"]))
    assert estimate_input_tokens(with_tools) == -(-(5 + tool_chars) // 4) + 4
