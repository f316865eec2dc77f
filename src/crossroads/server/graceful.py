"""uvicorn's server with the gateway's shutdown: on SIGTERM it stops accepting, lets requests in
flight run for `shutdown_grace` seconds, then ends those still running through the gateway's
own path (`crossroads.ingress.inflight`: each answered with a 503 in its API's shape, or a
final error event on a stream, and recorded in the ledger) before uvicorn's own deadline
would cancel them into a plain-text 500 with no record. Then the lifespan flushes the ledger."""

from __future__ import annotations

import asyncio
import logging
import resource
import socket

import uvicorn
from starlette.applications import Starlette
from starlette.types import ASGIApp

from crossroads.config import Settings
from crossroads.ingress.inflight import InFlight
from crossroads.server.protocol import ConnectionLimits, default_max_connections, protocol_class
from crossroads.server.runtime import Gateway

__all__ = ["ANSWER_MARGIN", "GatewayServer", "gateway_server", "uvicorn_config"]

log = logging.getLogger(__name__)

ANSWER_MARGIN = 10.0
"""Seconds uvicorn's own deadline (`timeout_graceful_shutdown`) lies past the grace period:
time for the stopped requests to send their error answers. Only work outside any in-flight
region (an admin call, a body still arriving) can reach that deadline."""


class GatewayServer(uvicorn.Server):
    """A `uvicorn.Server` that stops the gateway's requests in flight `grace` seconds into its
    shutdown (see the module docstring)."""

    def __init__(self, config: uvicorn.Config, inflight: InFlight, grace: float) -> None:
        super().__init__(config)
        self._inflight = inflight
        self._grace = grace

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        timer = asyncio.get_running_loop().call_later(self._grace, self._stop_in_flight)
        try:
            await super().shutdown(sockets)
        finally:
            timer.cancel()

    def _stop_in_flight(self) -> None:
        stopped = self._inflight.stop_all()
        if stopped:
            log.warning(
                "shutdown grace of %gs over: ending %d requests still in flight with "
                "503 'shutting down' (each is recorded in the ledger)",
                self._grace,
                stopped,
            )


def gateway_server(app: Starlette, *, log_level: str = "warning") -> GatewayServer:
    """The server for an app from `build_app`, configured as `crossroads serve` runs it
    (`uvicorn_config`), with the gateway's shutdown grace (`Settings.shutdown_grace`)."""
    gateway: Gateway = app.state.gateway_object
    grace = gateway.settings.shutdown_grace
    config = uvicorn_config(
        app,
        gateway.settings,
        log_level=log_level,
        graceful_shutdown=int(grace + ANSWER_MARGIN + 1),  # uvicorn takes whole seconds
    )
    return GatewayServer(config, gateway.services.inflight, grace)


def uvicorn_config(
    app: ASGIApp,
    settings: Settings,
    *,
    log_level: str = "warning",
    graceful_shutdown: int = 30,
) -> uvicorn.Config:
    """The uvicorn configuration `crossroads serve` runs `app` with (tests use it too): the
    httptools parser under `EdgeProtocol`, with the connection limits from `settings`. The
    connection cap defaults to one derived from this process's open-file limit."""
    edge = settings.edge
    limits = ConnectionLimits(
        max_header_bytes=edge.max_header_bytes,
        max_headers=edge.max_headers,
        header_timeout=edge.header_timeout,
        body_timeout=edge.body_timeout,
        body_idle_timeout=edge.body_idle_timeout,
        keep_alive_timeout=edge.keep_alive_timeout,
        max_connections=edge.max_connections
        or default_max_connections(resource.getrlimit(resource.RLIMIT_NOFILE)[0]),
    )
    return uvicorn.Config(
        app,
        loop="uvloop",
        http=protocol_class(limits),
        ws="none",
        lifespan="on",
        access_log=False,
        log_level=log_level,
        timeout_graceful_shutdown=graceful_shutdown,
        server_header=False,
        # Nothing reads the client's address, so uvicorn's X-Forwarded-For rewriting (a
        # middleware layer on every request) is off.
        proxy_headers=False,
    )
