"""Reads and decodes a JSON request body under a size limit and a nesting-depth limit. Shared by
every ingress."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.types import Scope

from crossroads.errors import InvalidRequestError

ORJSON_MAX_DEPTH = 254
"""The deepest nesting `orjson.dumps` encodes (it refuses 255 levels with "Recursion limit
reached"), while `orjson.loads` accepts 1,024: a body between the two parses and then cannot be
encoded again to go upstream. Nesting counts containers: `{}` is 1 deep, `{"a": [1]}` 2."""

DEFAULT_MAX_JSON_DEPTH = 64


class ClientGone(Exception):
    """The client disconnected before its request body arrived."""


def headers_of(request: Request) -> dict[str, str]:
    """The request's headers as a plain dict (names lower-case, as ASGI delivers them; the
    first value of a repeated name), built once per request. Starlette's `request.headers`
    scans the whole header list on every lookup, and a request is looked at for six or more."""
    return headers_in(request.scope)


def headers_in(scope: Scope) -> dict[str, str]:
    """`headers_of` for a bare ASGI scope (the edge checks run before any Request exists)."""
    headers: dict[str, str] | None = scope.get("crossroads.headers")
    if headers is None:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in reversed(scope["headers"])}
        scope["crossroads.headers"] = headers
    return headers


class DepthGauge:
    """Checks that decoded JSON nests at most `limit` levels deep, at C speed.

    A walk over the decoded value in Python costs more than decoding it: 68 us for a 38 KB
    agent request, against 50 us for `orjson.loads` (`bench/json_depth.py`, best of seven on
    the 2-core development VM). Instead the value is put at the bottom of
    `ORJSON_MAX_DEPTH - limit` nested lists, built once, and encoded with `orjson.dumps`,
    whose own depth limit then fails exactly when the value is deeper than `limit`: 20 us for
    the same body, about 1 us for a 350-byte one. Encoding is synchronous, so the one slot is
    never shared by two requests on the event loop."""

    __slots__ = ("_hole", "_outer", "limit")

    def __init__(self, limit: int = DEFAULT_MAX_JSON_DEPTH) -> None:
        """Raises ValueError unless 1 <= limit < ORJSON_MAX_DEPTH."""
        if not 1 <= limit < ORJSON_MAX_DEPTH:
            raise ValueError(f"the JSON depth limit must be 1 to {ORJSON_MAX_DEPTH - 1}")
        self.limit = limit
        self._hole: list[Any] = [None]
        outer: list[Any] = self._hole
        for _ in range(ORJSON_MAX_DEPTH - limit - 1):
            outer = [outer]
        self._outer = outer

    def within(self, value: Any) -> bool:
        """Whether `value` (decoded JSON: dicts, lists, str, int, float, bool, None) nests at
        most `limit` deep. Never raises for decoded JSON."""
        self._hole[0] = value
        try:
            orjson.dumps(self._outer)
        except orjson.JSONEncodeError as exc:
            if "Recursion limit" in str(exc):
                return False
            raise
        finally:
            self._hole[0] = None
        return True


async def read_json_object(
    request: Request, limit: int, depth: DepthGauge | None = None
) -> tuple[bytes, dict[str, Any]]:
    """The raw body and its decoded JSON object.

    Raises InvalidRequestError: 415 for a content type other than JSON, 413 above `limit` bytes
    (checked on Content-Length first, then while reading), 400 for malformed JSON, a body that
    is not an object, or one nested deeper than `depth` allows (code "json_too_deep"). Raises
    ClientGone when the client disconnects mid-body.
    """
    headers = headers_of(request)
    content_type = headers.get("content-type", "application/json")
    media = content_type.split(";", 1)[0].strip().lower()
    if media not in ("application/json", "") and not media.endswith("+json"):
        raise InvalidRequestError(
            f"Unsupported content type '{media}'; send the body as application/json.",
            status=415,
            code="unsupported_media_type",
        )
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
    except ClientDisconnect:
        raise ClientGone from None
    body = b"".join(chunks)
    if not body:
        raise InvalidRequestError("The request body is empty; send a JSON object.")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(
            f"The request body is not valid JSON: {exc.msg} at line {exc.lineno}, "
            f"column {exc.colno}.",
            code="invalid_json",
        ) from None
    if not isinstance(data, dict):
        raise InvalidRequestError(
            f"The request body must be a JSON object, not {_json_type(data)}.",
            code="invalid_json",
        )
    if depth is not None and not depth.within(data):
        raise InvalidRequestError(
            f"The request body nests JSON more than {depth.limit} levels deep.",
            code="json_too_deep",
        )
    return body, data


def _too_large(limit: int) -> InvalidRequestError:
    return InvalidRequestError(
        f"The request body is larger than the gateway's limit of {limit} bytes.",
        status=413,
        code="request_too_large",
    )


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "null"
