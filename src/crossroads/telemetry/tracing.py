"""Spans and GenAI metrics of every request: one SERVER span per client request, and under it
one CLIENT span per upstream attempt, so retries and fallbacks show as siblings.

`Tracing` is built once per gateway, only when OTLP export is on. Each request gets a
`RequestSpan` (the ingress pipeline makes it, `crossroads.ingress.pipeline.Call`), which is the
router's `AttemptObserver` for that request; it is ended with the request's ledger record, as
the Prometheus metrics are. Nothing here awaits, does I/O or raises into the request: spans go
to the SDK's bounded export queue.

A client's W3C `traceparent` (and `tracestate`) makes the request span its child; each attempt
sends the upstream a `traceparent` naming the attempt span. A failed attempt's span is ended
when the router's next step is known, with the time it failed: `crossroads.attempt.outcome` says
whether it was retried on the same deployment, fell back to another, or ended the request."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, TypeVar

import orjson
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.metrics import Meter
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from crossroads.errors import GatewayError, UpstreamError
from crossroads.ledger.record import LedgerRecord
from crossroads.providers.base import NO_HEADERS, Completion, StreamChunk
from crossroads.routing.deployment import Deployment
from crossroads.routing.health import Circuit
from crossroads.routing.observer import AttemptWatch
from crossroads.routing.router import OpenStream, Plan
from crossroads.scrub import Scrubber
from crossroads.telemetry import genai
from crossroads.telemetry.attributes import (
    address,
    deployment_attributes,
    plan_attributes,
    record_attributes,
)
from crossroads.telemetry.otlp import Exporters

_PROPAGATOR = TraceContextTextMapPropagator()
log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., None])


def _quiet(method: F) -> F:
    """Tracing never breaks a request: a fault in a hook the request path calls is logged and
    the request goes on untraced (these hooks run inside the router's and the pipeline's own
    error handling, where an exception would replace the request's real outcome)."""

    @functools.wraps(method)
    def guarded(*args: Any, **kwargs: Any) -> None:
        try:
            method(*args, **kwargs)
        except Exception:
            log.exception("tracing hook %s failed; the request goes on", method.__qualname__)

    return guarded  # type: ignore[return-value]


# Bucket bounds the GenAI conventions give for each histogram ("SHOULD be specified with").
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304,
                 16777216, 67108864)  # fmt: skip
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48,
                    40.96, 81.92)  # fmt: skip
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5,
                5.0, 7.5, 10.0)  # fmt: skip


class GenAiMetrics:
    """The conventions' histograms: token usage and upstream call duration as a client of the
    upstreams; request duration and time to first token as a server to the gateway's
    clients."""

    def __init__(self, meter: Meter) -> None:
        self.tokens = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used, per answered request.",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        )
        self.operation = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="Duration of each upstream attempt (a stream's until its end).",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.request = meter.create_histogram(
            "gen_ai.server.request.duration",
            unit="s",
            description="Duration of each client request, all attempts included.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.ttft = meter.create_histogram(
            "gen_ai.server.time_to_first_token",
            unit="s",
            description="Time from a streamed request's arrival to its first byte to the client.",
            explicit_bucket_boundaries_advisory=TTFT_BUCKETS,
        )


class Tracing:
    """One gateway's tracer and meters. `upstreams` maps each provider id to its base URL (for
    `server.address` and `server.port`); `scrub` cleans captured content."""

    def __init__(
        self, exporters: Exporters, upstreams: Mapping[str, str], scrub: Scrubber, version: str
    ) -> None:
        self.exporters = exporters
        settings = exporters.settings
        self.capture = settings.capture_content
        self.max_content = settings.max_content_chars
        self.scrub = scrub
        provider = exporters.tracer_provider or trace.NoOpTracerProvider()
        self.tracer: Tracer = provider.get_tracer("crossroads", version)
        meters = exporters.meter_provider
        self.metrics = GenAiMetrics(meters.get_meter("crossroads", version)) if meters else None
        self.servers = {pid: address(url) for pid, url in upstreams.items() if url}

    def request(self, headers: Mapping[str, str], endpoint: str, request_id: str) -> RequestSpan:
        """The span of request `request_id` that just arrived with `headers` (lower-case
        names). The id is on the span from the start, so a request refused before its body
        was read (a wrong key, a body too large) can still be found by its `x-request-id`."""
        return RequestSpan(self, headers, endpoint, request_id)

    async def aclose(self, within: float) -> None:
        await self.exporters.aclose(within)


class RequestSpan:
    """One client request's SERVER span, and the observer of its upstream attempts."""

    __slots__ = ("_answer", "_failed", "_op", "_span", "_start", "_tracing", "endpoint")

    def __init__(
        self, tracing: Tracing, headers: Mapping[str, str], endpoint: str, request_id: str
    ) -> None:
        self._tracing = tracing
        self.endpoint = endpoint
        self._op = genai.operation(endpoint)
        self._start = time.perf_counter()
        parent = _PROPAGATOR.extract(headers) if "traceparent" in headers else None
        self._span = tracing.tracer.start_span(
            self._op,
            context=parent,
            kind=SpanKind.SERVER,
            attributes={
                "gen_ai.operation.name": self._op,
                "crossroads.endpoint": endpoint,
                "crossroads.request_id": request_id,
            },
        )
        self._failed: AttemptSpan | None = None  # the last attempt, failed, not yet ended
        self._answer: AttemptSpan | None = None  # the attempt that answered

    @property
    def context(self) -> Context:
        return trace.set_span_in_context(self._span)

    @_quiet
    def request_body(self, body: Mapping[str, Any]) -> None:
        """Notes what the client asked for (and its messages, when content is captured)."""
        span = self._span
        if not span.is_recording():
            return
        model = body.get("model")
        if isinstance(model, str):
            span.update_name(f"{self._op} {model[:256]}")
            span.set_attribute("gen_ai.request.model", model[:256])
        span.set_attributes(genai.request_attributes(body))
        tracing = self._tracing
        if tracing.capture:
            span.set_attributes(genai.input_messages(body, tracing.scrub, tracing.max_content))

    def attempt(self, deployment: Deployment, circuit: Circuit) -> AttemptWatch:
        """`AttemptObserver.attempt`: the attempt's CLIENT span, under the request span (or,
        should making it fail, a watch that does nothing: the attempt goes on untraced)."""
        try:
            previous = self._failed
            if previous is not None:
                same = previous.deployment.id == deployment.id
                previous.end("retried" if same else "fell_back")
                self._failed = None
            return AttemptSpan(self, deployment, circuit)
        except Exception:
            log.exception("tracing an attempt at %s failed; it goes on untraced", deployment.id)
            return _UNWATCHED

    def failed(self, attempt: AttemptSpan) -> None:
        self._failed = attempt

    def answered(self, attempt: AttemptSpan) -> None:
        self._answer = attempt

    @_quiet
    def finish(self, record: LedgerRecord, plan: Plan | None, error: GatewayError | None) -> None:
        """Ends the request span with what its ledger record says. Never raises."""
        if self._failed is not None:
            self._failed.end("failed")
            self._failed = None
        span = self._span
        answer = self._answer
        if answer is not None:
            answer.end("cancelled")  # a stream whose relay never read it; else a no-op
        if span.is_recording():
            span.set_attributes(record_attributes(record))
            if answer is not None:
                span.set_attributes(answer.response_attributes(with_id=False))
                if self._tracing.capture and answer.text is not None:
                    span.set_attribute(
                        "gen_ai.output.messages",
                        genai.output_messages(
                            answer.text,
                            answer.reasons,
                            self._tracing.scrub,
                            self._tracing.max_content,
                        ),
                    )
            if plan is not None:
                span.set_attributes(plan_attributes(plan))
        if error is not None:
            span.set_attribute("error.type", error.code or error.kind)
            span.set_status(Status(StatusCode.ERROR, error.message))
        span.end()
        metrics = self._tracing.metrics
        if metrics is not None:
            self._measure(metrics, record, answer)

    @_quiet
    def refused(self, error: GatewayError) -> None:
        """Ends the span of a request refused before it has a ledger record (a 401)."""
        span = self._span
        span.set_attribute("http.response.status_code", error.status)
        span.set_attribute("error.type", error.code or error.kind)
        span.set_status(Status(StatusCode.ERROR, error.message))
        span.end()

    def _measure(
        self, metrics: GenAiMetrics, record: LedgerRecord, answer: AttemptSpan | None
    ) -> None:
        attrs: dict[str, genai.AttributeValue] = {"gen_ai.operation.name": self._op}
        if answer is not None:
            attrs.update(answer.metric_attributes())
        if record.error_type is not None:
            attrs["error.type"] = record.error_type
        if record.latency_ms is not None:
            metrics.request.record(record.latency_ms / 1000.0, attrs)
        if record.ttft_ms is not None and record.error_type is None:
            metrics.ttft.record(record.ttft_ms / 1000.0, attrs)
        if answer is not None and record.usage_source is not None:
            for kind, count in (
                ("input", record.prompt_tokens),
                ("output", record.completion_tokens),
            ):
                metrics.tokens.record(count, {**attrs, "gen_ai.token.type": kind})


class AttemptSpan:
    """One upstream attempt's CLIENT span: the router's `AttemptWatch`."""

    __slots__ = (
        "_done",
        "_ended_at",
        "_error",
        "_failed_at",
        "_request",
        "_span",
        "_start",
        "deployment",
        "headers",
        "model",
        "reasons",
        "response_id",
        "text",
        "usage",
    )

    def __init__(self, request: RequestSpan, deployment: Deployment, circuit: Circuit) -> None:
        self._request = request
        self.deployment = deployment
        self._start = time.perf_counter()
        self._ended_at: int | None = None  # when it failed (ns since the epoch)
        self._failed_at = 0.0  # the same, on the perf_counter clock
        self._error: str | None = None  # its error.type
        self._done = False
        self.model: str | None = None  # the upstream's own name for the model that answered
        self.reasons: list[str] = []
        self.response_id: str | None = None
        self.text: str | None = None  # the answer's text, only when content is captured
        self.usage: tuple[int, int] | None = None
        tracing = request._tracing
        op = request._op
        self._span = tracing.tracer.start_span(
            f"{op} {deployment.upstream_model}",
            context=request.context,
            kind=SpanKind.CLIENT,
            attributes=deployment_attributes(tracing.servers, op, deployment, circuit),
        )
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(self._span))
        self.headers = carrier

    @_quiet
    def succeeded(self, answer: object) -> None:
        """`AttemptWatch.succeeded`: a whole answer ends the span now; a stream ends it when
        the stream ends (its chunks are watched for the finish reason and usage)."""
        self._request.answered(self)
        if isinstance(answer, OpenStream):
            answer.rest = self._watch(answer.rest, answer.first)
            return
        if isinstance(answer, tuple) and isinstance(answer[1], Completion):
            completion: Completion = answer[1]
            data = completion.data
            self._note(data)
            if completion.usage is not None:
                self.usage = (completion.usage.prompt_tokens, completion.usage.completion_tokens)
            if self._request._tracing.capture:
                self.text = genai.completion_text(data)
        self.end("ok")

    @_quiet
    def failed(self, error: BaseException) -> None:
        """`AttemptWatch.failed`: cancelled attempts end now; failed ones when the router has
        decided what follows (`RequestSpan.attempt` or `RequestSpan.finish`)."""
        span = self._span
        if isinstance(error, GatewayError):
            self._error = error.code or error.kind
            span.set_attribute("error.type", self._error)
            if isinstance(error, UpstreamError) and error.upstream_status is not None:
                span.set_attribute("crossroads.upstream.status_code", error.upstream_status)
            span.set_status(Status(StatusCode.ERROR, error.message))
            self._ended_at, self._failed_at = time.time_ns(), time.perf_counter()
            self._request.failed(self)
        else:
            self._error = type(error).__name__
            span.set_attribute("error.type", self._error)
            self.end("cancelled")

    @_quiet
    def end(self, outcome: str) -> None:
        """Ends the span (once) with `outcome`: ok, retried, fell_back, failed, stream_failed
        or cancelled; and counts its duration."""
        if self._done:
            return
        self._done = True
        span = self._span
        span.set_attribute("crossroads.attempt.outcome", outcome)
        if outcome in ("ok", "retried", "fell_back", "failed", "stream_failed"):
            span.set_attributes(self.response_attributes())
        span.end(end_time=self._ended_at)
        metrics = self._request._tracing.metrics
        if metrics is not None:
            attrs = {"gen_ai.operation.name": self._request._op, **self.metric_attributes()}
            if outcome != "ok":
                attrs["error.type"] = self._error or outcome
            end = time.perf_counter() if self._ended_at is None else self._failed_at
            metrics.operation.record(end - self._start, attrs)

    def response_attributes(self, *, with_id: bool = True) -> dict[str, genai.AttributeValue]:
        out: dict[str, genai.AttributeValue] = {}
        if self.model is not None:
            out["gen_ai.response.model"] = self.model
        if with_id and self.response_id is not None:
            out["gen_ai.response.id"] = self.response_id
        if self.reasons:
            out["gen_ai.response.finish_reasons"] = self.reasons
        if self.usage is not None:
            out["gen_ai.usage.input_tokens"] = self.usage[0]
            out["gen_ai.usage.output_tokens"] = self.usage[1]
        return out

    def metric_attributes(self) -> dict[str, genai.AttributeValue]:
        """The few-valued attributes the metrics carry: never an id or a client's text."""
        dep = self.deployment
        tracing = self._request._tracing
        out: dict[str, genai.AttributeValue] = {
            "gen_ai.provider.name": genai.provider_name(
                dep.host.id if dep.host else None, dep.provider
            ),
            "gen_ai.request.model": dep.upstream_model,
        }
        if self.model is not None:
            out["gen_ai.response.model"] = self.model
        server = tracing.servers.get(dep.provider)
        if server is not None:
            out["server.address"], out["server.port"] = server
        return out

    def _note(self, data: Mapping[str, Any]) -> None:
        model, rid = data.get("model"), data.get("id")
        if isinstance(model, str) and self.model is None:
            self.model = model[:256]
        if isinstance(rid, str) and self.response_id is None:
            self.response_id = rid[:256]
        self.reasons.extend(genai.finish_reasons(data))

    async def _watch(
        self, chunks: AsyncIterator[StreamChunk], first: StreamChunk
    ) -> AsyncIterator[StreamChunk]:
        """`chunks` as they come, noting the model, the finish reasons, the usage (and the
        text, when captured) of the whole stream; the span ends with the stream."""
        capture = self._request._tracing.capture
        pieces: list[str] = []
        outcome = "cancelled"
        try:
            self._chunk(first, capture, pieces)
            async for chunk in chunks:
                self._chunk(chunk, capture, pieces)
                yield chunk
            outcome = "ok"
        except GatewayError as exc:
            self._error = exc.code or exc.kind
            self._span.set_attribute("error.type", self._error)
            self._span.set_status(Status(StatusCode.ERROR, exc.message))
            outcome = "stream_failed"
            raise
        finally:
            if capture:
                self.text = "".join(pieces)
            self.end(outcome)
            await chunks.aclose()  # type: ignore[attr-defined]

    @_quiet
    def _chunk(self, chunk: StreamChunk, capture: bool, pieces: list[str]) -> None:
        if chunk.usage is not None:
            self.usage = (chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
        data = chunk.data
        if self.model is None or capture or b'"finish_reason":"' in data:
            try:
                decoded = orjson.loads(data)
            except orjson.JSONDecodeError:
                return
            if isinstance(decoded, dict):
                self._note(decoded)
                if capture:
                    pieces.append(genai.delta_text(decoded))


class _Unwatched:
    """The watch of an attempt that could not be traced."""

    headers: Mapping[str, str] = NO_HEADERS

    def succeeded(self, answer: object) -> None:
        pass

    def failed(self, error: BaseException) -> None:
        pass


_UNWATCHED = _Unwatched()
