"""The stream converter: Anthropic Messages stream events in, OpenAI `chat.completion.chunk`
documents out. Pure and stateful (one converter per stream), no I/O.

Event sequence (Anthropic "Streaming messages" guide): `message_start`; per content block a
`content_block_start`, `content_block_delta`s and a `content_block_stop`; one or more
`message_delta`s (stop reason, cumulative usage); `message_stop`. `ping`s may come anywhere, an
`error` event may replace the rest, and unknown event types must be ignored."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from crossroads.errors import UpstreamError
from crossroads.providers.anthropic.answer import convert_usage, finish_reason
from crossroads.providers.anthropic.errors import from_error_object
from crossroads.schemas import Usage
from crossroads.schemas.chat_wire import ChatChunk, ChunkChoice, Delta, FunctionPart, ToolCallDelta

__all__ = ["StreamConverter"]

JSON = dict[str, Any]
_USAGE_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "output_tokens_details",
)


class StreamConverter:
    """Turns the events of one Anthropic stream into OpenAI chunk documents, typed
    (`crossroads.schemas.chat_wire.ChatChunk`).

    - `message_start` -> a chunk with `delta.role` "assistant" (and empty content);
    - text deltas -> `delta.content`; thinking deltas -> `delta.reasoning_content`; the first
      thinking block's signature -> `delta.reasoning_signature` (a gateway extension);
    - a tool_use block's start -> `delta.tool_calls[{index, id, type, function{name,
      arguments: ""}}]` and its `input_json_delta`s -> `function.arguments` pieces; `index`
      counts tool_use blocks only (0, 1, ... for parallel calls);
    - the first `message_delta` with a stop reason -> a chunk with `finish_reason`;
    - `message_stop` -> a usage-only chunk (`choices: []`) with the usage: input counts from
      `message_start`, output from the last `message_delta` (which may also update the input
      counts: the later value wins). `usage` holds the same as a `Usage` from then on.

    Chunks carry id "chatcmpl-" + the message id, `created` and the message's model.
    """

    def __init__(self, provider: str, *, created: int, model: str = "") -> None:
        self.provider = provider
        self.created = created
        self.model = model
        self.started = False
        self.finished = False  # message_stop arrived: the stream is complete
        self.usage: Usage | None = None
        self._id = "chatcmpl-"
        self._usage: JSON = {}
        self._tools: dict[int, int] = {}  # content block index -> tool call index
        self._prefilled: set[int] = set()  # tool blocks whose input came whole in the start
        self._thinking_block: int | None = None  # the block whose signature is relayed
        self._finish_sent = False

    def feed(self, data: str, event: str | None = None) -> list[ChatChunk]:
        """The chunks for one event (its SSE `data`, and its SSE event name as a fallback for
        a `type` member). Raises UpstreamError for an `error` event (see
        `errors.from_error_object`), for data that is not a JSON object, and for content before
        `message_start` (`upstream_bad_response`, retryable)."""
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise self._garbage("a stream event that is not valid JSON") from None
        if not isinstance(obj, dict):
            raise self._garbage("a stream event that is not a JSON object")
        kind = obj.get("type", event)
        if kind == "error":
            raise from_error_object(self.provider, obj.get("error"))
        if kind == "message_start":
            return self._message_start(obj.get("message"))
        handler = _HANDLERS.get(kind) if isinstance(kind, str) else None
        if handler is None:  # ping, and event types added after this was written
            return []
        if not self.started:
            raise self._garbage(f"a '{kind}' stream event before message_start")
        return handler(self, obj)

    # --- events ---------------------------------------------------------------------------

    def _message_start(self, message: Any) -> list[ChatChunk]:
        if not isinstance(message, Mapping):
            raise self._garbage("a message_start event without a message")
        self.started = True
        self._id = f"chatcmpl-{message.get('id', '')}"
        self.model = str(message.get("model") or self.model)
        self._merge_usage(message.get("usage"))
        return [self._chunk(Delta(role="assistant", content=""))]

    def _block_start(self, obj: JSON) -> list[ChatChunk]:
        index = obj.get("index")
        block = obj.get("content_block")
        if not isinstance(index, int) or not isinstance(block, Mapping):
            return []
        kind = block.get("type")
        if kind == "text" and block.get("text"):
            return [self._chunk(Delta(content=str(block["text"])))]
        if kind == "thinking":
            if self._thinking_block is None:
                self._thinking_block = index
            if block.get("thinking"):
                return [self._chunk(Delta(reasoning_content=str(block["thinking"])))]
        if kind == "tool_use":
            position = self._tools[index] = len(self._tools)
            arguments = ""
            # Anthropic starts a tool_use block with `input: {}` and streams the input as JSON
            # pieces; an endpoint that sends the whole input here gets it relayed at once (and
            # any later pieces for the block ignored, so the arguments are not doubled).
            if isinstance(block.get("input"), dict) and block["input"]:
                arguments = orjson.dumps(block["input"]).decode()
                self._prefilled.add(index)
            call = ToolCallDelta(
                index=position,
                id=str(block.get("id") or ""),
                type="function",
                function=FunctionPart(name=str(block.get("name") or ""), arguments=arguments),
            )
            return [self._chunk(Delta(tool_calls=[call]))]
        return []

    def _block_delta(self, obj: JSON) -> list[ChatChunk]:
        index = obj.get("index")
        delta = obj.get("delta")
        if not isinstance(delta, Mapping):
            return []
        kind = delta.get("type")
        if kind == "text_delta" and delta.get("text"):
            return [self._chunk(Delta(content=str(delta["text"])))]
        if kind == "thinking_delta" and delta.get("thinking"):
            return [self._chunk(Delta(reasoning_content=str(delta["thinking"])))]
        if kind == "signature_delta" and index == self._thinking_block and delta.get("signature"):
            return [self._chunk(Delta(reasoning_signature=str(delta["signature"])))]
        if (
            kind == "input_json_delta"
            and isinstance(index, int)
            and index in self._tools
            and index not in self._prefilled
            and delta.get("partial_json")
        ):
            piece = FunctionPart(arguments=str(delta["partial_json"]))
            call = ToolCallDelta(index=self._tools[index], function=piece)
            return [self._chunk(Delta(tool_calls=[call]))]
        return []

    def _message_delta(self, obj: JSON) -> list[ChatChunk]:
        self._merge_usage(obj.get("usage"))
        delta = obj.get("delta")
        stop_reason = delta.get("stop_reason") if isinstance(delta, Mapping) else None
        if stop_reason is None or self._finish_sent:
            return []
        self._finish_sent = True
        return [self._chunk(Delta(), finish_reason(stop_reason))]

    def _message_stop(self, obj: JSON) -> list[ChatChunk]:
        self.finished = True
        openai_usage, self.usage = convert_usage(self._usage)
        return [
            ChatChunk(
                id=self._id, created=self.created, model=self.model, choices=[], usage=openai_usage
            )
        ]

    # --- helpers ----------------------------------------------------------------------------

    def _merge_usage(self, usage: Any) -> None:
        if isinstance(usage, Mapping):
            for key in _USAGE_FIELDS:
                if usage.get(key) is not None:
                    self._usage[key] = usage[key]

    def _chunk(self, delta: Delta, finish: str | None = None) -> ChatChunk:
        choice = ChunkChoice(index=0, delta=delta, finish_reason=finish)
        return ChatChunk(id=self._id, created=self.created, model=self.model, choices=[choice])

    def _garbage(self, what: str) -> UpstreamError:
        return UpstreamError(
            f"provider '{self.provider}' returned {what}",
            retryable=True,
            code="upstream_bad_response",
        )


_HANDLERS = {
    "content_block_start": StreamConverter._block_start,
    "content_block_delta": StreamConverter._block_delta,
    "message_delta": StreamConverter._message_delta,
    "message_stop": StreamConverter._message_stop,
}
