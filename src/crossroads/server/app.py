"""The ASGI application: routes, health endpoints, and the guard that turns any unexpected
exception into an OpenAI-shaped 500 without a stack trace (the trace goes to the log)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crossroads.config import Settings
from crossroads.errors import GatewayError, InvalidRequestError, NotFoundError, clip
from crossroads.ingress.anthropic import count_tokens, messages
from crossroads.ingress.anthropic import errors as anthropic_errors
from crossroads.ingress.openai import chat_completions, get_model, list_models
from crossroads.ingress.openai.embeddings import embeddings
from crossroads.ingress.openai.errors import error_response
from crossroads.ingress.responses.handler import create_response, delete_response, get_response
from crossroads.ledger.store import LedgerStore
from crossroads.server import admin_governance as gov
from crossroads.server import admin_reports, dashboard
from crossroads.server.admin import deployment_health
from crossroads.server.edge import EdgeGuard, EdgeRules, error_payload, speaks_anthropic
from crossroads.server.metrics import metrics
from crossroads.server.runtime import Gateway

log = logging.getLogger(__name__)


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """200 when the gateway can serve and record: providers started, the ledger store answers
    and the ledger writer is keeping up. 503 otherwise: while starting, when the store cannot
    be reached, when its last write failed (and none has succeeded since: a full disk passes a
    ping, which writes nothing), or when more records wait than `ledger_backlog_limit`."""
    gateway: Gateway = request.app.state.gateway
    checks: dict[str, str] = {"config": "ok", "providers": "ok" if gateway.ready else "starting"}
    writer = gateway.ledger
    try:
        await gateway.store.ping()
        checks["ledger"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any store failure means not ready; reported, not raised
        checks["ledger"] = f"not writable: {type(exc).__name__}"
    else:
        if writer.failing:
            checks["ledger"] = f"writes failing: {writer.pending} records waiting"
        elif writer.pending > writer.max_pending:
            checks["ledger"] = (
                f"backlog: {writer.pending} records waiting (limit {writer.max_pending})"
            )
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status_code=200 if ready else 503,
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        err: GatewayError = NotFoundError(f"No route for {request.method} {request.url.path}.")
    elif exc.status_code == 405:
        err = InvalidRequestError(
            f"Method {request.method} is not allowed on {request.url.path}.", status=405
        )
    else:
        err = InvalidRequestError(str(exc.detail), status=exc.status_code)
    if speaks_anthropic(request.url.path):
        return anthropic_errors.error_response(err)
    return error_response(err)


def _path(scope: Scope) -> str:
    """The request's path for a log line, cut short: the client chose it, at any length."""
    return clip(str(scope.get("path", "")), 200)


class ErrorGuard:
    """Last line of defence: an exception nothing else handled becomes a 500 in the API's own
    error shape (Anthropic's on /v1/messages, OpenAI's elsewhere).
    If the response had already started, the connection is closed instead."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            log.exception("unhandled error on %s %s", scope.get("method"), _path(scope))
            if started:
                raise
            await _internal_error(scope, send)


async def _internal_error(scope: Scope, send: Send) -> None:
    """A 500 in the API's own error shape; the details are in the log, not the answer."""
    internal = GatewayError("The gateway hit an internal error; it was logged.")
    body = error_payload(str(scope.get("path", "")), internal)
    await send(
        {
            "type": "http.response.start",
            "status": 500,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


class _Direct:
    """One request handler as a bare ASGI app, guarded like `ErrorGuard` guards the rest: what
    Starlette's `Route` does for it, without the router's matching and exception layers (the
    handlers answer their own errors and return their response before sending anything)."""

    __slots__ = ("_handler",)

    def __init__(self, handler: Callable[[Request], Awaitable[Response]]) -> None:
        self._handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            response = await self._handler(Request(scope, receive))
        except Exception:
            log.exception("unhandled error on %s %s", scope["method"], _path(scope))
            await _internal_error(scope, send)
            return
        try:
            await response(scope, receive, send)
        except Exception:
            # The answer had started (every response sends its start first): all that is
            # left is to drop the connection, which uvicorn does on the way out.
            log.exception("unhandled error answering %s %s", scope["method"], _path(scope))
            raise


class GatewayApp(Starlette):
    """Starlette, with its fixed-path routes dispatched straight from a dict, all behind the
    edge guard.

    Every request through Starlette passes five layers (its error middleware, `ErrorGuard`,
    its exception middleware, the router's route-by-route matching, the endpoint wrapper)
    before reaching a handler: about an eighth of the CPU of a proxied chat request in the
    profile in docs/performance.md. A request whose method and path match a route without
    path parameters skips them, with the same guarantee as `ErrorGuard`; anything else (HEAD,
    paths with parameters, 404s and 405s, lifespan) goes through Starlette as before.

    Because direct routes bypass Starlette's middleware stack, `add_middleware` would not
    reach them: the edge guard (`EdgeGuard`) wraps the whole dispatch instead, so it sees
    every request. The router never redirects a trailing slash (its redirect would point at
    whatever Host the request named): such a path is a plain 404."""

    def __init__(self, *, routes: Sequence[Route], edge: EdgeRules, **kw: Any) -> None:
        super().__init__(routes=routes, **kw)
        self.router.redirect_slashes = False
        self._direct = {
            (method, route.path): _Direct(route.endpoint)
            for route in routes
            if not route.param_convertors
            for method in route.methods or ()
            if method != "HEAD"
        }
        self._entry = EdgeGuard(self._dispatch, edge)

    def add_middleware(self, middleware_class: Any, *args: Any, **kwargs: Any) -> None:
        """Refused: a middleware added here would wrap Starlette's stack only, and silently not
        apply to the direct routes (every /v1/* call). Put a step that must see every request
        into `EdgeGuard` (or a layer around `_entry`) instead."""
        raise RuntimeError(
            "GatewayApp dispatches its fixed routes past Starlette's middleware stack, so "
            f"{getattr(middleware_class, '__name__', middleware_class)!s} would not see them; "
            "add it to the explicit pipeline in crossroads.server.app / server.edge instead"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._entry(scope, receive, send)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            app = self._direct.get((scope["method"], scope["path"]))
            if app is not None:
                scope["app"] = self
                await app(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def build_app(settings: Settings, store: LedgerStore | None = None) -> Starlette:
    """The gateway's ASGI app. Raises ConfigError for a provider type nobody registered."""
    gateway = Gateway(settings, store)
    app = GatewayApp(
        routes=[
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/embeddings", embeddings, methods=["POST"]),
            Route("/v1/messages", messages, methods=["POST"]),
            Route("/v1/messages/count_tokens", count_tokens, methods=["POST"]),
            Route("/v1/responses", create_response, methods=["POST"]),
            Route("/v1/responses/{response_id}", get_response, methods=["GET"]),
            Route("/v1/responses/{response_id}", delete_response, methods=["DELETE"]),
            Route("/v1/models", list_models, methods=["GET"]),
            Route("/v1/models/{model:path}", get_model, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/admin/health", deployment_health, methods=["GET"]),
            Route("/admin/keys", gov.create_key, methods=["POST"]),
            Route("/admin/keys", gov.list_keys, methods=["GET"]),
            Route("/admin/keys/{key_id}/revoke", gov.revoke_key, methods=["POST"]),
            Route("/admin/keys/{key_id}/rotate", gov.rotate_key, methods=["POST"]),
            Route("/admin/teams", gov.put_team, methods=["POST", "PUT"]),
            Route("/admin/teams", gov.list_teams, methods=["GET"]),
            Route("/v1/route/explain", gov.explain, methods=["POST"]),
            Route("/admin/reports/{kind}", admin_reports.report, methods=["GET"]),
            Route("/admin/ledger", admin_reports.ledger, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/dashboard", dashboard.page, methods=["GET"]),
            Route("/dashboard/api/data", dashboard.data, methods=["GET"]),
            Route("/dashboard/switch", dashboard.switch_page, methods=["GET"]),
            Route("/dashboard/api/switch", dashboard.switch_data, methods=["GET"]),
            Route("/dashboard/static/{name}", dashboard.asset, methods=["GET"]),
        ],
        edge=EdgeRules.from_settings(settings),
        exception_handlers={HTTPException: _http_error},
        lifespan=gateway.lifespan,
        # Guards the routes Starlette dispatches; `_Direct` guards the direct ones the same way.
        middleware=[Middleware(ErrorGuard)],
    )
    app.state.gateway_object = gateway  # for embedding and tests; set before start-up
    return app
