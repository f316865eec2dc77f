"""The mock upstream's Anthropic Messages endpoint (`POST /v1/messages`): the same scripts as the
OpenAI endpoint, answered in Anthropic's wire format (API version 2023-06-01), non-streamed
(a Message) or streamed (`message_start` ... `message_stop` events), with Anthropic error bodies.

Requests are checked against the Anthropic rules an adapter most easily breaks (required
fields, unknown top-level fields, strict user/assistant alternation, tool results that answer
the previous turn's tool calls, signed thinking blocks, the thinking budget) and refused with
Anthropic's 400 `invalid_request_error`, so tests catch a bad translation as Anthropic would."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from crossroads.mockupstream.answers import plan_answer, presented_key, split_text
from crossroads.mockupstream.script import Script, ScriptError
from crossroads.sse import encode_event

if TYPE_CHECKING:
    from crossroads.mockupstream.server import MockUpstream, RequestRecord

__all__ = ["ERROR_TYPES", "answer_messages", "error_body", "request_problem"]

JSON = dict[str, Any]

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_FIELDS = frozenset(
    {
        "model", "max_tokens", "messages", "system", "stop_sequences", "temperature", "top_p",
        "top_k", "metadata", "tools", "tool_choice", "thinking", "stream", "service_tier",
    }
)  # fmt: skip
_MALFORMED_BODY = b"mock upstream: this body is not JSON {"
_MALFORMED_EVENT = b"event: content_block_delta\ndata: {this event is not JSON\n\n"


def error_body(status: int, message: str, sequence: int = 0) -> JSON:
    """Anthropic's error object: {"type": "error", "error": {"type", "message"}, "request_id"}."""
    kind = ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return {
        "type": "error",
        "error": {"type": kind, "message": message},
        "request_id": f"req_mock_{sequence}",
    }


def _overloaded(script: Script) -> str:
    return "Overloaded" + (f": {script.error_text}" if script.error_text else "")


def _error_response(status: int, message: str, sequence: int = 0) -> web.Response:
    payload = orjson.dumps(error_body(status, message, sequence))
    return web.Response(status=status, body=payload, content_type="application/json")


# --- request checks -----------------------------------------------------------------------


def request_problem(body: JSON) -> str | None:
    """What Anthropic would refuse in `body` (as its 400 message would say), or None."""
    extra = sorted(set(body) - _FIELDS)
    if extra:
        return f"{extra[0]}: Extra inputs are not permitted"
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "model: Field required"
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        return "max_tokens: Field required"
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or budget < 1024:
            return "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
        if budget >= max_tokens:
            return "`max_tokens` must be greater than `thinking.budget_tokens`"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: Field required"
    previous: JSON = {}
    for index, message in enumerate(messages):
        problem = _message_problem(message, previous, index)
        if problem:
            return problem
        previous = message
    return None


def _scripted_problem(body: JSON, script: Script) -> str | None:
    """The request checks a script adds: `refuse` (top-level fields), and with
    `require_reasoning_replay` Anthropic's rule for thinking in tool loops: with thinking
    enabled, a final assistant turn that used tools must start with its thinking block."""
    for field in script.refuse:
        if field in body:
            return f"{field}: Extra inputs are not permitted"
    thinking = body.get("thinking")
    enabled = isinstance(thinking, dict) and thinking.get("type") == "enabled"
    if not (script.require_reasoning_replay and enabled):
        return None
    turns = [(i, m) for i, m in enumerate(body.get("messages") or []) if isinstance(m, dict)]
    last = next(((i, m) for i, m in reversed(turns) if m.get("role") == "assistant"), None)
    if last is None:
        return None
    index, message = last
    blocks = _blocks(message)
    if not any(b.get("type") == "tool_use" for b in blocks):
        return None
    first = blocks[0].get("type") if blocks else None
    if first in ("thinking", "redacted_thinking"):
        return None
    return (
        f"messages.{index}.content.0.type: Expected `thinking` or `redacted_thinking`, but "
        f"found `{first}`. When `thinking` is enabled, a final `assistant` message must start "
        "with a thinking block"
    )


def _message_problem(message: Any, previous: JSON, index: int) -> str | None:
    where = f"messages.{index}"
    if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
        return f"{where}.role: Input should be 'user' or 'assistant'"
    role = message["role"]
    if previous.get("role") == role:
        return f"{where}: roles must alternate between 'user' and 'assistant'"
    content = message.get("content")
    if isinstance(content, str):
        return None if content else f"{where}: content must be non-empty"
    if not isinstance(content, list) or not content:
        return f"{where}: content must be non-empty"
    asked = {b.get("id") for b in _blocks(previous) if b.get("type") == "tool_use"}
    for position, block in enumerate(content):
        kind = block.get("type") if isinstance(block, dict) else None
        spot = f"{where}.content.{position}"
        if kind == "text" and not block.get("text"):
            return f"{spot}: text content blocks must be non-empty"
        if kind == "thinking" and (role != "assistant" or not block.get("signature")):
            return f"{spot}.thinking.signature: Field required"
        if kind == "tool_use" and (role != "assistant" or not isinstance(block.get("input"), dict)):
            return f"{spot}: tool_use blocks must be in assistant turns, with an object input"
        if kind == "tool_result" and (role != "user" or block.get("tool_use_id") not in asked):
            return f"{spot}: unexpected `tool_use_id` found in `tool_result` blocks"
        if kind not in ("text", "image", "thinking", "tool_use", "tool_result"):
            return f"{spot}.type: unknown content block type {kind!r}"
    return None


def _blocks(message: JSON) -> list[JSON]:
    content = message.get("content")
    return [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []


# --- the answer -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Call:
    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class _Plan:
    id: str
    model: str
    text_pieces: tuple[str, ...]
    thinking_pieces: tuple[str, ...]
    signature: str
    calls: tuple[_Call, ...]
    usage: JSON
    chunks: int

    @property
    def stop_reason(self) -> str:
        return "tool_use" if self.calls else "end_turn"


def _openai_view(body: JSON) -> JSON:
    """The request as the shared planner reads it (OpenAI tools and tool_choice; a user turn of
    tool results only is a `tool` message, so the answer after a tool loop quotes the user's
    question on both endpoints)."""
    messages = [
        {**m, "role": "tool"} if _only_tool_results(m) else m
        for m in body.get("messages") or []
        if isinstance(m, dict)
    ]
    tools = [
        {
            "type": "function",
            "function": {"name": t.get("name"), "parameters": t.get("input_schema")},
        }
        for t in body.get("tools") or []
        if isinstance(t, dict)
    ]
    return {"model": body.get("model"), "messages": messages, "tools": tools}


def _only_tool_results(message: JSON) -> bool:
    blocks = _blocks(message)
    return bool(blocks) and all(b.get("type") == "tool_result" for b in blocks)


def _chosen_tools(body: JSON, view: JSON, name: str | None = None) -> list[JSON]:
    raw = body.get("tool_choice")
    choice: JSON = raw if isinstance(raw, dict) else {}
    tools = [t["function"] for t in view["tools"]]
    if name is not None:
        return [t for t in tools if t["name"] == name][:1]
    if not tools or choice.get("type") == "none":
        return []
    if choice.get("type") == "tool":
        return [t for t in tools if t["name"] == choice.get("name")][:1]
    return tools[:1] if choice.get("disable_parallel_tool_use") else tools


def _plan(body: JSON, script: Script, sequence: int) -> _Plan:
    """Text as the OpenAI endpoint answers it; with `tool_call`, one tool_use block for each
    offered tool (parallel tool use), or for the named one, or the first when parallel use is
    disabled; with `reasoning=N`, a thinking block with a fake signature first. Usage follows
    Anthropic: `input_tokens` excludes the `cached` tokens, read from the cache."""
    view = _openai_view(body)
    answer = plan_answer({**view, "tools": []}, script, sequence, 0)
    calls = []
    for position, tool in enumerate(
        _chosen_tools(body, view, script.tool_name) if script.tool_call else []
    ):
        named = {**view, "tool_choice": {"function": {"name": tool["name"]}}}
        call = plan_answer(named, replace(script, tool_call=True), sequence, 0).tool_call
        if call is not None:
            calls.append(_Call(f"toolu_mock_{sequence}_{position}", call.name, call.arguments))
    prompt = answer.usage["prompt_tokens"]
    usage = {
        "input_tokens": max(prompt - script.cached, 0),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": script.cached,
        "output_tokens": answer.usage["completion_tokens"],
    }
    return _Plan(
        id=f"msg_mock_{sequence}",
        model=answer.model,
        text_pieces=() if calls else answer.pieces,
        thinking_pieces=answer.reasoning_pieces,
        signature=f"mock-signature-{sequence}" if answer.reasoning else "",
        calls=tuple(calls),
        usage=usage,
        chunks=script.chunks,
    )


def message_body(plan: _Plan) -> JSON:
    """The non-streamed Message."""
    content: list[JSON] = []
    if plan.thinking_pieces:
        thinking = "".join(plan.thinking_pieces)
        content.append({"type": "thinking", "thinking": thinking, "signature": plan.signature})
    if plan.text_pieces:
        content.append({"type": "text", "text": "".join(plan.text_pieces)})
    for call in plan.calls:
        tool_input = json.loads(call.arguments)
        content.append({"type": "tool_use", "id": call.id, "name": call.name, "input": tool_input})
    return {
        "id": plan.id,
        "type": "message",
        "role": "assistant",
        "model": plan.model,
        "content": content,
        "stop_reason": plan.stop_reason,
        "stop_sequence": None,
        "usage": plan.usage,
    }


def _event(kind: str, data: JSON) -> bytes:
    return encode_event(orjson.dumps({"type": kind, **data}), kind)


def _block(index: int, start: JSON, deltas: list[JSON]) -> list[bytes]:
    events = [_event("content_block_start", {"index": index, "content_block": start})]
    events += [_event("content_block_delta", {"index": index, "delta": d}) for d in deltas]
    return [*events, _event("content_block_stop", {"index": index})]


def stream_events(plan: _Plan) -> list[bytes]:
    """The SSE events of the streamed answer, in Anthropic's order, each framed."""
    start_usage = {**plan.usage, "output_tokens": 1}
    message = {**message_body(plan), "content": [], "stop_reason": None, "usage": start_usage}
    events = [_event("message_start", {"message": message}), _event("ping", {})]
    index = 0
    if plan.thinking_pieces:
        deltas = [{"type": "thinking_delta", "thinking": p} for p in plan.thinking_pieces]
        deltas.append({"type": "signature_delta", "signature": plan.signature})
        events += _block(index, {"type": "thinking", "thinking": "", "signature": ""}, deltas)
        index += 1
    if plan.text_pieces:
        deltas = [{"type": "text_delta", "text": p} for p in plan.text_pieces]
        events += _block(index, {"type": "text", "text": ""}, deltas)
        index += 1
    for call in plan.calls:
        start: JSON = {"type": "tool_use", "id": call.id, "name": call.name, "input": {}}
        pieces = split_text(call.arguments, max(plan.chunks, 3))
        deltas = [{"type": "input_json_delta", "partial_json": p} for p in pieces]
        events += _block(index, start, deltas)
        index += 1
    delta = {"stop_reason": plan.stop_reason, "stop_sequence": None}
    usage = {"output_tokens": plan.usage["output_tokens"]}
    events.append(_event("message_delta", {"delta": delta, "usage": usage}))
    return [*events, _event("message_stop", {})]


# --- serving ----------------------------------------------------------------------------------


async def answer_messages(
    upstream: MockUpstream, request: web.Request, record: RequestRecord, body: JSON | None
) -> web.StreamResponse:
    """Answer one `POST /v1/messages` as its script says (see `parse_script`; `error_body`
    makes error bodies Anthropic-shaped, and alone makes a 200 that carries an error: a body of
    type "error", or a stream cut by an `error` event; `no_done` leaves out `message_stop`;
    `refuse` and `require_reasoning_replay` add request checks, see `_scripted_problem`)."""
    if body is None:
        return _error_response(400, "the request body must be a JSON object", record.sequence)
    try:
        script = upstream._resolve(request, body, use_queue=True)
    except ScriptError as exc:
        return _error_response(400, str(exc), record.sequence)
    record.script = script.source
    await asyncio.sleep(script.first_byte)
    if script.hang:
        await asyncio.get_running_loop().create_future()
    if script.reset == "before":
        upstream._abort(request, record)
        return web.Response()
    if script.status != 200:
        return await _status_answer(script, record.sequence, presented_key(request.headers))
    problem = request_problem(body) or _scripted_problem(body, script)
    if problem:
        return _error_response(400, problem, record.sequence)
    plan = _plan(body, script, record.sequence)
    if body.get("stream") is True:
        return await _stream(upstream, request, record, script, plan)
    await asyncio.sleep(script.latency)
    if script.malformed:
        payload = _MALFORMED_BODY
    elif script.error_body:
        payload = orjson.dumps(error_body(529, _overloaded(script), record.sequence))
    else:
        payload = orjson.dumps(message_body(plan))
    return await upstream._send_body(request, record, script, payload)


async def _status_answer(script: Script, sequence: int, key: str) -> web.Response:
    await asyncio.sleep(script.latency)
    headers = {"retry-after": script.retry_after} if script.retry_after else {}
    if script.status in (204, 304):
        return web.Response(status=script.status, headers=headers)
    message = f"mock upstream error, status {script.status}"
    if script.echo_key:
        message += f": invalid x-api-key {key}"
    if script.error_text:
        message += f": {script.error_text}"
    if script.error_body:
        payload = orjson.dumps(error_body(script.status, message, sequence))
        headers["Content-Type"] = "application/json"
    else:
        plain = script.echo_key or script.error_text
        payload = (message if plain else f"mock upstream: HTTP {script.status}").encode()
        headers["Content-Type"] = "text/plain"
    return web.Response(status=script.status, body=payload, headers=headers)


async def _stream(
    upstream: MockUpstream, request: web.Request, record: RequestRecord, script: Script, plan: _Plan
) -> web.StreamResponse:
    events = stream_events(plan)
    if script.error_body or script.error_event:  # Anthropic's overload mid-stream: an event
        error = error_body(529, _overloaded(script), record.sequence)
        events[len(events) // 2 :] = [_event("error", {"error": error["error"]})]
    if script.malformed:
        events.insert(len(events) // 2, _MALFORMED_EVENT)
    if script.no_done:
        events.pop()
    return await upstream.send_events(request, record, script, events)
