"""Token estimates, for /v1/messages/count_tokens and for the ledger when an upstream reports no
usage: ceil(characters / 4) over the text a model reads or writes, plus fixed overheads. Pure
functions of decoded JSON that accept any shape (what they do not recognise counts nothing), so
they never raise on the way to a ledger record.

A request's input (`estimate_input_tokens`, over a neutral, OpenAI-shaped chat request): the
text of every message (system, user, assistant, tool), its reasoning and tool calls (name and
arguments), the tool definitions (their JSON), plus 4 tokens per message for the chat template's
role markers and 1,600 per image (Anthropic's documented cost of an image at its largest size,
since the pixels are not decoded here). An answer's output (`estimate_output_tokens`): the text,
reasoning and tool calls of every choice. Embeddings: the text of each input, or the length of
each token array (those are tokens already)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import orjson

from crossroads.schemas import Usage

__all__ = [
    "CHARS_PER_TOKEN",
    "IMAGE_TOKENS",
    "MESSAGE_OVERHEAD_TOKENS",
    "estimate_embedding_tokens",
    "estimate_input_tokens",
    "estimate_output_tokens",
    "estimated_answer_usage",
    "estimated_embedding_usage",
]

CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD_TOKENS = 4
IMAGE_TOKENS = 1600


def estimate_input_tokens(body: Mapping[str, Any]) -> int:
    """The input-token estimate of a chat request (module docstring)."""
    chars = 0
    fixed = 0
    messages = body.get("messages")
    for message in messages if isinstance(messages, list) else ():
        if not isinstance(message, dict):
            continue
        fixed += MESSAGE_OVERHEAD_TOKENS
        content = message.get("content")
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            for part in content:
                if not isinstance(part, dict):
                    continue
                if part.get("type") == "image_url":
                    fixed += IMAGE_TOKENS
                else:
                    chars += _text_length(part.get("text"))
        chars += _text_length(message.get("reasoning_content")) + _calls_length(message)
    tools = body.get("tools")
    for tool in tools if isinstance(tools, list) else ():
        if isinstance(tool, dict):
            chars += _json_length(tool.get("function", tool))
    return _tokens(chars) + fixed


def estimate_output_tokens(data: Mapping[str, Any]) -> int:
    """The output-token estimate of a `chat.completion` document: the content (or refusal),
    reasoning and tool calls of every choice."""
    chars = 0
    choices = data.get("choices")
    for choice in choices if isinstance(choices, list) else ():
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict):
            continue
        for field in ("content", "refusal", "reasoning_content", "reasoning"):
            chars += _text_length(message.get(field))
        chars += _calls_length(message)
    return _tokens(chars)


def estimate_embedding_tokens(body: Mapping[str, Any]) -> int:
    """The input-token estimate of an embeddings request: ceil(characters / 4) per text input,
    the length of each token-array input."""
    raw = body.get("input")
    items = raw if isinstance(raw, list) and raw and not _is_token(raw[0]) else [raw]
    total = 0
    for item in items:
        if isinstance(item, str):
            total += _tokens(len(item))
        elif isinstance(item, list):
            total += len(item)
    return total


def estimated_answer_usage(request: Mapping[str, Any], answer: Mapping[str, Any]) -> Usage:
    """The usage of a non-streamed chat answer whose upstream reported none, marked estimated."""
    return Usage(
        prompt_tokens=estimate_input_tokens(request),
        completion_tokens=estimate_output_tokens(answer),
        estimated=True,
    )


def estimated_embedding_usage(request: Mapping[str, Any]) -> Usage:
    """The usage of an embeddings request whose upstream reported none, marked estimated."""
    return Usage(prompt_tokens=estimate_embedding_tokens(request), estimated=True)


def _tokens(chars: int) -> int:
    return math.ceil(chars / CHARS_PER_TOKEN)


def _text_length(value: Any) -> int:
    return len(value) if isinstance(value, str) else 0


def _calls_length(message: Mapping[str, Any]) -> int:
    """Characters of a message's tool calls: each function's name and argument text."""
    chars = 0
    calls = message.get("tool_calls")
    for call in calls if isinstance(calls, list) else ():
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            chars += _text_length(function.get("name")) + _text_length(function.get("arguments"))
    return chars


def _json_length(value: Any) -> int:
    try:
        return len(orjson.dumps(value))
    except orjson.JSONEncodeError:  # an integer beyond 64 bits: the upstream never saw it
        return 0


def _is_token(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
