"""What the dashboard's charts must show, computed from raw ledger records: each check takes the
traces plotly drew (a graph div's `data`) and compares them with the records of the page's
window, grouped into its periods (UTC; weeks start on Monday)."""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from crossroads.ledger.record import LedgerRecord

__all__ = [
    "check_errors",
    "check_latency",
    "check_savings",
    "check_shares",
    "check_spend",
    "origin_label",
    "weights_label",
]


def period(moment: datetime, interval: str) -> str:
    moment = moment.astimezone(UTC)
    if interval == "hour":
        return moment.strftime("%Y-%m-%d %H:00")
    if interval == "week":
        moment -= timedelta(days=moment.weekday())
    return moment.strftime("%Y-%m-%d")


def plotted(traces: list[dict[str, Any]]) -> dict[tuple[str | None, str], float]:
    """(the trace's group key, x) -> y, for the points a chart shows."""
    points = {}
    for trace in traces:
        for x, y in zip(trace["x"], trace["y"], strict=True):
            points[(trace["meta"]["key"], x)] = y
    return points


def check_spend(traces: list[dict[str, Any]], records: list[LedgerRecord], interval: str) -> None:
    expected: dict[tuple[str | None, str], float] = defaultdict(float)
    for r in records:
        if r.cost_usd is not None and r.cost_usd > 0:
            expected[(r.served_model, period(r.created_at, interval))] += float(r.cost_usd)
    points = {key: y for key, y in plotted(traces).items() if y > 0}
    assert points.keys() == expected.keys()
    for key, cost in expected.items():
        assert points[key] == pytest.approx(cost, rel=1e-9, abs=1e-12), key


def check_savings(traces: list[dict[str, Any]], records: list[LedgerRecord], interval: str) -> None:
    actual, at_baseline = traces
    compared = [r for r in records if r.cost_usd is not None and r.baseline_cost_usd is not None]
    for trace, field in ((actual, "cost_usd"), (at_baseline, "baseline_cost_usd")):
        expected: dict[str, float] = defaultdict(float)
        for r in compared:
            expected[period(r.created_at, interval)] += float(getattr(r, field))
        assert dict(zip(trace["x"], trace["y"], strict=True)) == pytest.approx(expected, rel=1e-9)


def origin_label(r: LedgerRecord) -> str | None:
    return r.origin_country


def weights_label(r: LedgerRecord) -> str | None:
    return None if r.open_weights is None else ("open" if r.open_weights else "closed")


def check_shares(
    traces: list[dict[str, Any]], records: list[LedgerRecord], interval: str, key: Any
) -> None:
    """Each trace is one group; its y is the group's share of the period's tokens (within the
    0.01 points of the reports' rounding)."""
    tokens: dict[str, dict[str | None, int]] = defaultdict(lambda: defaultdict(int))
    for r in records:
        tokens[period(r.created_at, interval)][key(r)] += r.prompt_tokens + r.completion_tokens
    for trace in traces:
        group = trace["meta"]["key"]
        for x, y in zip(trace["x"], trace["y"], strict=True):
            total = sum(tokens[x].values())
            assert y == pytest.approx(100 * tokens[x][group] / total, abs=0.0101), (group, x)
    for x in tokens:
        if sum(tokens[x].values()):
            assert sum(t["y"][t["x"].index(x)] for t in traces) == pytest.approx(100, abs=1e-6)


def check_latency(traces: list[dict[str, Any]], records: list[LedgerRecord]) -> None:
    """p50/p95/p99 per deployment, within the histogram's 9.05% of the exact nearest rank."""
    latencies: dict[str, list[float]] = defaultdict(list)
    for r in records:
        if r.provider is not None and r.latency_ms is not None:
            latencies[str(r.deployment)].append(r.latency_ms)
    assert [t["name"] for t in traces] == ["p50", "p95", "p99"]
    for trace, q in zip(traces, (0.50, 0.95, 0.99), strict=True):
        assert set(trace["y"]) == set(latencies)
        for deployment, estimate in zip(trace["y"], trace["x"], strict=True):
            values = sorted(latencies[deployment])
            exact = values[max(1, math.ceil(len(values) * q)) - 1]  # nearest rank
            assert abs(estimate - exact) <= max(0.0906 * exact, 1.0), (deployment, q)


def check_errors(traces: list[dict[str, Any]], records: list[LedgerRecord]) -> None:
    (trace,) = traces
    by_provider: dict[str | None, list[bool]] = defaultdict(list)
    for r in records:
        by_provider[r.provider].append(r.status.value == "error")
    expected = {
        (provider or "(rejected before routing)"): 100 * sum(failed) / len(failed)
        for provider, failed in by_provider.items()
    }
    assert dict(zip(trace["y"], trace["x"], strict=True)) == pytest.approx(expected, abs=0.006)
