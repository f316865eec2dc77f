"""The embedded provider's pure converters: the request llama.cpp gets, its errors, the chunks
we pass on, and the completion assembled from a stream (including tool calls, which SmolLM2
never makes but a `model_path` model with `tools: true` may)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from crossroads.errors import UpstreamError
from crossroads.providers.embedded.convert import (
    CompletionAssembler,
    build_request,
    error_for_exception,
    parse_document,
    to_stream_chunk,
)

HELLO = [{"role": "user", "content": "hi"}]
TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {}}}]


def request(body: dict[str, Any], *, tools: bool = False) -> dict[str, Any]:
    decoded: dict[str, Any] = orjson.loads(build_request(body, tools=tools))
    return decoded


def test_the_request_keeps_standard_fields_and_always_streams_with_usage() -> None:
    body = {
        "model": "smollm2-135m",
        "messages": HELLO,
        "max_completion_tokens": 5,
        "temperature": 0,
        "stop": ["."],
        "seed": 1,
        "user": "someone",
        "stream": False,
        "n": 1,
    }
    assert request(body) == {
        "messages": HELLO,
        "max_completion_tokens": 5,
        "temperature": 0,
        "stop": ["."],
        "seed": 1,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"messages": HELLO, "n": 3}, "n_unsupported"),
        ({"messages": HELLO, "tools": TOOLS}, "tools_unsupported"),
        ({"messages": HELLO, "tools": TOOLS, "tool_choice": "required"}, "tools_unsupported"),
        (
            {"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]},
            "unsupported_content",
        ),
    ],
)
def test_what_the_model_cannot_serve_is_a_400(body: dict[str, Any], code: str) -> None:
    with pytest.raises(UpstreamError) as caught:
        build_request(body, tools=False)
    assert caught.value.status == 400 and not caught.value.retryable
    assert caught.value.code == code


def test_tools_pass_when_the_model_has_them_and_drop_when_choice_is_none() -> None:
    with_tools = {"messages": HELLO, "tools": TOOLS, "tool_choice": "auto"}
    assert request(with_tools, tools=True)["tools"] == TOOLS
    assert "tools" not in request({**with_tools, "tool_choice": "none"})


def test_text_parts_are_accepted() -> None:
    messages = [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    assert request({"messages": messages})["messages"] == messages


def test_llama_cpp_error_documents_become_upstream_errors() -> None:
    too_long = {"code": 400, "message": "request (3031 tokens) exceeds the available context size"}
    with pytest.raises(UpstreamError) as caught:
        parse_document(orjson.dumps({"error": {**too_long, "type": "exceed_context_size_error"}}))
    assert caught.value.status == 400 and caught.value.code == "context_length_exceeded"
    assert caught.value.message == too_long["message"]

    with pytest.raises(UpstreamError) as caught:
        parse_document(orjson.dumps({"error": {"code": 500, "message": "/secret/path broke"}}))
    assert caught.value.status == 502 and "/secret" not in caught.value.message

    with pytest.raises(UpstreamError) as caught:
        parse_document(b"[1, 2")
    assert caught.value.status == 502


def test_exceptions_map_to_400_for_value_errors_and_a_fixed_502_otherwise() -> None:
    bad = error_for_exception(ValueError("Expected 'messages' to be an array"))
    assert bad.status == 400 and bad.message == "Expected 'messages' to be an array"
    broken = error_for_exception(RuntimeError("/models/x.gguf: out of memory"))
    assert broken.status == 502 and "gguf" not in broken.message


def test_chunks_get_the_served_model_and_lose_timings() -> None:
    usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    doc = {"choices": [], "model": "/x.gguf", "usage": usage, "timings": {"prompt_n": 3}}
    chunk = to_stream_chunk(doc, "local/m")
    assert orjson.loads(chunk.data) == {"choices": [], "model": "local/m", "usage": usage}
    assert chunk.usage_only and chunk.usage is not None and chunk.usage.total_tokens == 5
    plain = to_stream_chunk({"choices": [{"index": 0, "delta": {"content": "a"}}]}, "local/m")
    assert not plain.usage_only and plain.usage is None


def test_the_assembler_folds_content_logprobs_and_tool_calls() -> None:
    head = {"id": "chatcmpl-1", "created": 7, "system_fingerprint": "b0", "model": "/x.gguf"}
    lp = [{"token": "a", "logprob": -0.1}]

    def piece(index: int, delta: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return {**head, "choices": [{"index": index, "delta": delta, **extra}]}

    def call(**fields: Any) -> dict[str, Any]:
        return {"tool_calls": [{"index": 0, **fields}]}

    chunks = [
        piece(0, {"role": "assistant", "content": None}),
        piece(0, {"content": "a"}, logprobs={"content": lp}),
        piece(0, {"content": "b"}, logprobs={"content": lp}),
        piece(1, call(id="call_1", function={"name": "f", "arguments": ""})),
        piece(1, call(function={"arguments": '{"x":'})),
        piece(1, call(function={"arguments": "1}"})),
        piece(0, {}, finish_reason="stop"),
        piece(1, {}, finish_reason="tool_calls"),
        {**head, "choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 6}},
    ]
    assembler = CompletionAssembler()
    for chunk in chunks:
        assembler.add(chunk)
    completion = assembler.completion("local/m")

    assert orjson.loads(completion.body) == completion.data
    assert completion.data["model"] == "local/m" and completion.data["id"] == "chatcmpl-1"
    assert completion.data["object"] == "chat.completion"
    first, second = completion.data["choices"]
    assert first == {
        "index": 0,
        "message": {"role": "assistant", "content": "ab"},
        "finish_reason": "stop",
        "logprobs": {"content": lp + lp},
    }
    assert second["message"]["content"] is None
    assert second["message"]["tool_calls"] == [
        {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"x":1}'}}
    ]
    assert second["finish_reason"] == "tool_calls"
    assert completion.usage is not None and completion.usage.completion_tokens == 6


def test_a_stream_without_choices_is_a_502() -> None:
    assembler = CompletionAssembler()
    assembler.add({"choices": [], "usage": {"prompt_tokens": 1}})
    with pytest.raises(UpstreamError) as caught:
        assembler.completion("local/m")
    assert caught.value.status == 502


@pytest.mark.parametrize("value", [2**31, 2**40, 2**63 - 1, 4097, 0, -1, 2.5, "many"])
@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_an_output_limit_beyond_the_context_is_a_400_never_wrapped(field: str, value: Any) -> None:
    """llama.cpp reads max_tokens as a 32-bit integer: 2**31 arrived as -2147483648, 2**40 as
    0. The whole context (n_ctx) bounds any generation, so anything above it is refused."""
    with pytest.raises(UpstreamError) as caught:
        build_request({"messages": HELLO, field: value}, tools=False, n_ctx=4096)
    assert caught.value.status == 400 and caught.value.code == "max_tokens_too_large"
    assert field in caught.value.message and "4096" in caught.value.message
    assert request({"messages": HELLO, field: 4096})[field] == 4096
