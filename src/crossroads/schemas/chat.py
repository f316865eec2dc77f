"""The neutral chat request. Its shape is OpenAI's Chat Completions request, the lingua franca
every ingress converts to and every provider adapter converts from; validated with msgspec so a
bad field is reported with its JSON path ("at `$.messages[0].content`")."""

from __future__ import annotations

from typing import Any, Literal

import msgspec


class TextPart(msgspec.Struct, tag_field="type", tag="text", forbid_unknown_fields=False):
    text: str


class ImageUrl(msgspec.Struct, forbid_unknown_fields=False):
    url: str
    detail: str | None = None


class ImageUrlPart(msgspec.Struct, tag_field="type", tag="image_url", forbid_unknown_fields=False):
    image_url: ImageUrl


class InputAudioPart(
    msgspec.Struct, tag_field="type", tag="input_audio", forbid_unknown_fields=False
):
    input_audio: dict[str, Any]


class FilePart(msgspec.Struct, tag_field="type", tag="file", forbid_unknown_fields=False):
    file: dict[str, Any]


class RefusalPart(msgspec.Struct, tag_field="type", tag="refusal", forbid_unknown_fields=False):
    refusal: str


ContentPart = TextPart | ImageUrlPart | InputAudioPart | FilePart | RefusalPart


class FunctionCall(msgspec.Struct, forbid_unknown_fields=False):
    name: str
    # Arguments are a JSON text that the model wrote; they are carried, never parsed, here.
    arguments: str


class ToolCall(msgspec.Struct, forbid_unknown_fields=False):
    id: str
    function: FunctionCall
    type: Literal["function"] = "function"


class SystemMessage(msgspec.Struct, tag_field="role", tag="system", forbid_unknown_fields=False):
    content: str | list[TextPart]
    name: str | None = None


class DeveloperMessage(
    msgspec.Struct, tag_field="role", tag="developer", forbid_unknown_fields=False
):
    content: str | list[TextPart]
    name: str | None = None


class UserMessage(msgspec.Struct, tag_field="role", tag="user", forbid_unknown_fields=False):
    content: str | list[ContentPart]
    name: str | None = None


class AssistantMessage(
    msgspec.Struct, tag_field="role", tag="assistant", forbid_unknown_fields=False
):
    content: str | list[TextPart | RefusalPart] | None = None
    tool_calls: list[ToolCall] | None = None
    name: str | None = None
    refusal: str | None = None
    # The gateway's reasoning extensions, as its answers carry them: the model's thinking text,
    # the upstream's signature over it (Anthropic verifies it when the turn comes back), and
    # the opaque data of redacted thinking blocks.
    reasoning_content: str | None = None
    reasoning_signature: str | None = None
    reasoning_redacted: list[str] | None = None


class ToolMessage(msgspec.Struct, tag_field="role", tag="tool", forbid_unknown_fields=False):
    content: str | list[TextPart]
    tool_call_id: str


Message = SystemMessage | DeveloperMessage | UserMessage | AssistantMessage | ToolMessage


class FunctionDefinition(msgspec.Struct, forbid_unknown_fields=False):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(msgspec.Struct, forbid_unknown_fields=False):
    function: FunctionDefinition
    type: Literal["function"] = "function"


class StreamOptions(msgspec.Struct, forbid_unknown_fields=False):
    include_usage: bool = False


class ChatRequest(msgspec.Struct, forbid_unknown_fields=False):
    """A chat request. Fields the gateway does not interpret stay in the raw body and pass
    through to the upstream unchanged; the typed fields here are those it checks or acts on."""

    model: str
    messages: list[Message]
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    n: int | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    tools: list[Tool] | None = None
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    user: str | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None

    @property
    def wants_stream_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage

    @property
    def output_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class Reasoning(msgspec.Struct, forbid_unknown_fields=False):
    """The gateway's `reasoning` extension (OpenRouter's shape): thinking on or off, how hard
    (`effort`: minimal, low, medium or high), a token budget, and whether to leave the thinking
    out of the answer."""

    enabled: bool | None = None
    effort: str | None = None
    max_tokens: int | None = None
    exclude: bool | None = None


class TranslatedRequest(ChatRequest):
    """The neutral request as an adapter that translates it reads it: `ChatRequest` plus the
    extension fields the gateway acts on. Kept apart from `ChatRequest`, which the OpenAI ingress
    validates with, so that these fields stay the provider's to check (their errors are the
    provider's 400s) and a request passed through to an OpenAI-compatible host is checked no
    more than before."""

    parallel_tool_calls: bool | None = None
    reasoning: Reasoning | None = None
    reasoning_effort: str | None = None
    top_k: int | None = None
