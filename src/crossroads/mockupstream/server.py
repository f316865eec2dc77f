"""The mock upstream's HTTP server: OpenAI chat, embeddings and models and Anthropic messages
(`anthropic.py`) endpoints answering as each request's script says, plus `/_mock/*` control.

A test tool: the request log keeps every header as received, the Authorization key included, so
tests can check what the gateway sent. Never point real clients or real keys at it.
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from crossroads.mockupstream.answers import (
    completion_body,
    embeddings_body,
    error_body,
    plan_answer,
    presented_key,
    scripted_problem,
    stream_chunks,
)
from crossroads.mockupstream.anthropic import answer_messages
from crossroads.mockupstream.control import (
    add_control_routes,
    json_response,
    script_error_response,
)
from crossroads.mockupstream.script import Script, ScriptError, parse_script
from crossroads.sse import DONE

__all__ = ["MockUpstream", "RequestRecord"]

JSON = dict[str, Any]

_ABORT_PAUSE = 0.02  # lets the bytes already written reach the client before the reset
_MALFORMED_BODY = b"mock upstream: this body is not JSON {"
_MALFORMED_EVENT = b"data: {this event is not JSON\n\n"
_OUTCOMES = ("completed", "cancelled", "aborted")


@dataclass(slots=True)
class RequestRecord:
    """One received API request. `outcome` is "pending" until the answer ends, then
    "completed" (fully sent), "cancelled" (the client went away first) or "aborted" (the
    script cut it: `reset`, `truncate`). Header names are lower-cased."""

    sequence: int
    method: str
    path: str
    headers: dict[str, str]
    json: Any
    script: str = ""
    outcome: str = "pending"

    def to_json(self) -> JSON:
        return {
            "sequence": self.sequence,
            "method": self.method,
            "path": self.path,
            "headers": self.headers,
            "json": self.json,
            "script": self.script,
            "outcome": self.outcome,
            "cancelled": self.outcome == "cancelled",
        }


async def _forever() -> None:
    await asyncio.get_running_loop().create_future()


class MockUpstream:
    """A scripted OpenAI-compatible upstream on a real socket.

    Each chat request's script comes from, first to last: the queue (`enqueue`,
    `POST /_mock/script`), the `x-mock-script` header, a `mock:<script>` model name, then
    `default_script`. Embeddings requests skip the queue. A `mix` is resolved with a
    `random.Random(seed)`, so a run with one seed and one request order repeats exactly.
    Every model name is accepted; only a `mock:` prefix carries a script.

    The state methods (`requests`, `stats`, `enqueue`, `clear`) must be called on the server's
    event loop; `run_in_thread` wraps them for other threads.
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        default_script: str = "",
        models: Sequence[str] = ("mock",),
        max_recorded: int = 10_000,
    ) -> None:
        """Raises ScriptError if `default_script` does not parse."""
        self._default = parse_script(default_script)
        self._rng = random.Random(seed)
        self._models = tuple(models)
        self._queue: deque[Script] = deque()
        self._records: deque[RequestRecord] = deque(maxlen=max_recorded)
        self._counts = dict.fromkeys(("requests", *_OUTCOMES), 0)
        self._sequence = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._runner: web.AppRunner | None = None
        self._url: str | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on `host:port` (0: the OS picks). Raises OSError if it cannot bind and
        RuntimeError if already started."""
        if self._runner is not None:
            raise RuntimeError("mock upstream already started")
        runner = web.AppRunner(
            self.make_app(), handler_cancellation=True, access_log=None, shutdown_timeout=1.0
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        bound_port = runner.addresses[0][1]
        url_host = f"[{host}]" if ":" in host else host
        self._url = f"http://{url_host}:{bound_port}/v1"

    async def stop(self) -> None:
        """Cancel answers in progress (their requests count as cancelled) and close every
        connection. Idempotent."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        for task in list(self._tasks):
            task.cancel()
        await runner.cleanup()

    async def __aenter__(self) -> MockUpstream:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        """The OpenAI base URL, "http://HOST:PORT/v1". Raises RuntimeError before `start`."""
        if self._url is None:
            raise RuntimeError("mock upstream not started")
        return self._url

    def make_app(self) -> web.Application:
        """The aiohttp application, for callers that run it their own way."""
        app = web.Application(client_max_size=32 * 1024 * 1024)  # real hosts take bodies of MBs
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/messages", self._chat, name="anthropic-messages")
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_get("/v1/models", self._models_list)
        add_control_routes(app, self)
        return app

    # --- state ------------------------------------------------------------------------------

    def requests(self) -> list[JSON]:
        """The recorded requests, oldest first, as JSON-ready dicts (copies)."""
        return [orjson.loads(orjson.dumps(r.to_json())) for r in self._records]

    def stats(self) -> dict[str, int]:
        """Counters since the last clear: requests, completed, cancelled, aborted, and
        in_flight (answers still running)."""
        return {**self._counts, "in_flight": len(self._tasks)}

    def enqueue(self, scripts: Iterable[str]) -> int:
        """Queue scripts for the next chat requests, one each, in order; return the queue length.
        Raises ScriptError (and queues none) if any script does not parse."""
        parsed = [parse_script(text) for text in scripts]
        self._queue.extend(parsed)
        return len(self._queue)

    def queued(self) -> list[str]:
        """The queued scripts' texts, next first."""
        return [script.source for script in self._queue]

    def clear_queue(self) -> None:
        """Drop the queued scripts."""
        self._queue.clear()

    def clear_requests(self) -> None:
        """Forget the recorded requests and zero the counters."""
        self._records.clear()
        self._counts = dict.fromkeys(self._counts, 0)

    def clear(self) -> None:
        """Forget the recorded requests, zero the counters and empty the script queue."""
        self.clear_requests()
        self.clear_queue()

    # --- bookkeeping --------------------------------------------------------------------------

    async def _admit(self, request: web.Request) -> tuple[RequestRecord, JSON | None]:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            body = None
        self._sequence += 1
        record = RequestRecord(
            sequence=self._sequence,
            method=request.method,
            path=request.path,
            headers={name.lower(): value for name, value in request.headers.items()},
            json=body,
        )
        self._records.append(record)
        self._counts["requests"] += 1
        return record, body if isinstance(body, dict) else None

    def _settle(self, record: RequestRecord, outcome: str) -> None:
        if record.outcome == "pending":
            record.outcome = outcome
            self._counts[outcome] += 1

    def _resolve(self, request: web.Request, body: JSON, *, use_queue: bool) -> Script:
        header = request.headers.get("x-mock-script")
        model = body.get("model")
        if use_queue and self._queue:
            script = self._queue.popleft()
        elif header is not None:
            script = parse_script(header)
        elif isinstance(model, str) and model.startswith("mock:"):
            script = parse_script(model[len("mock:") :])
        else:
            script = self._default
        return script.pick(self._rng)

    def _abort(self, request: web.Request, record: RequestRecord) -> None:
        """Reset the connection: SO_LINGER 0 makes the close send RST, not FIN."""
        self._settle(record, "aborted")
        transport = request.transport
        if transport is None:
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()

    # --- API endpoints ------------------------------------------------------------------------

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, chat=True)

    async def _embeddings(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, chat=False)

    async def _serve(self, request: web.Request, *, chat: bool) -> web.StreamResponse:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            record, body = await self._admit(request)
            return await self._settled(request, record, body, chat=chat)
        finally:
            self._tasks.discard(task)

    async def _settled(
        self, request: web.Request, record: RequestRecord, body: JSON | None, *, chat: bool
    ) -> web.StreamResponse:
        try:
            response = await self._answer(request, record, body, chat=chat)
        except asyncio.CancelledError:
            self._settle(record, "cancelled")
            raise
        except ConnectionError:  # the client went away while we wrote
            self._settle(record, "cancelled")
            return web.Response(status=499)  # never sent: the connection is gone
        self._settle(record, "completed")
        return response

    async def _answer(
        self, request: web.Request, record: RequestRecord, body: JSON | None, *, chat: bool
    ) -> web.StreamResponse:
        if request.match_info.route.name == "anthropic-messages":
            return await answer_messages(self, request, record, body)
        if body is None:
            return json_response(error_body(400, "the request body must be a JSON object"), 400)
        try:
            script = self._resolve(request, body, use_queue=chat)
        except ScriptError as exc:
            return script_error_response(exc)
        record.script = script.source
        early = await self._preamble(request, record, script)
        if early is not None:
            return early
        problem = scripted_problem(body, script) if chat else None
        if problem:
            return json_response(error_body(400, problem), 400)
        if chat and body.get("stream"):
            return await self._stream(request, record, script, body)
        await asyncio.sleep(script.latency)
        if script.malformed:
            payload = _MALFORMED_BODY
        elif chat:
            answer = plan_answer(body, script, record.sequence, int(time.time()))
            payload = orjson.dumps(completion_body(answer))
        else:
            embedded = embeddings_body(body)
            if script.no_usage:
                del embedded["usage"]
            payload = orjson.dumps(embedded)
        return await self._send_body(request, record, script, payload)

    async def _preamble(
        self, request: web.Request, record: RequestRecord, script: Script
    ) -> web.StreamResponse | None:
        """The parts every endpoint shares: time to first byte, hang, reset before answering,
        and error statuses. Returns the response when one of them answered."""
        await asyncio.sleep(script.first_byte)
        if script.hang:
            await _forever()
        if script.reset == "before":
            self._abort(request, record)
            return web.Response()
        if script.status == 200 and not script.error_body:
            return None
        await asyncio.sleep(script.latency)
        headers = {"Retry-After": script.retry_after} if script.retry_after else {}
        if script.status in (204, 304):
            return web.Response(status=script.status, headers=headers)
        message = f"mock upstream error, status {script.status}"
        if script.echo_key:
            message += f": Incorrect API key provided: {presented_key(request.headers)}"
        if script.error_text:
            message += f": {script.error_text}"
        if script.error_body:
            payload = orjson.dumps(error_body(script.status, message))
            headers["Content-Type"] = "application/json"
        else:
            payload = f"mock upstream: HTTP {script.status}".encode()
            if script.echo_key or script.error_text:
                payload = message.encode()
            headers["Content-Type"] = "text/plain"
        return web.Response(status=script.status, body=payload, headers=headers)

    async def _send_body(
        self, request: web.Request, record: RequestRecord, script: Script, payload: bytes
    ) -> web.StreamResponse:
        headers = {"Content-Type": "application/json"}
        if script.retry_after:
            headers["Retry-After"] = script.retry_after
        if script.reset == "during":
            response = web.StreamResponse(headers=headers)
            response.content_length = len(payload)
            await response.prepare(request)
            await response.write(payload[: len(payload) // 2])
            await asyncio.sleep(_ABORT_PAUSE)
            self._abort(request, record)
            return response
        if script.truncate:
            payload = payload[: len(payload) // 2]
            self._settle(record, "aborted")
        response = web.Response(body=payload, headers=headers)
        if script.truncate:
            response.force_close()
        return response

    async def _stream(
        self, request: web.Request, record: RequestRecord, script: Script, body: JSON
    ) -> web.StreamResponse:
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        answer = plan_answer(body, script, record.sequence, int(time.time()))
        chunks = stream_chunks(answer, include_usage)
        events = [b"data: " + orjson.dumps(chunk) + b"\n\n" for chunk in chunks]
        if script.malformed:
            events.insert(len(events) // 2, _MALFORMED_EVENT)
        if script.error_event:
            message = "mock upstream error mid-stream" + (
                f": {script.error_text}" if script.error_text else ""
            )
            failure = b"data: " + orjson.dumps(error_body(500, message)) + b"\n\n"
            events[len(events) // 2 :] = [failure]
        elif not script.no_done:
            events.append(DONE)
        return await self.send_events(request, record, script, events)

    async def send_events(
        self, request: web.Request, record: RequestRecord, script: Script, events: list[bytes]
    ) -> web.StreamResponse:
        """Sends a stream's events as the script says (latency, drip, a reset or a truncation
        halfway); shared by the OpenAI and Anthropic endpoints."""
        headers = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        if script.retry_after:
            headers["Retry-After"] = script.retry_after
        response = web.StreamResponse(headers=headers)
        if script.truncate:
            response.force_close()
        await response.prepare(request)
        await asyncio.sleep(script.latency)
        cut = len(events) // 2
        for index, event in enumerate(events):
            if index and script.drip:
                await asyncio.sleep(script.drip)
            if index == cut and script.reset == "during":
                await asyncio.sleep(_ABORT_PAUSE)
                self._abort(request, record)
                return response
            if index == cut and script.truncate:
                await response.write(event[: len(event) // 2])
                self._settle(record, "aborted")
                break
            await response.write(event)
        await response.write_eof()
        return response

    async def _models_list(self, request: web.Request) -> web.Response:
        data = [
            {"id": model, "object": "model", "created": 0, "owned_by": "crossroads-mock"}
            for model in self._models
        ]
        return json_response({"object": "list", "data": data})
