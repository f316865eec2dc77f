"""Anthropic Messages API wire types (API version 2023-06-01): the request this adapter sends and
the constants it reads answers with. Answers are decoded to plain dicts and read defensively,
because Anthropic adds block and event types under its versioning policy and the compatible
endpoints (DeepSeek, Moonshot, Z.ai, MiniMax) each omit different optional fields.

Source: Anthropic's Messages API reference and "Streaming messages" guide."""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

API_VERSION = "2023-06-01"

THINKING_MIN_BUDGET = 1024
"""Anthropic rejects a `thinking.budget_tokens` below this ("Extended thinking" guide)."""

# Neutral `reasoning.effort` / OpenAI `reasoning_effort` -> thinking budget in tokens.
EFFORT_BUDGETS: dict[str, int] = {"minimal": 1024, "low": 1024, "medium": 4096, "high": 16384}

# Anthropic `stop_reason` -> OpenAI `finish_reason`. `pause_turn` (a server tool paused a long
# turn) has no OpenAI counterpart; the answer so far is complete, so it reads as "stop".
FINISH_REASONS: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


class TextBlock(TypedDict):
    type: Literal["text"]
    text: str


class Base64Source(TypedDict):
    type: Literal["base64"]
    media_type: str
    data: str


class URLSource(TypedDict):
    type: Literal["url"]
    url: str


class ImageBlock(TypedDict):
    type: Literal["image"]
    source: Base64Source | URLSource


class ThinkingBlock(TypedDict):
    type: Literal["thinking"]
    thinking: str
    signature: str


class ToolUseBlock(TypedDict):
    type: Literal["tool_use"]
    id: str
    name: str
    input: dict[str, Any]


class ToolResultBlock(TypedDict):
    type: Literal["tool_result"]
    tool_use_id: str
    content: str | list[TextBlock]


ContentBlock = TextBlock | ImageBlock | ThinkingBlock | ToolUseBlock | ToolResultBlock


class MessageParam(TypedDict):
    role: Literal["user", "assistant"]
    content: list[ContentBlock]


class ToolParam(TypedDict):
    name: str
    input_schema: dict[str, Any]
    description: NotRequired[str]


class ToolChoice(TypedDict):
    type: Literal["auto", "any", "none", "tool"]
    name: NotRequired[str]
    disable_parallel_tool_use: NotRequired[bool]


class ThinkingConfig(TypedDict):
    type: Literal["enabled", "disabled"]
    budget_tokens: NotRequired[int]


class Metadata(TypedDict):
    user_id: str


class MessagesRequest(TypedDict):
    """The body of `POST /v1/messages`. Only these fields are ever sent: Anthropic answers 400
    to a field it does not know."""

    model: str
    max_tokens: int
    messages: list[MessageParam]
    system: NotRequired[str]
    stop_sequences: NotRequired[list[str]]
    temperature: NotRequired[float]
    top_p: NotRequired[float]
    top_k: NotRequired[int]
    metadata: NotRequired[Metadata]
    tools: NotRequired[list[ToolParam]]
    tool_choice: NotRequired[ToolChoice]
    thinking: NotRequired[ThinkingConfig]
    stream: NotRequired[bool]
