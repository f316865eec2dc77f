"""The Responses stream translator against OpenAI's documentation of the streaming events (API
reference, "Streaming events", developers.openai.com/api/reference/resources/responses/
streaming-events): every event validates as the official `openai` package's typed event (the
package's types are generated from OpenAI's OpenAPI description), sequence numbers count from
0 without a gap, and the events come in the documented order: `response.created`,
`response.in_progress`, then per output item `output_item.added`, its content events,
`output_item.done`, and the terminal `response.completed` / `response.incomplete` /
`response.failed` last."""

from __future__ import annotations

import json
import typing
from typing import Any

import orjson
import pytest
from openai.types.responses import ResponseStreamEvent

from crossroads.errors import UpstreamError
from crossroads.ingress.responses.output import ResponseShell, StreamTranslator, encode_events
from crossroads.ingress.responses.request import parse_request, to_chat_request
from crossroads.schemas.chat_wire import decode_chunk
from crossroads.schemas.sealed_reasoning import unseal_any


def _event_models() -> dict[str, Any]:
    """Each documented event type's model in the official package, by its `type`."""
    union = typing.get_args(ResponseStreamEvent)[0]  # Annotated[Union[...], discriminator]
    models = {}
    for model in typing.get_args(union):
        [literal] = typing.get_args(model.model_fields["type"].annotation)
        models[literal] = model
    return models


EVENT_MODELS = _event_models()
JSON = dict[str, Any]

ITEM_EVENTS = {
    "message": [
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
    ],
    "function_call": [
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
    ],
    "reasoning": [
        "response.reasoning_summary_part.added",
        "response.reasoning_text.delta",
        "response.reasoning_summary_text.delta",
        "response.reasoning_text.done",
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
    ],
    "custom_tool_call": [
        "response.custom_tool_call_input.delta",
        "response.custom_tool_call_input.done",
    ],
}


def translate(chunks: list[JSON], request: JSON | None = None, *, fail: bool = False) -> list[JSON]:
    """The events for `chunks` (chat.completion.chunk documents), as a client receives them:
    SSE decoded back to JSON objects."""
    req = parse_request({"model": "m", "input": "hi", **(request or {})})
    translator = StreamTranslator(ResponseShell("resp_1", "m", to_chat_request(req), False))
    wire = b""
    sequence = 0
    events = []
    for chunk in chunks:
        events += translator.feed(decode_chunk(orjson.dumps(chunk)))
    events += (
        translator.fail(UpstreamError("broken", retryable=False)) if fail else translator.finish()
    )
    wire = encode_events(events, sequence)
    out = []
    for block in wire.decode().strip().split("\n\n"):
        name, data = block.split("\n")
        payload = json.loads(data.removeprefix("data: "))
        assert name == f"event: {payload['type']}"
        out.append(payload)
    return out


def check_documented_order(events: list[JSON]) -> None:
    types = [e["type"] for e in events]
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[-1] in ("response.completed", "response.incomplete", "response.failed")
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    for event in events:
        EVENT_MODELS[event["type"]].model_validate(event)  # the official schema of each event
    open_items: dict[int, str] = {}
    seen_done: set[int] = set()
    for event in events[2:-1]:
        kind = event["type"]
        index = event.get("output_index")
        if kind == "response.output_item.added":
            assert index == len(open_items) + len(seen_done)  # items numbered in order
            open_items[index] = event["item"]["type"]
        elif kind == "response.output_item.done":
            assert index in open_items, f"{kind} for an item never added"
            item_type = open_items.pop(index)
            assert event["item"]["type"] == item_type
            assert event["item"]["status"] in ("completed", "incomplete")
            seen_done.add(index)
        else:
            assert index in open_items, f"{kind} outside its item"
            assert kind in ITEM_EVENTS[open_items[index]], f"{kind} in a {open_items[index]}"
    if types[-1] != "response.failed":
        assert not open_items, "items left open at the end"
    final = events[-1]["response"]
    assert [item["id"] for item in final["output"]] == sorted(
        (e["item"]["id"] for e in events if e["type"] == "response.output_item.done"),
        key=[item["id"] for item in final["output"]].index,
    )


def chunk(delta: JSON | None = None, finish: str | None = None, **extra: Any) -> JSON:
    choice: JSON = {"index": 0, "delta": delta or {}, "finish_reason": finish}
    return {"id": "c1", "object": "chat.completion.chunk", "choices": [choice], **extra}


def call(index: int, piece: str, name: str | None = None, call_id: str | None = None) -> JSON:
    part: JSON = {"index": index, "function": {"arguments": piece}}
    if name:
        part["function"]["name"] = name
        part["id"] = call_id or f"call_{index}"
        part["type"] = "function"
    return {"tool_calls": [part]}


TEXT = [
    chunk({"role": "assistant", "content": ""}),
    chunk({"content": "Hel"}),
    chunk({"content": "lo"}),
    chunk(finish="stop"),
]
REASONING_THEN_CALLS = [
    chunk({"reasoning_content": "think "}),
    chunk({"reasoning_content": "hard"}),
    chunk(call(0, "", "get_weather")),
    chunk(call(1, '{"zone":', "get_time")),
    chunk(call(0, '{"city": "Paris"}')),
    chunk(call(1, '"UTC"}')),
    chunk(finish="tool_calls"),
    {"id": "c1", "choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 9}},
]


def test_a_text_answer_follows_the_documented_order() -> None:
    events = translate(TEXT)
    check_documented_order(events)
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert events[-1]["response"]["output"][0]["content"][0]["text"] == "Hello"


def test_reasoning_then_parallel_calls_interleaved() -> None:
    events = translate(
        REASONING_THEN_CALLS,
        {"reasoning": {"summary": "auto"}, "include": ["reasoning.encrypted_content"]},
    )
    check_documented_order(events)
    final = events[-1]["response"]
    assert [item["type"] for item in final["output"]] == [
        "reasoning",
        "function_call",
        "function_call",
    ]
    reasoning, weather, clock = final["output"]
    assert reasoning["content"][0]["text"] == reasoning["summary"][0]["text"] == "think hard"
    assert unseal_any(reasoning["encrypted_content"], 10_000) == ("think hard", None)
    assert (weather["name"], json.loads(weather["arguments"])) == ("get_weather", {"city": "Paris"})
    assert (clock["name"], json.loads(clock["arguments"])) == ("get_time", {"zone": "UTC"})
    assert final["usage"]["input_tokens"] == 7 and final["usage"]["total_tokens"] == 16


def test_a_signed_thinking_travels_sealed_with_its_signature() -> None:
    chunks = [
        chunk({"reasoning_content": "signed thought"}),
        chunk({"reasoning_signature": "sig-abc"}),
        chunk({"content": "ok"}),
        chunk(finish="stop"),
    ]
    events = translate(chunks, {"include": ["reasoning.encrypted_content"]})
    check_documented_order(events)
    sealed = events[-1]["response"]["output"][0]["encrypted_content"]
    assert unseal_any(sealed, 10_000) == ("signed thought", "sig-abc")


def test_a_length_cut_is_incomplete() -> None:
    events = translate([chunk({"content": "abc"}), chunk(finish="length")])
    check_documented_order(events)
    assert events[-1]["type"] == "response.incomplete"
    assert events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert events[-1]["response"]["output"][0]["status"] == "incomplete"


def test_a_failure_ends_with_response_failed() -> None:
    events = translate([chunk({"content": "par"})], fail=True)
    check_documented_order(events)
    failed = events[-1]["response"]
    assert failed["status"] == "failed" and failed["error"]["message"] == "broken"


def test_an_empty_stream_still_completes() -> None:
    events = translate([])
    check_documented_order(events)
    assert events[-1]["response"]["output"] == []


def test_a_custom_tool_call_comes_back_as_its_text() -> None:
    tool = {"type": "custom", "name": "apply_patch", "description": "Apply a patch"}
    events = translate(
        [
            chunk(call(0, '{"input": "*** Begin', "apply_patch")),
            chunk(call(0, ' Patch"}')),
            chunk(finish="tool_calls"),
        ],
        {"tools": [tool]},
    )
    check_documented_order(events)
    [item] = events[-1]["response"]["output"]
    assert item["type"] == "custom_tool_call" and item["input"] == "*** Begin Patch"


def test_a_call_whose_name_never_came_is_still_an_item() -> None:
    events = translate([chunk(call(0, '{"a": 1}')), chunk(finish="tool_calls")])
    check_documented_order(events)
    [item] = events[-1]["response"]["output"]
    assert item["type"] == "function_call" and item["arguments"] == '{"a": 1}'


@pytest.mark.parametrize(
    "bad", [b"[]", b'{"choices": "x"}', b'{"choices": [{"delta": {"content": 5}}]}']
)
def test_a_chunk_of_the_wrong_shape_is_refused(bad: bytes) -> None:
    from crossroads.schemas.chat_wire import WireError

    with pytest.raises(WireError):
        decode_chunk(bad)


def test_a_whole_answer_validates_as_the_official_response() -> None:
    from openai.types.responses import Response

    from crossroads.ingress.responses.output import whole_response
    from crossroads.schemas import Usage
    from crossroads.schemas.chat_wire import decode_completion

    completion = {
        "id": "c1",
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "content": "Let me look.",
                    "reasoning_content": "the user wants weather",
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": "{}"},
                        }
                    ],
                },
            }
        ],
    }
    req = parse_request({"model": "m", "input": "hi", "reasoning": {"summary": "auto"}})
    shell = ResponseShell("resp_1", "m", to_chat_request(req), True)
    body, output = whole_response(
        shell, decode_completion(orjson.dumps(completion)), Usage(10, 5, cached_tokens=2)
    )
    parsed = Response.model_validate(body)
    assert [item.type for item in parsed.output] == ["reasoning", "message", "function_call"]
    assert parsed.output_text == "Let me look."
    assert body["output"] == output and body["store"] is True
