"""The official `openai` client's Responses API (`client.responses`) through the gateway, as
OpenAI documents it: plain and streamed answers (`stream=True` and the `responses.stream`
helper), `instructions`, a function-tool loop, DeepSeek-style reasoning carried across a
stateless tool loop in `encrypted_content`, structured output (`text.format` json_schema and
`responses.parse`), `previous_response_id` over stored responses, retrieve and delete of a
streamed response, and unknown ids. Bad input, storage ownership, restarts, storage off and
fallbacks are in test_responses_api.py."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from openai import OpenAI
from pydantic import BaseModel

from conftest import GatewayFactory, client, mock_config
from crossroads.ledger.record import Status
from crossroads.mockupstream import MockUpstreamThread
from support.gateway import GatewayThread

JSON = dict[str, Any]
QUESTION = "What is the weather in Paris?"
REASONING = " ".join(["thinking"] * 6)  # what the mock's `reasoning=6` streams
WEATHER_TOOL: JSON = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}
WEATHER_SCHEMA: JSON = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "celsius": {"type": "integer"}},
    "required": ["city", "celsius"],
    "additionalProperties": False,
}


class Weather(BaseModel):
    city: str
    celsius: int


@pytest.fixture
def gw(gateway: GatewayFactory, mock: MockUpstreamThread) -> GatewayThread:
    return gateway(mock_config(mock.url))


@pytest.fixture
def oai(gw: GatewayThread) -> OpenAI:
    return client(gw)


def text_of(content: Any) -> str:
    """A chat message's text: a string, or its text parts joined."""
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content or [] if isinstance(p, dict))


def sent(mock: MockUpstreamThread, index: int = -1) -> list[tuple[str, str]]:
    """(role, text) of each message the upstream received in request `index`."""
    body = mock.requests()[index]["json"]
    return [(m["role"], text_of(m.get("content"))) for m in body["messages"]]


def test_plain_create(gw: GatewayThread, oai: OpenAI, mock: MockUpstreamThread) -> None:
    response = oai.responses.create(model="m", input="hello world")

    assert response.object == "response" and response.status == "completed"
    assert response.id.startswith("resp_")
    assert response.model == "m"
    assert response.output_text == "mock answer: hello world"
    (item,) = response.output
    assert item.type == "message" and item.role == "assistant"
    assert response.usage is not None
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens
    assert sent(mock) == [("user", "hello world")]
    gw.stop()
    (record,) = gw.ledger()
    assert (record.endpoint, record.status, record.stream) == ("responses", Status.OK, False)
    assert record.requested_model == "m"
    assert record.prompt_tokens == response.usage.input_tokens
    assert record.completion_tokens == response.usage.output_tokens


def test_instructions_and_message_items(oai: OpenAI, mock: MockUpstreamThread) -> None:
    response = oai.responses.create(
        model="m",
        instructions="Be brief.",
        input=[
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "an earlier answer"},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]},
        ],
    )
    assert response.output_text == "mock answer: hi"
    assert response.instructions == "Be brief."
    assert sent(mock) == [
        ("system", "Be brief."),
        ("user", "first"),
        ("assistant", "an earlier answer"),
        ("user", "hi"),
    ]


def test_stream_events(gw: GatewayThread, oai: OpenAI) -> None:
    events = list(oai.responses.create(model="m", input="hello world", stream=True))

    kinds = [event.type for event in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert [event.sequence_number for event in events] == list(range(len(events)))
    for kind in (
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
    ):
        assert kind in kinds
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    final = events[-1].response  # type: ignore[union-attr]
    assert deltas == final.output_text == "mock answer: hello world"
    assert final.status == "completed" and final.usage is not None
    created = events[0].response  # type: ignore[union-attr]
    assert created.id == final.id and created.status == "in_progress"
    gw.stop()
    (record,) = gw.ledger()
    assert (record.endpoint, record.status, record.stream) == ("responses", Status.OK, True)
    assert record.completion_tokens == final.usage.output_tokens


def test_stream_helper(oai: OpenAI) -> None:
    with oai.responses.stream(model="m", input="hello world") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert len(deltas) > 1
    assert "".join(deltas) == final.output_text == "mock answer: hello world"


def first_turn(oai: OpenAI, stream: bool, **options: Any) -> Any:
    """Turn 1 of a tool loop, whole or through the stream helper (checking that the streamed
    argument deltas add up to the call's arguments)."""
    request: JSON = {"model": "m", "input": [{"role": "user", "content": QUESTION}], **options}
    if not stream:
        return oai.responses.create(**request)
    with oai.responses.stream(**request) as events:
        pieces = [e.delta for e in events if e.type == "response.function_call_arguments.delta"]
        response = events.get_final_response()
    calls = [item for item in response.output if item.type == "function_call"]
    assert "".join(pieces) == calls[0].arguments
    return response


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_function_tool_loop(oai: OpenAI, mock: MockUpstreamThread, stream: bool) -> None:
    mock.script(["tool_call", "ok"])
    first = first_turn(oai, stream, tools=[WEATHER_TOOL])
    (call,) = [item for item in first.output if item.type == "function_call"]
    assert call.name == "get_weather" and call.call_id
    assert json.loads(call.arguments) == {"city": QUESTION}
    offered = mock.requests()[0]["json"]["tools"]
    assert [t["function"]["name"] for t in offered] == ["get_weather"]

    output = {"type": "function_call_output", "call_id": call.call_id, "output": "18 C and sunny"}
    second = oai.responses.create(
        model="m",
        input=[{"role": "user", "content": QUESTION}, *first.output, output],
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
    )

    assert second.output_text == f"mock answer: {QUESTION}"
    messages = mock.requests()[1]["json"]["messages"]
    (assistant,) = [m for m in messages if m.get("tool_calls")]
    (upstream_call,) = assistant["tool_calls"]
    assert upstream_call["function"]["name"] == "get_weather"
    assert json.loads(upstream_call["function"]["arguments"]) == {"city": QUESTION}
    (result,) = [m for m in messages if m["role"] == "tool"]
    assert result["tool_call_id"] == upstream_call["id"]
    assert text_of(result["content"]) == "18 C and sunny"


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_reasoning_survives_a_stateless_tool_loop(
    oai: OpenAI, mock: MockUpstreamThread, stream: bool
) -> None:
    """A DeepSeek-style upstream refuses a tool result whose calling turn lost its reasoning;
    a client that keeps nothing on the server (store false) gets the reasoning back in the
    reasoning item's `encrypted_content` and returns it, as Codex does."""
    mock.script(["tool_call,reasoning=6", "reasoning=6,require_reasoning_replay"])
    options = {"tools": [WEATHER_TOOL], "store": False, "include": ["reasoning.encrypted_content"]}
    first = first_turn(oai, stream, **options)
    kinds = [item.type for item in first.output]
    assert kinds == ["reasoning", "function_call"]
    assert first.output[0].encrypted_content  # type: ignore[union-attr]
    assert first.usage is not None and first.usage.output_tokens_details.reasoning_tokens == 6
    call = first.output[1]
    output = {"type": "function_call_output", "call_id": call.call_id, "output": "18 C"}  # type: ignore[union-attr]

    second = oai.responses.create(
        model="m",
        input=[{"role": "user", "content": QUESTION}, *first.output, output],
        **options,
    )

    assert second.output_text == f"mock answer: {QUESTION}"
    messages = mock.requests()[1]["json"]["messages"]
    (assistant,) = [m for m in messages if m.get("tool_calls")]
    assert assistant["reasoning_content"] == REASONING


def test_structured_output_json_schema(oai: OpenAI, mock: MockUpstreamThread) -> None:
    response = oai.responses.create(
        model="m",
        input="Paris",
        text={
            "format": {
                "type": "json_schema",
                "name": "weather",
                "schema": WEATHER_SCHEMA,
                "strict": True,
            }
        },
    )
    assert json.loads(response.output_text) == {"city": "Paris", "celsius": 1}
    response_format = mock.requests()[-1]["json"]["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["name"] == "weather"
    assert response_format["json_schema"]["schema"] == WEATHER_SCHEMA
    assert response_format["json_schema"].get("strict") is True


def test_parse_into_a_pydantic_model(oai: OpenAI) -> None:
    response = oai.responses.parse(model="m", input="Paris", text_format=Weather)
    assert response.output_parsed == Weather(city="Paris", celsius=1)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_previous_response_id_continues_a_stored_conversation(
    oai: OpenAI, mock: MockUpstreamThread, stream: bool
) -> None:
    if stream:
        with oai.responses.stream(model="m", instructions="Be brief.", input="one") as events:
            first = events.get_final_response()
    else:
        first = oai.responses.create(model="m", instructions="Be brief.", input="one")
    second = oai.responses.create(model="m", previous_response_id=first.id, input="two")
    third = oai.responses.create(model="m", previous_response_id=second.id, input="three")

    assert second.previous_response_id == first.id
    assert third.output_text == "mock answer: three"
    # The earlier turns come from the store; as OpenAI documents, the earlier `instructions`
    # are not carried over.
    assert sent(mock) == [
        ("user", "one"),
        ("assistant", "mock answer: one"),
        ("user", "two"),
        ("assistant", "mock answer: two"),
        ("user", "three"),
    ]


def test_retrieve_and_delete_a_streamed_response(oai: OpenAI) -> None:
    """A streamed response is stored as the stream's final Response (test_responses_api.py
    covers whole ones and continuing a deleted one)."""
    with oai.responses.stream(model="m", input="keep me") as events:
        created = events.get_final_response()

    got = oai.responses.retrieve(created.id)
    assert got.id == created.id and got.output_text == "mock answer: keep me"
    assert got.status == "completed" and got.usage == created.usage

    oai.responses.delete(created.id)
    with pytest.raises(openai.NotFoundError):
        oai.responses.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        oai.responses.delete(created.id)


def error_of(exc: openai.APIStatusError) -> JSON:
    """The `error` object of an OpenAI-shaped error body."""
    body = exc.response.json()
    assert set(body) == {"error"}
    error: JSON = body["error"]
    assert {"message", "type", "param", "code"} <= set(error)
    return error


def test_unknown_response_id_is_a_404(oai: OpenAI) -> None:
    for call in (oai.responses.retrieve, oai.responses.delete):
        with pytest.raises(openai.NotFoundError) as failure:
            call("resp_never")
        assert "resp_never" in error_of(failure.value)["message"]
