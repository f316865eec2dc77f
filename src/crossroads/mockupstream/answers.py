"""The mock upstream's deterministic answers, as OpenAI wire-format JSON: chat completions,
stream chunks, tool calls, usage, embeddings and error bodies. Pure functions, no I/O."""

from __future__ import annotations

import base64
import hashlib
import json
import math
import struct
from dataclasses import dataclass
from typing import Any

from crossroads.mockupstream.script import Script

__all__ = [
    "Answer",
    "completion_body",
    "embeddings_body",
    "error_body",
    "plan_answer",
    "presented_key",
    "scripted_problem",
    "stream_chunks",
]

JSON = dict[str, Any]

_ERROR_TYPES = {
    400: ("invalid_request_error", "invalid_request"),
    401: ("authentication_error", "invalid_api_key"),
    403: ("permission_error", "forbidden"),
    404: ("invalid_request_error", "model_not_found"),
    408: ("timeout_error", "timeout"),
    413: ("invalid_request_error", "request_too_large"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
}


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool call a `tool_call` script answers with."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class Answer:
    """Everything one chat answer says, decided before any byte is sent."""

    id: str
    created: int
    model: str
    content: str
    reasoning: str
    tool_calls: tuple[ToolCall, ...]
    pieces: tuple[str, ...]  # content pieces, or the first tool call's argument pieces
    reasoning_pieces: tuple[str, ...]  # with `inline_think`, pieces of the whole think block
    usage: JSON
    reports_usage: bool = True  # False: the answer carries no usage (`no_usage`)
    inline_think: bool = False  # reasoning goes in `content` as <think>...</think>
    reasoning_field: str = "reasoning_content"  # where reasoning goes when not inline

    @property
    def tool_call(self) -> ToolCall | None:
        """The first tool call, or None."""
        return self.tool_calls[0] if self.tool_calls else None

    @property
    def finish_reason(self) -> str:
        return "tool_calls" if self.tool_calls else "stop"


def split_text(text: str, parts: int) -> tuple[str, ...]:
    """Split `text` into `parts` consecutive non-empty pieces of near-equal length (fewer when
    the text is shorter than `parts`; one empty piece for empty text)."""
    parts = max(1, min(parts, len(text)))
    size, extra = divmod(len(text), parts)
    pieces, start = [], 0
    for index in range(parts):
        end = start + size + (1 if index < extra else 0)
        pieces.append(text[start:end])
        start = end
    return tuple(pieces)


def message_text(content: Any) -> str:
    """The text of a message's `content`: a string, or the `text` parts of a content list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def _messages(body: JSON) -> list[JSON]:
    messages = body.get("messages")
    if not isinstance(messages, list):
        return []
    return [m for m in messages if isinstance(m, dict)]


def _last_user_text(body: JSON) -> str:
    for message in reversed(_messages(body)):
        if message.get("role") == "user":
            return message_text(message.get("content"))
    return ""


def _chosen_tools(body: JSON, parallel: bool, name: str | None = None) -> list[JSON]:
    """The tool called `name` if given (none when it is not offered); else the tool named by
    `tool_choice`, else the first tool; with `parallel` (and no named tool, and
    `parallel_tool_calls` not false) every offered tool."""
    tools = [t for t in body.get("tools") or [] if isinstance(t, dict) and t.get("function")]
    if name is not None:
        return [dict(t["function"]) for t in tools if t["function"].get("name") == name][:1]
    if not tools:
        return []
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        wanted = (choice.get("function") or {}).get("name")
        for tool in tools:
            if tool["function"].get("name") == wanted:
                return [dict(tool["function"])]
    if parallel and body.get("parallel_tool_calls") is not False:
        return [dict(tool["function"]) for tool in tools]
    return [dict(tools[0]["function"])]


def _placeholder(schema: Any, text: str) -> Any:
    if not isinstance(schema, dict):
        return text
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type")
    defaults: dict[str, Any] = {"integer": 1, "number": 1.5, "boolean": True, "array": []}
    if kind == "object":
        return _arguments(schema, text)
    return defaults.get(kind, text) if isinstance(kind, str) else text


def _arguments(schema: Any, text: str) -> JSON:
    properties = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(properties, dict):
        return {}
    return {name: _placeholder(sub, text) for name, sub in properties.items()}


def _usage(script: Script, body: JSON, completion: int) -> JSON:
    prompt = sum(len(message_text(m.get("content")).split()) for m in _messages(body))
    if script.usage is not None:
        prompt, completion = script.usage
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": script.cached},
        "completion_tokens_details": {"reasoning_tokens": script.reasoning},
    }


def _json_content(body: JSON, text: str) -> str | None:
    """The content a host in JSON mode writes: placeholders for a `json_schema` format's
    properties, `{"answer": text}` for `json_object`; None when JSON was not asked for."""
    response_format = body.get("response_format")
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "json_object":
        return json.dumps({"answer": text})
    if kind == "json_schema":
        spec = response_format.get("json_schema") if isinstance(response_format, dict) else None
        schema = spec.get("schema") if isinstance(spec, dict) else None
        return json.dumps(_arguments(schema, text))
    return None


def plan_answer(body: JSON, script: Script, sequence: int, created: int) -> Answer:
    """Decide the answer to chat request `body`: "mock answer: " plus the last user message
    (a JSON object when `response_format` asks for one), in `script.chunks` pieces; or, when the
    script says `tool_call` and the request offers tools, a call to the `tool=` function (else
    the `tool_choice` one, else the first tool; with `parallel_tools`, every tool) whose
    arguments are `tool_args` or fill each schema property with a placeholder (strings get the
    user's text), streamed in pieces. With
    `reasoning=N`, N words of reasoning come first. Default usage: prompt tokens are the words
    in all messages, completion tokens are the pieces plus the reasoning tokens."""
    user_text = _last_user_text(body)
    chosen = _chosen_tools(body, script.parallel_tools, script.tool_name)
    tools = chosen if script.tool_call else []
    tool_calls = []
    for position, tool in enumerate(tools):
        arguments = script.tool_args or json.dumps(_arguments(tool.get("parameters"), user_text))
        call_id = f"call_mock_{sequence}" + (f"_{position}" if position else "")
        tool_calls.append(ToolCall(call_id, str(tool.get("name", "")), arguments))
    if tool_calls:
        content = ""
        pieces = split_text(tool_calls[0].arguments, max(script.chunks, 3))
    else:
        content = script.say or _json_content(body, user_text) or "mock answer: " + user_text
        pieces = split_text(content, script.chunks)
    reasoning = " ".join(["thinking"] * script.reasoning)
    reasoning_pieces = split_text(reasoning, min(script.chunks, script.reasoning))
    inline = script.think_tags and bool(reasoning)
    if inline:
        reasoning_pieces = split_text(_think_block(reasoning), max(script.chunks, 3))
    return Answer(
        id=f"chatcmpl-mock-{sequence}",
        created=created,
        model=str(body.get("model", "mock")),
        content=content,
        reasoning=reasoning,
        tool_calls=tuple(tool_calls),
        pieces=pieces,
        reasoning_pieces=reasoning_pieces if reasoning else (),
        usage=_usage(script, body, len(pieces) + script.reasoning),
        reports_usage=not script.no_usage,
        inline_think=inline,
        reasoning_field=script.reasoning_field,
    )


def _think_block(reasoning: str) -> str:
    return f"<think>\n{reasoning}\n</think>\n\n"


def completion_body(answer: Answer) -> JSON:
    """The non-streaming `chat.completion` object (without `usage` under `no_usage`)."""
    message: JSON = {"role": "assistant", "content": answer.content or None}
    if answer.inline_think:
        message["content"] = _think_block(answer.reasoning) + answer.content
    elif answer.reasoning:
        message[answer.reasoning_field] = answer.reasoning
    if answer.tool_calls:
        message["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in answer.tool_calls
        ]
    document: JSON = {
        "id": answer.id,
        "object": "chat.completion",
        "created": answer.created,
        "model": answer.model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": answer.finish_reason,
            }
        ],
    }
    if answer.reports_usage:
        document["usage"] = answer.usage
    return document


def stream_chunks(answer: Answer, include_usage: bool) -> list[JSON]:
    """The `chat.completion.chunk` objects of a streamed answer, in order: the role, reasoning
    deltas, content (or tool-call argument) deltas, the finish reason and, when
    `include_usage`, a last chunk with no choices and the usage. As OpenAI does, every other
    chunk then carries `"usage": null`. Parallel tool calls follow one another, each opened by
    a delta with its index, id and name."""
    deltas: list[JSON] = []
    calls = answer.tool_calls
    # Hosts stream reasoning before the calls it leads to: the first call opens the first
    # delta only when no reasoning comes before it.
    header_first = bool(calls) and not answer.reasoning_pieces
    first: JSON = {"role": "assistant", "content": None if calls else ""}
    if header_first:
        first["tool_calls"] = [_call_header(0, calls[0])]
    deltas.append(first)
    if answer.inline_think:
        deltas += [{"content": p} for p in answer.reasoning_pieces]
    else:
        field = answer.reasoning_field
        deltas += [{"content": None, field: p} for p in answer.reasoning_pieces]
    if not calls:
        deltas += [{"content": piece} for piece in answer.pieces]
    for index, call in enumerate(calls):
        if index or not header_first:
            deltas.append({"tool_calls": [_call_header(index, call)]})
        pieces = answer.pieces if index == 0 else split_text(call.arguments, len(answer.pieces))
        for piece in pieces:
            deltas.append({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    chunks = [_chunk(answer, [_choice(delta, None)]) for delta in deltas]
    chunks.append(_chunk(answer, [_choice({}, answer.finish_reason)]))
    if include_usage and answer.reports_usage:
        for chunk in chunks:
            chunk["usage"] = None
        chunks.append({**_chunk(answer, []), "usage": answer.usage})
    return chunks


def _call_header(index: int, call: ToolCall) -> JSON:
    function = {"name": call.name, "arguments": ""}
    return {"index": index, "id": call.id, "type": "function", "function": function}


def _choice(delta: JSON, finish_reason: str | None) -> JSON:
    return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}


def _chunk(answer: Answer, choices: list[JSON]) -> JSON:
    return {
        "id": answer.id,
        "object": "chat.completion.chunk",
        "created": answer.created,
        "model": answer.model,
        "system_fingerprint": None,
        "choices": choices,
    }


def _vector(text: str, dimensions: int) -> list[float]:
    raw = hashlib.shake_256(text.encode("utf-8")).digest(2 * dimensions)
    values = [v / 32767.5 - 1.0 for v in struct.unpack(f"<{dimensions}H", raw)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


def embeddings_body(body: JSON) -> JSON:
    """The embeddings list for `body["input"]` (a string, token list, or list of either): unit
    vectors of `dimensions` (default 16) derived from a hash of each input, so the same input
    always gets the same vector. Honours `encoding_format: "base64"` (little-endian float32)."""
    raw_input = body.get("input", "")
    if isinstance(raw_input, str) or (
        isinstance(raw_input, list) and raw_input and isinstance(raw_input[0], int)
    ):
        raw_input = [raw_input]
    inputs = [item if isinstance(item, str) else json.dumps(item) for item in raw_input or []]
    dimensions = body.get("dimensions")
    if not isinstance(dimensions, int) or dimensions < 1:
        dimensions = 16
    data = []
    for index, text in enumerate(inputs):
        vector: Any = _vector(text, dimensions)
        if body.get("encoding_format") == "base64":
            vector = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode("ascii")
        data.append({"object": "embedding", "index": index, "embedding": vector})
    tokens = sum(len(text.split()) for text in inputs)
    return {
        "object": "list",
        "data": data,
        "model": str(body.get("model", "mock")),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def error_body(status: int, message: str, code: str | None = None) -> JSON:
    """An OpenAI error object: {"error": {"message", "type", "param", "code"}}."""
    kind, default_code = _ERROR_TYPES.get(
        status, ("server_error" if status >= 500 else "api_error", f"status_{status}")
    )
    return {
        "error": {"message": message, "type": kind, "param": None, "code": code or default_code}
    }


def presented_key(headers: Any) -> str:
    """The credential a request presented (`Authorization: Bearer`, or `x-api-key`), or ""."""
    bearer = str(headers.get("authorization") or "")
    return bearer.removeprefix("Bearer ").strip() or str(headers.get("x-api-key") or "")


def scripted_problem(body: JSON, script: Script) -> str | None:
    """What a host with the script's request checks (`refuse`, `require_reasoning_replay`)
    would refuse in the chat request `body`, as its 400 message would say, or None."""
    for field in script.refuse:
        if field in body:
            return f"Unsupported parameter: '{field}' is not supported by this model."
    if not script.require_reasoning_replay:
        return None
    for index, message in enumerate(_messages(body)):
        if message.get("role") != "assistant" or not message.get("tool_calls"):
            continue
        if script.think_tags:
            if "<think>" not in message_text(message.get("content")):
                return (
                    f"messages[{index}]: the assistant message that called tools must be "
                    "passed back whole, its <think> block included"
                )
        elif not message.get("reasoning_content"):
            return (
                f"Missing `reasoning_content` field in the assistant message at message index "
                f"{index}: in thinking mode it must be passed back after a tool call"
            )
    return None
