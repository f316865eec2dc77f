"""The edge guard: which requests the gateway answers at all, checked before any route sees them.
Open mode answers only its own Host names and pages of its own machine (no cross-site browser
requests, JSON bodies only); configured origins get CORS headers. A pure ASGI middleware."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crossroads.config import Settings
from crossroads.errors import GatewayError, InvalidRequestError, PermissionDeniedError
from crossroads.ingress.anthropic import errors as anthropic_errors
from crossroads.ingress.body import headers_in
from crossroads.ingress.openai.errors import error_body

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_CROSS_SITE = frozenset({"cross-site", "same-site"})
_ALLOW_METHODS = b"GET, POST, PUT, OPTIONS"
_EXPOSE_HEADERS = (
    b"x-request-id, retry-after, x-crossroads-provider, x-crossroads-deployment, "
    b"x-crossroads-attempts"
)
_PREFLIGHT_MAX_AGE = b"600"
_SHOWN = 100  # characters of a refused Host or Origin quoted back in the error message


@dataclass(frozen=True, slots=True)
class EdgeRules:
    """What the guard checks. `hosts`: the Host names answered (any port), None for any.
    `browsers`: refuse cross-origin browser requests and bodies that are not JSON (open mode,
    where no key stops a web page). `cors_origins`: origins given CORS headers ("*": any)."""

    hosts: frozenset[str] | None
    browsers: bool
    cors_origins: frozenset[str]

    @classmethod
    def from_settings(cls, settings: Settings) -> EdgeRules:
        return cls(
            hosts=settings.edge.allowed_hosts,
            browsers=settings.auth_mode == "open",
            cors_origins=settings.edge.cors_origins,
        )


class EdgeGuard:
    """Refuses, in the API's own error shape, a request for a Host name not allowed (403), a
    cross-origin browser request in open mode (403: an Origin whose host is not allowed and
    not in `cors_origins`, or `Sec-Fetch-Site: cross-site`/`same-site` without one), and in
    open mode a POST, PUT, PATCH or DELETE whose Content-Type is not JSON, missing included
    (415): a web page can send those cross-origin without asking (no CORS preflight). Answers
    CORS preflights from configured origins with 204 and adds CORS headers to their answers;
    sends no CORS header otherwise. Everything else passes to `app` untouched."""

    __slots__ = ("_any_origin", "_browsers", "_cors", "_hosts", "app")

    def __init__(self, app: ASGIApp, rules: EdgeRules) -> None:
        self.app = app
        self._hosts = rules.hosts
        self._browsers = rules.browsers
        self._cors = rules.cors_origins
        self._any_origin = "*" in rules.cors_origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = headers_in(scope)
        refusal = self._refusal(scope["method"], headers)
        if refusal is not None:
            await _send_error(scope, send, refusal)
            return
        origin = headers.get("origin")
        if self._cors and origin is not None and (self._any_origin or origin.lower() in self._cors):
            if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
                await _preflight(send, origin, headers.get("access-control-request-headers"))
                return
            send = _with_cors(send, origin)
        await self.app(scope, receive, send)

    def _refusal(self, method: str, headers: dict[str, str]) -> GatewayError | None:
        if self._hosts is not None:
            host = headers.get("host", "")
            if host_name(host) not in self._hosts:
                return PermissionDeniedError(
                    f"This gateway does not answer requests for the host '{host[:_SHOWN]}'; "
                    "the allowed names are set by server.allowed_hosts.",
                    code="host_not_allowed",
                )
        if not self._browsers:
            return None
        origin = headers.get("origin")
        if origin is not None:
            if not self._origin_allowed(origin):
                return PermissionDeniedError(
                    f"Requests from web pages of '{origin[:_SHOWN]}' are refused in open mode; "
                    "list the origin in server.cors_origins to allow it.",
                    code="origin_not_allowed",
                )
        elif headers.get("sec-fetch-site") in _CROSS_SITE:
            return PermissionDeniedError(
                "Requests from other sites' web pages are refused in open mode.",
                code="origin_not_allowed",
            )
        if method in _BODY_METHODS and not is_json(headers.get("content-type", "")):
            return InvalidRequestError(
                "Send the request body with content-type: application/json.",
                status=415,
                code="unsupported_media_type",
            )
        return None

    def _origin_allowed(self, origin: str) -> bool:
        origin = origin.lower()
        if origin in self._cors:
            return True
        scheme, sep, rest = origin.partition("://")
        if not sep or scheme not in ("http", "https"):
            return False  # "null" (sandboxed frames, files), extensions
        return self._hosts is None or host_name(rest) in self._hosts


def host_name(value: str) -> str:
    """The lower-case host of a Host header value (or of an origin's authority), port dropped;
    an IPv6 address keeps its brackets. A malformed one gives a string no host list holds."""
    value = value.lower()
    if value.startswith("["):
        return value[: value.find("]") + 1]
    return value.partition(":")[0]


def is_json(content_type: str) -> bool:
    """Whether a Content-Type header names JSON: application/json or a +json type, with any
    parameters."""
    if content_type == "application/json":
        return True
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or ("/" in media and media.endswith("+json"))


def speaks_anthropic(path: str) -> bool:
    """Errors on the Anthropic Messages paths use Anthropic's shape; all others OpenAI's."""
    return path.startswith("/v1/messages")


def error_payload(path: str, exc: GatewayError) -> bytes:
    """The JSON error body for `exc` in the shape the API at `path` speaks."""
    return anthropic_errors.error_body(exc) if speaks_anthropic(path) else error_body(exc)


async def _send_error(scope: Scope, send: Send, exc: GatewayError) -> None:
    body = error_payload(scope["path"], exc)
    await send(
        {
            "type": "http.response.start",
            "status": exc.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _preflight(send: Send, origin: str, asked_headers: str | None) -> None:
    headers = [
        (b"access-control-allow-origin", origin.encode("latin-1")),
        (b"access-control-allow-methods", _ALLOW_METHODS),
        (b"access-control-max-age", _PREFLIGHT_MAX_AGE),
        (b"vary", b"origin"),
        (b"content-length", b"0"),
    ]
    if asked_headers:
        headers.append((b"access-control-allow-headers", asked_headers.encode("latin-1")))
    await send({"type": "http.response.start", "status": 204, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


def _with_cors(send: Send, origin: str) -> Send:
    """`send`, adding the CORS headers for `origin` to the response's start."""
    added = [
        (b"access-control-allow-origin", origin.encode("latin-1")),
        (b"access-control-expose-headers", _EXPOSE_HEADERS),
        (b"vary", b"origin"),
    ]

    async def cors_send(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", ()), *added]}
        await send(message)

    return cors_send
