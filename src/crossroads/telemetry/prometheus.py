"""Prometheus metrics of one gateway. Counters and histograms are updated from each request's
`LedgerRecord` (`GatewayMetrics.observe`, called once where every request ends); the ledger
backlog and the circuit states are read when Prometheus scrapes. Each gateway owns its own
`CollectorRegistry`, so several gateways in one process never share a series.

Labels are few-valued and never secret: endpoint, served model, provider, the maker's country,
status, deployment, and why a 401 was given (`reason`). Never a key id, a team, a request id,
or a name the client typed (the requested model is left out: an unknown name would add a series
per typo). Money is a float here, as Prometheus requires; the ledger keeps the exact Decimal
amounts. Requests refused with 401 are counted here only, never in the ledger."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from decimal import Decimal
from typing import Any, Protocol, TypeGuard

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector

from crossroads.ledger.record import LedgerRecord
from crossroads.routing.health import Circuit

__all__ = [
    "AUTH_FAILURE_LOG_INTERVAL_S",
    "LATENCY_BUCKETS",
    "Backlog",
    "CircuitBoard",
    "GatewayMetrics",
]

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)
"""Histogram bounds in seconds, for latency and time to first token: from a cached 50 ms
answer to a two-minute reasoning run (anything longer lands in +Inf)."""

_MONEY_LABELS = ("model", "provider", "origin_country")
_AUTH_REASONS = frozenset({"missing_api_key", "invalid_api_key"})
AUTH_FAILURE_LOG_INTERVAL_S = 60.0
"""The most often the 401 summary is logged."""

log = logging.getLogger(__name__)


class Backlog(Protocol):
    """The ledger writer as the metrics see it (`crossroads.ledger.writer.LedgerWriter`)."""

    @property
    def pending(self) -> int: ...

    @property
    def failed_writes(self) -> int: ...


class CircuitBoard(Protocol):
    """The router's health board as the metrics see it (`crossroads.routing.health.HealthBoard`):
    one dict per deployment with at least "deployment" and "circuit" (a `Circuit` value)."""

    def snapshot(self) -> list[dict[str, object]]: ...


class GatewayMetrics:
    """Every metric of one gateway, in its own registry.

    `observe` runs on the request path (O(1), no I/O). The scrape-time gauges call `backlog` and
    `circuits`, which are not thread-safe: call `exposition` from the event loop's thread."""

    def __init__(
        self, backlog: Backlog | None = None, circuits: CircuitBoard | None = None
    ) -> None:
        """Builds the registry and its metrics. Without `backlog` or `circuits` (a gateway
        assembled in a test) those gauges are left out."""
        self.registry = CollectorRegistry()
        registry = self.registry
        self._requests = Counter(
            "crossroads_requests",
            "Client requests by how they ended: status is ok, error or cancelled. Labels are "
            "empty where the request never reached a deployment (bad request, unknown model).",
            ("endpoint", "served_model", "provider", "origin_country", "status"),
            registry=registry,
        )
        self._tokens = Counter(
            "crossroads_tokens",
            "Tokens as upstreams reported them. As in the ledger and OpenAI's usage, prompt "
            "includes cached and completion includes reasoning: do not sum over kind.",
            ("model", "provider", "origin_country", "kind"),
            registry=registry,
        )
        self._cost = Counter(
            "crossroads_cost_usd",
            "Cost at list prices of priced requests, in USD (exact amounts are in the ledger).",
            _MONEY_LABELS,
            registry=registry,
        )
        self._baseline = Counter(
            "crossroads_baseline_cost_usd",
            "What requests with both a cost and a baseline cost would have cost at their "
            "proprietary baseline model, in USD.",
            _MONEY_LABELS,
            registry=registry,
        )
        self._savings = Counter(
            "crossroads_savings_usd",
            "Baseline cost minus actual cost, in USD, over requests that cost less than their "
            "baseline. Net saving = this minus crossroads_overspend_usd_total.",
            _MONEY_LABELS,
            registry=registry,
        )
        self._overspend = Counter(
            "crossroads_overspend_usd",
            "Actual cost minus baseline cost, in USD, over requests that cost more than their "
            "baseline (a counter cannot go down, so negative savings are counted here).",
            _MONEY_LABELS,
            registry=registry,
        )
        self._latency = Histogram(
            "crossroads_request_latency_seconds",
            "Time from a request's arrival to its end, for requests that reached a deployment.",
            ("provider", "model"),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self._ttft = Histogram(
            "crossroads_time_to_first_token_seconds",
            "Time from a streamed request's arrival to its first byte to the client.",
            ("provider", "model"),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self._auth_failures = Counter(
            "crossroads_auth_failures",
            "Requests refused with 401 for a missing or invalid API key, by reason "
            "(missing_api_key, invalid_api_key, other). They have no ledger record: a flood of "
            "wrong keys must not grow the ledger. A log line sums them up at most once a minute.",
            ("reason",),
            registry=registry,
        )
        self._auth_log = _ThrottledCount(AUTH_FAILURE_LOG_INTERVAL_S)
        registry.register(_ScrapeTimeCollector(backlog, circuits))
        ProcessCollector(namespace="crossroads", registry=registry)
        # Labelled children by (metric, label values): `labels()` validates, converts and locks
        # on every call, and `observe` needs up to eight of them per request. Series are never
        # removed, so a child once made stays valid; the cache holds no more series than the
        # registry does.
        self._children: dict[tuple[object, ...], Any] = {}

    def _child(self, metric: MetricWrapperBase, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def observe(self, record: LedgerRecord) -> None:
        """Counts one finished request. O(1), never awaits, and raises nothing for any record:
        negative or non-finite amounts (which no store accepts either) are left out."""
        model = record.served_model or ""
        provider = record.provider or ""
        origin = record.origin_country or ""
        self._child(
            self._requests, record.endpoint, model, provider, origin, record.status.value
        ).inc()
        for kind, count in (
            ("prompt", record.prompt_tokens),
            ("cached", record.cached_tokens),
            ("completion", record.completion_tokens),
            ("reasoning", record.reasoning_tokens),
        ):
            if count > 0:
                self._child(self._tokens, model, provider, origin, kind).inc(count)
        cost, baseline = record.cost_usd, record.baseline_cost_usd
        if _usable(cost):
            self._child(self._cost, model, provider, origin).inc(float(cost))
            if _usable(baseline):
                self._child(self._baseline, model, provider, origin).inc(float(baseline))
                saving = baseline - cost  # exact, then one rounding to float
                if saving >= 0:
                    self._child(self._savings, model, provider, origin).inc(float(saving))
                else:
                    self._child(self._overspend, model, provider, origin).inc(float(-saving))
        if record.provider is not None:
            if record.latency_ms is not None and record.latency_ms >= 0:
                self._child(self._latency, provider, model).observe(record.latency_ms / 1000.0)
            if record.ttft_ms is not None and record.ttft_ms >= 0:
                self._child(self._ttft, provider, model).observe(record.ttft_ms / 1000.0)

    def auth_failure(self, reason: str | None) -> None:
        """Counts one request refused for its credentials (a 401), and logs the count at most
        once per `AUTH_FAILURE_LOG_INTERVAL_S`. O(1); never awaits or raises."""
        label = reason if reason in _AUTH_REASONS else "other"
        self._child(self._auth_failures, label).inc()
        summary = self._auth_log.add(time.monotonic())
        if summary is not None:
            count, seconds = summary
            log.warning(
                "refused %d request(s) with a missing or invalid API key in the last %.0f s",
                count,
                seconds,
            )

    def exposition(self, accept: str | None = None) -> tuple[bytes, str]:
        """The registry in the text format the `Accept` header asks for (OpenMetrics when
        asked, else Prometheus text 0.0.4), and its content type. Call from the event loop's
        thread: the scrape-time gauges read the writer and the health board."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type


class _ThrottledCount:
    """Counts events and says, at most once per `interval` seconds, how many happened since it
    last said so: a log line that cannot be flooded."""

    __slots__ = ("_count", "_interval", "_since")

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._count = 0
        self._since: float | None = None

    def add(self, now: float) -> tuple[int, float] | None:
        """Counts one event at `now` (monotonic seconds); returns (events, seconds) when it is
        time to report them, else None. The first event is reported at once."""
        self._count += 1
        if self._since is not None and now - self._since < self._interval:
            return None
        count, elapsed = self._count, (self._interval if self._since is None else now - self._since)
        self._count, self._since = 0, now
        return count, elapsed


class _ScrapeTimeCollector:
    """Gauges read when scraped: the ledger writer's backlog and every deployment's circuit."""

    def __init__(self, backlog: Backlog | None, circuits: CircuitBoard | None) -> None:
        self._backlog = backlog
        self._circuits = circuits

    def describe(self) -> Iterable[Metric]:
        """The families without values, so registering reads neither source."""
        return list(self._families(read=False))

    def collect(self) -> Iterable[Metric]:
        return list(self._families(read=True))

    def _families(self, *, read: bool) -> Iterable[Metric]:
        if self._backlog is not None:
            pending = GaugeMetricFamily(
                "crossroads_ledger_pending_records",
                "Ledger records submitted and not yet written to the store.",
            )
            failures = CounterMetricFamily(
                "crossroads_ledger_write_failures",
                "Ledger store writes that failed and were retried (no record is dropped).",
            )
            if read:
                pending.add_metric([], self._backlog.pending)
                failures.add_metric([], self._backlog.failed_writes)
            yield pending
            yield failures
        if self._circuits is not None:
            circuit = GaugeMetricFamily(
                "crossroads_circuit_state",
                "1 for each deployment's current circuit state (closed, open, half_open), "
                "0 for the others.",
                labels=("deployment", "state"),
            )
            if read:
                for row in self._circuits.snapshot():
                    current = str(row["circuit"])
                    for state in Circuit:
                        value = 1.0 if state.value == current else 0.0
                        circuit.add_metric([str(row["deployment"]), state.value], value)
            yield circuit


def _usable(amount: Decimal | None) -> TypeGuard[Decimal]:
    """A cost the counters can take: known, finite and not negative."""
    return amount is not None and amount.is_finite() and amount >= 0
