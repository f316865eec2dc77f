"""The HTTP/1.1 connection protocol: uvicorn's httptools protocol plus the limits it lacks (on the
bytes of a request's line and headers, on the time to receive headers and bodies, and on the
number of open connections, closing the longest-idle one first)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import ClassVar

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from crossroads.errors import GatewayError, InvalidRequestError
from crossroads.server.edge import error_payload

LINGER_SECONDS = 2.0
LINGER_BYTES = 1024 * 1024
"""After a refusal the gateway stops reading the request but keeps the connection this long
(or until this many more bytes came), discarding what arrives, before it closes: closing a
socket with unread data resets it, and a client still sending would never read the answer."""

FD_RESERVE = 256
"""Open files kept back from client connections: the ledger, key store, logs, pools."""


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """The limits one server applies to each client connection (see README, Configuration)."""

    max_header_bytes: int
    max_headers: int
    header_timeout: float
    body_timeout: float
    body_idle_timeout: float
    keep_alive_timeout: float
    max_connections: int


def default_max_connections(open_files: int) -> int:
    """The connection cap for a process allowed `open_files` descriptors: half of them, less a
    reserve, since a connection in a request also holds one upstream connection."""
    return max(16, (open_files - FD_RESERVE) // 2)


def protocol_class(limits: ConnectionLimits) -> type[EdgeProtocol]:
    """A protocol class for one uvicorn server (`uvicorn.Config(http=...)`), bound to `limits`
    and to that server's own list of idle connections."""

    class ServerProtocol(EdgeProtocol):
        pass

    ServerProtocol.limits = limits
    ServerProtocol.idle = IdleConnections()
    return ServerProtocol


class _HeadRefused(Exception):
    """Raised in a parser callback to stop parsing a request that is refused."""


class IdleConnections:
    """One server's connections that wait for a request with none of theirs in progress (new,
    kept alive, or part-way through sending headers), longest-waiting first."""

    __slots__ = ("_waiting",)

    def __init__(self) -> None:
        self._waiting: dict[EdgeProtocol, None] = {}

    def add(self, connection: EdgeProtocol) -> None:
        self._waiting[connection] = None

    def discard(self, connection: EdgeProtocol) -> None:
        self._waiting.pop(connection, None)

    def oldest(self) -> EdgeProtocol | None:
        return next(iter(self._waiting), None)

    def __len__(self) -> int:
        return len(self._waiting)


class EdgeProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with these limits, all in `limits`:

    - a request whose line and headers exceed `max_header_bytes` is answered 431 as soon as the
      excess arrives, without parsing the rest (a request may go over by less than one read),
      and so is one with more than `max_headers` header fields (each costs far more memory
      parsed than its bytes on the wire);
    - headers must be complete `header_timeout` seconds after the connection opens (or after
      the first byte of a later request on it), else 408;
    - a body must arrive within `body_timeout` seconds of its headers, pausing no longer than
      `body_idle_timeout`, else 408 (or a plain close once an answer has started);
    - an idle kept-alive connection is closed after `keep_alive_timeout` seconds;
    - past `max_connections` open connections, the longest-idle one is closed to make room,
      and with none idle the newcomer is answered 503 and closed.

    Every refusal is in OpenAI's error shape (Anthropic's when the path is /v1/messages*) with
    `connection: close`. Use `protocol_class` to bind the limits; this class has none."""

    limits: ClassVar[ConnectionLimits]
    idle: ClassVar[IdleConnections]

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, object],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.timeout_keep_alive = self.limits.keep_alive_timeout  # type: ignore[assignment]
        self.url = b""
        self.headers = []
        self._reading_head = True  # the next bytes belong to a request line or headers
        self._reading_body = False
        self._head_room = self.limits.max_header_bytes
        self._completed = 0  # requests received in full on this connection
        self._body_started = 0.0
        self._last_read = 0.0
        self._timer: asyncio.TimerHandle | None = None  # the header, body or linger deadline
        self._draining = False
        self._drained = 0
        self._head_refusal: GatewayError | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            oldest = self.idle.oldest()
            if oldest is None:
                self._refuse_connection()
                return
            oldest.close_idle()
        self.idle.add(self)
        self._timer = self.loop.call_later(self.limits.header_timeout, self._head_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        self.idle.discard(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._reading_head:
            if self._draining:
                self._drained += len(data)
                if self._drained > LINGER_BYTES:
                    self.transport.close()
                return
            # Fed to the parser only up to the room left for headers: what comes after the
            # headers' end is fed on; what would overflow them is never parsed.
            while self._reading_head and len(data) > self._head_room:
                room, completed = self._head_room, self._completed
                self._head_room = 0
                super().data_received(data[:room])
                if self._draining or self.transport.is_closing():
                    return
                if self._reading_head and self._completed == completed:
                    self._refuse_head(
                        InvalidRequestError(
                            "The request line and headers are larger than the gateway's limit "
                            f"of {self.limits.max_header_bytes} bytes.",
                            status=431,
                            code="headers_too_large",
                        )
                    )
                    return
                data = data[room:]
            if self._reading_head:
                self._head_room -= len(data)
        super().data_received(data)
        if self._draining or self.transport.is_closing():
            return
        if self._reading_head and len(self.headers) > self.limits.max_headers:
            self._refuse_head(self._too_many_headers())  # still arriving
            return
        if self._timer is not None:
            if self._reading_body:  # more of a body that spans reads
                self._last_read = self.loop.time()
            return
        if self._reading_head:
            if self._head_room < self.limits.max_header_bytes:  # a new request has begun
                self._timer = self.loop.call_later(self.limits.header_timeout, self._head_timed_out)
        elif self._reading_body:
            self._body_started = self._last_read = self.loop.time()
            self._timer = self.loop.call_later(self._body_wait(), self._body_timed_out)

    def on_headers_complete(self) -> None:
        if len(self.headers) > self.limits.max_headers:
            # Stops the parser; uvicorn answers through `send_400_response`.
            self._head_refusal = self._too_many_headers()
            raise _HeadRefused
        self._reading_head = False
        self._reading_body = True
        self._cancel_timer()
        self.idle.discard(self)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._reading_body = False
        self._reading_head = True
        self._head_room = self.limits.max_header_bytes
        self._completed += 1
        self._cancel_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.cycle.response_complete:
            self.idle.add(self)  # no pipelined request started in its place

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer when the parser fails: in the API's error shape, and a 431 when
        it was stopped for too many header fields."""
        refusal, self._head_refusal = self._head_refusal, None
        self._refuse_head(
            refusal
            or InvalidRequestError(
                "The request is not valid HTTP/1.1.", status=400, code="invalid_http"
            )
        )

    def shutdown(self) -> None:
        """The server is stopping: a connection lingering after a refusal closes now."""
        if self._draining:
            self.transport.close()
            return
        super().shutdown()

    def close_idle(self) -> None:
        """Closes this idle connection to make room for a new one."""
        self._forget()
        self.transport.close()

    def _head_timed_out(self) -> None:
        self._timer = None
        if self.transport.is_closing() or not self._reading_head:
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined request's headers arrive while an earlier one is answered: the
            # deadline starts again once that answer is out of the way.
            self._timer = self.loop.call_later(self.limits.header_timeout, self._head_timed_out)
            return
        self._refuse_head(
            InvalidRequestError(
                f"The request's headers did not arrive within {self.limits.header_timeout:g} "
                "seconds.",
                status=408,
                code="request_timeout",
            )
        )

    def _body_wait(self) -> float:
        """Seconds until the body's next deadline: its idle gap or its total time."""
        limits = self.limits
        deadline = min(
            self._last_read + limits.body_idle_timeout, self._body_started + limits.body_timeout
        )
        return deadline - self.loop.time()

    def _body_timed_out(self) -> None:
        self._timer = None
        if self.transport.is_closing() or not self._reading_body:
            return
        if self.flow.read_paused:
            # The gateway, not the client, has stopped reading; its own deadlines apply.
            self._last_read = self.loop.time()
        wait = self._body_wait()
        if wait > 0:
            self._timer = self.loop.call_later(wait, self._body_timed_out)
            return
        limits = self.limits
        cycle = self.cycle
        if cycle.response_started:
            self._forget()
            self.transport.close()
            return
        cycle.disconnected = True  # the app's receive() now reports a disconnect
        cycle.message_event.set()
        exc = InvalidRequestError(
            f"The request body did not arrive within {limits.body_timeout:g} seconds, "
            f"or paused for more than {limits.body_idle_timeout:g}.",
            status=408,
            code="request_timeout",
        )
        self._answer_and_linger(_response(exc, self.scope["path"]))

    def _too_many_headers(self) -> GatewayError:
        return InvalidRequestError(
            f"The request has more than the gateway's limit of {self.limits.max_headers} "
            "header fields.",
            status=431,
            code="headers_too_large",
        )

    def _refuse_head(self, exc: GatewayError) -> None:
        """Refuses the request whose headers are arriving; just closes if an earlier request's
        answer is still due (an answer now would be taken for that one's)."""
        if self.cycle is not None and not self.cycle.response_complete:
            self._forget()
            self.transport.close()
            return
        path = self.url.split(b"?", 1)[0].decode("latin-1")
        self._answer_and_linger(_response(exc, path))

    def _refuse_connection(self) -> None:
        exc = GatewayError(
            "The gateway has too many open connections; retry shortly.",
            code="too_many_connections",
        )
        exc.status = 503
        self.connections.discard(self)
        self.transport.write(_response(exc, "", retry_after=True))
        self.transport.close()

    def _answer_and_linger(self, payload: bytes) -> None:
        """Writes `payload`, stops parsing, and closes once the client stops sending (or
        after LINGER_SECONDS or LINGER_BYTES). Counted against the cap until then."""
        self._cancel_timer()
        self.idle.discard(self)
        self.transport.write(payload)
        self._draining = True
        self._reading_head = True
        self._reading_body = False
        self.flow.resume_reading()
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self._timer = self.loop.call_later(LINGER_SECONDS, self.transport.close)

    def _forget(self) -> None:
        """Before closing: no longer counted against the cap (the transport reports the loss
        only on the loop's next turn), a candidate to close, or timed."""
        self._cancel_timer()
        self.idle.discard(self)
        self.connections.discard(self)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def _response(exc: GatewayError, path: str, *, retry_after: bool = False) -> bytes:
    """A whole HTTP response for `exc` in the shape the API at `path` speaks, closing the
    connection."""
    body = error_payload(path, exc)
    head = b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n" % len(
        body
    )
    if retry_after:
        head += b"retry-after: 1\r\n"
    return b"".join((STATUS_LINE[exc.status], head, b"\r\n", body))
