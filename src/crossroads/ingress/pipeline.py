"""The steps every ingress shares between parsing a request and relaying its answer:
authentication, routing plan (policy first), limits and budget admission, the deadline; and at
the end, the one ledger record and the settling of the budget reservation."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from starlette.requests import Request

from crossroads.errors import GatewayError
from crossroads.governance.gate import Admission, Gate
from crossroads.governance.principal import Principal
from crossroads.ingress.body import headers_of, read_json_object
from crossroads.ingress.exchange import Exchange
from crossroads.ingress.inflight import Region
from crossroads.ingress.services import Services
from crossroads.ledger.record import Status
from crossroads.routing.options import RoutingOptions, parse_routing_options
from crossroads.routing.router import Plan, Trace
from crossroads.schemas import Usage

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Admitted:
    plan: Plan
    trace: Trace
    admission: Admission | None


def trace_headers(exchange: Exchange, trace: Trace | None) -> dict[str, str]:
    headers = {"x-request-id": exchange.request_id}
    if trace is not None:
        headers["x-crossroads-attempts"] = str(trace.attempts)
        if trace.deployment is not None:
            headers["x-crossroads-provider"] = trace.deployment.provider
            headers["x-crossroads-deployment"] = trace.deployment.id
    return headers


DROPPED_HEADER = "x-crossroads-dropped-params"


def dropped_header(names: tuple[str, ...]) -> dict[str, str]:
    """Names the request parameters the serving host refuses, which the gateway dropped (or
    degraded) instead of passing a 400 through: e.g. GLM's penalties or tool_choice."""
    return {DROPPED_HEADER: ",".join(names)} if names else {}


def client_timeout(request: Request) -> float | None:
    """The client's own timeout in seconds: `x-crossroads-timeout`, or the `x-stainless-timeout`
    header the official OpenAI and Anthropic SDKs send. None when absent or unreadable."""
    headers = headers_of(request)
    for header in ("x-crossroads-timeout", "x-stainless-timeout"):
        value = headers.get(header)
        if value:
            try:
                seconds = float(value)
            except ValueError:
                continue
            if seconds > 0:
                return seconds
    return None


def authenticate(services: Services, request: Request, exchange: Exchange) -> Principal:
    """Raises AuthenticationError (401). Notes the key and team on the exchange."""
    principal = services.gate.authenticate(headers_of(request))
    exchange.api_key_id = principal.key_id
    exchange.team_id = principal.team_id
    return principal


def has_images(body: Mapping[str, Any]) -> bool:
    """Whether an OpenAI-shaped request carries image parts (they need a vision model)."""
    # dict, not Mapping: the body is decoded JSON, and an ABC check costs a dozen dict ones
    for message in body.get("messages") or ():
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list) and any(
            isinstance(part, dict) and part.get("type") == "image_url" for part in content
        ):
            return True
    return False


async def admit(
    services: Services,
    request: Request,
    principal: Principal,
    model: str,
    options: RoutingOptions,
    *,
    stream: bool,
    max_output: int | None,
    trace: Trace,
    body: Mapping[str, Any] | None = None,
) -> Admitted:
    """Plans the route under the principal's policies and admits the request under its
    limits. Raises ModelNotFoundError (404), PolicyError (403), InvalidRequestError (400) for
    an unsatisfiable preference, RateLimitError / BudgetError (429)."""
    if body is not None and has_images(body):
        options = replace(options, needs_vision=True)
    route = services.router.route(model)
    plan = services.router.plan(route, options, stream=stream, policy=Gate.policy_check(principal))
    admission = await services.gate.admit(
        principal, plan.candidates, options.prompt_tokens, max_output
    )
    timeout = min(services.request_timeout, client_timeout(request) or float("inf"))
    trace.deadline = asyncio.get_running_loop().time() + timeout
    return Admitted(plan, trace, admission)


class Call:
    """One client request on its way through the steps above, as every ingress handler keeps
    it: the exchange from the start, the router's trace once routing begins, the admission
    once admitted; and the ways a handler ends it with its one ledger record (a stream is
    ended by `crossroads.ingress.relay.StreamRelay`)."""

    __slots__ = ("admitted", "exchange", "services", "trace")

    def __init__(self, request: Request, endpoint: str) -> None:
        self.services: Services = request.app.state.services
        self.exchange = Exchange(endpoint)
        self.trace: Trace | None = None
        self.admitted: Admitted | None = None

    async def read(self, request: Request) -> tuple[Principal, dict[str, Any], RoutingOptions]:
        """Authenticates, reads the JSON body, notes the requested model and whether a stream
        was asked for, and takes out the gateway's routing options (the prompt-token estimate
        for routing is a quarter of the body's bytes). Raises GatewayError or ClientGone."""
        principal = authenticate(self.services, request, self.exchange)
        raw, data = await read_json_object(request, self.services.max_body_bytes)
        model = data.get("model")
        self.exchange.requested_model = model if isinstance(model, str) else ""
        self.exchange.stream = data.get("stream") is True
        return principal, data, parse_routing_options(data, prompt_tokens=len(raw) // 4)

    async def admit(
        self,
        request: Request,
        principal: Principal,
        model: str,
        options: RoutingOptions,
        *,
        stream: bool,
        max_output: int | None,
        body: Mapping[str, Any] | None = None,
    ) -> Admitted:
        """`admit` for this call; the trace exists before, so a refusal still reports it."""
        self.trace = Trace(request_id=self.exchange.request_id, deadline=float("inf"))
        self.admitted = await admit(
            self.services,
            request,
            principal,
            model,
            options,
            stream=stream,
            max_output=max_output,
            trace=self.trace,
            body=body,
        )
        return self.admitted

    def stoppable(self) -> Region:
        """`async with call.stoppable(): ...` around the handler's work, so that shutdown can
        end it past its grace period with ShuttingDownError (`crossroads.ingress.inflight`),
        which the handler answers and records like any GatewayError."""
        return self.services.inflight.region()

    def headers(self) -> dict[str, str]:
        return trace_headers(self.exchange, self.trace)

    def answered(self, usage: Usage | None) -> None:
        self._finish(Status.OK, usage=usage)

    def failed(self, error: GatewayError) -> None:
        self._finish(Status.ERROR, error=error)

    def gone(self) -> None:
        self._finish(Status.CANCELLED)

    def _finish(
        self, status: Status, *, usage: Usage | None = None, error: GatewayError | None = None
    ) -> None:
        admission = self.admitted.admission if self.admitted else None
        finish(
            self.services,
            self.exchange,
            self.trace,
            admission,
            status=status,
            usage=usage,
            error=error,
        )


def finish(
    services: Services,
    exchange: Exchange,
    trace: Trace | None,
    admission: Admission | None,
    *,
    status: Status,
    usage: Usage | None = None,
    error: GatewayError | None = None,
) -> None:
    """Submits the request's one ledger record and settles its budget reservation. Never
    awaits and never raises: it runs in `finally` blocks on every path."""
    baseline = services.baselines.choose(exchange.requested_model, exchange.team_id)
    record = exchange.record(trace, status=status, usage=usage, error=error, baseline=baseline)
    try:
        services.ledger.submit(record)
    except ValueError as exc:  # a record no store could hold: keep the request, drop the usage
        log.error(
            "ledger record %s rejected (%s); recording it without usage", record.request_id, exc
        )
        services.ledger.submit(exchange.record(trace, status=status, error=error))
    services.metrics.observe(record)
    services.gate.settle(
        admission, record.cost_usd, record.prompt_tokens + record.completion_tokens
    )
