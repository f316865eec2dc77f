"""Turns an Anthropic-format upstream failure (an HTTP error status, or an `error` object in a
body or stream event) into an UpstreamError the router can act on.

The classes are those of every adapter (`crossroads.providers.http.from_status`), plus
Anthropic's own 529 `overloaded_error`, which is transient too.
Anthropic's error body is `{"type": "error", "error": {"type": ..., "message": ...}}`
(Anthropic "Errors" page); the compatible endpoints send the same shape or OpenAI's. Messages
are kept whole: the router scrubs them of the gateway's secrets, then cuts them."""

from __future__ import annotations

from typing import Any

import orjson

from crossroads.errors import UpstreamError
from crossroads.providers import http

OVERLOADED = 529
# Error `type`s that say "try again later" (Anthropic "Errors" page) -> our status and code.
_TRANSIENT_TYPES = {
    "overloaded_error": (503, "upstream_overloaded"),
    "rate_limit_error": (429, "upstream_rate_limited"),
    "api_error": (502, "upstream_stream_error"),
    "timeout_error": (504, "upstream_stream_error"),
}
_AUTH_TYPES = frozenset({"authentication_error", "permission_error"})


def error_message(error: Any) -> str | None:
    """The message of an `error` member (an object with `message`, or a bare string)."""
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    if isinstance(error, str):
        return error
    return None


def upstream_message(body: bytes) -> str | None:
    """The `error.message` of an error body (Anthropic's or OpenAI's shape), or None."""
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return error_message(data.get("error")) if isinstance(data, dict) else None


def from_status(provider: str, status: int, body: bytes, retry_after: str | None) -> UpstreamError:
    """The UpstreamError for an upstream answer with HTTP status `status` (>= 400)."""
    if status == OVERLOADED:
        detail = upstream_message(body)
        return UpstreamError(
            f"provider '{provider}' is overloaded (HTTP 529)" + (f": {detail}" if detail else ""),
            retryable=True,
            upstream_status=status,
            status=503,
            retry_after=http.retry_after_seconds(retry_after),
            code="upstream_overloaded",
        )
    return http.from_status(provider, status, upstream_message(body), retry_after)


def from_error_object(provider: str, error: Any) -> UpstreamError:
    """The UpstreamError for an `error` object that arrived with HTTP 200: an `error` stream
    event (Anthropic sends `overloaded_error` this way mid-stream, where a non-streamed call
    would get HTTP 529) or a 200 body of type "error". Transient types are retryable; auth
    types hide the upstream's text; anything else is not retryable."""
    kind = error.get("type") if isinstance(error, dict) else None
    if kind in _AUTH_TYPES:
        return http.auth_failed(provider, None)
    message = error_message(error) or "no message"
    if isinstance(kind, str) and kind in _TRANSIENT_TYPES:
        status, code = _TRANSIENT_TYPES[kind]
        return UpstreamError(
            f"provider '{provider}' reported {kind}: {message}",
            retryable=True,
            status=status,
            code=code,
        )
    return UpstreamError(
        f"provider '{provider}' reported an error: {message}",
        retryable=False,
        status=502,
        code="upstream_stream_error",
    )
