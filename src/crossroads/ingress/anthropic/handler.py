"""POST /v1/messages and /v1/messages/count_tokens: the Anthropic Messages API over any model
the gateway serves.

/v1/messages validates the request, converts it to the neutral chat request, routes it, and
converts the answer back (a whole Message, or Anthropic's SSE events). Every path through it
submits exactly one ledger record (endpoint "messages"): success, client error, upstream
failure, or the client going away mid-stream. Responses carry `request-id` (Anthropic's header)
and `x-request-id` with the same value, plus the router's `x-crossroads-*` headers. Credentials
(`x-api-key` or `Authorization: Bearer`) are checked by the gate like on every endpoint; the
`anthropic-version` / `anthropic-beta` headers are accepted and ignored. The gateway's routing
extensions (`provider`, `models`) are read as on /v1/chat/completions.

/v1/messages/count_tokens answers `{"input_tokens": N}` for the same request shape
(`max_tokens` optional). It calls no upstream and writes no ledger record; it only checks that
the model is served (404 otherwise). N is an estimate over the converted request, the text the
upstream would see (`crossroads.ingress.estimate.estimate_input_tokens`): ceil(characters / 4)
over the system prompt, every message's text, thinking, tool calls and the tool definitions,
plus fixed overheads per message and per image. The ledger uses the same estimate when an
upstream reports no usage."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response

from crossroads.errors import (
    AuthenticationError,
    GatewayError,
    InvalidRequestError,
    UpstreamError,
)
from crossroads.ingress.anthropic.errors import error_response, stream_error_event
from crossroads.ingress.anthropic.request import Converted, to_chat_request
from crossroads.ingress.anthropic.response import to_message
from crossroads.ingress.anthropic.stream import StreamTranslator, encode_events
from crossroads.ingress.body import ClientGone, headers_of, read_json_object
from crossroads.ingress.disconnect import unless_disconnected
from crossroads.ingress.estimate import estimate_input_tokens, estimated_answer_usage
from crossroads.ingress.exchange import new_request_id
from crossroads.ingress.pipeline import Call, dropped_header
from crossroads.ingress.relay import StreamRelay
from crossroads.ingress.services import Services
from crossroads.providers.base import StreamChunk
from crossroads.routing.options import parse_routing_options
from crossroads.routing.router import Trace
from crossroads.schemas import Usage
from crossroads.schemas.chat_wire import ChatChunk, WireError, decode_chunk, decode_completion

__all__ = ["count_tokens", "messages"]


def _headers(call: Call) -> dict[str, str]:
    return {**call.headers(), "request-id": call.exchange.request_id}


async def messages(request: Request) -> Response:
    """POST /v1/messages. Every GatewayError becomes Anthropic's error shape (and an error
    record); a client that leaves before the answer is recorded as cancelled (499)."""
    return await Call(request, "messages").run(request, _messages, _error)


def _error(exc: GatewayError, call: Call) -> Response:
    return error_response(exc, _headers(call), call.exchange.request_id)


async def _messages(call: Call, request: Request) -> Response:
    principal, data, options = await call.read(request)
    converted = to_chat_request(data)
    max_output = converted.body.get("max_tokens")
    admitted = await call.admit(
        request,
        principal,
        converted.model,
        options,
        stream=converted.stream,
        max_output=max_output if isinstance(max_output, int) else None,
        body=converted.body,
    )
    router, trace = call.services.router, admitted.trace
    if converted.stream:
        stream = await unless_disconnected(
            request, router.open_stream(admitted.plan, converted.body, trace)
        )
        return StreamRelay(
            call,
            stream,
            _EventEncoder(converted, trace, call.exchange.request_id),
            {**_headers(call), **dropped_header(stream.first.dropped)},
        )
    _, completion = await unless_disconnected(
        request, router.complete(admitted.plan, converted.body, trace)
    )
    # Paid for, whatever happens to the conversion below; estimated when the upstream said not.
    call.usage = completion.usage or estimated_answer_usage(converted.body, completion.data)
    try:
        parsed = decode_completion(completion.body)
    except WireError:
        provider = trace.deployment.provider if trace.deployment else "upstream"
        raise UpstreamError(
            f"provider '{provider}' sent an answer that is not a chat completion",
            retryable=False,
            code="upstream_bad_response",
        ) from None
    message = to_message(parsed, model=converted.model, stop_sequences=converted.stop_sequences)
    body = orjson.dumps(message)
    call.answered(call.usage)
    return Response(
        body,
        media_type="application/json",
        headers={**_headers(call), **dropped_header(completion.dropped)},
    )


async def count_tokens(request: Request) -> Response:
    """POST /v1/messages/count_tokens. No upstream call, no ledger record (module docstring);
    a 401 is counted in `crossroads_auth_failures_total` as on the other endpoints."""
    services: Services = request.app.state.services
    request_id = new_request_id()
    headers = {"request-id": request_id, "x-request-id": request_id}
    try:
        services.gate.authenticate(headers_of(request))
        _, data = await read_json_object(request, services.max_body_bytes, services.json_depth)
        parse_routing_options(data)  # accepted as on /v1/messages, and kept out of the count
        converted = to_chat_request(data, require_max_tokens=False)
        services.router.route(converted.model)
        body = orjson.dumps({"input_tokens": estimate_input_tokens(converted.body)})
    except AuthenticationError as exc:
        services.metrics.auth_failure(exc.code)
        return error_response(exc, headers, request_id)
    except GatewayError as exc:
        return error_response(exc, headers, request_id)
    except ClientGone:
        return Response(status_code=499)
    except orjson.JSONEncodeError as exc:
        refused = InvalidRequestError(f"The request cannot be encoded as JSON ({exc}).")
        return error_response(refused, headers, request_id)
    return Response(body, media_type="application/json", headers=headers)


class _EventEncoder:
    """Anthropic's stream: the chunks translated into typed events (`StreamTranslator`)."""

    __slots__ = ("_input_estimate", "_request_id", "_seen", "_trace", "_translator")

    def __init__(self, converted: Converted, trace: Trace, request_id: str) -> None:
        # Computed for message_start anyway, so the ledger's estimate costs nothing more.
        self._input_estimate = estimate_input_tokens(converted.body)
        self._translator = StreamTranslator(
            converted.model, converted.stop_sequences, self._input_estimate
        )
        self._trace = trace
        self._request_id = request_id
        self._seen = 0  # content chunks: the completion-token estimate when no usage arrives

    def feed(self, chunk: StreamChunk) -> bytes:
        if not chunk.usage_only:
            self._seen += 1
        events = self._translator.feed(chunk.parsed or _decode(chunk, self._trace))
        return encode_events(events) if events else b""

    def end(self) -> bytes:
        return encode_events(self._translator.finish())

    def error(self, exc: GatewayError) -> bytes:
        return stream_error_event(exc, self._request_id)

    def usage(self) -> Usage:
        """The upstream's usage; without one, the input estimate and one token per content
        chunk (hosts stream about a token per chunk), marked estimated."""
        return self._translator.usage or Usage(
            prompt_tokens=self._input_estimate,
            completion_tokens=max(self._seen - 1, 0),
            estimated=True,
        )


def _decode(chunk: StreamChunk, trace: Trace) -> ChatChunk:
    """The chunk, typed: decoded once here when the adapter passed bytes through. Anything that
    is not a chat chunk is the upstream's fault and ends the stream with an error."""
    try:
        return decode_chunk(chunk.data)
    except WireError:
        provider = trace.deployment.provider if trace.deployment else "upstream"
        raise UpstreamError(
            f"provider '{provider}' sent a stream chunk that is not a chat chunk",
            retryable=False,
            code="upstream_bad_response",
        ) from None
