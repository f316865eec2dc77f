"""The Anthropic ingress's pure converters against inline JSON fixtures: request -> neutral chat
request (and its 400s), chat.completion -> Message, chunk stream -> Anthropic events, the error
shape, and the count_tokens estimate."""

from __future__ import annotations

from typing import Any

import msgspec
import orjson
import pytest

from crossroads.errors import (
    InvalidRequestError,
)
from crossroads.ingress.anthropic.request import TOOL_ERROR_PREFIX, to_chat_request
from crossroads.ingress.anthropic.response import RAW_ARGUMENTS, to_message, tool_input
from crossroads.schemas import ChatRequest
from crossroads.schemas.chat_wire import ChatCompletion, decode_completion
from crossroads.schemas.sealed_reasoning import seal, unseal

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


def bad(data: JSON, *, require_max_tokens: bool = True) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as err:
        to_chat_request(data, require_max_tokens=require_max_tokens)
    assert err.value.status == 400
    return err.value


# --- request ----------------------------------------------------------------------------------


def test_a_minimal_request() -> None:
    assert convert(messages=USER) == {"model": "m", "messages": USER, "max_tokens": 64}


def test_sampling_fields_metadata_and_stream() -> None:
    body = convert(
        messages=USER,
        stop_sequences=["END", "STOP"],
        temperature=0.5,
        top_p=0.9,
        top_k=40,
        metadata={"user_id": "u-1"},
        stream=True,
        service_tier="auto",  # unknown fields are ignored
    )
    assert body["stop"] == ["END", "STOP"]
    assert (body["temperature"], body["top_p"], body["top_k"]) == (0.5, 0.9, 40)
    assert body["user"] == "u-1"
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert "service_tier" not in body


def test_system_as_string_or_text_blocks() -> None:
    assert convert(system="be brief", messages=USER)["messages"][0] == {
        "role": "system",
        "content": "be brief",
    }
    blocks = [{"type": "text", "text": "one"}, {"type": "text", "text": "two", "cache_control": {}}]
    assert convert(system=blocks, messages=USER)["messages"][0]["content"] == "one\ntwo"


def test_text_blocks_join_and_images_become_image_url_parts() -> None:
    text_only = [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    assert convert(messages=[{"role": "user", "content": text_only}])["messages"] == [
        {"role": "user", "content": "a\nb"}
    ]
    content = [
        {"type": "text", "text": "what is this"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAA"}},
        {"type": "image", "source": {"type": "url", "url": "https://x.test/a.jpg"}},
    ]
    (message,) = convert(messages=[{"role": "user", "content": content}])["messages"]
    assert message["content"] == [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAA"}},
        {"type": "image_url", "image_url": {"url": "https://x.test/a.jpg"}},
    ]


TOOL_LOOP = [
    {"role": "user", "content": "weather in Paris and Rome?"},
    {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "two calls", "signature": "sig-1"},
            {"type": "text", "text": "Checking."},
            {
                "type": "tool_use",
                "id": "toolu_A",
                "name": "get_weather",
                "input": {"city": "Paris"},
            },
            {"type": "tool_use", "id": "toolu_B", "name": "get_weather", "input": {"city": "Rome"}},
        ],
    },
    {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "toolu_A", "content": "sunny"},
            {
                "type": "tool_result",
                "tool_use_id": "toolu_B",
                "content": [{"type": "text", "text": "no"}, {"type": "text", "text": "data"}],
                "is_error": True,
            },
            {"type": "text", "text": "and tomorrow?"},
        ],
    },
]


def test_a_tool_loop_keeps_ids_arguments_reasoning_and_order() -> None:
    messages = convert(messages=TOOL_LOOP, tools=[WEATHER])["messages"]
    assert messages[1] == {
        "role": "assistant",
        "content": "Checking.",
        "tool_calls": [
            {
                "id": "toolu_A",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
            },
            {
                "id": "toolu_B",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
            },
        ],
        "reasoning_content": "two calls",
        "reasoning_signature": "sig-1",
    }
    # Tool results come first, as tool messages, then the rest of the user's turn.
    assert messages[2:] == [
        {"role": "tool", "tool_call_id": "toolu_A", "content": "sunny"},
        {"role": "tool", "tool_call_id": "toolu_B", "content": TOOL_ERROR_PREFIX + "no\ndata"},
        {"role": "user", "content": "and tomorrow?"},
    ]


def test_tool_result_images_lead_the_following_user_message() -> None:
    image = {"type": "image", "source": {"type": "url", "url": "https://x.test/s.png"}}
    history = [
        *TOOL_LOOP[:2],
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_A", "content": [image]},
                {"type": "tool_result", "tool_use_id": "toolu_B"},
            ],
        },
    ]
    messages = convert(messages=history)["messages"]
    assert messages[2:] == [
        {"role": "tool", "tool_call_id": "toolu_A", "content": ""},
        {"role": "tool", "tool_call_id": "toolu_B", "content": ""},
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": "https://x.test/s.png"}}],
        },
    ]


def test_thinking_without_signature_and_redacted_thinking() -> None:
    assistant = {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "hmm", "signature": ""},
            {"type": "redacted_thinking", "data": "opaque"},
            {"type": "text", "text": "hi"},
        ],
    }
    message = convert(messages=[*USER, assistant])["messages"][1]
    assert message == {
        "role": "assistant",
        "content": "hi",
        "reasoning_content": "hmm",
        "reasoning_redacted": ["opaque"],
    }


def test_an_assistant_turn_with_only_thinking_has_empty_content() -> None:
    assistant = {"role": "assistant", "content": [{"type": "thinking", "thinking": "x"}]}
    assert convert(messages=[*USER, assistant])["messages"][1]["content"] == ""


def test_tools_become_function_tools() -> None:
    plain = {"name": "noop", "input_schema": {"type": "object"}, "type": "custom"}
    assert convert(messages=USER, tools=[WEATHER, plain])["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": WEATHER["input_schema"],
                "description": "Weather for a city",
            },
        },
        {"type": "function", "function": {"name": "noop", "parameters": {"type": "object"}}},
    ]


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, {"tool_choice": "auto"}),
        ({"type": "any"}, {"tool_choice": "required"}),
        ({"type": "none"}, {"tool_choice": "none"}),
        (
            {"type": "tool", "name": "get_weather"},
            {"tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
        ),
        (
            {"type": "auto", "disable_parallel_tool_use": True},
            {"tool_choice": "auto", "parallel_tool_calls": False},
        ),
        (
            {"type": "any", "disable_parallel_tool_use": True},
            {"tool_choice": "required", "parallel_tool_calls": False},
        ),
    ],
)
def test_tool_choice(choice: JSON, expected: JSON) -> None:
    body = convert(messages=USER, tools=[WEATHER], tool_choice=choice)
    assert {k: body[k] for k in ("tool_choice", "parallel_tool_calls") if k in body} == expected


@pytest.mark.parametrize(
    ("thinking", "expected"),
    [
        ({"type": "enabled", "budget_tokens": 2048}, {"enabled": True, "max_tokens": 2048}),
        ({"type": "disabled"}, {"enabled": False}),
        ({"type": "adaptive"}, {"enabled": True}),
    ],
)
def test_thinking_config_becomes_the_reasoning_extension(thinking: JSON, expected: JSON) -> None:
    assert convert(messages=USER, thinking=thinking)["reasoning"] == expected


def test_output_config_effort_and_json_schema_format() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    body = convert(
        messages=USER,
        thinking={"type": "adaptive"},
        output_config={"effort": "high", "format": {"type": "json_schema", "schema": schema}},
    )
    assert body["reasoning"] == {"enabled": True, "effort": "high"}
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": schema, "strict": True},
    }
    assert convert(messages=USER, output_config={"effort": "low"})["reasoning"] == {"effort": "low"}


def test_system_role_inside_messages() -> None:
    messages = [{"role": "system", "content": [{"type": "text", "text": "rule"}]}, *USER]
    assert convert(messages=messages)["messages"][0] == {"role": "system", "content": "rule"}


def test_count_tokens_shape_needs_no_max_tokens() -> None:
    converted = to_chat_request({"model": "m", "messages": USER}, require_max_tokens=False)
    assert "max_tokens" not in converted.body


def req(**fields: Any) -> JSON:
    return {"model": "m", "max_tokens": 5, "messages": USER, **fields}


def turn(*blocks: JSON, role: str = "user") -> list[JSON]:
    return [{"role": role, "content": list(blocks)}]


TOOL_USE = {"type": "tool_use", "id": "t", "name": "f", "input": {}}
BAD_REQUESTS: list[tuple[JSON, str]] = [
    ({"model": "m", "messages": USER}, "max_tokens: field required"),
    ({"max_tokens": 5, "messages": USER}, "model: field required"),
    (req(max_tokens="5"), "max_tokens: Expected `int`"),
    (req(max_tokens=0), "max_tokens: Expected `int` >= 1"),
    (req(messages="hi"), "messages: Expected `array`"),
    (req(messages=[]), "messages: at least one message"),
    (req(messages=[{"role": "bot", "content": "x"}]), "messages[0].role: Invalid enum value"),
    (req(temperature=1.5), "temperature: Expected `float` <= 1.0"),
    (req(messages=[*USER, *turn()]), "messages[1].content: must not be empty"),
    (
        req(messages=[*USER, *USER, *turn({"type": "document"})]),
        "messages[2].content[0].type: unsupported content block type 'document'",
    ),
    (req(messages=turn({})), "messages[0].content[0].type: field required"),
    (
        req(messages=turn({"type": "text", "text": 3})),
        "messages[0].content[0].text: Expected `str`, got `int`",
    ),
    (
        req(messages=turn({"type": "tool_result", "tool_use_id": "t9"})),
        "messages[0].content[0].tool_use_id: no earlier tool_use block has the id 't9'",
    ),
    (
        req(messages=turn(TOOL_USE)),
        "messages[0].content[0].type: unsupported content block type 'tool_use'; "
        "expected one of: text, image, tool_result",
    ),
    (
        req(messages=[*USER, *turn({**TOOL_USE, "input": "x"}, role="assistant")]),
        "messages[1].content[0].input: Expected `object`, got `str`",
    ),
    (
        req(messages=turn({"type": "image", "source": {"type": "file", "file_id": "f"}})),
        "messages[0].content[0].source.type: Invalid value 'file'",
    ),
    (req(tools=[{"name": "f"}]), "tools[0].input_schema: field required"),
    (
        req(tools=[{"type": "web_search_20250305", "name": "web_search"}]),
        "tools[0].type: tool type 'web_search_20250305' is not supported",
    ),
    (req(tool_choice={"type": "tool"}), "tool_choice.name: field required"),
    (req(tool_choice={"type": "some"}), "tool_choice.type: Invalid enum value 'some'"),
    (req(thinking={"type": "enabled"}), "thinking.budget_tokens: field required"),
    (
        req(thinking={"type": "enabled", "budget_tokens": 0}),
        "thinking.budget_tokens: Expected `int` >= 1",
    ),
    (req(top_k=-1), "top_k: Expected `int` >= 0"),
    (
        req(messages=[*USER, *turn({"type": "image", "source": {}}, role="assistant")]),
        "messages[1].content[0].type: unsupported content block type 'image'; "
        "expected one of: text, tool_use, thinking, redacted_thinking",
    ),
    (
        req(
            messages=[
                *USER,
                *turn(TOOL_USE, role="assistant"),
                *turn({"type": "tool_result", "tool_use_id": "t", "content": [{"type": "doc"}]}),
            ]
        ),
        "messages[2].content[0].content[0].type: unsupported content block type 'doc'; "
        "expected one of: text, image",
    ),
    (req(output_config={"format": {"type": "json_schema"}}), "output_config.format.schema:"),
    (req(system=[{"type": "image"}]), "system[0].type: Invalid value 'image'"),
]


@pytest.mark.parametrize(("data", "expected"), BAD_REQUESTS)
def test_bad_requests_name_the_field(data: JSON, expected: str) -> None:
    error = bad(data)
    assert error.message.startswith(expected), error.message
    assert error.param == expected.split(":", 1)[0]


# --- response ---------------------------------------------------------------------------------


def completion(message: JSON, finish: str | None = "stop", **extra: Any) -> JSON:
    choice: JSON = {"index": 0, "message": {"role": "assistant", **message}}
    choice["finish_reason"] = finish
    choice.update(extra)
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [choice],
        "usage": {
            "prompt_tokens": 100,
            "completion_tokens": 20,
            "total_tokens": 120,
            "prompt_tokens_details": {"cached_tokens": 30},
        },
    }


def typed(document: JSON) -> ChatCompletion:
    """A completion document as the ingress reads it: decoded once into the typed model."""
    return decode_completion(orjson.dumps(document))


def test_a_text_answer_with_cached_usage() -> None:
    assert to_message(typed(completion({"content": "hi"})), model="served") == {
        "id": "msg_chatcmpl-1",
        "type": "message",
        "role": "assistant",
        "model": "served",
        "content": [{"type": "text", "text": "hi"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 70,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 30,
            "output_tokens": 20,
        },
    }


def test_thinking_text_and_tool_use_blocks_in_order() -> None:
    message = {
        "content": "calling",
        "reasoning_content": "plan",
        "reasoning_signature": "sig",
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "f", "arguments": '{"a": 1}'},
            },
            {"id": "call_2", "type": "function", "function": {"name": "g", "arguments": ""}},
        ],
    }
    answer = to_message(typed(completion(message, "tool_calls")), model="m")
    assert answer["content"] == [
        {"type": "thinking", "thinking": "plan", "signature": "sig"},
        {"type": "text", "text": "calling"},
        {"type": "tool_use", "id": "call_1", "name": "f", "input": {"a": 1}},
        {"type": "tool_use", "id": "call_2", "name": "g", "input": {}},
    ]
    assert answer["stop_reason"] == "tool_use"


def test_thinking_without_an_upstream_signature_gets_the_gateways_seal() -> None:
    answer = to_message(typed(completion({"content": "x", "reasoning_content": "r"})), model="m")
    assert answer["content"][0] == {"type": "thinking", "thinking": "r", "signature": seal("r")}


def test_a_sealed_signature_restores_the_reasoning_and_never_goes_upstream() -> None:
    """Sent back with its text, or with the signature alone, the reasoning is restored; the
    seal is the gateway's, so it is not passed on as an upstream signature."""
    for block in (
        {"type": "thinking", "thinking": "deep thought", "signature": seal("deep thought")},
        {"type": "thinking", "thinking": "", "signature": seal("deep thought")},
    ):
        converted = to_chat_request(
            {
                "model": "m",
                "max_tokens": 10,
                "messages": [
                    {"role": "user", "content": "q"},
                    {"role": "assistant", "content": [block, {"type": "text", "text": "a"}]},
                    {"role": "user", "content": "more"},
                ],
            }
        )
        assistant = converted.body["messages"][1]
        assert assistant["reasoning_content"] == "deep thought"
        assert "reasoning_signature" not in assistant


def test_sealed_reasoning_cannot_inflate_a_request_without_bound() -> None:
    bomb = seal("x" * (8 * 1024 * 1024))  # ~8 KB that would open to 8 MiB
    assert len(bomb) < 20_000
    assert unseal(bomb, 1024) is None
    converted = to_chat_request(
        {
            "model": "m",
            "max_tokens": 10,
            "messages": [
                {"role": "user", "content": "q"},
                {
                    "role": "assistant",
                    "content": [{"type": "thinking", "thinking": "", "signature": bomb}],
                },
                {"role": "user", "content": "more"},
            ],
        }
    )
    assert converted.body["messages"][1]["reasoning_content"] == ""
    assert unseal("crossroads.r1.!!!", 100) is None and unseal("other", 100) is None


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ('{"city": "Paris"}', {"city": "Paris"}),
        ("", {}),
        ("  ", {}),
        ('{"city": "Par', {RAW_ARGUMENTS: '{"city": "Par'}),
        ("[1, 2]", {RAW_ARGUMENTS: "[1, 2]"}),
        ("null", {RAW_ARGUMENTS: "null"}),
    ],
)
def test_tool_arguments_are_kept_faithfully(arguments: str, expected: JSON) -> None:
    assert tool_input(arguments) == expected


@pytest.mark.parametrize(
    ("finish", "extra", "tools", "expected"),
    [
        ("stop", {}, False, ("end_turn", None)),
        ("length", {}, False, ("max_tokens", None)),
        ("tool_calls", {}, True, ("tool_use", None)),
        ("content_filter", {}, False, ("refusal", None)),
        ("stop", {"stop_reason": "END"}, False, ("stop_sequence", "END")),
        ("stop", {"stop_reason": "OTHER"}, False, ("end_turn", None)),
        ("stop", {"stop_reason": 128001}, False, ("end_turn", None)),
        ("stop", {}, True, ("tool_use", None)),  # hosts that end tool turns with "stop"
        (None, {}, False, ("end_turn", None)),
        ("something_new", {}, False, ("end_turn", None)),
    ],
)
def test_stop_reasons(
    finish: str | None, extra: JSON, tools: bool, expected: tuple[str, str | None]
) -> None:
    message: JSON = {"content": "x"}
    if tools:
        message["tool_calls"] = [{"id": "c", "function": {"name": "f", "arguments": "{}"}}]
    answer = to_message(
        typed(completion(message, finish, **extra)), model="m", stop_sequences=["END"]
    )
    assert (answer["stop_reason"], answer["stop_sequence"]) == expected


def test_a_sparse_upstream_document_still_converts() -> None:
    answer = to_message(typed({"choices": []}), model="m")
    assert answer["content"] == [] and answer["id"].startswith("msg_")
    assert answer["usage"]["input_tokens"] == 0 and answer["usage"]["output_tokens"] == 0
    parts = {
        "choices": [{"message": {"content": [{"type": "text", "text": "a"}], "refusal": "no"}}]
    }
    assert to_message(typed(parts), model="m")["content"] == [{"type": "text", "text": "a\nno"}]
