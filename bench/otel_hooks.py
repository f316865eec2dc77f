"""What OpenTelemetry export costs per request, in-process and without a network: the tracing
hooks of one whole chat request (request span, one attempt, its answer, the end with the ledger
record) and the OTLP encoding of its spans, for export settings side by side. Best of five
rounds of 2,000 requests each.

    PYTHONPATH=src .venv/bin/python -m bench.otel_hooks

The benchmark harness measures the whole cost under load (`bench/run --interleave --targets
crossroads,crossroads-otel`, docs/performance.md); this shows how it divides."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from crossroads.ledger.record import LedgerRecord, Status, UsageSource
from crossroads.providers.base import Completion
from crossroads.routing.deployment import Deployment
from crossroads.routing.health import Circuit
from crossroads.routing.router import Plan
from crossroads.routing.table import Route
from crossroads.schemas import Usage
from crossroads.scrub import Scrubber
from crossroads.telemetry.otlp import Exporters, OtlpSettings, sampler
from crossroads.telemetry.tracing import Tracing

ROUNDS, REQUESTS = 5, 2000
DEP = Deployment(id="p:m", name="m", provider="p", upstream_model="m")
PLAN = Plan(Route("m", "model", (DEP,)), [DEP], [])
MESSAGE = {"role": "assistant", "content": "hi"}
ANSWER = {
    "id": "chatcmpl-1",
    "model": "m",
    "choices": [{"index": 0, "message": MESSAGE, "finish_reason": "stop"}],
}
COMPLETION = Completion(b"", ANSWER, Usage(prompt_tokens=5, completion_tokens=7))
RECORD = LedgerRecord(
    request_id="req_1", created_at=datetime.now(UTC), endpoint="chat.completions",
    requested_model="m", stream=False, status=Status.OK, served_model="m", deployment="p:m",
    provider="p", prompt_tokens=5, completion_tokens=7, cost_usd=Decimal("0.001"),
    baseline_cost_usd=Decimal("0.01"), latency_ms=3.0, usage_source=UsageSource.REPORTED,
    origin_country="CN", host_jurisdiction="US",
)  # fmt: skip
BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10}
HEADERS = {"host": "127.0.0.1", "content-type": "application/json"}


class Kept(SpanExporter):
    """Keeps the finished spans, for timing their encoding apart from the hooks."""

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def tracing(traces: bool, metrics: bool, sampled: str) -> tuple[Tracing, Kept]:
    """A Tracing as the gateway builds it, with the span exporter swapped for `Kept` (no
    network, no background thread) and metrics kept in memory (their export interval is
    never reached)."""
    settings = OtlpSettings(
        traces_endpoint="http://127.0.0.1:9/v1/traces" if traces else None,
        metrics_endpoint="http://127.0.0.1:9/v1/metrics" if metrics else None,
        metric_interval=3600,
    )
    exporters = Exporters(settings, "bench")
    kept = Kept()
    if traces:
        provider = TracerProvider(sampler=sampler(sampled, 0.1), shutdown_on_exit=False)
        provider.add_span_processor(SimpleSpanProcessor(kept))
        exporters.tracer_provider = provider
    return Tracing(exporters, {"p": "http://127.0.0.1:8000/v1"}, Scrubber(), "bench"), kept


def one_request(t: Tracing) -> None:
    span = t.request(HEADERS, "chat.completions")
    span.request_body(BODY, request_id="req_1")
    span.attempt(DEP, Circuit.CLOSED).succeeded((DEP, COMPLETION))
    span.finish(RECORD, PLAN, None)


def main() -> None:
    variants = (
        ("traces and metrics", True, True, "parentbased_always_on"),
        ("traces only", True, False, "parentbased_always_on"),
        ("metrics only", False, True, "parentbased_always_on"),
        ("metrics, 10% of traces", True, True, "parentbased_traceidratio"),
    )
    for name, traces, metrics, sampled in variants:
        t, kept = tracing(traces, metrics, sampled)
        for _ in range(500):
            one_request(t)
        rounds = []
        for _ in range(ROUNDS):
            kept.spans.clear()
            started = time.perf_counter()
            for _ in range(REQUESTS):
                one_request(t)
            rounds.append((time.perf_counter() - started) / REQUESTS * 1e6)
        started = time.perf_counter()
        for i in range(0, len(kept.spans), 512):
            encode_spans(kept.spans[i : i + 512]).SerializeToString()
        encoding = (time.perf_counter() - started) / REQUESTS * 1e6
        print(
            f"{name:<24} hooks {min(rounds):6.1f} us/request, "
            f"OTLP encoding {encoding:6.1f} us/request ({len(kept.spans) / REQUESTS:.2f} spans)"
        )


if __name__ == "__main__":
    main()
