"""The neutral answer, typed: OpenAI `chat.completion` and `chat.completion.chunk` documents as
msgspec Structs, for the ingresses that translate them into another API's shape.

An OpenAI-format upstream's bytes reach an OpenAI client untouched; an ingress that translates
decodes each document once, straight into these Structs (`decode_chunk`, `decode_completion`),
which checks every field's type on the way: a translator then reads attributes, not `.get`
chains with an `isinstance` at every step. Fields a translator does not use are ignored; the
extension fields open-model hosts use for reasoning (`reasoning_content`, OpenRouter's
`reasoning`) and the gateway's own (`reasoning_signature`) are read.

An adapter that translates from another wire format (Anthropic's) builds its chunks as these
Structs, encodes them once for OpenAI clients (`encode_chunk`) and hands the Struct itself to
translating ingresses (`StreamChunk.parsed`), so no chunk is decoded twice. Encoding leaves out
what was never set, as OpenAI's own chunks do (a delta names only what it carries)."""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = [
    "ChatChunk",
    "ChatCompletion",
    "ChunkChoice",
    "Delta",
    "WireError",
    "decode_chunk",
    "decode_completion",
    "encode_chunk",
]


class FunctionPart(msgspec.Struct, omit_defaults=True):
    name: str | None = None
    arguments: str | None = None


class ToolCallDelta(msgspec.Struct, omit_defaults=True):
    index: int | None = None
    id: str | None = None
    type: str | None = None
    function: FunctionPart | None = None


class Delta(msgspec.Struct, omit_defaults=True):
    role: str | None = None
    content: str | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None
    reasoning_signature: str | None = None
    refusal: str | None = None
    tool_calls: list[ToolCallDelta] | None = None

    @property
    def thinking(self) -> str | None:
        return self.reasoning_content or self.reasoning


class ChunkChoice(msgspec.Struct):
    index: int | None = 0
    delta: Delta | None = None
    logprobs: Any = None
    finish_reason: str | None = None
    # vLLM and SGLang: the stop string (or token id) that ended generation.
    stop_reason: str | int | msgspec.UnsetType | None = msgspec.UNSET


class ChatChunk(msgspec.Struct):
    id: str | None = None
    object: str | None = "chat.completion.chunk"
    created: int | float | None = 0
    model: str | None = None
    choices: list[ChunkChoice] | None = None
    usage: dict[str, Any] | msgspec.UnsetType | None = msgspec.UNSET  # unset: no usage key

    def first_choice(self) -> ChunkChoice | None:
        """The choice with index 0 (or no index): translating ingresses ask for one answer."""
        for choice in self.choices or ():
            if choice.index in (0, None):
                return choice
        return None


class FunctionCall(msgspec.Struct):
    name: str | None = None
    arguments: str | None = None


class ToolCall(msgspec.Struct):
    id: str | None = None
    type: str | None = None
    function: FunctionCall | None = None


class Message(msgspec.Struct):
    role: str | None = None
    content: str | list[dict[str, Any]] | None = None  # some hosts answer in parts
    reasoning_content: str | None = None
    reasoning: str | None = None
    reasoning_signature: str | None = None
    refusal: str | None = None
    tool_calls: list[ToolCall] | None = None

    @property
    def thinking(self) -> str | None:
        return self.reasoning_content or self.reasoning

    @property
    def text(self) -> str:
        """The content as one text (parts' texts joined)."""
        if isinstance(self.content, str):
            return self.content
        return "".join(
            part["text"] for part in self.content or () if isinstance(part.get("text"), str)
        )


class Choice(msgspec.Struct):
    index: int | None = 0
    message: Message | None = None
    finish_reason: str | None = None
    stop_reason: str | int | None = None  # vLLM and SGLang, as on chunks


class ChatCompletion(msgspec.Struct):
    id: str | None = None
    model: str | None = None
    created: int | None = None
    choices: list[Choice] | None = None
    usage: dict[str, Any] | None = None

    def first_choice(self) -> Choice | None:
        for choice in self.choices or ():
            if choice.index in (0, None):
                return choice
        return None


class WireError(ValueError):
    """A document that is not the shape its type says (the upstream's fault)."""


_CHUNK = msgspec.json.Decoder(ChatChunk)
_ENCODER = msgspec.json.Encoder()


def encode_chunk(chunk: ChatChunk) -> bytes:
    return _ENCODER.encode(chunk)


_COMPLETION = msgspec.json.Decoder(ChatCompletion)


def decode_chunk(data: bytes) -> ChatChunk:
    try:
        return _CHUNK.decode(data)
    except msgspec.DecodeError as exc:
        raise WireError(str(exc)) from None


def decode_completion(data: bytes) -> ChatCompletion:
    try:
        return _COMPLETION.decode(data)
    except msgspec.DecodeError as exc:
        raise WireError(str(exc)) from None
