"""A tiny Responses API server on 127.0.0.1 for client tests: it records every request (method,
path, headers, body) and answers `POST .../responses` with a minimal valid Responses SSE stream
(or JSON body) built from scripted output items, so real clients (Codex, the Agents SDK) can be
watched without the gateway. Everything else gets a 404 in OpenAI's error shape."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

JSON = dict[str, Any]

__all__ = ["CaptureServer", "Recorded", "function_call", "message", "reasoning"]


@dataclass
class Recorded:
    """One request the server received. `json` is the parsed body, or None."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    json: Any = None


def message(text: str, item_id: str = "msg_capture_1") -> JSON:
    """An assistant output message item holding `text`."""
    part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    return {
        "type": "message",
        "id": item_id,
        "status": "completed",
        "role": "assistant",
        "content": [part],
    }


def function_call(name: str, arguments: JSON, call_id: str = "call_capture_1") -> JSON:
    """A function_call output item calling `name` with `arguments`."""
    return {
        "type": "function_call",
        "id": f"fc_{call_id}",
        "call_id": call_id,
        "name": name,
        "arguments": json.dumps(arguments),
        "status": "completed",
    }


def reasoning(text: str, encrypted: str = "capture-opaque-reasoning") -> JSON:
    """A reasoning item with a summary and opaque `encrypted_content`."""
    return {
        "type": "reasoning",
        "id": "rs_capture_1",
        "summary": [{"type": "summary_text", "text": text}],
        "encrypted_content": encrypted,
    }


def _events(response: JSON, items: list[JSON]) -> Iterator[tuple[str, JSON]]:
    """The event sequence OpenAI streams for a response whose output is `items`."""
    yield "response.created", {"response": {**response, "status": "in_progress", "output": []}}
    yield "response.in_progress", {"response": {**response, "status": "in_progress", "output": []}}
    for index, item in enumerate(items):
        opened = {**item, "status": "in_progress"}
        if item["type"] == "message":
            opened["content"] = []
        if item["type"] == "function_call":
            opened["arguments"] = ""
        if item["type"] == "reasoning":
            opened["summary"] = []
        yield "response.output_item.added", {"output_index": index, "item": opened}
        where = {"item_id": item["id"], "output_index": index}
        if item["type"] == "message":
            for content_index, part in enumerate(item["content"]):
                at = {**where, "content_index": content_index}
                empty = {**part, "text": ""}
                yield "response.content_part.added", {**at, "part": empty}
                yield "response.output_text.delta", {**at, "delta": part["text"], "logprobs": []}
                yield "response.output_text.done", {**at, "text": part["text"], "logprobs": []}
                yield "response.content_part.done", {**at, "part": part}
        elif item["type"] == "function_call":
            arguments = item["arguments"]
            yield "response.function_call_arguments.delta", {**where, "delta": arguments}
            yield "response.function_call_arguments.done", {**where, "arguments": arguments}
        elif item["type"] == "reasoning":
            for summary_index, summary in enumerate(item["summary"]):
                at = {**where, "summary_index": summary_index}
                yield (
                    "response.reasoning_summary_part.added",
                    {**at, "part": {**summary, "text": ""}},
                )
                delta = {**at, "delta": summary["text"]}
                yield "response.reasoning_summary_text.delta", delta
                yield "response.reasoning_summary_text.done", {**at, "text": summary["text"]}
                yield "response.reasoning_summary_part.done", {**at, "part": summary}
        yield "response.output_item.done", {"output_index": index, "item": item}
    yield "response.completed", {"response": {**response, "status": "completed", "output": items}}


class CaptureServer:
    """A started capture server; a context manager that stops it.

    `turns` queues the output items for the next responses, one list per request; when the
    queue is empty a response says "capture: ok". Thread-safe.
    """

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.omit: set[str] = set()  # event types to leave out of streams, to probe a client
        self._turns: list[list[JSON]] = []
        self._lock = threading.Lock()
        self._count = 0
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        server.daemon_threads = True
        self._server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)

    @property
    def v1(self) -> str:
        return f"{self.url}/v1"

    def __enter__(self) -> CaptureServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)

    def script(self, *turns: list[JSON]) -> None:
        with self._lock:
            self._turns.extend(turns)

    def responses_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.method == "POST" and r.path.endswith("/responses")]

    def _next(self, body: JSON) -> tuple[JSON, list[JSON]]:
        with self._lock:
            self._count += 1
            items = self._turns.pop(0) if self._turns else [message("capture: ok")]
            number = self._count
        response: JSON = {
            "id": f"resp_capture_{number}",
            "object": "response",
            "created_at": int(time.time()),
            "model": body.get("model", "capture"),
            "output": items,
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "usage": {
                "input_tokens": 10,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": 5,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": 15,
            },
        }
        return response, items


def _handler_for(capture: CaptureServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # one response per connection: the end of a stream is EOF

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _record(self) -> Recorded:
            body = self._body()
            try:
                parsed = json.loads(body) if body else None
            except ValueError:
                parsed = None
            recorded = Recorded(
                self.command,
                self.path,
                {k.lower(): v for k, v in self.headers.items()},
                body,
                parsed,
            )
            capture.requests.append(recorded)
            return recorded

        def _body(self) -> bytes:
            if "chunked" in (self.headers.get("transfer-encoding") or "").lower():
                chunks = []
                while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                self.rfile.readline()
                return b"".join(chunks)
            length = int(self.headers.get("content-length") or 0)
            return self.rfile.read(length) if length else b""

        def _send_json(self, status: int, document: JSON) -> None:
            data = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            recorded = self._record()
            if recorded.path.split("?")[0].endswith("/models"):
                self._send_json(200, {"object": "list", "data": []})
                return
            self._not_found()

        def do_DELETE(self) -> None:
            self._record()
            self._not_found()

        def _not_found(self) -> None:
            error = {"message": "not found", "type": "invalid_request_error", "code": None}
            self._send_json(404, {"error": error})

        def do_POST(self) -> None:
            recorded = self._record()
            if not recorded.path.split("?")[0].endswith("/responses"):
                self._not_found()
                return
            body = recorded.json if isinstance(recorded.json, dict) else {}
            response, items = capture._next(body)
            if not body.get("stream"):
                self._send_json(200, {**response, "status": "completed"})
                return
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.end_headers()
            events = [(k, p) for k, p in _events(response, items) if k not in capture.omit]
            for number, (kind, payload) in enumerate(events):
                event = {"type": kind, "sequence_number": number, **payload}
                self.wfile.write(f"event: {kind}\ndata: {json.dumps(event)}\n\n".encode())
            self.wfile.flush()

    return Handler
