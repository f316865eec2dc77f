"""Turns an upstream's HTTP failure into an UpstreamError the router can act on.

Retry classes follow what the hosts document: 408, 409, 429 and 5xx are transient; 401 and 403
mean our key for that host is wrong (try another deployment, never show the upstream's text);
other 4xx are the client's own mistake and come back at once with the upstream's message."""

from __future__ import annotations

from typing import Any

import orjson

from crossroads.errors import UpstreamError

RETRYABLE = frozenset({408, 409, 425, 429})
_MAX_MESSAGE = 500


def retry_after_seconds(value: str | None) -> float | None:
    """Reads a `Retry-After` header given in seconds (the form the model hosts use)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def upstream_message(body: bytes) -> str | None:
    """The `error.message` of an OpenAI-format error body, or None."""
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])[:_MAX_MESSAGE]
    if isinstance(error, str):
        return error[:_MAX_MESSAGE]
    return None


def from_status(provider: str, status: int, body: bytes, retry_after: str | None) -> UpstreamError:
    """The UpstreamError for an upstream answer with HTTP status `status` (>= 400)."""
    if status in (401, 403):
        return UpstreamError(
            f"provider '{provider}' rejected the gateway's credentials "
            f"(HTTP {status}); the gateway operator must check its API key",
            retryable=True,
            upstream_status=status,
            status=502,
            code="upstream_auth_failed",
        )
    if status in RETRYABLE or status >= 500:
        detail = upstream_message(body)
        return UpstreamError(
            f"provider '{provider}' answered HTTP {status}" + (f": {detail}" if detail else ""),
            retryable=True,
            upstream_status=status,
            status=429 if status == 429 else 502,
            retry_after=retry_after_seconds(retry_after),
            code="upstream_rate_limited" if status == 429 else "upstream_unavailable",
        )
    detail = upstream_message(body) or f"HTTP {status} with no error message"
    return UpstreamError(
        f"provider '{provider}' refused the request: {detail}",
        retryable=False,
        upstream_status=status,
        status=status if 400 <= status < 500 else 502,
        code="upstream_rejected",
    )
