"""The OpenTelemetry GenAI semantic conventions as Crossroads fills them: operation and provider
names, the request parameters read from a client's body, and prompts and completions in the
conventions' message shape (recorded only when an operator turns content capture on).

Pure functions over decoded JSON; no SDK import. Names follow the conventions' text at
https://opentelemetry.io/docs/specs/semconv/gen-ai/ (status: development)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson

OPERATIONS = {"embeddings": "embeddings"}
"""`gen_ai.operation.name` by the gateway's endpoint; every other endpoint is a "chat"."""

PROVIDER_NAMES = {
    "openai": "openai",
    "anthropic": "anthropic",
    "deepseek": "deepseek",
    "groq": "groq",
    "google": "gcp.gemini",
}
"""Catalog host ids whose `gen_ai.provider.name` is one of the conventions' well-known values;
any other host goes by its catalog id (e.g. "together", "moonshot")."""

# (body field, attribute): the request parameters both chat APIs spell the same way or that only
# one of them has; a field the body leaves out or sets to null is not recorded.
_PARAMS = (
    ("max_tokens", "gen_ai.request.max_tokens"),
    ("max_completion_tokens", "gen_ai.request.max_tokens"),
    ("temperature", "gen_ai.request.temperature"),
    ("top_p", "gen_ai.request.top_p"),
    ("top_k", "gen_ai.request.top_k"),
    ("frequency_penalty", "gen_ai.request.frequency_penalty"),
    ("presence_penalty", "gen_ai.request.presence_penalty"),
    ("seed", "gen_ai.request.seed"),
    ("n", "gen_ai.request.choice.count"),
)

TRUNCATED = "...[truncated]"

AttributeValue = str | bool | int | float | Sequence[str]


def operation(endpoint: str) -> str:
    return OPERATIONS.get(endpoint, "chat")


def provider_name(host_id: str | None, provider_id: str) -> str:
    if host_id is None:
        return provider_id
    return PROVIDER_NAMES.get(host_id, host_id)


def request_attributes(body: Mapping[str, Any]) -> dict[str, AttributeValue]:
    """The `gen_ai.request.*` parameters a client's body sets (either chat API's spelling)."""
    out: dict[str, AttributeValue] = {}
    for name, attribute in _PARAMS:
        value = body.get(name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        out[attribute] = value
    stop = body.get("stop", body.get("stop_sequences"))
    if isinstance(stop, str):
        stop = [stop]
    if isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        out["gen_ai.request.stop_sequences"] = stop
    return out


def finish_reasons(data: Mapping[str, Any]) -> list[str]:
    """The finish reasons of an OpenAI `chat.completion` or `chat.completion.chunk` document."""
    choices = data.get("choices")
    if not isinstance(choices, list):
        return []
    return [
        reason
        for choice in choices
        if isinstance(choice, dict) and isinstance(reason := choice.get("finish_reason"), str)
    ]


def input_messages(
    body: Mapping[str, Any], scrub: Callable[[str], str], limit: int
) -> dict[str, str]:
    """`gen_ai.input.messages` (and `gen_ai.system_instructions` for an Anthropic `system`)
    as JSON in the conventions' shape: role and text parts; a part of another kind keeps only
    its type. Scrubbed of the gateway's secrets, each cut to `limit` characters."""
    out: dict[str, str] = {}
    messages = body.get("messages")
    if isinstance(messages, list):
        shaped = [
            {"role": str(m.get("role")), "parts": _parts(m.get("content"))}
            for m in messages
            if isinstance(m, dict)
        ]
        out["gen_ai.input.messages"] = _encode(shaped, scrub, limit)
    system = body.get("system")
    if system is not None:
        out["gen_ai.system_instructions"] = _encode(_parts(system), scrub, limit)
    return out


def output_messages(
    text: str, reasons: Sequence[str], scrub: Callable[[str], str], limit: int
) -> str:
    """`gen_ai.output.messages`: the assistant's text answer, scrubbed and cut to `limit`."""
    message = {
        "role": "assistant",
        "parts": [{"type": "text", "content": text}],
        "finish_reason": reasons[0] if reasons else "",
    }
    return _encode([message], scrub, limit)


def completion_text(data: Mapping[str, Any]) -> str:
    """The text of the first choice of an OpenAI `chat.completion`."""
    choices = data.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        message = choices[0].get("message")
        if isinstance(message, dict) and isinstance(message.get("content"), str):
            return str(message["content"])
    return ""


def delta_text(data: Mapping[str, Any]) -> str:
    """The text a `chat.completion.chunk` adds to its first choice."""
    choices = data.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        delta = choices[0].get("delta")
        if isinstance(delta, dict) and isinstance(delta.get("content"), str):
            return str(delta["content"])
    return ""


def _parts(content: object) -> list[dict[str, str]]:
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    if not isinstance(content, list):
        return []
    parts = []
    for part in content:
        if not isinstance(part, dict):
            continue
        kind = str(part.get("type"))
        if kind == "text" and isinstance(part.get("text"), str):
            parts.append({"type": "text", "content": part["text"]})
        else:
            parts.append({"type": kind})
    return parts


def _encode(value: object, scrub: Callable[[str], str], limit: int) -> str:
    text = scrub(orjson.dumps(value).decode())
    return text if len(text) <= limit else text[:limit] + TRUNCATED
