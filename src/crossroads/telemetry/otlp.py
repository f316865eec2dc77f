"""OTLP export of traces and metrics: its settings (resolved by `crossroads.config` from the
config file and the standard `OTEL_*` variables), and the OpenTelemetry SDK objects built from
them. The SDK is imported only here and only when export is on: a gateway with telemetry off
loads none of it and makes no SDK object.

Everything leaves the request path: finished spans go into a bounded queue that a background
thread exports in batches (`BatchSpanProcessor`, which drops spans when the queue is full rather
than wait), and metrics are read and exported by another thread on a timer
(`PeriodicExportingMetricReader`). Every export is bounded by `timeout`; a collector that is slow
or down costs dropped telemetry and a log line, never a request's time or its answer."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import Sampler

log = logging.getLogger(__name__)

SAMPLERS = (
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
)
"""The `OTEL_TRACES_SAMPLER` values understood (the SDK's built-in samplers)."""


@dataclass(frozen=True, slots=True)
class OtlpSettings:
    """Where and how to export. A signal whose endpoint is None is not exported. Header values
    may be API keys of the collector's vendor: kept out of `repr`, never logged, and scrubbed
    from log lines (`Settings.scrubber`)."""

    traces_endpoint: str | None = None  # the full URL, .../v1/traces
    metrics_endpoint: str | None = None  # the full URL, .../v1/metrics
    traces_headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    metrics_headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    timeout: float = 10.0  # seconds, for one export request
    compression: Literal["none", "gzip"] = "none"
    service_name: str = "crossroads"
    resource_attributes: Mapping[str, str] = field(default_factory=dict)
    sampler: str = "parentbased_always_on"
    sampler_arg: float = 1.0  # the ratio of the traceidratio samplers
    max_queue_size: int = 2048  # spans waiting for export; more are dropped
    max_export_batch_size: int = 512
    schedule_delay: float = 5.0  # seconds between span exports
    metric_interval: float = 60.0  # seconds between metric exports
    capture_content: bool = False  # prompts and completions on spans, scrubbed
    max_content_chars: int = 16_384  # per recorded message list

    @property
    def enabled(self) -> bool:
        return self.traces_endpoint is not None or self.metrics_endpoint is not None


class Exporters:
    """The SDK providers of one gateway (never the process-global ones, so several gateways in
    one process stay apart): `tracer_provider` is None when traces are not exported,
    `meter_provider` None when metrics are not."""

    def __init__(self, settings: OtlpSettings, version: str) -> None:
        from opentelemetry.exporter.otlp.proto.http import Compression
        from opentelemetry.sdk.resources import Resource

        self.settings = settings
        resource = Resource.create(
            {
                **settings.resource_attributes,
                "service.name": settings.service_name,
                "service.version": version,
            }
        )
        compression = (
            Compression.Gzip if settings.compression == "gzip" else Compression.NoCompression
        )
        self.tracer_provider: TracerProvider | None = None
        self.meter_provider: MeterProvider | None = None
        if settings.traces_endpoint is not None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            provider = TracerProvider(
                sampler=sampler(settings.sampler, settings.sampler_arg),
                resource=resource,
                shutdown_on_exit=False,  # shut down by `aclose`, bounded; never at exit
            )
            provider.add_span_processor(
                BatchSpanProcessor(
                    OTLPSpanExporter(
                        endpoint=settings.traces_endpoint,
                        headers=dict(settings.traces_headers),
                        timeout=settings.timeout,
                        compression=compression,
                    ),
                    max_queue_size=settings.max_queue_size,
                    schedule_delay_millis=settings.schedule_delay * 1000,
                    max_export_batch_size=settings.max_export_batch_size,
                    export_timeout_millis=settings.timeout * 1000,
                )
            )
            self.tracer_provider = provider
        if settings.metrics_endpoint is not None:
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
            from opentelemetry.sdk.metrics import MeterProvider
            from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

            reader = PeriodicExportingMetricReader(
                OTLPMetricExporter(
                    endpoint=settings.metrics_endpoint,
                    headers=dict(settings.metrics_headers),
                    timeout=settings.timeout,
                    compression=compression,
                ),
                export_interval_millis=settings.metric_interval * 1000,
                export_timeout_millis=settings.timeout * 1000,
            )
            self.meter_provider = MeterProvider(
                metric_readers=[reader], resource=resource, shutdown_on_exit=False
            )

    async def aclose(self, within: float) -> None:
        """Flushes what is queued and stops the export threads, waiting `within` seconds at
        most: the SDK's shutdown blocks while an export is in flight, so it runs on a thread of
        its own, left to finish alone (as a daemon) if the collector holds it up."""
        providers = [p for p in (self.tracer_provider, self.meter_provider) if p is not None]
        if not providers:
            return

        def shut_down() -> None:
            for provider in providers:
                try:
                    provider.shutdown()
                except Exception:  # the SDK logs its own; shutdown must go on
                    log.exception("OpenTelemetry shutdown failed")

        thread = threading.Thread(target=shut_down, name="otel-shutdown", daemon=True)
        thread.start()
        await asyncio.get_running_loop().run_in_executor(None, thread.join, within)
        if thread.is_alive():
            log.warning("OTLP export did not flush within %gs; telemetry left unsent", within)


def sampler(name: str, ratio: float) -> Sampler:
    """The SDK sampler `OTEL_TRACES_SAMPLER` names (one of SAMPLERS). Raises ValueError."""
    from opentelemetry.sdk.trace import sampling

    choices: dict[str, Sampler] = {
        "always_on": sampling.ALWAYS_ON,
        "always_off": sampling.ALWAYS_OFF,
        "traceidratio": sampling.TraceIdRatioBased(ratio),
        "parentbased_always_on": sampling.ParentBased(sampling.ALWAYS_ON),
        "parentbased_always_off": sampling.ParentBased(sampling.ALWAYS_OFF),
        "parentbased_traceidratio": sampling.ParentBased(sampling.TraceIdRatioBased(ratio)),
    }
    if name not in choices:
        raise ValueError(f"unknown sampler {name!r} (known: {', '.join(SAMPLERS)})")
    return choices[name]
