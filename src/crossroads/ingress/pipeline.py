"""The steps every ingress shares between parsing a request and relaying its answer:
authentication, routing plan (policy first), limits and budget admission, the deadline; and at
the end, the one ledger record and the settling of the budget reservation."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from crossroads.errors import (
    AuthenticationError,
    EvalNotPermittedError,
    GatewayError,
    InvalidRequestError,
    PermissionDeniedError,
)
from crossroads.governance.gate import Admission, Gate
from crossroads.governance.principal import Principal
from crossroads.ingress.body import ClientGone, headers_of, read_json_object
from crossroads.ingress.exchange import Exchange
from crossroads.ingress.services import Services
from crossroads.ledger.record import LedgerRecord, Status
from crossroads.quality import tap
from crossroads.routing.options import RoutingOptions, parse_routing_options
from crossroads.routing.router import Plan, Trace
from crossroads.schemas import Usage

if TYPE_CHECKING:
    from crossroads.telemetry.tracing import RequestSpan

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
            headers["x-crossroads-upstream-model"] = trace.deployment.upstream_model
    return headers


DROPPED_HEADER = "x-crossroads-dropped-params"
EVAL_HEADER = "x-crossroads-eval"
"""Marks replay, shadow and judge traffic: its record goes to the eval ledger, apart from
production in every report. Budgets and policies apply to it as to any request. Only a
principal allowed to (`Principal.can_eval`) or the gateway's own shadow calls may send it."""
EVAL_TEAM_HEADER = "x-crossroads-eval-team"
"""Sent by a replay of captured traffic: the team it was captured from. The gateway refuses it
(403) from a key of another team, so captured data goes only where its own team's policy lets
it."""


def eval_run(
    headers: Mapping[str, str], principal: Principal, *, shadow: bool = False
) -> str | None:
    """The eval run a request belongs to (None: production traffic). `shadow`: the request is
    one of the gateway's own shadow calls (`Shadower.sent`), which carry the client's key.

    Raises PermissionDeniedError (403) when the request asks to be eval traffic (either
    header) but its principal may not mark traffic so (`Principal.can_eval`) and it is no
    shadow call: eval records are out of every production report, so marking one's own
    traffic as evaluation would hide it from them. Also 403 for a replayed capture of another
    team than the key's."""
    if EVAL_HEADER not in headers and EVAL_TEAM_HEADER not in headers:
        return None
    if not (principal.can_eval or shadow):
        raise EvalNotPermittedError(EVAL_HEADER)
    if EVAL_HEADER not in headers:
        return None
    team = headers.get(EVAL_TEAM_HEADER)
    if team is not None and team != (principal.team_id or ""):
        raise PermissionDeniedError(
            "This request was captured from another team's traffic: replay it with a key of "
            "that team, so that its policy applies.",
            code="eval_team_mismatch",
        )
    return headers[EVAL_HEADER][:64] or "eval"


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


def needs_of(body: Mapping[str, Any], options: RoutingOptions) -> RoutingOptions:
    """`options` with what an OpenAI-shaped request needs of a model noted, so routing leaves
    out the deployments that cannot serve it: images, and tools it may call."""
    vision = has_images(body)
    tools = bool(body.get("tools")) and body.get("tool_choice") != "none"
    if not (vision or tools):
        return options
    return replace(options, needs_vision=options.needs_vision or vision, needs_tools=tools)


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
    if body is not None:
        options = needs_of(body, options)
    route = services.router.route(model)
    plan = services.router.plan(route, options, stream=stream, policy=Gate.policy_check(principal))
    admission = await services.gate.admit(
        principal, plan.candidates, options.prompt_tokens, max_output
    )
    timeout = min(services.request_timeout, client_timeout(request) or float("inf"))
    trace.deadline = asyncio.get_running_loop().time() + timeout
    return Admitted(plan, trace, admission)


ErrorShape = Callable[[GatewayError, "Call"], Response]
"""Turns an error into the response of the call's API (OpenAI's or Anthropic's shape)."""

Work = Callable[["Call", Request], Awaitable[Response]]


class Call:
    """One client request on its way through the steps above, as every ingress handler keeps
    it: the exchange from the start, the router's trace once routing begins, the admission
    once admitted, the usage once an upstream answered.

    A call ends exactly once, with its one ledger record and the settling of its budget
    reservation (`finish`): `run` ends it on every way out of a handler, including an
    exception nobody expected and the task being cancelled; a stream is ended by
    `crossroads.ingress.relay.StreamRelay`, which takes the call over (`hand_off`). A request
    refused for a missing or invalid key ends without a ledger record: it is counted in
    `crossroads_auth_failures_total` instead, so a flood of wrong keys cannot grow the
    ledger. With tracing on, the call's `span` (its OpenTelemetry SERVER span) watches the
    router's attempts and ends with the ledger record."""

    __slots__ = (
        "_ended",
        "_handed_off",
        "_tapped",
        "admitted",
        "exchange",
        "services",
        "span",
        "trace",
        "usage",
    )

    def __init__(self, request: Request, endpoint: str) -> None:
        self.services: Services = request.app.state.services
        self.exchange = Exchange(endpoint)
        tracing = self.services.tracing
        self.span: RequestSpan | None = (
            tracing.request(headers_of(request), endpoint, self.exchange.request_id)
            if tracing is not None
            else None
        )
        self.trace: Trace | None = None
        self.admitted: Admitted | None = None
        self.usage: Usage | None = None  # set as soon as an upstream has answered
        self._ended = False
        self._handed_off = False
        self._tapped: tap.Tapped | None = None  # captured or shadowed (crossroads.quality)

    async def run(self, request: Request, work: Work, errors: ErrorShape) -> Response:
        """`work(self, request)`'s response, with the call ended on every way out: a
        GatewayError becomes `errors(...)` and an error record; a client gone before its
        answer, a 499 and a cancelled record; an object orjson cannot encode (nested beyond
        its limit, an integer beyond 64 bits), a 400; any other exception is logged and
        becomes a 500 in the API's shape with an error record; a cancelled task (shutdown) is
        recorded as cancelled and the cancellation goes on. A response that `work` returned
        without ending the call, or handing it to a stream, is recorded as an internal error.

        `work` runs as stoppable (`crossroads.ingress.inflight`): shutdown ends it past its
        grace period with ShuttingDownError, answered and recorded like any GatewayError."""
        try:
            async with self.services.inflight.region():
                response = await work(self, request)
        except GatewayError as exc:
            self.failed(exc)
            return errors(exc, self)
        except ClientGone:
            self.gone()
            return Response(status_code=499)
        except orjson.JSONEncodeError as exc:
            refused = InvalidRequestError(
                f"The request cannot be encoded as JSON for the upstream ({exc}).",
                code="unencodable_json",
            )
            self.failed(refused)
            return errors(refused, self)
        except Exception:
            log.exception(
                "unhandled error in %s request %s", self.exchange.endpoint, self.exchange.request_id
            )
            internal = internal_error()
            self.failed(internal)
            return errors(internal, self)
        except BaseException:
            self.gone()
            raise
        if not self._ended and not self._handed_off:
            log.error(
                "%s request %s ended unrecorded", self.exchange.endpoint, self.exchange.request_id
            )
            self.failed(internal_error())
        if self._tapped is not None and response.status_code == 200:
            tap_into = getattr(response, "tap_into", None)  # a stream: its relay hands it over
            if tap_into is not None:
                tap_into(self._tapped, request.app)
            else:
                body = getattr(response, "body", None)
                self._tapped.answered(request.app, body if isinstance(body, bytes) else None)
        return response

    async def read(self, request: Request) -> tuple[Principal, dict[str, Any], RoutingOptions]:
        """Authenticates, counts the request against the key's requests-per-minute limits,
        reads the JSON body (size and depth limits), notes the requested model (refusing a
        name longer than `max_model_name_chars`) and whether a stream was asked for, and takes
        out the gateway's routing options (the prompt-token estimate for routing is a quarter
        of the body's bytes). Raises GatewayError or ClientGone."""
        services = self.services
        principal = authenticate(services, request, self.exchange)
        await services.gate.count_request(principal)
        raw, data = await read_json_object(request, services.max_body_bytes, services.json_depth)
        model = data.get("model")
        if isinstance(model, str):
            cap = services.max_model_name_chars
            self.exchange.requested_model = model[:cap]
            if len(model) > cap:
                raise InvalidRequestError(
                    f"The model name is too long: {len(model)} characters, at most {cap}.",
                    param="model",
                    code="model_name_too_long",
                )
        self.exchange.stream = data.get("stream") is True
        if self.span is not None:
            self.span.request_body(data)
        headers = headers_of(request)
        if EVAL_HEADER in headers or EVAL_TEAM_HEADER in headers:  # rare: skip the rest else
            self.exchange.eval_run = eval_run(
                headers, principal, shadow=services.shadow.sent(request.scope)
            )
        if self.exchange.eval_run is None:
            self._tapped = tap.select(
                services.capture,
                services.shadow,
                tap.Incoming(
                    self.exchange.request_id,
                    self.exchange.endpoint,
                    principal.key_id,
                    principal.team_id,
                    self.exchange.requested_model,
                    self.exchange.stream,
                    raw,
                    headers,
                ),
            )
        options = parse_routing_options(
            data, prompt_tokens=len(raw) // 4, started_at=self.exchange.created_at
        )
        return principal, data, options

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
        self.trace = Trace(
            request_id=self.exchange.request_id, deadline=float("inf"), observer=self.span
        )
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

    def headers(self) -> dict[str, str]:
        return trace_headers(self.exchange, self.trace)

    def hand_off(self) -> None:
        """A stream relay has taken the call over: it ends it (`end`) when the stream ends."""
        self._handed_off = True

    def answered(self, usage: Usage | None) -> None:
        self.end(Status.OK, usage=usage)

    def failed(self, error: GatewayError) -> None:
        self.end(Status.ERROR, usage=self.usage, error=error)

    def gone(self) -> None:
        self.end(Status.CANCELLED, usage=self.usage)

    def end(
        self, status: Status, *, usage: Usage | None = None, error: GatewayError | None = None
    ) -> None:
        """Submits the ledger record and settles the admission, the first time only: a call
        ends once whatever path gets there first. Never awaits, never raises."""
        if self._ended:
            return
        self._ended = True
        if isinstance(error, AuthenticationError) and self.exchange.api_key_id is None:
            self.services.metrics.auth_failure(error.code)
            if self.span is not None:
                self.span.refused(error)
            return
        admission = self.admitted.admission if self.admitted else None
        record = finish(
            self.services,
            self.exchange,
            self.trace,
            admission,
            status=status,
            usage=usage,
            error=error,
        )
        if self.span is not None:
            self.span.finish(record, self.admitted.plan if self.admitted else None, error)


def internal_error() -> GatewayError:
    """The 500 a client gets for an exception nobody expected; the details are in the log."""
    return GatewayError("The gateway hit an internal error; it was logged.", code="internal_error")


def finish(
    services: Services,
    exchange: Exchange,
    trace: Trace | None,
    admission: Admission | None,
    *,
    status: Status,
    usage: Usage | None = None,
    error: GatewayError | None = None,
) -> LedgerRecord:
    """Submits the request's one ledger record, settles its budget reservation, and returns
    the record. Never awaits and never raises: it runs in `finally` blocks on every path. An
    `error` is scrubbed of the gateway's secrets in place first, so the answer made from it
    afterwards is clean too (the router scrubbed upstream errors already; this also covers
    every other one)."""
    if error is not None:
        services.scrub.error(error)
    baseline = services.baselines.choose(exchange.requested_model, exchange.team_id)
    record = exchange.record(trace, status=status, usage=usage, error=error, baseline=baseline)
    ledger = services.ledger
    if exchange.eval_run is not None and services.eval_ledger is not None:
        ledger = services.eval_ledger
    try:
        try:
            ledger.submit(record)
        except ValueError as exc:  # a record no store could hold: keep the request, not usage
            log.error(
                "ledger record %s rejected (%s); recording it without usage", record.request_id, exc
            )
            ledger.submit(exchange.record(trace, status=status, error=error))
    except RuntimeError:  # the writer has closed: a request outlived shutdown; logged there
        pass
    if exchange.eval_run is not None:
        services.shadow.note_cost(exchange.eval_run, record.cost_usd)
    services.metrics.observe(record)
    services.gate.settle(
        admission, record.cost_usd, record.prompt_tokens + record.completion_tokens
    )
    return record
