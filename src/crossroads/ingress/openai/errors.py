"""OpenAI's error shape: `{"error": {"message", "type", "param", "code"}}`, for whole responses
and for an error event that ends a stream."""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from starlette.responses import Response

from crossroads.errors import GatewayError, RateLimitError, UpstreamError


def error_body(exc: GatewayError) -> bytes:
    return orjson.dumps(
        {
            "error": {
                "message": exc.message,
                "type": exc.kind,
                "param": exc.param,
                "code": exc.code,
            }
        }
    )


def error_response(exc: GatewayError, headers: Mapping[str, str] | None = None) -> Response:
    out = dict(headers or {})
    retry_after = exc.retry_after if isinstance(exc, RateLimitError | UpstreamError) else None
    if retry_after is not None:
        out["retry-after"] = str(max(1, round(retry_after)))
    return Response(
        error_body(exc), status_code=exc.status, headers=out, media_type="application/json"
    )


def stream_error_event(exc: GatewayError) -> bytes:
    """The SSE event OpenAI-compatible servers send when a stream fails after it began."""
    return b"data: " + error_body(exc) + b"\n\n"
