"""What every HTTP adapter shares (a provider never imports another provider, so it lives here):
the pooled aiohttp session, posting within the first-byte timeout and the call's deadline, and
turning HTTP failures and transport errors into UpstreamError the router can act on.

Retry classes follow what the hosts document: 408, 409, 425, 429 and 5xx are transient; 401 and
403 mean our key for that host is wrong (try another deployment, never show the upstream's
text); other 4xx are the client's own mistake and come back at once with the upstream's message.
Each adapter reads its own wire format's error message (`ErrorReader`)."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable, Mapping

import aiohttp

from crossroads.errors import UpstreamError, UpstreamTimeoutError
from crossroads.providers.base import UpstreamCall

__all__ = [
    "MAX_ERROR_BODY",
    "RETRYABLE",
    "DeadlinePassed",
    "ErrorReader",
    "StreamDeadline",
    "auth_failed",
    "bad_answer",
    "from_status",
    "pooled_session",
    "post",
    "post_and_read",
    "refusal",
    "remaining",
    "retry_after_seconds",
    "transport_error",
]

MAX_ERROR_BODY = 64 * 1024
RETRYABLE = frozenset({408, 409, 425, 429})

ErrorReader = Callable[[str, int, bytes, str | None], UpstreamError]
"""(provider, status, body, Retry-After header) -> the error for an HTTP error answer."""


def pooled_session(headers: Mapping[str, str], connect_timeout: float) -> aiohttp.ClientSession:
    """One keep-alive pool per provider, reused by every request: no connection limit (the
    router's deadline bounds the wait, not a pool queue), DNS cached for five minutes, no
    User-Agent of aiohttp's own."""
    connector = aiohttp.TCPConnector(
        limit=0, ttl_dns_cache=300, keepalive_timeout=30, enable_cleanup_closed=True
    )
    return aiohttp.ClientSession(
        connector=connector,
        headers=dict(headers),
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout),
        auto_decompress=True,
        raise_for_status=False,
        skip_auto_headers=("User-Agent",),
    )


def remaining(call: UpstreamCall) -> float:
    """Seconds left before the call's deadline (negative once it has passed)."""
    return call.deadline - asyncio.get_running_loop().time()


class DeadlinePassed(Exception):
    """Raised out of a stream body's read when the call's deadline passed (`StreamDeadline`).
    Not an aiohttp.ClientError: the adapter turns it into an UpstreamTimeoutError, never into
    a transport error."""


class StreamDeadline:
    """One timer for a whole stream body instead of one `asyncio.timeout` per read: at the
    call's deadline it fails the body's reader with DeadlinePassed, which wakes a read in
    progress and fails the next one. A relayed event then costs no timer to arm and cancel
    (thousands of slow streams read one event at a time). `cancel()` when the body is done."""

    __slots__ = ("_handle",)

    def __init__(self, content: aiohttp.StreamReader, call: UpstreamCall) -> None:
        loop = asyncio.get_running_loop()
        if call.deadline - loop.time() <= 0:
            content.set_exception(DeadlinePassed())
            self._handle: asyncio.TimerHandle | None = None
        elif call.deadline == float("inf"):
            self._handle = None
        else:
            self._handle = loop.call_at(call.deadline, _expire, content)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


def _expire(content: aiohttp.StreamReader) -> None:
    content.set_exception(DeadlinePassed())


DEADLINE = "the request's deadline (server.request_timeout, or the client's own timeout header)"


def timed_out(provider: str, what: str, timeout: float, first_byte: float) -> UpstreamTimeoutError:
    """The error for a wait of `timeout` seconds that ran out: it names the limit that ended it,
    the provider's first-byte timeout or the request's deadline, so a stream cut by the
    client's own short deadline does not read as a stalled upstream."""
    if timeout < first_byte:
        return UpstreamTimeoutError(f"provider '{provider}' {what} before {DEADLINE} passed")
    return UpstreamTimeoutError(
        f"provider '{provider}' {what} within its first-byte timeout of {first_byte:g}s"
    )


def _first_byte_budget(provider: str, first_byte: float, call: UpstreamCall) -> float:
    timeout = min(first_byte, remaining(call))
    if timeout <= 0:
        raise UpstreamTimeoutError(f"no time left for provider '{provider}' before {DEADLINE}")
    return timeout


async def refusal(
    provider: str, response: aiohttp.ClientResponse, read_error: ErrorReader
) -> UpstreamError:
    """The error for an HTTP error answer (status >= 400), its body read and released."""
    try:
        body = await response.content.read(MAX_ERROR_BODY)
    finally:
        response.release()
    return read_error(provider, response.status, body, response.headers.get("Retry-After"))


async def post(
    session: aiohttp.ClientSession,
    url: str,
    data: bytes,
    call: UpstreamCall,
    *,
    provider: str,
    first_byte: float,
    read_error: ErrorReader,
) -> aiohttp.ClientResponse:
    """Sends the request and waits for the answer's headers, within the first-byte timeout and
    the call's deadline; the caller reads (and releases) the body. Raises UpstreamError for
    transport failures and HTTP errors."""
    response, _ = await _post(session, url, data, call, provider, first_byte, read_error, False)
    return response


async def post_and_read(
    session: aiohttp.ClientSession,
    url: str,
    data: bytes,
    call: UpstreamCall,
    *,
    provider: str,
    first_byte: float,
    read_error: ErrorReader,
) -> bytes:
    """POSTs and reads the whole answer: its headers within the first-byte timeout, all of it
    before the call's deadline (one timer, moved once the headers are in)."""
    _, body = await _post(session, url, data, call, provider, first_byte, read_error, True)
    return body


LARGE_BODY = 1024 * 1024


async def _post(
    session: aiohttp.ClientSession,
    url: str,
    data: bytes,
    call: UpstreamCall,
    provider: str,
    first_byte: float,
    read_error: ErrorReader,
    whole: bool,
) -> tuple[aiohttp.ClientResponse, bytes]:
    timeout = _first_byte_budget(provider, first_byte, call)
    reading = False
    try:
        async with asyncio.timeout(timeout) as timer:
            # Bodies above aiohttp's 1 MiB mark go as a stream it writes in pieces (a plain
            # bytes body that large is written in one go, and aiohttp warns about it).
            body = data if len(data) <= LARGE_BODY else io.BytesIO(data)
            response = await session.post(url, data=body, headers=call.headers or None)
            if response.status >= 400:
                raise await refusal(provider, response, read_error)
            if not whole:
                return response, b""
            reading = True
            timer.reschedule(call.deadline)
            try:
                return response, await response.read()
            finally:
                response.release()
    except TimeoutError:
        if reading:
            raise UpstreamTimeoutError(
                f"provider '{provider}' did not finish its answer before {DEADLINE} passed"
            ) from None
        raise timed_out(provider, "sent no answer", timeout, first_byte) from None
    except aiohttp.ClientError as exc:
        raise transport_error(provider, exc) from None


def retry_after_seconds(value: str | None) -> float | None:
    """Reads a `Retry-After` header given in seconds (the form the model hosts use)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def auth_failed(provider: str, status: int | None) -> UpstreamError:
    """The upstream rejected our credentials: retryable elsewhere, its text never shown."""
    how = f" (HTTP {status})" if status is not None else ""
    return UpstreamError(
        f"provider '{provider}' rejected the gateway's credentials{how}; "
        "the gateway operator must check its API key",
        retryable=True,
        upstream_status=status,
        status=502,
        code="upstream_auth_failed",
    )


def from_status(
    provider: str, status: int, detail: str | None, retry_after: str | None
) -> UpstreamError:
    """The UpstreamError for an answer with HTTP status `status` (>= 400), given the message
    the adapter read from its body (None when it had none)."""
    if status in (401, 403):
        return auth_failed(provider, status)
    if status in RETRYABLE or status >= 500:
        return UpstreamError(
            f"provider '{provider}' answered HTTP {status}" + (f": {detail}" if detail else ""),
            retryable=True,
            upstream_status=status,
            status=429 if status == 429 else 502,
            retry_after=retry_after_seconds(retry_after),
            code="upstream_rate_limited" if status == 429 else "upstream_unavailable",
        )
    return UpstreamError(
        f"provider '{provider}' refused the request: "
        + (detail or f"HTTP {status} with no error message"),
        retryable=False,
        upstream_status=status,
        status=status if 400 <= status < 500 else 502,
        code="upstream_rejected",
    )


def bad_answer(provider: str, what: str) -> UpstreamError:
    """The upstream answered with something unusable (`what` says what): retryable."""
    return UpstreamError(
        f"provider '{provider}' returned {what}", retryable=True, code="upstream_bad_response"
    )


def transport_error(
    provider: str, exc: aiohttp.ClientError, *, mid_stream: bool = False
) -> UpstreamError:
    if isinstance(exc, aiohttp.ClientConnectorError):
        what = "could not be reached"
    elif mid_stream:
        what = "dropped the connection mid-stream"
    else:
        what = "dropped the connection"
    # The exception text can carry URLs but never our headers; keep only its class name.
    return UpstreamError(
        f"provider '{provider}' {what} ({type(exc).__name__})",
        retryable=True,
        code="upstream_connection_error",
    )
