"""GET /metrics: the gateway's Prometheus metrics (`crossroads.telemetry`), guarded like the
admin API. In keys mode a scraper sends the admin key as a Bearer token; in open mode (loopback
only, no admin key) it is open, as the admin API is."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from crossroads.errors import GatewayError
from crossroads.server.admin import admin_error, require_admin
from crossroads.server.runtime import Gateway

__all__ = ["metrics"]


async def metrics(request: Request) -> Response:
    """The exposition in the format the `Accept` header asks for (OpenMetrics or Prometheus
    text). 401 without the admin key, 403 with another key, in OpenAI's error shape. Runs on
    the event loop on purpose: the gauges read state owned by the loop's thread."""
    try:
        require_admin(request)
    except GatewayError as exc:
        return admin_error(exc)
    gateway: Gateway = request.app.state.gateway
    body, content_type = gateway.services.metrics.exposition(request.headers.get("accept"))
    return Response(body, headers={"content-type": content_type, "cache-control": "no-store"})
