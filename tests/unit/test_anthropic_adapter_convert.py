"""The Anthropic adapter's pure converters, against inline fixtures: OpenAI request -> Anthropic
Messages request, Anthropic Message -> chat.completion, Anthropic stream events ->
chat.completion.chunk documents, and the error classification."""

from __future__ import annotations

import copy
import itertools
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crossroads.errors import UpstreamError
from crossroads.providers.anthropic.answer import completion_from_message, convert_usage
from crossroads.providers.anthropic.convert import build_request
from crossroads.providers.anthropic.errors import from_error_object, from_status
from crossroads.providers.anthropic.stream import StreamConverter
from crossroads.schemas import Usage
from crossroads.schemas.chat_wire import ChatChunk, encode_chunk
from crossroads.sse import SSEDecoder, encode_event

JSON = dict[str, Any]
USER = [{"role": "user", "content": "hi"}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def build(**body: Any) -> JSON:
    body.setdefault("model", "claude-x")
    body.setdefault("messages", USER)
    return dict(build_request(body, default_max_tokens=4096))


def refused(**body: Any) -> UpstreamError:
    with pytest.raises(UpstreamError) as caught:
        build(**body)
    assert caught.value.status == 400
    assert caught.value.retryable is False
    return caught.value


# --- request: OpenAI -> Anthropic -------------------------------------------------------------


def test_minimal_request_has_required_fields_and_default_max_tokens() -> None:
    assert build() == {
        "model": "claude-x",
        "max_tokens": 4096,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
    }


def test_system_and_developer_messages_join_into_top_level_system() -> None:
    request = build(
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Use French."}]},
            *USER,
            {"role": "system", "content": "Late rule."},
        ]
    )
    assert request["system"] == "Be brief.\n\nUse French.\n\nLate rule."
    assert [m["role"] for m in request["messages"]] == ["user"]


def test_user_parts_text_and_images() -> None:
    content = [
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
        {"type": "text", "text": ""},
    ]
    request = build(messages=[{"role": "user", "content": content}])
    assert request["messages"][0]["content"] == [
        {"type": "text", "text": "look"},
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
        },
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]


@pytest.mark.parametrize(
    "part",
    [
        {"type": "image_url", "image_url": {"url": "ftp://example.com/cat.jpg"}},
        {"type": "image_url", "image_url": {"url": "data:image/png,notbase64"}},
        {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
        {"type": "file", "file": {"file_id": "f1"}},
    ],
)
def test_unsendable_user_parts_are_refused(part: JSON) -> None:
    refused(messages=[{"role": "user", "content": [part]}])


def _assistant(**fields: Any) -> JSON:
    return {"role": "assistant", **fields}


CALL = {
    "id": "call_abc",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
}


def test_assistant_thinking_text_and_tool_use_in_order() -> None:
    message = _assistant(
        content="Let me check.",
        reasoning_content="The user wants weather.",
        reasoning_signature="sig-123",
        tool_calls=[CALL],
    )
    request = build(messages=[*USER, message])
    assert request["messages"][1] == {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "The user wants weather.", "signature": "sig-123"},
            {"type": "text", "text": "Let me check."},
            {
                "type": "tool_use",
                "id": "call_abc",
                "name": "get_weather",
                "input": {"city": "Paris"},
            },
        ],
    }


def test_unsigned_reasoning_is_dropped() -> None:
    message = _assistant(content="Answer.", reasoning_content="hidden thoughts")
    request = build(messages=[*USER, message])
    assert request["messages"][1]["content"] == [{"type": "text", "text": "Answer."}]


def test_empty_arguments_mean_no_arguments() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "now", "arguments": ""}}
    request = build(messages=[*USER, _assistant(content=None, tool_calls=[call])])
    assert request["messages"][1]["content"][0]["input"] == {}


@pytest.mark.parametrize("arguments", ['{"city": "Par', "[1, 2]", '"text"'])
def test_tool_call_arguments_must_be_a_json_object(arguments: str) -> None:
    call = {"id": "call_bad", "type": "function", "function": {"name": "f", "arguments": arguments}}
    error = refused(messages=[*USER, _assistant(tool_calls=[call])])
    assert error.code == "invalid_tool_call_arguments"
    assert "messages[1].tool_calls[0]" in error.message
    assert "'f'" in error.message and "call_bad" in error.message


def test_tool_results_merge_into_one_user_turn_and_turns_alternate() -> None:
    second = {**CALL, "id": "call_def"}
    request = build(
        messages=[
            {"role": "user", "content": "weather?"},
            {"role": "user", "content": "in Paris and Rome"},
            _assistant(content=None, tool_calls=[CALL, second]),
            {"role": "tool", "tool_call_id": "call_abc", "content": "sunny"},
            {
                "role": "tool",
                "tool_call_id": "call_def",
                "content": [{"type": "text", "text": "rain"}],
            },
            {"role": "user", "content": "and tomorrow?"},
            _assistant(content="Sunny."),
            _assistant(content="Still sunny."),
        ]
    )
    messages = request["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
    assert messages[0]["content"] == [
        {"type": "text", "text": "weather?"},
        {"type": "text", "text": "in Paris and Rome"},
    ]
    assert messages[2]["content"] == [
        {"type": "tool_result", "tool_use_id": "call_abc", "content": "sunny"},
        {
            "type": "tool_result",
            "tool_use_id": "call_def",
            "content": [{"type": "text", "text": "rain"}],
        },
        {"type": "text", "text": "and tomorrow?"},
    ]
    assert [b["text"] for b in messages[3]["content"]] == ["Sunny.", "Still sunny."]


def test_unknown_role_is_refused() -> None:
    refused(messages=[{"role": "function", "content": "x"}])


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"messages": "hi"}, "messages"),
        ({"messages": [5]}, "messages[0]"),
        ({"messages": [{"role": "function", "content": "x"}]}, "messages[0].role"),
        ({"messages": [*USER, _assistant(tool_calls=[{"id": "c"}])]}, "messages[1].tool_calls[0]"),
        (
            {"messages": [{"role": "user", "content": [{"type": "document"}]}]},
            "messages[0].content[0].type",
        ),
        ({"tools": [{"type": "custom", "custom": {"name": "f"}}]}, "tools[0].type"),
        ({"reasoning": "high"}, "reasoning"),
        ({"top_k": "40"}, "top_k"),
    ],
)
def test_a_request_that_does_not_decode_is_refused_naming_the_field(
    fields: JSON, param: str
) -> None:
    error = refused(**fields)
    assert error.code == "invalid_request" and error.param == param
    assert f"{param}: " in error.message


def test_max_tokens_sources() -> None:
    assert build(max_tokens=100)["max_tokens"] == 100
    assert build(max_tokens=100, max_completion_tokens=50)["max_tokens"] == 50
    assert dict(build_request({"model": "m", "messages": USER}, default_max_tokens=77)) == {
        "model": "m",
        "max_tokens": 77,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
    }


def test_sampling_stop_and_user() -> None:
    request = build(stop="END", temperature=0.2, top_p=0.9, top_k=40, user="u-1")
    assert request["stop_sequences"] == ["END"]
    assert (request["temperature"], request["top_p"], request["top_k"]) == (0.2, 0.9, 40)
    assert request["metadata"] == {"user_id": "u-1"}
    assert build(stop=["a", "b"])["stop_sequences"] == ["a", "b"]


def test_unknown_fields_are_dropped_and_the_body_is_not_mutated() -> None:
    body: JSON = {
        "model": "m",
        "messages": [{"role": "user", "content": "hi", "name": "bob"}],
        "seed": 1,
        "frequency_penalty": 0.5,
        "stream": True,
        "stream_options": {"include_usage": True},
        "metadata": {"k": "v"},
        "enable_thinking": True,
        "response_format": {"type": "text"},
        "n": 1,
        "logprobs": False,
    }
    before = copy.deepcopy(body)
    request = dict(build_request(body, default_max_tokens=10))
    assert set(request) == {"model", "max_tokens", "messages"}
    assert request["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    assert body == before


def test_tools_and_tool_choice() -> None:
    bare = {"type": "function", "function": {"name": "now"}}
    request = build(tools=[WEATHER, bare], tool_choice="required")
    assert request["tools"] == [
        {
            "name": "get_weather",
            "description": "Weather for a city",
            "input_schema": WEATHER["function"]["parameters"],
        },
        {"name": "now", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert request["tool_choice"] == {"type": "any"}


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        ("auto", None, {"type": "auto"}),
        ("none", None, {"type": "none"}),
        ({"type": "function", "function": {"name": "f"}}, None, {"type": "tool", "name": "f"}),
        (None, None, None),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        ("none", False, {"type": "none"}),
        ("auto", True, {"type": "auto"}),
    ],
)
def test_tool_choice_mapping(choice: Any, parallel: bool | None, expected: JSON | None) -> None:
    body: JSON = {"tools": [WEATHER]}
    if choice is not None:
        body["tool_choice"] = choice
    if parallel is not None:
        body["parallel_tool_calls"] = parallel
    assert build(**body).get("tool_choice") == expected


def test_tool_choice_without_tools_is_dropped_and_unknown_choice_refused() -> None:
    assert "tool_choice" not in build(tool_choice="required", parallel_tool_calls=False)
    refused(tools=[WEATHER], tool_choice="sometimes")


@pytest.mark.parametrize(
    ("fields", "thinking"),
    [
        ({"reasoning": {"enabled": True}}, {"type": "enabled", "budget_tokens": 4096}),
        ({"reasoning": {"effort": "low"}}, {"type": "enabled", "budget_tokens": 1024}),
        ({"reasoning": {"effort": "high"}}, {"type": "enabled", "budget_tokens": 16384}),
        ({"reasoning": {"max_tokens": 2000}}, {"type": "enabled", "budget_tokens": 2000}),
        ({"reasoning": {"max_tokens": 100}}, {"type": "enabled", "budget_tokens": 1024}),
        ({"reasoning": {"enabled": False, "effort": "high"}}, {"type": "disabled"}),
        ({"reasoning_effort": "medium"}, {"type": "enabled", "budget_tokens": 4096}),
        ({"reasoning_effort": "high"}, {"type": "enabled", "budget_tokens": 16384}),
        ({"reasoning_effort": "none"}, {"type": "disabled"}),
        ({"reasoning": {}}, None),
        ({}, None),
    ],
)
def test_reasoning_to_thinking(fields: JSON, thinking: JSON | None) -> None:
    request = build(max_tokens=32000, **fields)
    assert request.get("thinking") == thinking
    assert request["max_tokens"] == 32000


def test_thinking_budget_raises_a_smaller_max_tokens() -> None:
    request = build(max_tokens=500, reasoning_effort="medium")
    assert request["thinking"] == {"type": "enabled", "budget_tokens": 4096}
    assert request["max_tokens"] == 4096 + 500
    assert request["thinking"]["budget_tokens"] < request["max_tokens"]


def test_unknown_reasoning_effort_is_refused() -> None:
    refused(reasoning_effort="extreme")
    refused(reasoning={"effort": "max"})


def test_unsupported_features_are_refused() -> None:
    schema_format = {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}
    error = refused(response_format=schema_format)
    assert error.message == "response_format is not supported by Anthropic upstreams"
    assert error.code == "response_format_unsupported"
    refused(response_format={"type": "json_object"})
    refused(n=2)
    refused(logprobs=True)
    refused(top_logprobs=3)


# --- answer: Anthropic -> OpenAI --------------------------------------------------------------

MESSAGE: JSON = {
    "id": "msg_01",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet",
    "content": [
        {"type": "thinking", "thinking": "Need weather.", "signature": "sig-A"},
        {"type": "text", "text": "Checking "},
        {"type": "text", "text": "now."},
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Rome"}},
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 10,
        "output_tokens": 30,
        "cache_read_input_tokens": 100,
        "cache_creation_input_tokens": 5,
    },
}


def test_message_to_completion() -> None:
    document, usage = completion_from_message(MESSAGE, created=1700000000)
    assert document == {
        "id": "chatcmpl-msg_01",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "claude-sonnet",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Checking now.",
                    "reasoning_content": "Need weather.",
                    "reasoning_signature": "sig-A",
                    "tool_calls": [
                        {
                            "id": "toolu_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                        },
                        {
                            "id": "toolu_2",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
                        },
                    ],
                },
                "logprobs": None,
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {
            "prompt_tokens": 115,
            "completion_tokens": 30,
            "total_tokens": 145,
            "prompt_tokens_details": {"cached_tokens": 100, "cache_write_tokens": 5},
        },
    }
    assert usage == Usage(
        prompt_tokens=115, completion_tokens=30, cached_tokens=100, cache_write_tokens=5
    )


def test_message_without_text_has_null_content() -> None:
    message = {**MESSAGE, "content": [MESSAGE["content"][3]], "model": None}
    document, _ = completion_from_message(message, created=0, model="fallback")
    assert document["choices"][0]["message"]["content"] is None
    assert "reasoning_content" not in document["choices"][0]["message"]
    assert document["model"] == "fallback"


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("something_new", "stop"),
        (None, "stop"),
    ],
)
def test_stop_reasons(stop_reason: str | None, finish: str) -> None:
    document, _ = completion_from_message({**MESSAGE, "stop_reason": stop_reason}, created=0)
    assert document["choices"][0]["finish_reason"] == finish


def test_usage_tolerates_nulls_and_reads_thinking_tokens() -> None:
    raw = {
        "input_tokens": 7,
        "output_tokens": 9,
        "cache_read_input_tokens": None,
        "output_tokens_details": {"thinking_tokens": 4},
    }
    openai, usage = convert_usage(raw)
    assert openai["prompt_tokens"] == 7 and openai["total_tokens"] == 16
    assert openai["completion_tokens_details"] == {"reasoning_tokens": 4}
    assert usage == Usage(prompt_tokens=7, completion_tokens=9, reasoning_tokens=4)
    assert convert_usage(None)[1] == Usage()


# --- stream: Anthropic events -> OpenAI chunks ------------------------------------------------


def ev(kind: str, **data: Any) -> tuple[str, JSON]:
    return kind, {"type": kind, **data}


START = ev(
    "message_start",
    message={
        "id": "msg_S",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet",
        "content": [],
        "stop_reason": None,
        "usage": {"input_tokens": 12, "output_tokens": 1, "cache_read_input_tokens": 50},
    },
)
STOP = ev("message_stop")


def delta(index: int, **d: Any) -> tuple[str, JSON]:
    return ev("content_block_delta", index=index, delta=d)


def block(index: int, **b: Any) -> tuple[str, JSON]:
    return ev("content_block_start", index=index, content_block=b)


def finish(reason: str, output: int, **usage: Any) -> tuple[str, JSON]:
    return ev(
        "message_delta",
        delta={"stop_reason": reason, "stop_sequence": None},
        usage={"output_tokens": output, **usage},
    )


TEXT_STREAM = [
    START,
    ev("ping"),
    block(0, type="thinking", thinking="", signature=""),
    delta(0, type="thinking_delta", thinking="Hmm, "),
    delta(0, type="thinking_delta", thinking="easy."),
    delta(0, type="signature_delta", signature="sig-S"),
    ev("content_block_stop", index=0),
    block(1, type="text", text=""),
    delta(1, type="text_delta", text="Hello"),
    ev("ping"),
    delta(1, type="text_delta", text=" there"),
    ev("content_block_stop", index=1),
    finish("end_turn", 15),
    STOP,
]

TOOL_STREAM = [
    START,
    block(0, type="text", text=""),
    delta(0, type="text_delta", text="Checking."),
    ev("content_block_stop", index=0),
    block(1, type="tool_use", id="toolu_A", name="get_weather", input={}),
    delta(1, type="input_json_delta", partial_json=""),
    delta(1, type="input_json_delta", partial_json='{"city": '),
    delta(1, type="input_json_delta", partial_json='"Paris"}'),
    ev("content_block_stop", index=1),
    block(2, type="tool_use", id="toolu_B", name="get_time", input={}),
    delta(2, type="input_json_delta", partial_json='{"tz": "CET"}'),
    ev("content_block_stop", index=2),
    finish("tool_use", 40),
    STOP,
]


def convert(events: list[tuple[str, JSON]]) -> tuple[list[JSON], StreamConverter]:
    converter = StreamConverter("anth", created=1700000000, model="requested")
    chunks: list[JSON] = []
    for kind, data in events:
        chunks += [as_sent(c) for c in converter.feed(orjson.dumps(data).decode(), kind)]
    return chunks, converter


def as_sent(chunk: ChatChunk) -> JSON:
    """A typed chunk as an OpenAI client receives it."""
    sent: JSON = orjson.loads(encode_chunk(chunk))
    return sent


def deltas(chunks: list[JSON]) -> list[JSON]:
    return [c["choices"][0]["delta"] for c in chunks if c["choices"]]


def test_text_and_thinking_stream() -> None:
    chunks, converter = convert(TEXT_STREAM)
    assert deltas(chunks) == [
        {"role": "assistant", "content": ""},
        {"reasoning_content": "Hmm, "},
        {"reasoning_content": "easy."},
        {"reasoning_signature": "sig-S"},
        {"content": "Hello"},
        {"content": " there"},
        {},
    ]
    for chunk in chunks:
        assert chunk["id"] == "chatcmpl-msg_S"
        assert chunk["object"] == "chat.completion.chunk"
        assert (chunk["created"], chunk["model"]) == (1700000000, "claude-sonnet")
    assert [c["choices"][0]["finish_reason"] for c in chunks[:-1]] == [None] * 6 + ["stop"]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {
        "prompt_tokens": 62,
        "completion_tokens": 15,
        "total_tokens": 77,
        "prompt_tokens_details": {"cached_tokens": 50, "cache_write_tokens": 0},
    }
    assert converter.finished
    assert converter.usage == Usage(prompt_tokens=62, completion_tokens=15, cached_tokens=50)


def test_parallel_tool_stream_indexes_tool_blocks_only() -> None:
    chunks, _ = convert(TOOL_STREAM)
    assert deltas(chunks)[1:] == [
        {"content": "Checking."},
        {
            "tool_calls": [
                {
                    "index": 0,
                    "id": "toolu_A",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": ""},
                }
            ]
        },
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]},
        {
            "tool_calls": [
                {
                    "index": 1,
                    "id": "toolu_B",
                    "type": "function",
                    "function": {"name": "get_time", "arguments": ""},
                }
            ]
        },
        {"tool_calls": [{"index": 1, "function": {"arguments": '{"tz": "CET"}'}}]},
        {},
    ]
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"


def test_tool_input_sent_whole_in_the_start_is_not_doubled() -> None:
    events = [
        START,
        block(0, type="tool_use", id="t", name="f", input={"a": 1}),
        delta(0, type="input_json_delta", partial_json='{"a": 1}'),
        finish("tool_use", 3),
        STOP,
    ]
    calls = [d["tool_calls"][0] for d in deltas(convert(events)[0]) if "tool_calls" in d]
    assert [c["function"]["arguments"] for c in calls] == ['{"a":1}']


def test_message_delta_usage_updates_the_input_counts() -> None:
    events = [START, finish("max_tokens", 8, input_tokens=20, cache_creation_input_tokens=3), STOP]
    chunks, converter = convert(events)
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert converter.usage == Usage(
        prompt_tokens=73, completion_tokens=8, cached_tokens=50, cache_write_tokens=3
    )


def test_unknown_events_and_blocks_are_ignored() -> None:
    events = [
        START,
        ev("brand_new_event", foo=1),
        block(0, type="redacted_thinking", data="opaque"),
        delta(0, type="citations_delta", citation={}),
        finish("end_turn", 1),
        STOP,
    ]
    assert deltas(convert(events)[0]) == [{"role": "assistant", "content": ""}, {}]


@pytest.mark.parametrize(
    ("error", "retryable", "code"),
    [
        ({"type": "overloaded_error", "message": "Overloaded"}, True, "upstream_overloaded"),
        ({"type": "api_error", "message": "boom"}, True, "upstream_stream_error"),
        ({"type": "rate_limit_error", "message": "slow"}, True, "upstream_rate_limited"),
        ({"type": "invalid_request_error", "message": "bad"}, False, "upstream_stream_error"),
    ],
)
def test_error_event_raises(error: JSON, retryable: bool, code: str) -> None:
    with pytest.raises(UpstreamError) as caught:
        convert([START, block(0, type="text", text=""), ev("error", error=error)])
    assert caught.value.retryable is retryable
    assert caught.value.code == code
    assert error["message"] in caught.value.message


def test_auth_error_event_hides_the_upstream_text() -> None:
    error = from_error_object("anth", {"type": "authentication_error", "message": "key sk-1"})
    assert error.code == "upstream_auth_failed" and "sk-1" not in error.message


@pytest.mark.parametrize(
    "data",
    ["{not json", "[1, 2]", orjson.dumps({"type": "content_block_delta", "index": 0}).decode()],
)
def test_garbage_streams_raise_bad_response(data: str) -> None:
    converter = StreamConverter("anth", created=0)
    with pytest.raises(UpstreamError) as caught:
        converter.feed(data, None)
    assert caught.value.code == "upstream_bad_response" and caught.value.retryable


def test_event_name_stands_in_for_a_missing_type() -> None:
    converter = StreamConverter("anth", created=0)
    converter.feed(orjson.dumps(START[1]).decode())
    chunks = converter.feed("{}", "message_stop")
    assert converter.finished and as_sent(chunks[0])["choices"] == []


def _wire(events: list[tuple[str, JSON]]) -> bytes:
    return b"".join(encode_event(orjson.dumps(data), kind) for kind, data in events)


def _decode(pieces: list[bytes]) -> list[JSON]:
    decoder = SSEDecoder()
    converter = StreamConverter("anth", created=1700000000, model="requested")
    chunks: list[JSON] = []
    for piece in pieces:
        for event in decoder.feed(piece):
            chunks += [as_sent(c) for c in converter.feed(event.data, event.event)]
    assert converter.finished and not decoder.has_partial
    return chunks


@settings(max_examples=200, deadline=None)
@given(data=st.data(), which=st.sampled_from(["text", "tools"]))
def test_any_byte_split_of_the_stream_yields_the_same_chunks(
    data: st.DataObject, which: str
) -> None:
    events = TEXT_STREAM if which == "text" else TOOL_STREAM
    raw = _wire(events)
    expected = convert(events)[0]
    cuts = sorted(data.draw(st.sets(st.integers(1, len(raw) - 1), max_size=40)))
    bounds = [0, *cuts, len(raw)]
    pieces = [raw[a:b] for a, b in itertools.pairwise(bounds)]
    assert _decode(pieces) == expected


# --- HTTP error classification ------------------------------------------------------------------


def _anthropic_error(kind: str, message: str) -> bytes:
    return orjson.dumps({"type": "error", "error": {"type": kind, "message": message}})


def test_http_errors() -> None:
    auth = from_status("anth", 401, _anthropic_error("authentication_error", "bad key sk-1"), None)
    assert auth.retryable and auth.code == "upstream_auth_failed" and "sk-1" not in auth.message
    limited = from_status("anth", 429, _anthropic_error("rate_limit_error", "slow"), "7")
    assert (limited.retryable, limited.status, limited.retry_after) == (True, 429, 7.0)
    overloaded = from_status("anth", 529, _anthropic_error("overloaded_error", "Overloaded"), None)
    assert (overloaded.retryable, overloaded.status, overloaded.code) == (
        True,
        503,
        "upstream_overloaded",
    )
    assert "Overloaded" in overloaded.message
    server = from_status("anth", 500, b"oops", None)
    assert server.retryable and server.upstream_status == 500
    bad = from_status("anth", 400, _anthropic_error("invalid_request_error", "max_tokens"), None)
    assert (bad.retryable, bad.status) == (False, 400)
    assert "max_tokens" in bad.message
