"""POST /v1/chat/completions: validate, route, answer (whole or as SSE), and ledger the outcome.

Every path through here submits exactly one ledger record: success, client error, upstream
failure, or the client going away mid-stream."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from crossroads.errors import GatewayError, UpstreamError
from crossroads.ingress.body import ClientGone, read_json_object
from crossroads.ingress.disconnect import unless_disconnected
from crossroads.ingress.exchange import Exchange
from crossroads.ingress.openai.errors import error_response, stream_error_event
from crossroads.ingress.openai.validate import parse_chat_request
from crossroads.ingress.pipeline import (
    Admitted,
    admit,
    authenticate,
    dropped_header,
    finish,
    new_trace,
    trace_headers,
)
from crossroads.ingress.services import Services
from crossroads.ledger.record import Status
from crossroads.routing.options import parse_routing_options
from crossroads.routing.router import OpenStream, Trace
from crossroads.schemas import ChatRequest, Usage
from crossroads.sse import DONE

log = logging.getLogger(__name__)

__all__ = ["chat_completions"]


async def chat_completions(request: Request) -> Response:
    services: Services = request.app.state.services
    exchange = Exchange("chat.completions")
    trace: Trace | None = None
    admitted: Admitted | None = None
    try:
        principal = authenticate(services, request, exchange)
        body, data = await read_json_object(request, services.max_body_bytes)
        model = data.get("model")
        exchange.requested_model = model if isinstance(model, str) else ""
        exchange.stream = data.get("stream") is True
        options = parse_routing_options(data, prompt_tokens=len(body) // 4)
        req = parse_chat_request(data)
        trace = new_trace(exchange)
        admitted = await admit(
            services,
            request,
            principal,
            req.model,
            options,
            stream=req.stream,
            max_output=req.output_limit,
            trace=trace,
            body=data,
        )
        if req.stream:
            stream = await unless_disconnected(
                request, services.router.open_stream(admitted.plan, data, trace)
            )
            return _stream_response(services, exchange, admitted, req, stream)
        _, completion = await unless_disconnected(
            request, services.router.complete(admitted.plan, data, trace)
        )
        finish(
            services,
            exchange,
            trace,
            admitted.admission,
            status=Status.OK,
            usage=completion.usage,
        )
        return Response(
            completion.body,
            media_type="application/json",
            headers={**trace_headers(exchange, trace), **dropped_header(completion.dropped)},
        )
    except GatewayError as exc:
        finish(
            services,
            exchange,
            trace,
            admitted.admission if admitted else None,
            status=Status.ERROR,
            error=exc,
        )
        return error_response(exc, trace_headers(exchange, trace))
    except ClientGone:
        finish(
            services,
            exchange,
            trace,
            admitted.admission if admitted else None,
            status=Status.CANCELLED,
        )
        return Response(status_code=499)


def _stream_response(
    services: Services,
    exchange: Exchange,
    admitted: Admitted,
    req: ChatRequest,
    stream: OpenStream,
) -> StreamingResponse:
    return StreamingResponse(
        _relay(services, exchange, admitted, req, stream),
        media_type="text/event-stream",
        headers={
            **trace_headers(exchange, admitted.trace),
            **dropped_header(stream.first.dropped),
            "cache-control": "no-cache",
            "x-accel-buffering": "no",
        },
    )


async def _relay(
    services: Services,
    exchange: Exchange,
    admitted: Admitted,
    req: ChatRequest,
    stream: OpenStream,
) -> AsyncIterator[bytes]:
    """Relays chunks as they arrive. The upstream asked for usage even when the client did not;
    the usage-only chunk is then dropped here. An upstream failure after the first byte ends the
    stream with an error event; the client going away closes the upstream at once."""
    wants_usage = req.wants_stream_usage
    usage: Usage | None = None
    seen = 0  # content chunks relayed: the completion-token estimate when no usage arrives
    status, error = Status.CANCELLED, None
    try:
        exchange.first_byte()
        chunk = stream.first
        while True:
            if chunk.usage is not None:
                usage = chunk.usage
            if not chunk.usage_only:
                seen += 1
                yield b"data: " + chunk.data + b"\n\n"
            elif wants_usage:
                yield b"data: " + chunk.data + b"\n\n"
            chunk = await anext(stream.rest, None)  # type: ignore[arg-type]
            if chunk is None:
                break
        yield DONE
        status = Status.OK
    except UpstreamError as exc:
        status, error = Status.ERROR, exc
        yield stream_error_event(exc)
    finally:
        await _close_quietly(stream)
        if usage is None:
            usage = Usage(completion_tokens=max(seen - 1, 0))
        finish(
            services,
            exchange,
            admitted.trace,
            admitted.admission,
            status=status,
            usage=usage,
            error=error,
        )


async def _close_quietly(stream: OpenStream) -> None:
    try:
        await stream.aclose()
    except UpstreamError as exc:
        log.debug("upstream stream close failed: %s", exc.message)
