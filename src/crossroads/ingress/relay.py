"""Relays a committed upstream stream to its client as server-sent events, the same way for
every ingress; what differs per API (OpenAI's `data:` chunks and `[DONE]`, Anthropic's typed
events) is a `StreamEncoder`.

One upstream read often completes many chunks (a fast host, or a burst after a stall). Chunks the
adapter marked `more` are held and sent with the one that follows, so a read's worth of events
costs one write to the client instead of one per event; a chunk without the mark is sent at once.
The last bytes go out with the end of the body. The client going away cancels the relay and the
upstream with it (`CancelOnDisconnect`); so does a shutdown whose grace period is over
(`InFlight`), which ends the stream with the API's error event. Exactly one ledger record is
submitted, whatever ends the stream: the relay ends its `Call`."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol

import orjson
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from crossroads.errors import GatewayError, ShuttingDownError, UpstreamError
from crossroads.ingress.body import ClientGone
from crossroads.ingress.disconnect import CancelOnDisconnect
from crossroads.ingress.pipeline import Call, internal_error
from crossroads.ledger.record import Status
from crossroads.providers.base import StreamChunk
from crossroads.quality.answers import assemble_stream
from crossroads.quality.tap import Tapped
from crossroads.routing.router import OpenStream
from crossroads.schemas import Usage

log = logging.getLogger(__name__)

STREAM_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


class StreamEncoder(Protocol):
    """Turns one stream's chunks into the client's wire format."""

    def feed(self, chunk: StreamChunk) -> bytes:
        """The client's bytes for this chunk; empty when it sends nothing. May raise
        UpstreamError for a chunk it cannot use, which ends the stream with `error`."""
        ...

    def end(self) -> bytes:
        """The bytes that close a complete stream."""
        ...

    def error(self, exc: GatewayError) -> bytes:
        """The event that ends a stream after its first byte: the upstream broke it, or the
        gateway is shutting down (ShuttingDownError)."""
        ...

    def usage(self) -> Usage:
        """The usage to ledger: as reported, else estimated from what was relayed."""
        ...


class StreamRelay(Response):
    """The `text/event-stream` answer to a streamed request (an ASGI response). It takes the
    call over from its handler (`Call.hand_off`) and ends it when the stream ends, however."""

    media_type = "text/event-stream"

    def __init__(
        self,
        call: Call,
        stream: OpenStream,
        encoder: StreamEncoder,
        headers: Mapping[str, str],
    ) -> None:
        self.status_code = 200
        self.background = None
        self.init_headers({**headers, **STREAM_HEADERS})
        self._call = call
        self._stream = stream
        self._encoder = encoder
        self._tap: tuple[Tapped, Any] | None = None
        call.hand_off()

    def tap_into(self, tapped: Tapped, app: Any) -> None:
        """Captures this stream (`quality.capture`): what the client received is kept, up to
        the capture's size cap, and handed over as a whole answer when the stream ends."""
        self._tap = (tapped, app)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        stream, encoder, call = self._stream, self._encoder, self._call
        status: Status = Status.CANCELLED
        error: GatewayError | None = None
        started = ended = False
        pending: list[bytes] = []
        # Only a captured stream keeps what it sent (a bounded copy); the usual one keeps nothing.
        transcript: list[bytes] | None = [] if self._tap is not None else None
        kept = 0
        try:
            async with call.services.inflight.region(), CancelOnDisconnect(receive):
                await send(
                    {"type": "http.response.start", "status": 200, "headers": self.raw_headers}
                )
                started = True
                call.exchange.first_byte()
                try:
                    chunk: StreamChunk | None = stream.first
                    while chunk is not None:
                        piece = encoder.feed(chunk)
                        if piece:
                            pending.append(piece)
                            if transcript is not None and kept <= MAX_TRANSCRIPT:
                                transcript.append(piece)
                                kept += len(piece)
                        if pending and not chunk.more:
                            await send(_body(pending, more=True))
                            pending = []
                        chunk = await anext(stream.rest, None)
                    closing = encoder.end()
                    pending.append(closing)
                    if transcript is not None:
                        transcript.append(closing)
                    status = Status.OK
                except UpstreamError as exc:
                    status, error = Status.ERROR, exc
                    call.services.scrub.error(exc)
                    pending.append(encoder.error(exc))
                except Exception:
                    # A bug or an answer nobody foresaw: the client still gets the stream's
                    # error event, not a dropped connection, and the ledger an error record.
                    log.exception("unhandled error relaying stream %s", call.exchange.request_id)
                    internal = internal_error()
                    status, error = Status.ERROR, internal
                    pending.append(encoder.error(_as_upstream(internal)))
                await send(_body(pending, more=False))
                ended = True
        except ClientGone:
            pass  # recorded as cancelled below; there is nobody to answer
        except ShuttingDownError as exc:
            # Past the shutdown grace period: end the stream with the API's error event.
            if not ended:
                status, error = Status.ERROR, exc
                if not started:
                    await send(
                        {"type": "http.response.start", "status": 200, "headers": self.raw_headers}
                    )
                pending.append(encoder.error(exc))
                await send(_body(pending, more=False))
        finally:
            await _close_quietly(stream)
            call.end(status, usage=_usage(encoder), error=error)
            if self._tap is not None:
                whole = transcript if status is Status.OK and kept <= MAX_TRANSCRIPT else None
                _captured(self._tap, call.exchange.endpoint, whole)


MAX_TRANSCRIPT = 1024 * 1024
"""Bytes of a captured stream kept: beyond, the answer is not captured (its request still is)."""


def _captured(tap: tuple[Tapped, Any], endpoint: str, transcript: list[bytes] | None) -> None:
    """Hands a captured stream's answer, assembled into the whole-answer shape, to capture."""
    tapped, app = tap
    answer = assemble_stream(endpoint, b"".join(transcript)) if transcript else None
    try:
        tapped.answered(app, orjson.dumps(answer) if answer is not None else None)
    except Exception:
        log.exception("capturing stream %s failed", tapped.request.request_id)


def _as_upstream(error: GatewayError) -> UpstreamError:
    """The encoders' error events take an UpstreamError; an internal error travels as one."""
    return UpstreamError(error.message, retryable=False, status=error.status, code=error.code)


def _usage(encoder: StreamEncoder) -> Usage | None:
    """What the stream used, or None (with the reason logged) if the encoder cannot say."""
    try:
        return encoder.usage()
    except Exception:
        log.exception("stream encoder failed to report usage")
        return None


def _body(pieces: list[bytes], *, more: bool) -> dict[str, object]:
    body = pieces[0] if len(pieces) == 1 else b"".join(pieces)
    return {"type": "http.response.body", "body": body, "more_body": more}


async def _close_quietly(stream: OpenStream) -> None:
    try:
        await stream.aclose()
    except UpstreamError as exc:
        log.debug("upstream stream close failed: %s", exc.message)
