"""Pure converters between OpenAI chat documents and xllamacpp's in-process llama.cpp server: the
request it is given, the chunks it streams back, its errors, and the whole completion assembled
from the chunks. No I/O and no llama.cpp here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec
import orjson

from crossroads.errors import UpstreamError
from crossroads.providers.base import Completion, StreamChunk
from crossroads.schemas import Usage

# The standard fields llama.cpp's chat endpoint honours (tested against the bundled build); the
# rest (model, user, metadata, store, service_tier, ...) mean nothing to a local model and are
# dropped. `stream` and `stream_options` are always set by `build_request`.
_PASSTHROUGH = (
    "messages",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "stop",
    "seed",
    "frequency_penalty",
    "presence_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "response_format",
)
_TOOL_FIELDS = ("tools", "tool_choice", "parallel_tool_calls")
INT32_MAX = 2**31 - 1
_TEXT_PARTS = frozenset({"text", "refusal"})


def build_request(body: Mapping[str, Any], *, tools: bool, n_ctx: int | None = None) -> bytes:
    """The JSON request for llama.cpp: always streamed with usage on the last chunk, because only
    a streamed call can be stopped midway (cancel, deadline) and we reassemble unstreamed answers.

    Raises UpstreamError(status 400, retryable False) for what this deployment cannot serve:
    `n` > 1 (llama.cpp generates the choices but reports the usage of one, so billing would be
    wrong), tools when the model's template has none (llama.cpp would ignore them silently and
    answer in prose), image, audio or file content parts, and a `max_tokens` (or
    `max_completion_tokens`) that is not an integer from 1 to `n_ctx`, the whole context
    (llama.cpp reads it as a 32-bit integer: larger values would wrap round, not be refused).
    """
    n = body.get("n")
    if n is not None and n != 1:
        raise _unservable("this model returns one choice per request: n must be 1", "n_unsupported")
    for name in ("max_tokens", "max_completion_tokens"):
        _check_output_limit(body.get(name), name, n_ctx)
    request = {key: body[key] for key in _PASSTHROUGH if key in body}
    if tools:
        request.update((key, body[key]) for key in _TOOL_FIELDS if key in body)
    elif body.get("tools") and body.get("tool_choice") != "none":
        # With tool_choice "none" the tools are only context the model may not use: drop them.
        raise _unservable("this model does not support tool calling", "tools_unsupported")
    _check_text_only(body.get("messages"))
    request["stream"] = True
    request["stream_options"] = {"include_usage": True}
    try:
        return orjson.dumps(request)
    except orjson.JSONEncodeError as exc:
        raise _unservable(f"the request is not valid JSON: {exc}", None) from None


def _check_output_limit(value: object, name: str, n_ctx: int | None) -> None:
    if value is None:
        return
    top = INT32_MAX if n_ctx is None else n_ctx
    if type(value) is not int or not 1 <= value <= top:
        where = "the 32-bit integer range" if n_ctx is None else f"its context of {n_ctx} tokens"
        raise _unservable(
            f"{name} {value!r:.40} is not an integer from 1 to {top}: this model's output is "
            f"bounded by {where}",
            "max_tokens_too_large",
        )


def parse_document(raw: bytes) -> dict[str, Any]:
    """Decodes one document llama.cpp delivered. Raises the UpstreamError it carries when it is
    an error (llama.cpp reports errors as `{"error": {...}}` in place of a chunk, before or during
    a stream), or UpstreamError(502) when it is not a JSON object."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        doc = None
    if not isinstance(doc, dict):
        raise UpstreamError("the embedded model sent an unreadable answer", retryable=False)
    if "error" in doc:
        raise _from_error_document(doc["error"])
    return doc


def error_for_exception(exc: Exception) -> UpstreamError:
    """Maps what xllamacpp raised: ValueError is a request it rejected (status 400; its message
    names the field and is safe to show); anything else is a llama.cpp failure (status 502, with a
    fixed message; the caller logs the original)."""
    if isinstance(exc, ValueError):
        return UpstreamError(str(exc), retryable=False, upstream_status=400, status=400)
    return UpstreamError("the embedded model failed to generate an answer", retryable=False)


def to_stream_chunk(doc: dict[str, Any], served_model: str) -> StreamChunk:
    """One decoded chunk as the gateway sends it: `model` is the served id (llama.cpp puts its
    file path there) and llama.cpp's non-standard `timings` are dropped. Mutates `doc`."""
    doc["model"] = served_model
    doc.pop("timings", None)
    usage = Usage.from_openai(doc.get("usage"))
    return StreamChunk(
        data=orjson.dumps(doc),
        usage=usage,
        usage_only=usage is not None and doc.get("choices") == [],
    )


class CompletionAssembler:
    """Folds the chunks of one stream into the `chat.completion` document llama.cpp returns when
    not streaming (same fields, minus `timings`)."""

    def __init__(self) -> None:
        self._head: dict[str, Any] = {}
        self._choices: dict[int, _Choice] = {}
        self._usage: Any = None

    def add(self, doc: Mapping[str, Any]) -> None:
        for key in ("id", "created", "system_fingerprint"):
            if key in doc:
                self._head.setdefault(key, doc[key])
        if doc.get("usage") is not None:
            self._usage = doc["usage"]
        for choice in doc.get("choices") or ():
            index = choice.get("index", 0)
            self._choices.setdefault(index, _Choice(index)).add(choice)

    def completion(self, served_model: str) -> Completion:
        """The assembled answer. Raises UpstreamError(502) if the stream carried no choice."""
        if not self._choices:
            raise UpstreamError("the embedded model returned no answer", retryable=False)
        data: dict[str, Any] = {
            "id": self._head.get("id"),
            "object": "chat.completion",
            "created": self._head.get("created"),
            "model": served_model,
            "choices": [self._choices[i].document() for i in sorted(self._choices)],
        }
        if "system_fingerprint" in self._head:
            data["system_fingerprint"] = self._head["system_fingerprint"]
        if self._usage is not None:
            data["usage"] = self._usage
        return Completion(body=orjson.dumps(data), data=data, usage=Usage.from_openai(self._usage))


class _Choice:
    def __init__(self, index: int) -> None:
        self.index = index
        self.role = "assistant"
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.tool_calls: dict[int, dict[str, Any]] = {}
        self.logprobs: list[Any] | None = None
        self.finish_reason: str | None = None

    def add(self, choice: Mapping[str, Any]) -> None:
        delta = choice.get("delta") or {}
        if isinstance(delta.get("role"), str):
            self.role = delta["role"]
        if isinstance(delta.get("content"), str):
            self.content.append(delta["content"])
        if isinstance(delta.get("reasoning_content"), str):
            self.reasoning.append(delta["reasoning_content"])
        for call in delta.get("tool_calls") or ():
            self._add_tool_call(call)
        logprobs = choice.get("logprobs")
        if isinstance(logprobs, dict) and isinstance(logprobs.get("content"), list):
            self.logprobs = (self.logprobs or []) + logprobs["content"]
        if choice.get("finish_reason") is not None:
            self.finish_reason = choice["finish_reason"]

    def _add_tool_call(self, call: Mapping[str, Any]) -> None:
        # OpenAI's streaming rule: the id, type and name come once, the arguments in pieces.
        entry = self.tool_calls.setdefault(
            call.get("index", 0),
            {"id": None, "type": "function", "function": {"name": "", "arguments": ""}},
        )
        if call.get("id"):
            entry["id"] = call["id"]
        function = call.get("function") or {}
        if function.get("name"):
            entry["function"]["name"] = function["name"]
        if isinstance(function.get("arguments"), str):
            entry["function"]["arguments"] += function["arguments"]

    def document(self) -> dict[str, Any]:
        message: dict[str, Any] = {
            "role": self.role,
            "content": "".join(self.content) if self.content or not self.tool_calls else None,
        }
        if self.reasoning:
            message["reasoning_content"] = "".join(self.reasoning)
        if self.tool_calls:
            message["tool_calls"] = [self.tool_calls[i] for i in sorted(self.tool_calls)]
        doc: dict[str, Any] = {
            "index": self.index,
            "message": message,
            "finish_reason": self.finish_reason,
        }
        if self.logprobs is not None:
            doc["logprobs"] = {"content": self.logprobs}
        return doc


class _PartKind(msgspec.Struct):
    type: str | None = None


class _MessageContent(msgspec.Struct):
    content: str | list[_PartKind] | None = None


_MESSAGE_CONTENTS = list[_MessageContent]


def _check_text_only(messages: Any) -> None:
    # llama.cpp without a multimodal projector raises a RuntimeError for media, which would read
    # as a 502; it is the request that this model cannot serve. The messages go to llama.cpp as
    # the client sent them (its format is the client's), so only the part types are read here,
    # typed, and loosely: a malformed `messages` is llama.cpp's to report, as a ValueError.
    try:
        contents = msgspec.convert(messages, _MESSAGE_CONTENTS, str_keys=True)
    except msgspec.ValidationError:
        return
    for message in contents:
        match message.content:
            case [*parts]:
                for part in parts:
                    if part.type is not None and part.type not in _TEXT_PARTS:
                        raise _unservable(
                            f"this model reads text only; the request has a {part.type!r} "
                            "content part",
                            "unsupported_content",
                        )


def _from_error_document(error: Any) -> UpstreamError:
    code = error.get("code") if isinstance(error, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    if isinstance(code, int) and 400 <= code < 500 and isinstance(message, str):
        # llama.cpp's 4xx messages describe the request (a field, the context size): safe.
        kind = error.get("type")
        return UpstreamError(
            message,
            retryable=False,
            upstream_status=code,
            status=400,
            code="context_length_exceeded" if kind == "exceed_context_size_error" else None,
        )
    return UpstreamError(
        "the embedded model failed to generate an answer",
        retryable=False,
        upstream_status=code if isinstance(code, int) else None,
    )


def _unservable(message: str, code: str | None) -> UpstreamError:
    return UpstreamError(message, retryable=False, upstream_status=400, status=400, code=code)
