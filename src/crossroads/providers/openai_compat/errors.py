"""Reads an OpenAI-format error answer (`{"error": {"message": ...}}`); the classification of
HTTP failures every adapter shares is `crossroads.providers.http.from_status`. The message is
kept whole (the body is already bounded by `http.MAX_ERROR_BODY`): the router scrubs it of the
gateway's secrets and only then cuts it, so a cut never leaves part of a secret behind."""

from __future__ import annotations

from typing import Any

import orjson

from crossroads.errors import UpstreamError
from crossroads.providers import http


def upstream_message(body: bytes) -> str | None:
    """The `error.message` of an OpenAI-format error body, or None."""
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    if isinstance(error, str):
        return error
    return None


def from_status(provider: str, status: int, body: bytes, retry_after: str | None) -> UpstreamError:
    """The UpstreamError for an upstream answer with HTTP status `status` (>= 400)."""
    return http.from_status(provider, status, upstream_message(body), retry_after)
