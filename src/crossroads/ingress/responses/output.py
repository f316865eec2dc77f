"""The Responses API's answer, from the neutral one: the Response object of a whole answer, and
the state machine that turns a neutral stream (typed `chat.completion.chunk` documents) into
the Responses streaming events. Pure: no I/O.

Output items, in the order the upstream produced them: a `reasoning` item (the upstream's
reasoning as `reasoning_text` content; as `summary_text` too when the client asked for a
summary, since the gateway has no summariser; sealed into `encrypted_content` when the client
asked for `reasoning.encrypted_content`, so it comes back on the next turn and a DeepSeek-style
host gets its reasoning back inside a tool loop), a `message` item (`output_text`), and one
`function_call` item per tool call (`custom_tool_call` for the request's custom tools).

The streaming events, as OpenAI documents them, each with a `sequence_number` counting from 0:
`response.created`, `response.in_progress`; per item `response.output_item.added`, its content
events, `response.output_item.done`; for a message `response.content_part.added`,
`response.output_text.delta`..., `response.output_text.done`, `response.content_part.done`; for
reasoning `response.reasoning_text.delta` / `.done` (and `response.reasoning_summary_part.added`,
`response.reasoning_summary_text.delta` / `.done`, `response.reasoning_summary_part.done`); for
a call `response.function_call_arguments.delta` / `.done` (`response.custom_tool_call_input.*`
for custom tools). Reasoning and message items end when the next item starts; calls may stream
in parallel, so call items stay open until the answer ends. The stream ends with
`response.completed` (or `response.incomplete` when the answer was cut at `max_output_tokens`
or by a content filter) carrying the whole Response and its usage; a failure after the first
event ends it with `response.failed`, never a silent end."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from crossroads.errors import GatewayError
from crossroads.ingress.responses.request import Converted
from crossroads.schemas import Usage
from crossroads.schemas.chat_wire import ChatChunk, ChatCompletion, Delta
from crossroads.schemas.sealed_reasoning import seal, seal_signed
from crossroads.sse import encode_event

__all__ = ["Event", "ResponseShell", "StreamTranslator", "encode_events", "whole_response"]

JSON = dict[str, Any]
Event = tuple[str, JSON]


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def usage_object(usage: Usage | None) -> JSON | None:
    if usage is None:
        return None
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {
            "cached_tokens": usage.cached_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
        },
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total_tokens,
    }


@dataclass(slots=True)
class ResponseShell:
    """The Response object's fields that do not depend on the answer: the request's settings
    echoed back, as OpenAI does."""

    id: str
    model: str
    converted: Converted
    store: bool
    created_at: int = field(default_factory=lambda: int(time.time()))

    def render(
        self,
        status: str,
        output: list[JSON],
        usage: Usage | None = None,
        *,
        incomplete: str | None = None,
        error: GatewayError | None = None,
    ) -> JSON:
        req = self.converted.request
        reasoning = req.reasoning
        fmt = req.text.format if req.text is not None and req.text.format else None
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "background": False,
            "error": {"code": error_code(error), "message": error.message} if error else None,
            "incomplete_details": {"reason": incomplete} if incomplete else None,
            "instructions": req.instructions,
            "max_output_tokens": req.max_output_tokens,
            "model": self.model,
            "output": output,
            "parallel_tool_calls": req.parallel_tool_calls is not False,
            "previous_response_id": req.previous_response_id,
            "reasoning": {
                "effort": reasoning.effort if reasoning else None,
                "summary": (reasoning.summary or reasoning.generate_summary) if reasoning else None,
            },
            "store": self.store,
            "temperature": req.temperature,
            "text": {"format": _format(fmt)},
            "tool_choice": req.tool_choice if req.tool_choice is not None else "auto",
            "tools": req.tools,
            "top_p": req.top_p,
            "truncation": "disabled",
            "usage": usage_object(usage),
            "user": req.user,
            "metadata": req.metadata or {},
        }


def error_code(error: GatewayError) -> str:
    """The Response error code (an enum in OpenAI's schema) for a gateway error: clients such as
    Codex retry `rate_limit_exceeded` and `server_error` after a pause."""
    if error.status == 429:
        return "rate_limit_exceeded"
    if error.status == 400:
        return "invalid_prompt"
    return "server_error"


def _format(fmt: Any) -> JSON:
    if fmt is None or fmt.type == "text":
        return {"type": "text"}
    if fmt.type == "json_object":
        return {"type": "json_object"}
    out: JSON = {"type": "json_schema", "name": fmt.name or "output", "schema": fmt.schema}
    if fmt.strict is not None:
        out["strict"] = fmt.strict
    if fmt.description is not None:
        out["description"] = fmt.description
    return out


def finish_status(finish_reason: str | None) -> tuple[str, str | None]:
    """The Response status, and the incomplete reason, for an OpenAI finish reason."""
    if finish_reason == "length":
        return "incomplete", "max_output_tokens"
    if finish_reason == "content_filter":
        return "incomplete", "content_filter"
    return "completed", None


def reasoning_item(item_id: str, text: str, converted: Converted, signature: str | None) -> JSON:
    item: JSON = {
        "id": item_id,
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": text}] if converted.summaries else [],
        "content": [{"type": "reasoning_text", "text": text}],
        "status": "completed",
    }
    if converted.encrypted_reasoning:
        # Responses has no field for a signature: a signing upstream's (Anthropic's) travels
        # sealed with the text, so the thinking goes back to it signed.
        item["encrypted_content"] = seal_signed(text, signature) if signature else seal(text)
    return item


def message_item(item_id: str, text: str, status: str = "completed") -> JSON:
    return {
        "id": item_id,
        "type": "message",
        "role": "assistant",
        "status": status,
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
    }


def call_item(item_id: str, call_id: str, name: str, arguments: str, custom: bool) -> JSON:
    if custom:
        return {
            "id": item_id,
            "type": "custom_tool_call",
            "call_id": call_id,
            "name": name,
            "input": custom_input(arguments),
            "status": "completed",
        }
    return {
        "id": item_id,
        "type": "function_call",
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": "completed",
    }


def custom_input(arguments: str) -> str:
    """A custom tool's text from its function-call arguments (`{"input": text}`); the raw text
    when the model wrote something else."""
    try:
        parsed = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return arguments
    if isinstance(parsed, dict) and isinstance(parsed.get("input"), str):
        return str(parsed["input"])
    return arguments


def whole_response(
    shell: ResponseShell, completion: ChatCompletion, usage: Usage | None
) -> tuple[JSON, list[JSON]]:
    """The Response object for a whole answer, and its output items."""
    converted = shell.converted
    choice = completion.first_choice()
    message = choice.message if choice is not None else None
    output: list[JSON] = []
    if message is not None:
        thinking = message.thinking
        if thinking:
            output.append(
                reasoning_item(_id("rs"), thinking, converted, message.reasoning_signature)
            )
        text = message.text or message.refusal
        if text:
            output.append(message_item(_id("msg"), text))
        for call in message.tool_calls or ():
            function = call.function
            name = (function.name if function else None) or ""
            output.append(
                call_item(
                    _id("fc"),
                    call.id or _id("call"),
                    name,
                    (function.arguments if function else None) or "",
                    name in converted.custom_tools,
                )
            )
    status, incomplete = finish_status(choice.finish_reason if choice else None)
    if incomplete:  # the text was cut: its item says so, as OpenAI's does
        for item in output:
            if item["type"] == "message":
                item["status"] = "incomplete"
    return shell.render(status, output, usage, incomplete=incomplete), output


def encode_events(events: list[Event], first_sequence: int) -> bytes:
    """The events as SSE, numbered from `first_sequence`."""
    out: list[bytes] = []
    for offset, (name, payload) in enumerate(events):
        payload["sequence_number"] = first_sequence + offset
        out.append(encode_event(orjson.dumps(payload), name))
    return b"".join(out)


@dataclass(slots=True)
class _Call:
    item_id: str
    output_index: int | None = None  # set once the item was added (its name is known)
    call_id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)  # argument text before the item opened
    custom: bool = False


class StreamTranslator:
    """One stream's translation. `feed` each typed chunk, then `finish` once when the upstream
    stream ended cleanly, or `fail` after an error. `usage` is the last usage the upstream
    reported; `output` the finished items (for storage). Not thread-safe; one per stream."""

    __slots__ = (
        "_calls",
        "_finish_reason",
        "_open",
        "_open_id",
        "_open_index",
        "_shell",
        "_signature",
        "_started",
        "_text",
        "output",
        "usage",
    )

    def __init__(self, shell: ResponseShell) -> None:
        self._shell = shell
        self._started = False
        self._open: str | None = None  # "reasoning" or "message": the open non-call item
        self._open_id = ""
        self._open_index = 0
        self._text: list[str] = []
        self._signature: str | None = None
        self._calls: dict[Any, _Call] = {}
        self._finish_reason: str | None = None
        self.output: list[JSON | None] = []  # by output index; None while an item is open
        self.usage: Usage | None = None

    # --- the lifecycle ----------------------------------------------------------------------

    def start(self) -> list[Event]:
        if self._started:
            return []
        self._started = True
        response = self._shell.render("in_progress", [])
        return [
            ("response.created", {"type": "response.created", "response": response}),
            ("response.in_progress", {"type": "response.in_progress", "response": response}),
        ]

    def feed(self, chunk: ChatChunk) -> list[Event]:
        events = self.start()
        usage = Usage.from_openai(chunk.usage)
        if usage is not None:
            self.usage = usage
        choice = chunk.first_choice()
        if choice is None:
            return events
        if choice.finish_reason is not None:
            self._finish_reason = choice.finish_reason
        delta = choice.delta
        if delta is not None:
            events += self._delta(delta)
        return events

    def finish(self) -> list[Event]:
        events = self.start()
        status, incomplete = finish_status(self._finish_reason)
        events += self._close_open(cut=incomplete is not None)
        for call in self._calls.values():
            events += self._close_call(call)
        response = self._shell.render(status, self.items(), self.usage, incomplete=incomplete)
        name = "response.completed" if status == "completed" else "response.incomplete"
        events.append((name, {"type": name, "response": response}))
        return events

    def fail(self, error: GatewayError) -> list[Event]:
        """`response.failed` with what was produced so far; items still open are left out."""
        events = self.start()
        response = self._shell.render("failed", self.items(), self.usage, error=error)
        events.append(("response.failed", {"type": "response.failed", "response": response}))
        return events

    def items(self) -> list[JSON]:
        return [item for item in self.output if item is not None]

    # --- deltas ----------------------------------------------------------------------------

    def _delta(self, delta: Delta) -> list[Event]:
        events: list[Event] = []
        thinking = delta.thinking
        if delta.reasoning_signature:
            self._signature = delta.reasoning_signature
        if thinking:
            if self._open != "reasoning":
                events += self._close_open()
                events += self._open_item("reasoning")
            events += self._reasoning_delta(thinking)
        text = delta.content or delta.refusal
        if text:
            if self._open != "message":
                events += self._close_open()
                events += self._open_item("message")
            self._text.append(text)
            events.append(
                (
                    "response.output_text.delta",
                    {
                        "type": "response.output_text.delta",
                        "item_id": self._open_id,
                        "output_index": self._open_index,
                        "content_index": 0,
                        "delta": text,
                        "logprobs": [],
                    },
                )
            )
        for part in delta.tool_calls or ():
            events += self._call_delta(part)
        return events

    def _reasoning_delta(self, text: str) -> list[Event]:
        self._text.append(text)
        base = {"item_id": self._open_id, "output_index": self._open_index}
        events: list[Event] = [
            (
                "response.reasoning_text.delta",
                {
                    "type": "response.reasoning_text.delta",
                    **base,
                    "content_index": 0,
                    "delta": text,
                },
            )
        ]
        if self._shell.converted.summaries:
            events.append(
                (
                    "response.reasoning_summary_text.delta",
                    {
                        "type": "response.reasoning_summary_text.delta",
                        **base,
                        "summary_index": 0,
                        "delta": text,
                    },
                )
            )
        return events

    def _open_item(self, kind: str) -> list[Event]:
        self._open = kind
        self._open_index = len(self.output)
        self.output.append(None)
        self._text = []
        base = {"item_id": "", "output_index": self._open_index}
        if kind == "reasoning":
            self._open_id = _id("rs")
            self._signature = None
            base["item_id"] = self._open_id
            item: JSON = {"id": self._open_id, "type": "reasoning", "summary": [], "content": []}
            events: list[Event] = [_added(self._open_index, item)]
            if self._shell.converted.summaries:
                events.append(
                    (
                        "response.reasoning_summary_part.added",
                        {
                            "type": "response.reasoning_summary_part.added",
                            **base,
                            "summary_index": 0,
                            "part": {"type": "summary_text", "text": ""},
                        },
                    )
                )
            return events
        self._open_id = _id("msg")
        base["item_id"] = self._open_id
        item = {
            "id": self._open_id,
            "type": "message",
            "role": "assistant",
            "status": "in_progress",
            "content": [],
        }
        return [
            _added(self._open_index, item),
            (
                "response.content_part.added",
                {
                    "type": "response.content_part.added",
                    **base,
                    "content_index": 0,
                    "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []},
                },
            ),
        ]

    def _close_open(self, *, cut: bool = False) -> list[Event]:
        """Closes the open reasoning or message item; `cut`: the answer ended cut short, so a
        message item is `incomplete`."""
        kind, self._open = self._open, None
        if kind is None:
            return []
        text = "".join(self._text)
        base = {"item_id": self._open_id, "output_index": self._open_index}
        events: list[Event] = []
        if kind == "reasoning":
            item = reasoning_item(self._open_id, text, self._shell.converted, self._signature)
            events.append(
                (
                    "response.reasoning_text.done",
                    {
                        "type": "response.reasoning_text.done",
                        **base,
                        "content_index": 0,
                        "text": text,
                    },
                )
            )
            if self._shell.converted.summaries:
                part = {"type": "summary_text", "text": text}
                events += [
                    (
                        "response.reasoning_summary_text.done",
                        {
                            "type": "response.reasoning_summary_text.done",
                            **base,
                            "summary_index": 0,
                            "text": text,
                        },
                    ),
                    (
                        "response.reasoning_summary_part.done",
                        {
                            "type": "response.reasoning_summary_part.done",
                            **base,
                            "summary_index": 0,
                            "part": part,
                        },
                    ),
                ]
        else:
            item = message_item(self._open_id, text, "incomplete" if cut else "completed")
            part = item["content"][0]
            events += [
                (
                    "response.output_text.done",
                    {
                        "type": "response.output_text.done",
                        **base,
                        "content_index": 0,
                        "text": text,
                        "logprobs": [],
                    },
                ),
                (
                    "response.content_part.done",
                    {
                        "type": "response.content_part.done",
                        **base,
                        "content_index": 0,
                        "part": part,
                    },
                ),
            ]
        self.output[self._open_index] = item
        events.append(_done(self._open_index, item))
        return events

    def _call_delta(self, part: Any) -> list[Event]:
        # Keyed by the OpenAI `index`; by id, or the latest call, for hosts that omit it.
        if part.index is not None:
            key: Any = part.index
        elif part.id:
            key = part.id
        else:
            key = next(reversed(self._calls), 0)
        call = self._calls.get(key)
        if call is None:
            call = self._calls[key] = _Call(item_id=_id("fc"))
        if part.id and not call.call_id:
            call.call_id = part.id
        function = part.function
        events: list[Event] = []
        if function is not None and function.name and call.output_index is None:
            call.name = function.name
            events += self._close_open()
            events += self._open_call(call)
        piece = function.arguments if function is not None else None
        if piece:
            if call.output_index is None:
                call.pending.append(piece)
            else:
                events += self._arguments_delta(call, piece)
        return events

    def _open_call(self, call: _Call) -> list[Event]:
        call.custom = call.name in self._shell.converted.custom_tools
        call.call_id = call.call_id or _id("call")
        call.output_index = len(self.output)
        self.output.append(None)
        if call.custom:
            item: JSON = {
                "id": call.item_id,
                "type": "custom_tool_call",
                "call_id": call.call_id,
                "name": call.name,
                "input": "",
                "status": "in_progress",
            }
        else:
            item = {
                "id": call.item_id,
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": "",
                "status": "in_progress",
            }
        events: list[Event] = [_added(call.output_index, item)]
        pending, call.pending = call.pending, []
        for piece in pending:
            events += self._arguments_delta(call, piece)
        return events

    def _arguments_delta(self, call: _Call, piece: str) -> list[Event]:
        call.arguments.append(piece)
        if call.custom:
            # The client wants the tool's text, which is inside the JSON the model writes: the
            # text goes out whole when the call ends (`custom_tool_call_input.done`).
            return []
        return [
            (
                "response.function_call_arguments.delta",
                {
                    "type": "response.function_call_arguments.delta",
                    "item_id": call.item_id,
                    "output_index": call.output_index,
                    "delta": piece,
                },
            )
        ]

    def _close_call(self, call: _Call) -> list[Event]:
        events: list[Event] = []
        if call.output_index is None:  # never named: still an item, so the client sees it
            events += self._close_open()
            events += self._open_call(call)
        arguments = "".join(call.arguments)
        item = call_item(call.item_id, call.call_id, call.name, arguments, call.custom)
        base = {"item_id": call.item_id, "output_index": call.output_index}
        if call.custom:
            text = item["input"]
            events += [
                (
                    "response.custom_tool_call_input.delta",
                    {"type": "response.custom_tool_call_input.delta", **base, "delta": text},
                ),
                (
                    "response.custom_tool_call_input.done",
                    {"type": "response.custom_tool_call_input.done", **base, "input": text},
                ),
            ]
        else:
            events.append(
                (
                    "response.function_call_arguments.done",
                    {
                        "type": "response.function_call_arguments.done",
                        **base,
                        "name": call.name,
                        "arguments": arguments,
                    },
                )
            )
        assert call.output_index is not None
        self.output[call.output_index] = item
        events.append(_done(call.output_index, item))
        return events


def _added(index: int, item: Mapping[str, Any]) -> Event:
    return (
        "response.output_item.added",
        {"type": "response.output_item.added", "output_index": index, "item": dict(item)},
    )


def _done(index: int, item: Mapping[str, Any]) -> Event:
    return (
        "response.output_item.done",
        {"type": "response.output_item.done", "output_index": index, "item": dict(item)},
    )
