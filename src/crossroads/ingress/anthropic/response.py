"""A neutral `chat.completion` (OpenAI's JSON) turned into an Anthropic Message, plus the pieces
the stream translator shares: stop reasons, usage, ids and tool inputs.

Tool arguments that are not a JSON object (malformed JSON, or JSON of another type) cannot be an
Anthropic `input`, which must be an object; rather than guess or drop them, the model's text is
kept verbatim as `{"_raw_arguments": "<the text>"}` (RAW_ARGUMENTS). A client that validates the
input against the tool's schema then reports the failure to the model, which sees exactly what
it wrote. Empty arguments mean no arguments: `{}`."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from crossroads.schemas import Usage
from crossroads.schemas.sealed_reasoning import seal

__all__ = [
    "RAW_ARGUMENTS",
    "message_id",
    "stop_reason",
    "to_message",
    "tool_input",
    "tool_use_id",
    "usage_fields",
]

JSON = dict[str, Any]

RAW_ARGUMENTS = "_raw_arguments"

_STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def to_message(data: Mapping[str, Any], *, model: str, stop_sequences: Sequence[str] = ()) -> JSON:
    """The Anthropic Message for a whole completion. `model` is the name the client asked for.
    Content blocks come in the order thinking, text, tool_use. Never raises: missing or
    mistyped parts of the upstream document count as absent."""
    choices = data.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices else {}
    choice = choice if isinstance(choice, dict) else {}
    message = choice.get("message")
    message = message if isinstance(message, dict) else {}
    content: list[JSON] = []
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        signature = message.get("reasoning_signature")
        content.append(
            {
                "type": "thinking",
                "thinking": reasoning,
                "signature": signature
                if isinstance(signature, str) and signature
                else seal(reasoning),
            }
        )
    text = _text(message.get("content"))
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal:
        text = f"{text}\n{refusal}" if text else refusal
    if text:
        content.append({"type": "text", "text": text})
    calls = message.get("tool_calls")
    for call in calls if isinstance(calls, list) else ():
        if isinstance(call, dict):
            content.append(_tool_use(call))
    has_tools = any(block["type"] == "tool_use" for block in content)
    reason, sequence = stop_reason(
        choice.get("finish_reason"), choice.get("stop_reason"), has_tools, stop_sequences
    )
    usage = Usage.from_openai(data.get("usage")) or Usage()
    return {
        "id": message_id(data.get("id")),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": reason,
        "stop_sequence": sequence,
        "usage": usage_fields(usage),
    }


def stop_reason(
    finish_reason: Any, matched: Any, has_tool_calls: bool, stop_sequences: Sequence[str]
) -> tuple[str, str | None]:
    """Anthropic's (stop_reason, stop_sequence) for an OpenAI finish reason.

    `matched` is the choice's `stop_reason`, which vLLM and SGLang set to the stop string that
    ended generation; a finish reason of "stop" with one of the request's `stop_sequences`
    there becomes "stop_sequence". Hosts that end a tool-calling turn with "stop" (or none)
    still report "tool_use" so agents run the tools. Unknown reasons become "end_turn".
    """
    if finish_reason in (None, "stop"):
        if isinstance(matched, str) and matched in stop_sequences:
            return "stop_sequence", matched
        if has_tool_calls:
            return "tool_use", None
    reason = _STOP_REASONS.get(finish_reason) if isinstance(finish_reason, str) else None
    return reason or "end_turn", None


def usage_fields(usage: Usage) -> JSON:
    """Anthropic usage: `input_tokens` excludes cache reads and writes (OpenAI's
    `prompt_tokens` includes them); `output_tokens` includes reasoning tokens."""
    return {
        "input_tokens": max(
            usage.prompt_tokens - usage.cached_tokens - usage.cache_write_tokens, 0
        ),
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cached_tokens,
        "output_tokens": usage.completion_tokens,
    }


def message_id(upstream_id: Any) -> str:
    """`msg_` plus the upstream's completion id, or a fresh id when there is none."""
    if isinstance(upstream_id, str) and upstream_id:
        return f"msg_{upstream_id}"
    return f"msg_{uuid.uuid4().hex}"


def tool_use_id(upstream_id: Any) -> str:
    """The upstream's tool call id, exactly; a fresh `toolu_` id when it sent none."""
    if isinstance(upstream_id, str) and upstream_id:
        return upstream_id
    return f"toolu_{uuid.uuid4().hex[:24]}"


def tool_input(arguments: Any) -> JSON:
    """The `input` object for a tool call's arguments text: the parsed object; `{}` for empty
    arguments; otherwise `{RAW_ARGUMENTS: text}` (see the module docstring)."""
    if not isinstance(arguments, str):
        return {} if arguments is None else {RAW_ARGUMENTS: orjson.dumps(arguments).decode()}
    if not arguments.strip():
        return {}
    try:
        parsed = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return {RAW_ARGUMENTS: arguments}
    return parsed if isinstance(parsed, dict) else {RAW_ARGUMENTS: arguments}


def _tool_use(call: JSON) -> JSON:
    function = call.get("function")
    function = function if isinstance(function, dict) else {}
    name = function.get("name")
    return {
        "type": "tool_use",
        "id": tool_use_id(call.get("id")),
        "name": name if isinstance(name, str) else "",
        "input": tool_input(function.get("arguments")),
    }


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""
