"""`GatewayMetrics` on its own: what one ledger record adds to each series, the amounts a counter
cannot take, and one registry per instance (gateways in one process share nothing)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

from prometheus_client.parser import text_string_to_metric_families

from crossroads.ledger.record import LedgerRecord, Status
from crossroads.telemetry import GatewayMetrics

RECORD = LedgerRecord(
    request_id="req_1",
    created_at=datetime(2026, 11, 30, tzinfo=UTC),
    endpoint="chat.completions",
    requested_model="kimi",
    stream=True,
    status=Status.OK,
    served_model="moonshotai/kimi-k2-0905",
    deployment="together:kimi",
    provider="together",
    origin_country="CN",
    prompt_tokens=1000,
    completion_tokens=200,
    cost_usd=Decimal("0.0016"),
    baseline_cost_usd=Decimal("0.006"),
    latency_ms=1500.0,
    ttft_ms=300.0,
    api_key_id="abcdefghij",
    team_id="research",
)


def samples(metrics: GatewayMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body, _ = metrics.exposition()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
        if s.name.startswith("crossroads_")
        and not s.name.startswith("crossroads_process_")
        and not s.name.endswith("_created")
    }


def total(metrics: GatewayMetrics, name: str) -> float:
    return sum(v for (n, _), v in samples(metrics).items() if n == name)


def test_a_record_counts_once_in_every_series() -> None:
    metrics = GatewayMetrics()
    metrics.observe(RECORD)
    assert total(metrics, "crossroads_requests_total") == 1
    assert total(metrics, "crossroads_tokens_total") == 1200
    assert total(metrics, "crossroads_cost_usd_total") == 0.0016
    assert total(metrics, "crossroads_baseline_cost_usd_total") == 0.006
    assert total(metrics, "crossroads_savings_usd_total") == 0.0044
    assert total(metrics, "crossroads_request_latency_seconds_sum") == 1.5
    assert total(metrics, "crossroads_time_to_first_token_seconds_sum") == 0.3
    text = metrics.exposition()[0].decode()
    assert "abcdefghij" not in text and "research" not in text and "req_1" not in text


def test_costlier_than_baseline_counts_as_overspend_not_negative_saving() -> None:
    metrics = GatewayMetrics()
    metrics.observe(replace(RECORD, baseline_cost_usd=Decimal("0.0010")))
    assert total(metrics, "crossroads_savings_usd_total") == 0
    assert total(metrics, "crossroads_overspend_usd_total") == 0.0006


def test_amounts_a_counter_cannot_take_are_left_out() -> None:
    metrics = GatewayMetrics()
    for cost in (Decimal("-1"), Decimal("NaN"), Decimal("Infinity"), None):
        metrics.observe(replace(RECORD, cost_usd=cost, prompt_tokens=-5, latency_ms=-1.0))
    assert total(metrics, "crossroads_requests_total") == 4
    assert total(metrics, "crossroads_cost_usd_total") == 0
    assert total(metrics, "crossroads_tokens_total") == 4 * 200
    assert total(metrics, "crossroads_request_latency_seconds_count") == 0


def test_requests_that_reached_no_deployment_have_no_latency_series() -> None:
    metrics = GatewayMetrics()
    metrics.observe(
        LedgerRecord(
            request_id="req_2",
            created_at=RECORD.created_at,
            endpoint="messages",
            requested_model="nope",
            stream=False,
            status=Status.ERROR,
            latency_ms=0.4,
        )
    )
    assert samples(metrics) == {
        (
            "crossroads_requests_total",
            (
                ("endpoint", "messages"),
                ("origin_country", ""),
                ("provider", ""),
                ("served_model", ""),
                ("status", "error"),
            ),
        ): 1.0
    }


def test_each_instance_has_its_own_registry() -> None:
    first, second = GatewayMetrics(), GatewayMetrics()
    first.observe(RECORD)
    assert total(first, "crossroads_requests_total") == 1
    assert total(second, "crossroads_requests_total") == 0
