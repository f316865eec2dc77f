"""One answer, whatever API it came in: its text, its tool calls (name and decoded arguments)
and why it finished, read from a Chat Completions, Messages or Responses body; and what JSON
shape, if any, its request asked for."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from crossroads.sse import SSEDecoder

__all__ = ["Reply", "assemble_stream", "read_reply", "requested_schema"]

JSON = dict[str, Any]

# The three APIs' words for why an answer ended, in Chat Completions' words.
_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "max_output_tokens": "length",
}


@dataclass(frozen=True, slots=True)
class Reply:
    text: str
    tool_calls: tuple[tuple[str, Any], ...]  # (name, arguments: decoded JSON, or the raw text)
    finish: str

    def render(self) -> str:
        """The answer as a judge reads it: its text, then each tool call on its own line."""
        calls = [
            f"[tool call] {name}({orjson.dumps(args).decode()})" for name, args in self.tool_calls
        ]
        return "\n".join([self.text, *calls]).strip() or "(empty answer)"


def _arguments(raw: Any) -> Any:
    if isinstance(raw, str):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            return raw
    return raw


def read_reply(endpoint: str, body: JSON) -> Reply:
    """The reply in `body`, an answer of `endpoint` ('chat.completions', 'messages' or
    'responses'). Missing parts read as empty; never raises on a well-formed JSON object."""
    text: list[str] = []
    calls: list[tuple[str, Any]] = []
    finish = ""
    if endpoint == "messages":
        for block in body.get("content") or ():
            if block.get("type") == "text":
                text.append(str(block.get("text", "")))
            elif block.get("type") == "tool_use":
                calls.append((str(block.get("name", "")), block.get("input")))
        finish = str(body.get("stop_reason") or "")
    elif endpoint == "responses":
        for item in body.get("output") or ():
            if item.get("type") == "message":
                text += [str(c.get("text", "")) for c in item.get("content") or () if "text" in c]
            elif item.get("type") == "function_call":
                calls.append((str(item.get("name", "")), _arguments(item.get("arguments"))))
        reason = (body.get("incomplete_details") or {}).get("reason")
        finish = str(reason) if reason else ("tool_calls" if calls else "stop")
    else:
        choice = (body.get("choices") or [{}])[0]
        message = choice.get("message") or {}
        text.append(str(message.get("content") or ""))
        for call in message.get("tool_calls") or ():
            function = call.get("function") or {}
            calls.append((str(function.get("name", "")), _arguments(function.get("arguments"))))
        finish = str(choice.get("finish_reason") or "")
    return Reply("".join(text), tuple(calls), _FINISH.get(finish, finish))


def requested_schema(endpoint: str, request: JSON) -> JSON | None:
    """The JSON schema the request asked the answer to follow ({} for any JSON object), or
    None when it asked for free text."""
    if endpoint == "responses":
        fmt = ((request.get("text") or {}).get("format")) or {}
        schema = fmt.get("schema")
    else:
        fmt = request.get("response_format") or {}
        schema = (fmt.get("json_schema") or {}).get("schema")
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "json_schema":
        return schema if isinstance(schema, dict) else {}
    if kind == "json_object":
        return {"type": "object"}
    return None


def question(endpoint: str, request: JSON) -> str:
    """What the user asked, as a judge reads it: the system prompt and the last user turn."""
    parts: list[str] = []
    system = request.get("system") if endpoint == "messages" else request.get("instructions")
    if system:
        parts.append(f"[system] {_text(system)}")
    if endpoint == "responses":
        turns = request.get("input")
        if isinstance(turns, str):
            return "\n".join([*parts, turns])
    else:
        turns = request.get("messages")
    for turn in reversed(turns or []):
        if isinstance(turn, dict) and turn.get("role") == "user":
            parts.append(_text(turn.get("content")))
            break
    for message in turns or []:
        if isinstance(message, dict) and message.get("role") == "system":
            parts.insert(0, f"[system] {_text(message.get('content'))}")
    tools = [
        (t.get("function") or t).get("name")
        for t in request.get("tools") or ()
        if isinstance(t, dict)
    ]
    if tools:
        parts.append(f"[tools offered] {', '.join(str(t) for t in tools)}")
    return "\n".join(parts)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def assemble_stream(endpoint: str, transcript: bytes) -> JSON | None:
    """The whole answer a stream delivered, in the shape a non-streamed request of `endpoint`
    gets, from the SSE bytes the client received: the Responses API's `response.completed`
    object; an Anthropic Message folded from its events; a `chat.completion` folded from its
    chunks. None when the transcript holds no complete answer."""
    events = []
    decoder = SSEDecoder()
    for event in [*decoder.feed(transcript), *decoder.flush()]:
        if event.data == "[DONE]":
            continue
        try:
            data = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            return None
        if isinstance(data, dict):
            events.append(data)
    if endpoint == "responses":
        done = [e for e in events if e.get("type") in ("response.completed", "response.incomplete")]
        response = done[-1].get("response") if done else None
        return response if isinstance(response, dict) else None
    if endpoint == "messages":
        return _fold_messages(events)
    return _fold_chunks(events)


def _fold_messages(events: list[JSON]) -> JSON | None:
    message: JSON | None = None
    blocks: dict[int, JSON] = {}
    partial: dict[int, list[str]] = {}
    for event in events:
        kind = event.get("type")
        if kind == "message_start" and isinstance(event.get("message"), dict):
            message = dict(event["message"])
        elif kind == "content_block_start" and isinstance(event.get("content_block"), dict):
            blocks[int(event.get("index", 0))] = dict(event["content_block"])
        elif kind == "content_block_delta" and isinstance(event.get("delta"), dict):
            index, delta = int(event.get("index", 0)), event["delta"]
            block = blocks.setdefault(index, {"type": "text", "text": ""})
            if delta.get("type") == "text_delta":
                block["text"] = block.get("text", "") + str(delta.get("text", ""))
            elif delta.get("type") == "thinking_delta":
                block["thinking"] = block.get("thinking", "") + str(delta.get("thinking", ""))
            elif delta.get("type") == "input_json_delta":
                partial.setdefault(index, []).append(str(delta.get("partial_json", "")))
        elif kind == "message_delta" and message is not None:
            message.update(event.get("delta") or {})
            if isinstance(event.get("usage"), dict):
                message["usage"] = {**(message.get("usage") or {}), **event["usage"]}
    if message is None:
        return None
    for index, pieces in partial.items():
        blocks[index]["input"] = _arguments("".join(pieces)) if "".join(pieces) else {}
    message["content"] = [blocks[i] for i in sorted(blocks)]
    return message


def _fold_chunks(events: list[JSON]) -> JSON | None:
    if not events:
        return None
    text: list[str] = []
    calls: dict[int, JSON] = {}
    finish = None
    usage = None
    for chunk in events:
        usage = chunk.get("usage") or usage
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            text.append(str(delta.get("content") or ""))
            for call in delta.get("tool_calls") or ():
                slot = calls.setdefault(
                    int(call.get("index", 0)),
                    {"id": "", "type": "function", "function": {"name": "", "arguments": ""}},
                )
                slot["id"] = call.get("id") or slot["id"]
                function = call.get("function") or {}
                slot["function"]["name"] += function.get("name") or ""
                slot["function"]["arguments"] += function.get("arguments") or ""
            finish = choice.get("finish_reason") or finish
    message: JSON = {"role": "assistant", "content": "".join(text)}
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
    first = events[0]
    return {
        "id": first.get("id"),
        "object": "chat.completion",
        "model": first.get("model"),
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": usage,
    }
