"""The answer converter: an Anthropic Message in, an OpenAI `chat.completion` document out,
with its usage (`completion_from_message`, `convert_usage`, `finish_reason`). Pure, no I/O.

Source: the Messages API reference (Message object, `stop_reason`, `usage`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from crossroads.providers.anthropic.wire import FINISH_REASONS
from crossroads.schemas import Usage

__all__ = ["completion_from_message", "convert_usage", "finish_reason"]

JSON = dict[str, Any]


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def convert_usage(usage: Any) -> tuple[JSON, Usage]:
    """(OpenAI `usage` object, Usage) for an Anthropic `usage` object. Anthropic's
    `input_tokens` excludes cache reads and writes; OpenAI's `prompt_tokens` includes them, so
    prompt = input + cache read + cache write. Cache writes are reported as
    `prompt_tokens_details.cache_write_tokens` (a gateway extension) and as
    `Usage.cache_write_tokens`. Missing or null counts read as 0."""
    usage = usage if isinstance(usage, Mapping) else {}
    read = _count(usage.get("cache_read_input_tokens"))
    write = _count(usage.get("cache_creation_input_tokens"))
    prompt = _count(usage.get("input_tokens")) + read + write
    completion = _count(usage.get("output_tokens"))
    details = usage.get("output_tokens_details")
    thinking = _count(details.get("thinking_tokens")) if isinstance(details, Mapping) else 0
    openai: JSON = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": read, "cache_write_tokens": write},
    }
    if thinking:
        openai["completion_tokens_details"] = {"reasoning_tokens": thinking}
    return openai, Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        cached_tokens=read,
        cache_write_tokens=write,
        reasoning_tokens=thinking,
    )


def finish_reason(stop_reason: Any) -> str:
    """The OpenAI finish_reason for an Anthropic stop_reason; an unknown one reads as "stop"."""
    return FINISH_REASONS.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


def completion_from_message(
    message: Mapping[str, Any], *, created: int, model: str = ""
) -> tuple[JSON, Usage]:
    """(OpenAI `chat.completion`, Usage) for an Anthropic Message whose `content` is a list;
    `model` stands in when the message names none.

    Text blocks join into `content` (None when there are none); thinking blocks join into
    `reasoning_content`, and the first one's signature becomes `reasoning_signature` (a gateway
    extension a client sends back to keep the reasoning in a multi-turn conversation);
    tool_use blocks become `tool_calls` with their ids kept. Redacted thinking and server-tool
    blocks have no OpenAI counterpart and are dropped."""
    texts: list[str] = []
    thoughts: list[str] = []
    signature: str | None = None
    calls: list[JSON] = []
    for block in message.get("content") or []:
        kind = block.get("type") if isinstance(block, Mapping) else None
        if kind == "text":
            texts.append(str(block.get("text") or ""))
        elif kind == "thinking":
            thoughts.append(str(block.get("thinking") or ""))
            if signature is None and isinstance(block.get("signature"), str):
                signature = block["signature"]
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            function = {"name": str(block.get("name") or ""), "arguments": arguments}
            calls.append(
                {"id": str(block.get("id") or ""), "type": "function", "function": function}
            )
    reply: JSON = {"role": "assistant", "content": "".join(texts) if texts else None}
    if thoughts:
        reply["reasoning_content"] = "".join(thoughts)
        if signature:
            reply["reasoning_signature"] = signature
    if calls:
        reply["tool_calls"] = calls
    openai_usage, usage = convert_usage(message.get("usage"))
    choice = {
        "index": 0,
        "message": reply,
        "logprobs": None,
        "finish_reason": finish_reason(message.get("stop_reason")),
    }
    document: JSON = {
        "id": f"chatcmpl-{message.get('id', '')}",
        "object": "chat.completion",
        "created": created,
        "model": str(message.get("model") or model),
        "choices": [choice],
        "usage": openai_usage,
    }
    return document, usage
