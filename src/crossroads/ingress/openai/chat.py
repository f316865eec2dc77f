"""POST /v1/chat/completions: validate, route, answer (whole or as SSE), and ledger the outcome.

Every path through here submits exactly one ledger record: success, client error, upstream
failure, or the client going away mid-stream (streams: `crossroads.ingress.relay`)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from crossroads.errors import GatewayError
from crossroads.ingress.body import ClientGone
from crossroads.ingress.disconnect import unless_disconnected
from crossroads.ingress.openai.errors import error_response, stream_error_event
from crossroads.ingress.openai.validate import parse_chat_request
from crossroads.ingress.pipeline import Call, dropped_header
from crossroads.ingress.relay import StreamRelay
from crossroads.providers.base import StreamChunk
from crossroads.schemas import Usage
from crossroads.sse import DONE

__all__ = ["chat_completions"]


async def chat_completions(request: Request) -> Response:
    call = Call(request, "chat.completions")
    try:
        async with call.stoppable():
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
                    call.services,
                    call.exchange,
                    admitted,
                    stream,
                    _ChunkEncoder(req.wants_stream_usage),
                    {**call.headers(), **dropped_header(stream.first.dropped)},
                )
            _, completion = await unless_disconnected(
                request, router.complete(admitted.plan, data, admitted.trace)
            )
            call.answered(completion.usage)
            return Response(
                completion.body,
                media_type="application/json",
                headers={**call.headers(), **dropped_header(completion.dropped)},
            )
    except GatewayError as exc:
        call.failed(exc)
        return error_response(exc, call.headers())
    except ClientGone:
        call.gone()
        return Response(status_code=499)


class _ChunkEncoder:
    """OpenAI's stream framing: each chunk as `data: {json}`, then `data: [DONE]`. The upstream
    was asked for usage even when the client was not; the usage-only chunk is then dropped."""

    __slots__ = ("_reported", "_seen", "_wants_usage")

    def __init__(self, wants_usage: bool) -> None:
        self._wants_usage = wants_usage
        self._reported: Usage | None = None
        self._seen = 0  # content chunks relayed: the completion-token estimate without usage

    def feed(self, chunk: StreamChunk) -> bytes:
        if chunk.usage is not None:
            self._reported = chunk.usage
        if not chunk.usage_only:
            self._seen += 1
        elif not self._wants_usage:
            return b""
        return b"data: " + chunk.data + b"\n\n"

    def end(self) -> bytes:
        return DONE

    def error(self, exc: GatewayError) -> bytes:
        return stream_error_event(exc)

    def usage(self) -> Usage:
        return self._reported or Usage(completion_tokens=max(self._seen - 1, 0))
