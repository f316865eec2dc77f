"""POST /v1/chat/completions: validate, route, answer (whole or as SSE), and ledger the outcome.

Every path through here submits exactly one ledger record: success, client error, upstream
failure, an unexpected error, or the client going away (`Call.run`; streams:
`crossroads.ingress.relay`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from crossroads.errors import GatewayError
from crossroads.ingress.disconnect import unless_disconnected
from crossroads.ingress.estimate import estimate_input_tokens, estimated_answer_usage
from crossroads.ingress.openai.errors import error_response, stream_error_event
from crossroads.ingress.openai.validate import parse_chat_request
from crossroads.ingress.pipeline import Call, dropped_header
from crossroads.ingress.relay import StreamRelay
from crossroads.providers.base import StreamChunk
from crossroads.schemas import Usage
from crossroads.sse import DONE

__all__ = ["chat_completions"]


async def chat_completions(request: Request) -> Response:
    return await Call(request, "chat.completions").run(request, _chat, _error)


def _error(exc: GatewayError, call: Call) -> Response:
    return error_response(exc, call.headers())


async def _chat(call: Call, request: Request) -> Response:
    principal, data, options = await call.read(request)
    req = parse_chat_request(data)
    admitted = await call.admit(
        request,
        principal,
        req.model,
        options,
        stream=req.stream,
        max_output=req.output_limit,
        body=data,
    )
    router = call.services.router
    if req.stream:
        stream = await unless_disconnected(
            request, router.open_stream(admitted.plan, data, admitted.trace)
        )
        return StreamRelay(
            call,
            stream,
            _ChunkEncoder(req.wants_stream_usage, req.model, data),
            {**call.headers(), **dropped_header(stream.first.dropped)},
        )
    _, completion = await unless_disconnected(
        request, router.complete(admitted.plan, data, admitted.trace)
    )
    call.answered(completion.usage or estimated_answer_usage(data, completion.data))
    body = completion.body
    if completion.data.get("model") != req.model:
        body = orjson.dumps({**completion.data, "model": req.model})
    return Response(
        body,
        media_type="application/json",
        headers={**call.headers(), **dropped_header(completion.dropped)},
    )


_MODEL_FIELD = re.compile(rb'"model"\s*:\s*"(?:[^"\\]|\\.)*"')
"""A JSON `"model": "..."` member. Inside a JSON string a quote is escaped, so this matches only
real members; an OpenAI chunk's first one is the top-level `model`."""


class _ChunkEncoder:
    """OpenAI's stream framing: each chunk as `data: {json}`, then `data: [DONE]`. The upstream
    was asked for usage even when the client was not; the usage-only chunk is then dropped.

    Each chunk names the model the client asked for, as the Anthropic ingress does, whatever
    the upstream called it (its own id is in the `x-crossroads-upstream-model` header).

    `request` is kept, not read, while the stream runs: the input is estimated from it only
    if the upstream never reports usage."""

    __slots__ = ("_model_field", "_reported", "_request", "_seen", "_wants_usage")

    def __init__(self, wants_usage: bool, model: str, request: Mapping[str, Any]) -> None:
        self._wants_usage = wants_usage
        self._request = request
        # A replacement template: its backslashes (from JSON escapes in the name) doubled.
        self._model_field = (b'"model":' + orjson.dumps(model)).replace(b"\\", b"\\\\")
        self._reported: Usage | None = None
        self._seen = 0  # content chunks relayed: the completion-token estimate without usage

    def feed(self, chunk: StreamChunk) -> bytes:
        if chunk.usage is not None:
            self._reported = chunk.usage
        if not chunk.usage_only:
            self._seen += 1
        elif not self._wants_usage:
            return b""
        data = _MODEL_FIELD.sub(self._model_field, chunk.data, count=1)
        return b"data: " + data + b"\n\n"

    def end(self) -> bytes:
        return DONE

    def error(self, exc: GatewayError) -> bytes:
        return stream_error_event(exc)

    def usage(self) -> Usage:
        """The upstream's usage; without one, the request's input estimate and one token per
        content chunk (hosts stream about a token per chunk), marked estimated."""
        return self._reported or Usage(
            prompt_tokens=estimate_input_tokens(self._request),
            completion_tokens=max(self._seen - 1, 0),
            estimated=True,
        )
