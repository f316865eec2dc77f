"""Reads an OpenAI-format error answer (`{"error": {"message": ...}}`); the classification of
HTTP failures every adapter shares is `crossroads.providers.http.from_status`."""

from __future__ import annotations

from typing import Any

import orjson

from crossroads.errors import UpstreamError
from crossroads.providers import http

_MAX_MESSAGE = 500


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
    return http.from_status(provider, status, upstream_message(body), retry_after)
