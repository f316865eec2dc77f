"""The state machine that turns a neutral stream (OpenAI `chat.completion.chunk` documents,
typed: `crossroads.schemas.chat_wire.ChatChunk`) into Anthropic's streaming events. Pure:
chunks in, events out, no I/O.

The events, in order: `message_start` (empty content; usage known so far, else zeros), `ping`,
then one block at a time, each `content_block_start`, its deltas, `content_block_stop`:
`thinking` blocks (from `reasoning_content`; `thinking_delta`, then a `signature_delta` before
the stop when the upstream gave a `reasoning_signature`), `text` blocks (`text_delta`) and one
`tool_use` block per tool call (`input_json_delta` carrying the argument text as the upstream
streamed it). `finish()` adds `message_delta` (stop reason, and the usage, which OpenAI streams
send last, after the finish reason) and `message_stop`.

Tool calls are keyed by their OpenAI `index` (by id, or the latest call, for hosts that omit
it); each gets its own block and index, opened once its name is known. Anthropic never
interleaves blocks: a new block closes the open one. A host that still sends argument text for
a call whose block was already closed gets that text delivered on the call's own block index
rather than dropped."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from crossroads.ingress.anthropic.response import message_id, stop_reason, tool_use_id, usage_fields
from crossroads.schemas import Usage
from crossroads.schemas.chat_wire import ChatChunk, ChunkChoice, ToolCallDelta
from crossroads.schemas.sealed_reasoning import seal
from crossroads.sse import encode_event

__all__ = ["Event", "StreamTranslator", "encode_events"]

JSON = dict[str, Any]
Event = tuple[str, JSON]
"""An event's type and its payload (whose `type` field repeats the event type)."""


def encode_events(events: Iterable[Event]) -> bytes:
    """The events as SSE: `event: <type>\\ndata: <json>\\n\\n` each."""
    return b"".join(encode_event(orjson.dumps(payload), name) for name, payload in events)


@dataclass(slots=True)
class _ToolCall:
    id: str | None = None
    name: str = ""
    block: int | None = None  # the Anthropic block index, once opened
    pending: list[str] = field(default_factory=list)  # argument text before the block opened


class StreamTranslator:
    """One stream's translation. Call `feed` with each decoded chunk, then `finish` once when
    the upstream stream ended cleanly; after an upstream error send an error event instead and
    do not call `finish`. `usage` is the last usage the upstream reported, or None. Not
    thread-safe; one per stream.

    `input_estimate` is the input-token count `message_start` reports when the upstream has not
    reported usage before its first content (most do so only at the end): agents read that first
    figure to track their context window, so 0 would mislead them."""

    __slots__ = (
        "_finish_reason",
        "_input_estimate",
        "_matched",
        "_model",
        "_next_block",
        "_open",
        "_signature",
        "_started",
        "_stop_sequences",
        "_thinking",
        "_tools",
        "usage",
    )

    def __init__(
        self, model: str, stop_sequences: Sequence[str] = (), input_estimate: int = 0
    ) -> None:
        self._model = model
        self._input_estimate = input_estimate
        self._stop_sequences = tuple(stop_sequences)
        self._started = False
        self._next_block = 0
        self._open: tuple[str, int] | None = None  # (kind, index) of the open block
        self._signature = ""  # of the open thinking block
        self._thinking: list[str] = []  # its text, to seal when the upstream signs nothing
        self._tools: dict[Any, _ToolCall] = {}
        self._finish_reason: Any = None
        self._matched: Any = None
        self.usage: Usage | None = None

    def feed(self, chunk: ChatChunk) -> list[Event]:
        """The events one chunk produces (the first chunk also starts the message). Chunks with
        nothing to say (a role, empty content, usage only) produce none, or only the start."""
        events: list[Event] = []
        usage = Usage.from_openai(chunk.usage)
        if usage is not None:
            self.usage = usage
        if not self._started:
            events += self._start(chunk.id)
        # Anthropic has one answer per request; the ingress never asks for n > 1.
        choice = chunk.first_choice()
        if choice is not None:
            events += self._choice(choice)
        return events

    def finish(self) -> list[Event]:
        """Closes the message: any block still open (and tool calls that never got a name),
        then `message_delta` with the stop reason and usage, then `message_stop`."""
        events: list[Event] = [] if self._started else self._start(None)
        for call in self._tools.values():
            if call.block is None:
                events += self._open_tool(call)
        events += self._close()
        has_tools = bool(self._tools)
        reason, sequence = stop_reason(
            self._finish_reason, self._matched, has_tools, self._stop_sequences
        )
        usage = usage_fields(self.usage) if self.usage is not None else {"output_tokens": 0}
        events.append(
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": reason, "stop_sequence": sequence},
                    "usage": usage,
                },
            )
        )
        events.append(("message_stop", {"type": "message_stop"}))
        return events

    def _start(self, upstream_id: Any) -> list[Event]:
        self._started = True
        usage = (
            usage_fields(self.usage)
            if self.usage is not None
            else {"input_tokens": self._input_estimate, "output_tokens": 0}
        )
        usage["output_tokens"] = 0
        message: JSON = {
            "id": message_id(upstream_id),
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage,
        }
        return [
            ("message_start", {"type": "message_start", "message": message}),
            ("ping", {"type": "ping"}),
        ]

    def _choice(self, choice: ChunkChoice) -> list[Event]:
        events: list[Event] = []
        delta = choice.delta
        if delta is not None:
            reasoning = delta.thinking
            if reasoning:
                events += self._delta("thinking", {"type": "thinking_delta", "thinking": reasoning})
                self._thinking.append(reasoning)
            signature = delta.reasoning_signature
            if signature and self._kind() == "thinking":
                self._signature = signature
            for text in (delta.content, delta.refusal):
                if text:
                    events += self._delta("text", {"type": "text_delta", "text": text})
            for call in delta.tool_calls or ():
                events += self._tool_delta(call)
        if choice.finish_reason:
            self._finish_reason = choice.finish_reason
            self._matched = choice.stop_reason or None
        return events

    def _kind(self) -> str | None:
        return self._open[0] if self._open else None

    def _delta(self, kind: str, delta: JSON) -> list[Event]:
        """A thinking or text delta, opening a block of that kind first when needed."""
        events: list[Event] = []
        if self._kind() != kind:
            events += self._close()
            empty: JSON = (
                {"type": "thinking", "thinking": "", "signature": ""}
                if kind == "thinking"
                else {"type": "text", "text": ""}
            )
            events.append(self._begin(kind, empty))
        assert self._open is not None
        events.append(_block_delta(self._open[1], delta))
        return events

    def _tool_delta(self, delta: ToolCallDelta) -> list[Event]:
        call = self._tools.setdefault(self._tool_key(delta), _ToolCall())
        if call.id is None and delta.id:
            call.id = delta.id
        function = delta.function
        name = function.name if function is not None else None
        if call.block is None and name:
            call.name = name
        fragment = (function.arguments if function is not None else None) or ""
        if call.block is None:
            if fragment:
                call.pending.append(fragment)
            return self._open_tool(call) if call.name else []
        return [_json_delta(call.block, fragment)] if fragment else []

    def _tool_key(self, delta: ToolCallDelta) -> Any:
        if delta.index is not None:
            return delta.index
        call_id = delta.id
        if call_id:
            for key, call in self._tools.items():
                if call.id == call_id:
                    return key
            return ("id", call_id)
        return next(reversed(self._tools), 0)

    def _open_tool(self, call: _ToolCall) -> list[Event]:
        events = self._close()
        call.id = tool_use_id(call.id)
        block = {"type": "tool_use", "id": call.id, "name": call.name, "input": {}}
        events.append(self._begin("tool_use", block))
        call.block = self._next_block - 1
        if call.pending:
            events.append(_json_delta(call.block, "".join(call.pending)))
            call.pending.clear()
        return events

    def _begin(self, kind: str, block: JSON) -> Event:
        index = self._next_block
        self._next_block += 1
        self._open = (kind, index)
        return (
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": block},
        )

    def _close(self) -> list[Event]:
        if self._open is None:
            return []
        kind, index = self._open
        events: list[Event] = []
        if kind == "thinking":
            # Every thinking block is signed: clients such as @ai-sdk/anthropic (opencode) drop
            # unsigned ones from the history they send back, and the upstream would then never
            # get its reasoning back in a tool loop.
            signature = self._signature or seal("".join(self._thinking))
            events.append(_block_delta(index, {"type": "signature_delta", "signature": signature}))
        self._open = None
        self._signature = ""
        self._thinking = []
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
        return events


def _block_delta(index: int, delta: JSON) -> Event:
    return ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})


def _json_delta(index: int, partial: str) -> Event:
    return _block_delta(index, {"type": "input_json_delta", "partial_json": partial})
