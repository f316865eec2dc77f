"""Anthropic's error shape, `{"type": "error", "error": {"type", "message"}, "request_id"}`,
for whole responses and for the `event: error` that ends a stream which already began.

The error `type` follows the HTTP status, as Anthropic documents it (docs.anthropic.com/en/api/
errors): 400 invalid_request_error (also every other 4xx without a type of its own), 401
authentication_error, 403 permission_error, 404 not_found_error, 413 request_too_large, 429
rate_limit_error, 500 api_error, 529 overloaded_error. An upstream that answered 503 or 529 is
reported as overloaded_error; every other 5xx as api_error."""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from starlette.responses import Response

from crossroads.errors import GatewayError, RateLimitError, UpstreamError
from crossroads.sse import encode_event

__all__ = ["error_body", "error_response", "error_type", "stream_error_event"]

_BY_STATUS = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}
_OVERLOADED = frozenset({503, 529})


def error_type(exc: GatewayError) -> str:
    """The Anthropic error type for `exc`, from its HTTP status (and, for upstream failures,
    the upstream's own status when it says the host is overloaded)."""
    if isinstance(exc, UpstreamError) and exc.upstream_status in _OVERLOADED:
        return "overloaded_error"
    known = _BY_STATUS.get(exc.status)
    if known is not None:
        return known
    return "invalid_request_error" if 400 <= exc.status < 500 else "api_error"


def error_body(exc: GatewayError, request_id: str | None = None) -> bytes:
    body: dict[str, object] = {
        "type": "error",
        "error": {"type": error_type(exc), "message": exc.message},
    }
    if request_id is not None:
        body["request_id"] = request_id
    return orjson.dumps(body)


def error_response(
    exc: GatewayError, headers: Mapping[str, str] | None = None, request_id: str | None = None
) -> Response:
    """A JSON error response with the gateway error's HTTP status, plus `retry-after` (whole
    seconds, at least 1) when the error carries one."""
    out = dict(headers or {})
    retry_after = exc.retry_after if isinstance(exc, RateLimitError | UpstreamError) else None
    if retry_after is not None:
        out["retry-after"] = str(max(1, round(retry_after)))
    return Response(
        error_body(exc, request_id),
        status_code=exc.status,
        headers=out,
        media_type="application/json",
    )


def stream_error_event(exc: GatewayError, request_id: str | None = None) -> bytes:
    """The `event: error` Anthropic sends when a stream fails after its 200 response began."""
    return encode_event(error_body(exc, request_id), "error")
