"""The mock upstream's Responses endpoint (`POST /v1/responses`), as OpenAI serves it: the same
scripts as the chat endpoint, answered as a Response object or as the Responses streaming
events (`response.created` ... `response.completed`, each with its `sequence_number`). The text
is "mock answer: " plus the last user text of `input`; `usage=P/C` sets the usage; a `tool_call`
script answers with one `function_call` item for the request's first function tool. Statuses,
latency, drip, resets and truncation behave as on the chat endpoint."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from crossroads.mockupstream.answers import split_text
from crossroads.mockupstream.script import ScriptError
from crossroads.sse import encode_event

if TYPE_CHECKING:
    from crossroads.mockupstream.server import MockUpstream, RequestRecord

__all__ = ["answer_responses"]

JSON = dict[str, Any]


def _last_user_text(body: JSON) -> str:
    raw = body.get("input")
    if isinstance(raw, str):
        return raw
    for item in reversed(raw if isinstance(raw, list) else []):
        if not isinstance(item, dict) or item.get("role") != "user":
            continue
        content = item.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def _output(body: JSON, tool_call: bool, sequence: int) -> list[JSON]:
    tools = [
        t for t in body.get("tools") or [] if isinstance(t, dict) and t.get("type") == "function"
    ]
    if tool_call and tools:
        return [
            {
                "id": f"fc_mock_{sequence}",
                "type": "function_call",
                "call_id": f"call_mock_{sequence}",
                "name": tools[0].get("name", ""),
                "arguments": orjson.dumps({"input": _last_user_text(body)}).decode(),
                "status": "completed",
            }
        ]
    text = f"mock answer: {_last_user_text(body)}"
    part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    return [
        {
            "id": f"msg_mock_{sequence}",
            "type": "message",
            "role": "assistant",
            "status": "completed",
            "content": [part],
        }
    ]


def _response(body: JSON, status: str, output: list[JSON], usage: tuple[int, int], n: int) -> JSON:
    prompt, completion = usage
    return {
        "id": f"resp_mock_{n}",
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "model": body.get("model"),
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": body.get("tools") or [],
        "usage": {
            "input_tokens": prompt,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": completion,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt + completion,
        }
        if status == "completed"
        else None,
    }


def _events(body: JSON, output: list[JSON], usage: tuple[int, int], n: int) -> list[bytes]:
    events: list[JSON] = [
        {"type": "response.created", "response": _response(body, "in_progress", [], usage, n)},
        {"type": "response.in_progress", "response": _response(body, "in_progress", [], usage, n)},
    ]
    for index, item in enumerate(output):
        base = {"item_id": item["id"], "output_index": index}
        events.append({"type": "response.output_item.added", "output_index": index, "item": item})
        if item["type"] == "message":
            text = item["content"][0]["text"]
            empty = {**item["content"][0], "text": ""}
            events.append(
                {"type": "response.content_part.added", **base, "content_index": 0, "part": empty}
            )
            events += [
                {"type": "response.output_text.delta", **base, "content_index": 0, "delta": piece}
                for piece in split_text(text, 5)
            ]
            events.append(
                {"type": "response.output_text.done", **base, "content_index": 0, "text": text}
            )
        else:
            events.append(
                {
                    "type": "response.function_call_arguments.done",
                    **base,
                    "arguments": item["arguments"],
                }
            )
        events.append({"type": "response.output_item.done", "output_index": index, "item": item})
    events.append(
        {"type": "response.completed", "response": _response(body, "completed", output, usage, n)}
    )
    out = []
    for number, event in enumerate(events):
        event["sequence_number"] = number
        out.append(encode_event(orjson.dumps(event), event["type"]))
    return out


async def answer_responses(
    upstream: MockUpstream, request: web.Request, record: RequestRecord, body: JSON | None
) -> web.StreamResponse:
    """Answer one `POST /v1/responses` as its script says."""
    if body is None:
        return web.json_response(
            {"error": {"message": "the body must be a JSON object"}}, status=400
        )
    try:
        script = upstream._resolve(request, body, use_queue=True)
    except ScriptError as exc:
        return web.json_response({"error": {"message": str(exc)}}, status=400)
    record.script = script.source
    early = await upstream._preamble(request, record, script)
    if early is not None:
        return early
    usage = script.usage or (3, 5)
    output = _output(body, script.tool_call, record.sequence)
    if body.get("stream") is True:
        return await upstream.send_events(
            request, record, script, _events(body, output, usage, record.sequence)
        )
    payload = orjson.dumps(_response(body, "completed", output, usage, record.sequence))
    return await upstream._send_body(request, record, script, payload)
