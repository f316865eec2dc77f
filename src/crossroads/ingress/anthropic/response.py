"""A neutral `chat.completion` (OpenAI's JSON) turned into an Anthropic Message, plus the pieces
the stream translator shares: stop reasons, usage, ids and tool inputs.

Tool arguments that are not a JSON object (malformed JSON, or JSON of another type) cannot be an
Anthropic `input`, which must be an object; rather than guess or drop them, the model's text is
kept verbatim as `{"_raw_arguments": "<the text>"}` (RAW_ARGUMENTS). A client that validates the
input against the tool's schema then reports the failure to the model, which sees exactly what
it wrote. Empty arguments mean no arguments: `{}`."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import orjson

from crossroads.schemas import Usage
from crossroads.schemas.chat_wire import ChatCompletion, ToolCall
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


def to_message(
    completion: ChatCompletion, *, model: str, stop_sequences: Sequence[str] = ()
) -> JSON:
    """The Anthropic Message for a whole completion (typed, decoded once). `model` is the name
    the client asked for. Content blocks come in the order thinking, text, tool_use."""
    choice = completion.first_choice()
    message = choice.message if choice is not None else None
    content: list[JSON] = []
    if message is not None:
        reasoning = message.thinking
        if reasoning:
            content.append(
                {
                    "type": "thinking",
                    "thinking": reasoning,
                    "signature": message.reasoning_signature or seal(reasoning),
                }
            )
        text = message.text
        if message.refusal:
            text = f"{text}\n{message.refusal}" if text else message.refusal
        if text:
            content.append({"type": "text", "text": text})
        content += [_tool_use(call) for call in message.tool_calls or ()]
    has_tools = any(block["type"] == "tool_use" for block in content)
    reason, sequence = stop_reason(
        choice.finish_reason if choice else None,
        choice.stop_reason if choice else None,
        has_tools,
        stop_sequences,
    )
    usage = Usage.from_openai(completion.usage) or Usage()
    return {
        "id": message_id(completion.id),
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


def _tool_use(call: ToolCall) -> JSON:
    function = call.function
    return {
        "type": "tool_use",
        "id": tool_use_id(call.id),
        "name": (function.name if function else None) or "",
        "input": tool_input(function.arguments if function else None),
    }
